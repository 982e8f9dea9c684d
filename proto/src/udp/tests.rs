use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::announce::{AnnounceEvent, ScrapeStats};
use crate::types::{InfoHash, PeerId};

fn hexbytes(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

// Fixture: a connect request as libtorrent, transmission and aria2 send it.
const CONNECT: &str = "0000041727101980 00000000 deadbeef";

// Fixture: an announce with every field distinct, then BEP 41 URLData "/announce/abc"
// split over two options with a NOP between, then EndOfOptions and junk after it.
const ANNOUNCE: &str = "
    0102030405060708 00000001 0a0b0c0d
    1111111111111111111111111111111111111111
    2d4b503031303030303030303030303030303030
    0000000000000064 00000000000003e8 0000000000000005
    00000002 0a000001 cafebabe ffffffff 1ae1
    02 09 2f616e6e6f756e6365 01 02 04 2f616263 00 ffff";

#[test]
fn connect_request_fixture() {
    let d = hexbytes(CONNECT);
    assert_eq!(
        parse_request(&d).unwrap(),
        Request::Connect {
            transaction_id: TransactionId(0xdead_beef)
        }
    );
    assert_eq!(
        encode_connect_request(TransactionId(0xdead_beef)).to_vec(),
        d
    );
    // Trailing bytes are tolerated (BEP 15: do not assume packet sizes).
    let mut longer = d.clone();
    longer.extend_from_slice(b"extra");
    assert!(matches!(
        parse_request(&longer),
        Ok(Request::Connect { .. })
    ));
}

#[test]
fn announce_request_fixture_and_url_data() {
    let d = hexbytes(ANNOUNCE);
    let Request::Announce(a) = parse_request(&d).unwrap() else {
        panic!("not an announce")
    };
    assert_eq!(a.connection_id, ConnectionId(0x0102_0304_0506_0708));
    assert_eq!(a.transaction_id, TransactionId(0x0a0b_0c0d));
    assert_eq!(a.info_hash, InfoHash([0x11; 20]));
    assert_eq!(&a.peer_id.0[..8], b"-KP01000");
    assert_eq!((a.downloaded, a.left, a.uploaded), (100, 1000, 5));
    assert_eq!(a.event, AnnounceEvent::Started);
    assert_eq!(a.ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(a.key, 0xcafe_babe);
    assert_eq!(a.num_want, None, "-1 means the tracker's default");
    assert_eq!(a.port, 6881);
    let mut path = Vec::new();
    url_data(a.options, &mut path).unwrap();
    assert_eq!(path, b"/announce/abc");
    // Re-encoding gives the same bytes.
    let mut out = Vec::new();
    encode_announce_request(&mut out, &a);
    assert_eq!(out, d);
}

#[test]
fn announce_request_refusals_carry_the_transaction() {
    let d = hexbytes(ANNOUNCE);
    let tid = TransactionId(0x0a0b_0c0d);
    assert_eq!(
        parse_request(&d[..97]),
        Err(RequestError::ShortAnnounce {
            len: 97,
            transaction_id: tid
        })
    );
    let mut bad_event = d.clone();
    bad_event[83] = 9;
    assert_eq!(
        parse_request(&bad_event),
        Err(RequestError::UnknownEvent {
            event: 9,
            transaction_id: tid
        })
    );
    let mut zero_port = d.clone();
    zero_port[96..98].copy_from_slice(&[0, 0]);
    assert_eq!(
        parse_request(&zero_port).unwrap_err().transaction_id(),
        Some(tid)
    );
    let mut unknown = d.clone();
    unknown[8..12].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        parse_request(&unknown),
        Err(RequestError::UnknownAction {
            action: 7,
            transaction_id: tid
        })
    );
}

#[test]
fn garbage_is_dropped_without_a_transaction() {
    for d in [
        vec![],
        vec![0u8; 15],
        vec![0u8; MAX_DATAGRAM + 1],
        hexbytes("0000041727101981 00000000 deadbeef"), // wrong magic
    ] {
        let e = parse_request(&d).unwrap_err();
        assert_eq!(e.transaction_id(), None, "{e}");
    }
}

#[test]
fn scrape_request_fixture_and_limits() {
    let mut d = hexbytes("0102030405060708 00000002 00000009");
    d.extend_from_slice(&[0xaa; 20]);
    d.extend_from_slice(&[0xbb; 20]);
    let Request::Scrape(s) = parse_request(&d).unwrap() else {
        panic!("not a scrape")
    };
    assert_eq!(
        s.info_hashes().collect::<Vec<_>>(),
        vec![InfoHash([0xaa; 20]), InfoHash([0xbb; 20])]
    );
    let mut out = Vec::new();
    encode_scrape_request(&mut out, &s);
    assert_eq!(out, d);

    let tid = Some(TransactionId(9));
    assert_eq!(
        parse_request(&d[..d.len() - 1])
            .unwrap_err()
            .transaction_id(),
        tid
    );
    let mut max = d[..16].to_vec();
    max.extend_from_slice(&[1; 20 * MAX_SCRAPE_HASHES]);
    assert!(matches!(parse_request(&max), Ok(Request::Scrape(s)) if s.len() == MAX_SCRAPE_HASHES));
    max.extend_from_slice(&[1; 20]);
    assert_eq!(
        parse_request(&max),
        Err(RequestError::TooManyHashes {
            transaction_id: TransactionId(9)
        })
    );
}

#[test]
fn response_fixtures() {
    let mut out = Vec::new();
    encode_connect_response(
        &mut out,
        TransactionId(1),
        ConnectionId(0x1122_3344_5566_7788),
    );
    assert_eq!(out, hexbytes("00000000 00000001 1122334455667788"));

    out.clear();
    let peers = vec![
        SocketAddr::from(([127, 0, 0, 1], 6881)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 6882)),
    ];
    let r = AnnounceResponse {
        transaction_id: TransactionId(2),
        interval: 1800,
        leechers: 3,
        seeders: 4,
        peers: peers.clone(),
    };
    encode_announce_response(&mut out, &r, PeerFamily::V4);
    assert_eq!(
        out,
        hexbytes("00000001 00000002 00000708 00000003 00000004 7f000001 1ae1"),
        "the IPv6 peer is left out of an IPv4 reply"
    );
    out.clear();
    encode_announce_response(&mut out, &r, PeerFamily::V6);
    assert_eq!(
        out,
        hexbytes(
            "00000001 00000002 00000708 00000003 00000004 00000000000000000000000000000001 1ae2"
        )
    );
    let Response::Announce(back) = parse_response(&out, PeerFamily::V6).unwrap() else {
        panic!()
    };
    assert_eq!(back.peers, vec![peers[1]]);

    out.clear();
    encode_scrape_header(&mut out, TransactionId(3));
    push_scrape_stats(
        &mut out,
        &ScrapeStats {
            complete: 5,
            downloaded: 6,
            incomplete: 7,
        },
    );
    assert_eq!(
        out,
        hexbytes("00000002 00000003 00000005 00000006 00000007")
    );

    out.clear();
    encode_error_response(&mut out, TransactionId(4), "nope");
    assert_eq!(out, hexbytes("00000003 00000004 6e6f7065"));
    assert_eq!(
        parse_response(&out, PeerFamily::V4).unwrap(),
        Response::Error {
            transaction_id: TransactionId(4),
            message: "nope".into()
        }
    );
}

