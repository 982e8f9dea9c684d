#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus from real tools (mktorrent,
# transmission-create) and hand-made protocol fixtures. Deterministic payloads; run it
# when a format changes, then commit the corpus. Needs: mktorrent transmission-cli python3.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for t in bencode metainfo announce_query tracker_reply wire udp_tracker; do mkdir -p "corpus/$t"; done
rm -f corpus/metainfo/*.torrent corpus/bencode/*.torrent

# Deterministic payloads: a single file and a small tree with an empty file.
python3 - "$work" <<'PY'
import os, random, sys
root = sys.argv[1]; rng = random.Random(7)
def put(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f: f.write(bytes(rng.getrandbits(8) for _ in range(n)))
put(f"{root}/single.bin", 70000)
put(f"{root}/tree/a.txt", 1234)
put(f"{root}/tree/sub/b.bin", 40000)
put(f"{root}/tree/sub/deeper/c", 17)
put(f"{root}/tree/empty", 0)
PY
mktorrent -l 15 -a http://127.0.0.1:6969/announce -o corpus/metainfo/mktorrent-single.torrent "$work/single.bin" >/dev/null
mktorrent -l 15 -p -a http://a/announce,http://b/announce -a http://c/announce -o corpus/metainfo/mktorrent-multi-private.torrent "$work/tree" >/dev/null
# BEP 19 web seeds: one URL (mktorrent writes a string) and two (a list).
mktorrent -l 15 -w http://127.0.0.1:8080/single.bin -o corpus/metainfo/mktorrent-webseed-single.torrent "$work/single.bin" >/dev/null
mktorrent -l 15 -a http://127.0.0.1:6969/announce -w http://origin.example/files/ -w https://mirror.example/pub/ -o corpus/metainfo/mktorrent-webseeds-multi.torrent "$work/tree" >/dev/null
transmission-create -s 32 -t http://127.0.0.1:6969/announce -o corpus/metainfo/transmission-single.torrent "$work/single.bin" >/dev/null
transmission-create -p -s 16 -t http://t1/announce -t http://t2/announce -c "fuzz seed" -o corpus/metainfo/transmission-multi-private.torrent "$work/tree" >/dev/null
cp corpus/metainfo/*.torrent corpus/bencode/

# The same torrents become proto test fixtures, each with what transmission-show (an
# implementation we did not write) reports, so our parser is checked against it.
fixtures=../proto/tests/fixtures; mkdir -p "$fixtures"
for torrent in corpus/metainfo/*.torrent; do
  name=$(basename "$torrent"); cp "$torrent" "$fixtures/$name"; chmod 644 "$fixtures/$name"
  transmission-show "$fixtures/$name" | awk '
    /^  Hash:/ {print "hash=" $2} /^  Name:/ {print "name=" $2}
    /^  Piece Count:/ {print "pieces=" $3}
    /^  Privacy:/ {print "private=" ($2 == "Private" ? 1 : 0)}
    /^TRACKERS/ {sec="trackers"} /^WEBSEEDS/ {sec="webseeds"; next} /^FILES/ {sec="files"; next}
    /^  Tier #/ {tier=$2} sec == "trackers" && /^  http/ {print "tracker=" tier " " $1}
    sec == "webseeds" && NF {print "webseed=" $1}
    sec == "files" && NF {print "file=" $1}' > "$fixtures/$name.expected"
done

python3 - <<'PY'
import struct
def w(path, data):
    with open(path, 'wb') as f: f.write(data)
# bencode edge cases
w('corpus/bencode/nested', b'd1:ald1:bli1ei-2e0:ee1:cdeee')
w('corpus/bencode/ints', b'li0ei-9223372036854775808ei9223372036854775807ee')
# announce queries as aria2, transmission and rqbit send them
ih = b'%12%34V%78%9A%BC%DE%F0%12%34V%78%9A%BC%DE%F0%12%34V%78'
w('corpus/announce_query/full', b'info_hash=' + ih + b'&peer_id=-KP0100-abcdefghijkl&port=6881&uploaded=0&downloaded=10&left=99&event=started&compact=1&numwant=50&key=abcd&trackerid=xyz')
w('corpus/announce_query/minimal', b'info_hash=' + ih + b'&peer_id=%2DTR3000%2D000000000000&port=51413&uploaded=0&downloaded=0&left=0')
w('corpus/announce_query/scrape', b'info_hash=' + ih + b'&info_hash=AAAAAAAAAAAAAAAAAAAA')
w('corpus/announce_query/ipv6', b'info_hash=' + ih + b'&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&uploaded=1&downloaded=2&left=3&event=stopped&compact=0&no_peer_id=1&ip=%3A%3A1')
# tracker replies
peers = bytes([127,0,0,1,0x1a,0xe1, 10,0,0,2,0x1a,0xe2])
w('corpus/tracker_reply/compact', b'd8:completei1e10:incompletei2e8:intervali1800e12:min intervali60e5:peers12:' + peers + b'6:peers618:' + bytes(15) + b'\x01\x1a\xe3e')
w('corpus/tracker_reply/dict', b'd8:intervali30e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eeee')
w('corpus/tracker_reply/failure', b'd14:failure reason16:torrent unknowne')
w('corpus/tracker_reply/scrape', b'd5:filesd20:' + b'\xab'*20 + b'd8:completei5e10:downloadedi9e10:incompletei3eeee')
# peer wire: a handshake followed by a message of every kind
hs = bytes([19]) + b'BitTorrent protocol' + bytes(8) + b'\x11'*20 + b'-KP0100-abcdefghijkl'
def msg(i, payload=b''): return struct.pack('>IB', 1 + len(payload), i) + payload
frames = (struct.pack('>I', 0) + msg(0) + msg(1) + msg(2) + msg(3) + msg(4, struct.pack('>I', 7))
    + msg(5, b'\xff\x80') + msg(6, struct.pack('>III', 1, 0, 16384)) + msg(7, struct.pack('>II', 1, 0) + b'x'*64)
    + msg(8, struct.pack('>III', 1, 0, 16384)) + msg(9, b'\x1a\xe1') + msg(20, b'\x00d1:md11:ut_metadatai1eee'))
w('corpus/wire/handshake-and-all-messages', hs + frames)
w('corpus/wire/all-messages', frames)
# what libtorrent and transmission sent (proto/tests/fixtures/extension): handshake, then
# the extension handshake, ut_metadata data and ut_pex frames under our ids (3 and 1)
fx = '../proto/tests/fixtures/extension/'
for client in ['libtorrent-2.0.8', 'transmission-3.00']:
    rd = lambda n: open(fx + client + '-' + n + '.bin', 'rb').read()
    captured = (msg(20, b'\x00' + rd('handshake')) + msg(20, b'\x03' + rd('ut_metadata-data'))
        + msg(20, b'\x01' + rd('ut_pex')))
    w('corpus/wire/captured-' + client, captured)
    w('corpus/wire/captured-' + client + '-with-handshake', rd('bt-handshake') + captured)
# UDP tracker datagrams (BEP 15, BEP 41), both directions
PID = 0x41727101980
w('corpus/udp_tracker/connect', struct.pack('>QII', PID, 0, 0x1234))
w('corpus/udp_tracker/connect-response', struct.pack('>IIQ', 0, 0x1234, 0x0102030405060708))
ann = struct.pack('>QII', 0x0102030405060708, 1, 7) + b'\x11'*20 + b'-KP0100-abcdefghijkl' + struct.pack('>QQQIIIiH', 0, 1000, 0, 2, 0, 0xcafe, -1, 6881)
w('corpus/udp_tracker/announce', ann)
w('corpus/udp_tracker/announce-bep41', ann + b'\x02\x2a/announce/0123456789abcdefghijklmnopqrstuv\x01\x00')
w('corpus/udp_tracker/announce-bad-option', ann + b'\x02\x40/announce')
w('corpus/udp_tracker/announce-response-v4', struct.pack('>IIIII', 1, 7, 1800, 1, 2) + bytes([127,0,0,1,0x1a,0xe1]))
w('corpus/udp_tracker/announce-response-v6', struct.pack('>IIIII', 1, 7, 1800, 1, 2) + bytes(15) + b'\x01\x1a\xe1')
w('corpus/udp_tracker/scrape', struct.pack('>QII', 0x0102030405060708, 2, 8) + b'\xaa'*20 + b'\xbb'*20)
w('corpus/udp_tracker/scrape-response', struct.pack('>IIIIIIII', 2, 8, 1, 2, 3, 4, 5, 6))
w('corpus/udp_tracker/error', struct.pack('>II', 3, 9) + b'connection id expired')
PY
echo "seed corpora written under $(pwd)/corpus"
