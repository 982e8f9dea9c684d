#!/usr/bin/env python3
"""Captures what a BitTorrent peer sends on one plaintext connection, for byte fixtures.

  capture_ext.py HOST PORT INFOHASH_HEX [--seconds S] [--listen-port P]
                 [--request-metadata] [--interested] [--request PIECE:BEGIN:LEN]

Connects, sends a handshake with the extension-protocol and Fast bits, then our
extension handshake (m: ut_metadata=3, ut_pex=1; p=--listen-port), optionally asks
for metadata piece 0 once the peer's handshake says it has ut_metadata, and prints
every message the peer sends for --seconds as one JSON object a line:
  {"t": secs, "kind": "handshake", "reserved": hex, "peer_id": hex, "raw": all 68 bytes}
  {"t": secs, "id": message id or null (keep-alive), "ext": extended id, "payload": hex}
Only the standard library is used, so it runs under any python3.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, str):
        return bencode(v.encode())
    if isinstance(v, dict):
        out = b"d"
        for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k):
            out += bencode(k) + bencode(v[k])
        return out + b"e"
    raise TypeError(v)


def frame(msg_id, payload=b""):
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("info_hash")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--listen-port", type=int, default=6881)
    p.add_argument("--request-metadata", action="store_true")
    p.add_argument("--interested", action="store_true")
    p.add_argument("--request", action="append", default=[])
    args = p.parse_args()

    t0 = time.monotonic()

    def emit(obj):
        obj["t"] = round(time.monotonic() - t0, 3)
        print(json.dumps(obj), flush=True)

    s = socket.create_connection((args.host, args.port), timeout=5)
    reserved = bytearray(8)
    reserved[5] |= 0x10  # BEP 10
    reserved[7] |= 0x04  # BEP 6
    s.sendall(b"\x13BitTorrent protocol" + bytes(reserved)
              + bytes.fromhex(args.info_hash) + b"-KP0000-" + os.urandom(6).hex().encode())
    hs = b""
    while len(hs) < 68:
        chunk = s.recv(68 - len(hs))
        if not chunk:
            emit({"kind": "closed", "during": "handshake"})
            return 1
        hs += chunk
    emit({"kind": "handshake", "reserved": hs[20:28].hex(), "peer_id": hs[48:68].hex(),
          "raw": hs.hex()})
    ours = {"m": {"ut_metadata": 3, "ut_pex": 1}, "p": args.listen_port, "v": "kpbt-capture"}
    s.sendall(frame(20, b"\x00" + bencode(ours)))
    if args.interested:
        s.sendall(frame(2))
    for r in args.request:
        piece, begin, length = (int(x) for x in r.split(":"))
        s.sendall(frame(6, struct.pack(">III", piece, begin, length)))
    asked = False
    buf = b""
    s.settimeout(0.2)
    deadline = t0 + args.seconds
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError as e:
            emit({"kind": "closed", "error": str(e)})
            return 0
        if not chunk:
            emit({"kind": "closed"})
            return 0
        buf += chunk
        while len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + n:
                break
            body, buf = buf[4:4 + n], buf[4 + n:]
            if n == 0:
                emit({"id": None})
                continue
            msg = {"id": body[0]}
            payload = body[1:]
            if body[0] == 20:
                msg["ext"] = payload[0]
                payload = payload[1:]
                if (msg["ext"] == 0 and args.request_metadata and not asked
                        and b"ut_metadata" in payload):
                    # The peer's id for ut_metadata: the integer after the name.
                    i = payload.index(b"11:ut_metadatai") + len(b"11:ut_metadatai")
                    their = int(payload[i:payload.index(b"e", i)])
                    s.sendall(frame(20, bytes([their]) + bencode({"msg_type": 0, "piece": 0})))
                    asked = True
            msg["payload"] = payload.hex()
            emit(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