#[test]
fn malformed_responses_are_errors() {
    let v4 = PeerFamily::V4;
    assert_eq!(parse_response(&[0; 7], v4), Err(ResponseError::TooShort(7)));
    assert_eq!(
        parse_response(&hexbytes("00000000 00000001 11"), v4),
        Err(ResponseError::TooShort(9))
    );
    assert_eq!(
        parse_response(
            &hexbytes("00000001 00000002 00000708 00000003 00000004 7f000001"),
            v4
        ),
        Err(ResponseError::PartialPeer(6))
    );
    assert_eq!(
        parse_response(&hexbytes("00000002 00000003 0000000500"), v4),
        Err(ResponseError::PartialScrape)
    );
    assert_eq!(
        parse_response(&hexbytes("00000009 00000003"), v4),
        Err(ResponseError::UnknownAction(9))
    );
    // Peers with port 0 are dropped; nobody can dial them.
    let Response::Announce(a) = parse_response(
        &hexbytes("00000001 00000002 00000708 00000003 00000004 7f000001 0000 7f000002 0001"),
        v4,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(a.peers, vec![SocketAddr::from(([127, 0, 0, 2], 1))]);
}

#[test]
fn error_messages_are_cut_on_a_char_boundary() {
    let mut out = Vec::new();
    let long = "é".repeat(MAX_ERROR_MESSAGE);
    encode_error_response(&mut out, TransactionId(1), &long);
    assert!(out.len() - 8 <= MAX_ERROR_MESSAGE);
    assert!(std::str::from_utf8(&out[8..]).is_ok());
}

#[test]
fn options_unknown_types_are_skipped_and_malformed_ones_refused() {
    let mut out = Vec::new();
    // Unknown type 0x7 with 2 data bytes, then URLData "/a".
    url_data(&hexbytes("07 02 ffff 02 02 2f61"), &mut out).unwrap();
    assert_eq!(out, b"/a");
    // Nothing after EndOfOptions is read, even garbage.
    url_data(&hexbytes("02 01 2f 00 02 ff"), &mut out).unwrap();
    assert_eq!(out, b"/");
    assert_eq!(
        url_data(&hexbytes("01 02"), &mut out),
        Err(OptionsError::MissingLength { kind: 2, at: 1 })
    );
    assert_eq!(
        url_data(&hexbytes("02 05 2f61"), &mut out),
        Err(OptionsError::Truncated { kind: 2, at: 0 })
    );
    url_data(&[], &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn long_url_data_is_split_into_chunks_and_reassembled() {
    let path: Vec<u8> = (0..600).map(|i| b'a' + (i % 26) as u8).collect();
    let mut opts = Vec::new();
    encode_url_data(&mut opts, &path);
    assert_eq!(opts[0..2], [2, 255]);
    assert_eq!(opts[257..259], [2, 255]);
    assert_eq!(opts[514..516], [2, 90]);
    assert_eq!(*opts.last().unwrap(), 0);
    let mut back = Vec::new();
    url_data(&opts, &mut back).unwrap();
    assert_eq!(back, path);
    opts.clear();
    encode_url_data(&mut opts, b"");
    assert!(opts.is_empty());
}

#[test]
fn connection_ids_are_bound_to_address_key_and_time() {
    let key = ConnectionIdKey::new([7; 16]);
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    let t = 1_700_000_000;
    let id = key.issue(a, t);
    assert!(key.check(id, a, t));
    assert!(key.check(id, a, t + u64::from(CONNECTION_ID_LIFETIME_SECS)));
    assert!(!key.check(id, a, t + u64::from(CONNECTION_ID_LIFETIME_SECS) + 1));
    assert!(key.check(id, a, t - u64::from(CONNECTION_ID_CLOCK_SKEW_SECS)));
    assert!(!key.check(id, a, t - u64::from(CONNECTION_ID_CLOCK_SKEW_SECS) - 1));
    assert!(!key.check(id, b, t), "another address");
    assert!(
        !ConnectionIdKey::new([8; 16]).check(id, a, t),
        "another key"
    );
    assert!(
        !key.check(ConnectionId(id.0 ^ 1), a, t),
        "a flipped MAC bit"
    );
    assert!(
        !key.check(ConnectionId(id.0 + (1 << 32)), a, t + 1),
        "a moved time"
    );
    // An IPv4 client seen through a dual-stack socket is the same client.
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(key.check(id, mapped, t));
    // The 32-bit time wraps in 2106 without making old ids valid or new ones invalid.
    let wrap = u64::from(u32::MAX);
    assert!(key.check(key.issue(a, wrap), a, wrap + 60));
    // A shared key (config) accepts ids from another instance.
    let shared = ConnectionIdKey::from_hex("07070707070707070707070707070707").unwrap();
    assert!(shared.check(id, a, t));
    assert!(ConnectionIdKey::from_hex("0707").is_none());
    assert_eq!(format!("{key:?}"), "ConnectionIdKey(..)");
}

fn arb_event() -> impl Strategy<Value = AnnounceEvent> {
    prop::sample::select(AnnounceEvent::ALL.to_vec())
}

proptest! {
    #[test]
    fn parse_request_never_panics(d in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_request(&d);
        let mut out = Vec::new();
        let _ = url_data(&d, &mut out);
        prop_assert!(out.len() <= d.len());
    }

    #[test]
    fn parse_response_never_panics(d in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_response(&d, PeerFamily::V4);
        let _ = parse_response(&d, PeerFamily::V6);
    }

    #[test]
    fn announce_requests_round_trip(
        cid in any::<u64>(), tid in any::<u32>(), ih in any::<[u8; 20]>(),
        pid in any::<[u8; 20]>(), nums in any::<(u64, u64, u64)>(), event in arb_event(),
        ip in any::<u32>(), key in any::<u32>(), num_want in prop::option::of(0u32..=i32::MAX as u32),
        port in 1u16.., path in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut options = Vec::new();
        encode_url_data(&mut options, &path);
        let a = AnnounceRequest {
            connection_id: ConnectionId(cid),
            transaction_id: TransactionId(tid),
            info_hash: InfoHash(ih),
            peer_id: PeerId(pid),
            downloaded: nums.0,
            left: nums.1,
            uploaded: nums.2,
            event,
            ip: (ip != 0).then(|| Ipv4Addr::from(ip)),
            key,
            num_want,
            port,
            options: &options,
        };
        let mut d = Vec::new();
        encode_announce_request(&mut d, &a);
        prop_assert_eq!(parse_request(&d).unwrap(), Request::Announce(a));
        let mut back = Vec::new();
        url_data(&d[ANNOUNCE_LEN..], &mut back).unwrap();
        prop_assert_eq!(back, path);
    }

    #[test]
    fn announce_responses_round_trip(
        tid in any::<u32>(), counts in any::<(u32, u32, u32)>(),
        v4 in prop::collection::vec((any::<[u8; 4]>(), 1u16..), 0..50),
        v6 in prop::collection::vec((any::<[u8; 16]>(), 1u16..), 0..50),
    ) {
        for (family, peers) in [
            (PeerFamily::V4, v4.iter().map(|&(ip, p)| SocketAddr::new(IpAddr::from(ip), p)).collect::<Vec<_>>()),
            // Mapped addresses would be written as IPv4; the strategy avoids them.
            (PeerFamily::V6, v6.iter().map(|&(ip, p)| SocketAddr::new(IpAddr::from(ip), p))
                .filter(|a| PeerFamily::of(a.ip()) == PeerFamily::V6).collect()),
        ] {
            let r = AnnounceResponse {
                transaction_id: TransactionId(tid),
                interval: counts.0,
                leechers: counts.1,
                seeders: counts.2,
                peers,
            };
            let mut d = Vec::new();
            encode_announce_response(&mut d, &r, family);
            prop_assert_eq!(parse_response(&d, family).unwrap(), Response::Announce(r));
        }
    }

    #[test]
    fn scrape_round_trips(tid in any::<u32>(), stats in prop::collection::vec(any::<(u32, u32, u32)>(), 0..MAX_SCRAPE_HASHES)) {
        let stats: Vec<_> = stats.iter().map(|&(complete, downloaded, incomplete)| ScrapeStats { complete, downloaded, incomplete }).collect();
        let mut d = Vec::new();
        encode_scrape_header(&mut d, TransactionId(tid));
        for s in &stats {
            push_scrape_stats(&mut d, s);
        }
        prop_assert_eq!(parse_response(&d, PeerFamily::V4).unwrap(), Response::Scrape { transaction_id: TransactionId(tid), stats });
    }

    #[test]
    fn connection_ids_check_only_for_their_issuer(key in any::<[u8; 16]>(), ip in any::<[u8; 16]>(), t in any::<u64>(), age in 0u64..300) {
        let key = ConnectionIdKey::new(key);
        let ip = IpAddr::from(ip);
        let id = key.issue(ip, t);
        prop_assert_eq!(key.check(id, ip, t.wrapping_add(age)), age <= u64::from(CONNECTION_ID_LIFETIME_SECS));
    }
}
