#!/usr/bin/python3
"""A libtorrent (python3-libtorrent, Debian 2.0.8) peer for kpbt's interop tests and
benchmarks: seeds a .torrent from a directory, or downloads a .torrent or a magnet
link into one. Confined to the addresses given with --listen (127.0.0.1 by default),
TCP only, plaintext, no DHT/LSD/UPnP/NAT-PMP, no PEX unless --pex.

Prints one line per event on stdout (flushed), the times in seconds since the
torrent was added:
  LISTENING <addr>           a listen socket is open (one line per --listen)
  CHECKED                    the data on disk was checked (seed: right after start)
  SEEDING                    the torrent is complete and being seeded
  METADATA <secs>            a magnet download received and verified the info dict
  PROGRESS <pct> <bytes> peers=<n> down=<B/s> up=<B/s>   once a second
  DONE <secs>                download complete (every piece passed its hash check)
  ERROR <text>               an error alert (the process keeps going)
Other alerts go to stderr as "ALERT <type>: <message>". A downloader exits 0 after
DONE unless --keep-seeding; a seeder runs until killed.

  lt_peer.py seed --torrent T --dir D --port P [--listen 127.0.0.1 --listen ::1]
             [--choke-after SECS] [--pex]
  lt_peer.py download (--torrent T | --magnet M) --dir D --port P [--peer HOST:PORT]...
"""

import argparse
import sys
import time

import libtorrent as lt


def say(*words):
    print(*words, flush=True)


def settings(args):
    interfaces = ",".join(
        f"[{a}]:{args.port}" if ":" in a else f"{a}:{args.port}" for a in args.listen
    )
    alerts = (
        lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.connect_notification
        | lt.alert.category_t.peer_notification
    )
    return {
        "listen_interfaces": interfaces,
        # No discovery beyond the tracker and the peers we are told of.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only: every peer in these tests speaks it, and uTP would change what
        # is measured.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Everyone is on 127.0.0.1: several peers per address.
        "allow_multiple_connections_per_ip": True,
        # kpbt has no MSE/PE: dial in plaintext, accept either.
        "out_enc_policy": lt.enc_policy.disabled,
        "in_enc_policy": lt.enc_policy.enabled,
        "alert_mask": alerts,
        # Announce right away and often enough for short tests.
        "min_announce_interval": 5,
    }


def parse_peer(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["seed", "download"])
    p.add_argument("--torrent")
    p.add_argument("--magnet")
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--listen", action="append", help="address to listen on (repeatable)")
    p.add_argument("--peer", action="append", default=[], help="HOST:PORT to dial")
    p.add_argument("--pex", action="store_true", help="load the ut_pex plugin")
    p.add_argument("--keep-seeding", action="store_true")
    p.add_argument(
        "--choke-after",
        type=float,
        metavar="SECS",
        help="unchoke as usual, but SECS after the start choke every peer (no unchoke"
        " slots from then on; loopback peers not exempt); prints CHOKING",
    )
    args = p.parse_args()
    args.listen = args.listen or ["127.0.0.1"]
    if (args.torrent is None) == (args.magnet is None):
        p.error("exactly one of --torrent and --magnet")
    if args.mode == "seed" and args.torrent is None:
        p.error("seed needs --torrent")

    # flags=0: none of the default plugins (ut_metadata, ut_pex, smart_ban); add back
    # what is wanted, so PEX stays off unless asked for.
    ses = lt.session(settings(args), 0)
    ses.add_extension("ut_metadata")
    ses.add_extension("smart_ban")
    if args.pex:
        ses.add_extension("ut_pex")
    if args.choke_after is not None:
        # Loopback peers are in libtorrent's "local" peer class, which ignores the
        # unchoke slots (unchoked as soon as interested, never choked by the choker):
        # put everyone in the global class, and run the choker every second.
        everyone = lt.ip_filter()
        gclass = 1 << lt.session.global_peer_class_id
        everyone.add_rule("0.0.0.0", "255.255.255.255", gclass)
        everyone.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", gclass)
        ses.set_peer_class_filter(everyone)
        ses.apply_settings({"unchoke_interval": 1})

    if args.magnet:
        atp = lt.parse_magnet_uri(args.magnet)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.dir
    if not args.pex:
        atp.flags |= lt.torrent_flags.disable_pex
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    t0 = time.monotonic()
    h = ses.add_torrent(atp)
    for peer in args.peer:
        h.connect_peer(parse_peer(peer))

    seeding_said = False
    choking = False
    done_said = False
    next_progress = time.monotonic()
    while True:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            name = type(a).__name__
            if isinstance(a, lt.listen_succeeded_alert):
                if a.socket_type == lt.socket_type_t.tcp:
                    say("LISTENING", f"{a.address}:{a.port}")
            elif isinstance(a, lt.listen_failed_alert):
                say("ERROR", "listen failed:", a.message())
                return 2
            elif isinstance(a, lt.metadata_received_alert):
                say("METADATA", f"{time.monotonic() - t0:.3f}")
            elif isinstance(a, lt.torrent_checked_alert):
                say("CHECKED")
                # Peers given before the check finished may have been dropped.
                for peer in args.peer:
                    h.connect_peer(parse_peer(peer))
            elif isinstance(a, lt.torrent_finished_alert) and args.mode == "download":
                if not done_said:
                    done_said = True
                    say("DONE", f"{time.monotonic() - t0:.3f}")
                    if not args.keep_seeding:
                        return 0
            elif a.category() & lt.alert.category_t.error_notification:
                say("ERROR", f"{name}: {a.message()}")
            else:
                print("ALERT", f"{name}: {a.message()}", file=sys.stderr, flush=True)
        st = h.status()
        if st.is_seeding and not seeding_said:
            seeding_said = True
            say("SEEDING")
        now = time.monotonic()
        if args.choke_after is not None and not choking and now - t0 >= args.choke_after:
            choking = True
            ses.apply_settings({"unchoke_slots_limit": 0, "num_optimistic_unchoke_slots": 0})
            say("CHOKING")
        if now >= next_progress:
            next_progress = now + 1.0
            say(
                "PROGRESS",
                f"{st.progress * 100:.1f}",
                st.total_wanted_done,
                f"peers={st.num_peers}",
                f"down={st.download_rate}",
                f"up={st.upload_rate}",
            )


if __name__ == "__main__":
    sys.exit(main())
