//! Extension-protocol bytes captured from libtorrent 2.0.8 (python3-libtorrent, Debian
//! bookworm) and Transmission 3.00 (transmission-cli) seeding the same small torrent on
//! loopback, decoded by our sans-IO code. How they were captured: `fixtures/extension/
//! README.md`. Each file is one payload as it came off the wire.

use std::path::PathBuf;

use kpbt_proto::extension::{ExtendedHandshake, MetadataMessage, PexMessage};
use kpbt_proto::metadata::torrent_from_info;
use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::wire::{decode_message, Handshake, Message, HANDSHAKE_LEN};
use sha1::{Digest, Sha1};

/// The torrent both clients seeded: `fixture.bin`, 100,000 bytes, 32 KiB pieces.
const INFO_HASH: &str = "15a2c2797a4e99ce7e3c02998ead61774fef3f41";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/extension")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bt_handshake(name: &str) -> Handshake {
    let bytes: [u8; HANDSHAKE_LEN] = fixture(name).try_into().expect("68 bytes");
    let hs = Handshake::decode(&bytes).unwrap();
    assert_eq!(hs.info_hash.to_hex(), INFO_HASH);
    assert!(hs.supports_extensions(), "{name}: BEP 10 bit");
    assert!(hs.supports_fast(), "{name}: BEP 6 bit");
    assert_eq!(
        hs.encode(),
        bytes,
        "{name} re-encodes to the captured bytes"
    );
    hs
}

/// The info dictionary in a `ut_metadata` data message hashes to the info hash and is
/// the torrent that was seeded.
fn check_metadata(name: &str) {
    let payload = fixture(name);
    let MetadataMessage::Data {
        piece,
        total_size,
        data,
    } = MetadataMessage::decode(&payload).unwrap()
    else {
        panic!("{name}: not a data message");
    };
    assert_eq!((piece, total_size), (0, 151), "{name}");
    assert_eq!(
        data.len(),
        151,
        "{name}: one piece holds the whole dictionary"
    );
    assert_eq!(hex::encode(Sha1::digest(data)), INFO_HASH, "{name}");
    let meta = Metainfo::from_bytes(&torrent_from_info(data, &[], &[])).unwrap();
    assert_eq!(meta.info.name, "fixture.bin");
    assert_eq!(meta.info.total_length, 100_000);
    assert_eq!(meta.info.piece_length, 32 * 1024);
    assert_eq!(meta.info.piece_count(), 4);
    // Our encoder writes the same dictionary header and data.
    let again = MetadataMessage::Data {
        piece,
        total_size,
        data,
    }
    .encode();
    assert_eq!(again, payload, "{name} re-encodes byte for byte");
}

