//! Property and differential tests of `kpbt_proto::announce` (kept here, with the tracker
//! that depends on them, so proto's own file stays within size limits): query round-trips
//! and reply encodings checked against `serde_bencode`.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{bytes, compact_peers, compact_peers6, decode_canonical, int};
use kpbt_proto::announce::*;
use kpbt_proto::{InfoHash, PeerId};
use proptest::prelude::*;

fn event() -> impl Strategy<Value = AnnounceEvent> {
    prop::sample::select(AnnounceEvent::ALL.to_vec())
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn request() -> impl Strategy<Value = AnnounceRequest> {
    (
        (any::<[u8; 20]>(), any::<[u8; 20]>(), 1u16..=u16::MAX),
        (any::<u64>(), any::<u64>(), any::<u64>(), event()),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<u32>()),
        ),
        (
            proptest::option::of(ip()),
            proptest::option::of("[ -~é]{0,20}"),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        ),
    )
        .prop_map(
            |(
                (ih, pid, port),
                (up, down, left, event),
                (compact, npi, numwant),
                (ip, key, tid),
            )| {
                AnnounceRequest {
                    info_hash: InfoHash(ih),
                    peer_id: PeerId(pid),
                    port,
                    uploaded: up,
                    downloaded: down,
                    left,
                    event,
                    compact,
                    no_peer_id: npi,
                    numwant,
                    ip,
                    key,
                    tracker_id: tid,
                }
            },
        )
}

proptest! {
    #[test]
    fn query_string_round_trips(req in request()) {
        let q = req.to_query_string();
        prop_assert!(q.bytes().all(|b| b.is_ascii_graphic()), "{}", q);
        prop_assert_eq!(parse_announce_query(q.as_bytes()).unwrap(), req);
    }

    #[test]
    fn parser_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_announce_query(&raw);
        let _ = parse_scrape_query(&raw, 8);
    }

    /// Whatever parses re-encodes to a query that parses to the same request (the
    /// invariant proto's fuzz target checks), on queries built from real keys with
    /// hostile values so that many of them do parse.
    #[test]
    fn accepted_queries_reencode_faithfully(
        extra in proptest::collection::vec(
            (prop::sample::select(vec!["key", "ip", "numwant", "compact", "no_peer_id",
                "event", "left", "trackerid", "port"]),
             proptest::collection::vec(any::<u8>(), 0..50)),
            0..6),
    ) {
        let mut q = format!("info_hash={}&peer_id={}&port=1", "%AA".repeat(20), "b".repeat(20));
        for (k, v) in &extra {
            q.push('&');
            q.push_str(k);
            q.push('=');
            percent_encode_into(&mut q, v);
        }
        if let Ok(req) = parse_announce_query(q.as_bytes()) {
            prop_assert_eq!(parse_announce_query(req.to_query_string().as_bytes()).unwrap(), req);
        }
    }

    #[test]
    fn compact_replies_decode_with_serde_bencode(
        peers in proptest::collection::vec((ip(), any::<u16>(), any::<[u8; 20]>()), 0..30),
        complete in any::<u32>(), incomplete in any::<u32>(),
    ) {
        let peers: Vec<ReplyPeer> = peers
            .into_iter()
            .map(|(ip, port, id)| ReplyPeer { addr: SocketAddr::new(ip, port), peer_id: PeerId(id) })
            .collect();
        let reply = AnnounceReply { complete, incomplete, interval: 1800, min_interval: Some(900), tracker_id: None, warning: Some("w") };
        let mut out = Vec::new();
        encode_announce_reply(&mut out, &reply, &peers, PeerListFormat::Compact);
        let d = decode_canonical(&out);
        prop_assert_eq!(int(&d, "complete"), i64::from(complete));
        prop_assert_eq!(int(&d, "incomplete"), i64::from(incomplete));
        prop_assert_eq!(bytes(&d, "warning message"), b"w");
        let v4: Vec<SocketAddr> = peers.iter().map(|p| p.addr).filter(SocketAddr::is_ipv4).collect();
        let v6: Vec<SocketAddr> = peers.iter().map(|p| p.addr).filter(SocketAddr::is_ipv6).collect();
        prop_assert_eq!(compact_peers(&d), v4);
        prop_assert_eq!(compact_peers6(&d), v6);

        let mut out = Vec::new();
        encode_announce_reply(&mut out, &reply, &peers, PeerListFormat::Dict { with_peer_id: true });
        let d = decode_canonical(&out);
        let Some(serde_bencode::value::Value::List(l)) = d.get(&b"peers"[..]) else { panic!() };
        prop_assert_eq!(l.len(), peers.len());
    }

    #[test]
    fn scrape_replies_are_canonical(hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..10)) {
        let entries: Vec<(InfoHash, ScrapeStats)> = hashes
            .iter()
            .map(|h| (InfoHash(*h), ScrapeStats { complete: u32::from(h[0]), downloaded: 3, incomplete: 4 }))
            .collect();
        let mut out = Vec::new();
        encode_scrape_reply(&mut out, &entries);
        let d = decode_canonical(&out);
        let Some(serde_bencode::value::Value::Dict(files)) = d.get(&b"files"[..]) else { panic!() };
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        prop_assert_eq!(files.len(), unique.len());
    }

    #[test]
    fn failure_replies_are_canonical(reason in "\\PC{0,80}") {
        let mut out = Vec::new();
        encode_failure(&mut out, &reason);
        let d = decode_canonical(&out);
        prop_assert_eq!(bytes(&d, "failure reason"), reason.as_bytes());
    }
}