#[test]
fn libtorrent_handshakes_decode() {
    let hs = bt_handshake("libtorrent-2.0.8-bt-handshake.bin");
    assert!(hs.peer_id.0.starts_with(b"-LT2080-"));
    // The DHT bit (BEP 5) is set although its DHT is off.
    assert_eq!(hs.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);

    let raw = fixture("libtorrent-2.0.8-handshake.bin");
    let ext = ExtendedHandshake::decode(&raw).unwrap();
    assert_eq!(ext.client.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(
        ext.extensions,
        [
            ("lt_donthave", 7),
            ("share_mode", 8),
            ("upload_only", 3),
            ("ut_holepunch", 4),
            ("ut_metadata", 2),
            ("ut_pex", 1),
        ]
        .map(|(n, id)| (n.to_string(), id))
    );
    assert_eq!(ext.id_of("ut_metadata"), Some(2));
    assert_eq!(ext.id_of("ut_pex"), Some(1));
    assert_eq!(ext.metadata_size, Some(151));
    assert_eq!(ext.request_queue, Some(2000));
    assert_eq!(ext.your_ip, Some("127.0.0.1".parse().unwrap()));
    // It answered our connection: no `p` (it sends its port only when it dials).
    assert_eq!(ext.listen_port, None);
    // Keys we do not model (`complete_ago`, the top-level `upload_only`) are skipped.
    assert!(raw.starts_with(b"d12:complete_agoi-1e"));
}

#[test]
fn libtorrent_metadata_and_pex_messages_decode() {
    check_metadata("libtorrent-2.0.8-ut_metadata-data.bin");
    // Sent to the first of two scripted peers (listen ports 6881 and 6882, given in our
    // handshakes' `p`): it lists both, the recipient itself included.
    let raw = fixture("libtorrent-2.0.8-ut_pex.bin");
    let pex = PexMessage::decode(&raw).unwrap();
    assert_eq!(
        pex.added,
        vec![
            ("127.0.0.1:6881".parse().unwrap(), 0),
            ("127.0.0.1:6882".parse().unwrap(), 0)
        ]
    );
    assert!(pex.dropped.is_empty());
    // libtorrent writes all six keys, as we do: our encoding is byte-identical.
    assert_eq!(pex.encode(), raw);
}

#[test]
fn transmission_handshakes_decode() {
    let hs = bt_handshake("transmission-3.00-bt-handshake.bin");
    assert!(hs.peer_id.0.starts_with(b"-TR3000-"));
    assert_eq!(hs.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);

    let raw = fixture("transmission-3.00-handshake.bin");
    let ext = ExtendedHandshake::decode(&raw).unwrap();
    assert_eq!(ext.client.as_deref(), Some("Transmission 3.00"));
    assert_eq!(
        ext.extensions,
        vec![("ut_metadata".to_string(), 3), ("ut_pex".to_string(), 1)]
    );
    assert_eq!(ext.metadata_size, Some(151));
    assert_eq!(ext.request_queue, Some(512));
    assert_eq!(ext.listen_port, Some(45210));
    // Transmission 3.00 sends no `yourip`; `e` (encryption) is not modelled.
    assert_eq!(ext.your_ip, None);
    assert!(raw.starts_with(b"d1:ei0e"));
    // Everything we model, re-encoded, is a prefix-free subset: decoding it again
    // gives the same values.
    assert_eq!(ExtendedHandshake::decode(&ext.encode()).unwrap(), ext);
}

#[test]
fn transmission_metadata_and_pex_messages_decode() {
    check_metadata("transmission-3.00-ut_metadata-data.bin");
    // Transmission's first PEX message to a scripted peer that gave `p` = 6881: that
    // peer itself, `added.f` 0, and none of the other keys.
    let raw = fixture("transmission-3.00-ut_pex.bin");
    let pex = PexMessage::decode(&raw).unwrap();
    assert_eq!(pex.added, vec![("127.0.0.1:6881".parse().unwrap(), 0)]);
    assert!(pex.dropped.is_empty());
    assert_eq!(
        &raw[..],
        b"d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f1:\x00e"
    );
}

/// Every captured payload, framed as the `Extended` message it came in (under the ids
/// our scripted peer advertised: ut_metadata 3, ut_pex 1), survives the wire decoder at
/// every split point: a partial frame is "need more", never an error or a wrong message.
#[test]
fn captured_frames_decode_at_every_split_point() {
    for (name, id) in [
        ("libtorrent-2.0.8-handshake.bin", 0),
        ("libtorrent-2.0.8-ut_metadata-data.bin", 3),
        ("libtorrent-2.0.8-ut_pex.bin", 1),
        ("transmission-3.00-handshake.bin", 0),
        ("transmission-3.00-ut_metadata-data.bin", 3),
        ("transmission-3.00-ut_pex.bin", 1),
    ] {
        let payload = fixture(name);
        let mut frame = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&[20, id]);
        frame.extend_from_slice(&payload);
        for cut in 0..frame.len() {
            let mut buf = bytes::BytesMut::from(&frame[..cut]);
            assert_eq!(
                decode_message(&mut buf, 1 << 20).unwrap(),
                None,
                "{name} @{cut}"
            );
        }
        let mut buf = bytes::BytesMut::from(&frame[..]);
        match decode_message(&mut buf, 1 << 20).unwrap() {
            Some(Message::Extended {
                id: got,
                payload: p,
            }) => {
                assert_eq!((got, &p[..]), (id, &payload[..]), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(buf.is_empty());
    }
}
