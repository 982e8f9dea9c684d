//! Byte-fixture unit tests of announce/scrape parsing and reply encoding. Property and
//! differential (serde_bencode) tests live in tracker/tests/proto_announce.rs.

use super::*;

const IH: &str = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
const IH_BYTES: [u8; 20] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x12,
    0x34, 0x56, 0x78, 0x9a,
];
const PID: &str = "-KP0100-ab+cd%20ef%00%FFgh";

fn q(rest: &str) -> String {
    format!("info_hash={IH}&peer_id={PID}&port=6881{rest}")
}

fn parse(s: &str) -> Result<AnnounceRequest, QueryError> {
    parse_announce_query(s.as_bytes())
}

#[test]
fn parses_a_typical_query_with_binary_ids() {
    let r = parse(&q("&uploaded=1&downloaded=2&left=3&event=started&numwant=80&key=abc&trackerid=x%00y&ip=10.1.2.3&no_peer_id=1")).unwrap();
    assert_eq!(r.info_hash.0, IH_BYTES);
    // `+` stays a literal plus in binary fields; %00 and %FF are raw bytes.
    assert_eq!(&r.peer_id.0, b"-KP0100-ab+cd ef\x00\xffgh");
    assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 1, 2, 3));
    assert_eq!(r.event, AnnounceEvent::Started);
    assert!(r.compact, "compact defaults to true");
    assert!(r.no_peer_id);
    assert_eq!(r.numwant, Some(80));
    assert_eq!(r.key.as_deref(), Some("abc"));
    assert_eq!(r.tracker_id.as_deref(), Some(&b"x\x00y"[..]));
    assert_eq!(r.ip, Some("10.1.2.3".parse().unwrap()));
}

#[test]
fn defaults_and_flags() {
    let r = parse(&q("&compact=0")).unwrap();
    assert!(!r.compact);
    assert_eq!((r.uploaded, r.downloaded, r.left), (0, 0, 0));
    assert_eq!(r.event, AnnounceEvent::None);
    assert_eq!(parse(&q("&event=")).unwrap().event, AnnounceEvent::None);
    assert_eq!(parse(&q("&ip=not-an-ip")).unwrap().ip, None);
    assert_eq!(
        parse(&q("&ip=%3A%3A1")).unwrap().ip,
        Some("::1".parse().unwrap())
    );
}

#[test]
fn binary_key_is_accepted() {
    // What aria2 1.36 sends.
    let r = parse(&q("&key=%13%0D7%1B%2C%1D%B6%B3")).unwrap();
    assert_eq!(
        r.key.as_deref(),
        Some("\u{13}\r7\u{1b},\u{1d}\u{fffd}\u{fffd}")
    );
}

#[test]
fn lossy_key_still_round_trips() {
    // 100 invalid bytes become 300 bytes of U+FFFD: over the cap, refused outright
    // rather than accepted and then failing to re-parse.
    assert!(parse(&q(&format!("&key={}", "%FF".repeat(100)))).is_err());
    let r = parse(&q(&format!("&key={}", "%FF".repeat(42)))).unwrap();
    assert_eq!(parse(&r.to_query_string()).unwrap(), r);
}

#[test]
fn first_occurrence_wins_for_repeated_keys() {
    let r = parse(&q("&port=7000&left=5&left=junk")).unwrap();
    assert_eq!(r.port, 6881);
    assert_eq!(r.left, 5);
}

#[test]
fn missing_and_wrong_length_ids() {
    let e = parse_announce_query(b"peer_id=aaaaaaaaaaaaaaaaaaaa&port=1").unwrap_err();
    assert_eq!(e.to_string(), "missing info_hash");
    let e = parse(&format!("info_hash={}&port=1", "a".repeat(20))).unwrap_err();
    assert_eq!(e.to_string(), "missing peer_id");
    let e = parse(&format!(
        "info_hash={}&peer_id={PID}&port=1",
        "a".repeat(19)
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "info_hash must be 20 bytes, got 19");
    let e = parse(&format!(
        "info_hash={IH}&peer_id={}&port=1",
        "%41".repeat(21)
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "peer_id must be 20 bytes, got 21");
    let e = parse(&format!("info_hash={IH}&peer_id={PID}")).unwrap_err();
    assert_eq!(e, QueryError::Missing("port"));
}

#[test]
fn bad_percent_encoding() {
    for bad in ["%G1", "%1", "%"] {
        let s = format!("info_hash={}{bad}&peer_id={PID}&port=1", "a".repeat(19));
        assert_eq!(
            parse(&s).unwrap_err(),
            QueryError::BadPercentEncoding("info_hash"),
            "{bad}"
        );
    }
    assert_eq!(
        parse(&q("&left=1%2")).unwrap_err().to_string(),
        "bad percent-encoding in left"
    );
}

#[test]
fn ports_and_numbers() {
    let with_port = |p: &str| parse(&format!("info_hash={IH}&peer_id={PID}&port={p}"));
    assert_eq!(
        with_port("0").unwrap_err().to_string(),
        "port must be 1..=65535, got 0"
    );
    assert_eq!(with_port("65536").unwrap_err(), QueryError::BadPort(65536));
    assert_eq!(with_port("65535").unwrap().port, 65535);
    assert_eq!(
        with_port("%36%35").unwrap().port,
        65,
        "digits may be escaped"
    );
    assert_eq!(with_port("").unwrap_err(), QueryError::BadNumber("port"));
    assert_eq!(
        with_port("99999999999999999999999").unwrap_err(),
        QueryError::OutOfRange("port")
    );
    assert_eq!(
        parse(&q("&left=-1")).unwrap_err().to_string(),
        "left must be a non-negative integer"
    );
    assert_eq!(
        parse(&q("&uploaded=+1")).unwrap_err(),
        QueryError::BadNumber("uploaded")
    );
    assert_eq!(
        parse(&q("&uploaded=18446744073709551615"))
            .unwrap()
            .uploaded,
        u64::MAX
    );
    assert_eq!(
        parse(&q("&downloaded=18446744073709551616"))
            .unwrap_err()
            .to_string(),
        "downloaded is out of range"
    );
    assert_eq!(
        parse(&q("&numwant=99999999999999999999999"))
            .unwrap()
            .numwant,
        Some(u32::MAX)
    );
    assert_eq!(
        parse(&q("&numwant=-5")).unwrap_err(),
        QueryError::BadNumber("numwant")
    );
}

#[test]
fn unknown_event_and_long_query() {
    assert_eq!(
        parse(&q("&event=paused")).unwrap_err().to_string(),
        "unknown event \"paused\""
    );
    assert_eq!(
        parse(&q("&event=STARTED")).unwrap_err().label(),
        "bad_event"
    );
    let long = q(&format!("&pad={}", "x".repeat(5000)));
    let e = parse(&long).unwrap_err();
    assert!(matches!(e, QueryError::TooLong { max: 4096, .. }), "{e}");
    assert!(parse_announce_query_limited(long.as_bytes(), 8192).is_ok());
    assert!(parse(&q(&format!("&key={}", "k".repeat(200)))).is_err());
}

#[test]
fn every_error_label_is_registered() {
    let errs = [
        parse_announce_query(&[b'a'; 5000]).unwrap_err(),
        parse("").unwrap_err(),
        parse(&format!("info_hash={IH}&peer_id={PID}&port=0")).unwrap_err(),
        parse(&q("&event=x")).unwrap_err(),
        parse_scrape_query(format!("info_hash={IH}&info_hash={IH}").as_bytes(), 1).unwrap_err(),
    ];
    for e in errs {
        assert!(QueryError::LABELS.contains(&e.label()), "{e:?}");
    }
}

#[test]
fn query_string_encodes_binary_and_round_trips() {
    let r = parse(&q(
        "&uploaded=10&left=0&event=completed&compact=0&numwant=5&key=a%20b",
    ))
    .unwrap();
    let s = r.to_query_string();
    assert!(s.starts_with("info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&peer_id=-KP0100-ab%2Bcd%20ef%00%FFgh&port=6881"), "{s}");
    assert_eq!(parse(&s).unwrap(), r);
}

#[test]
fn scrape_takes_several_hashes() {
    let other = "b".repeat(20);
    let hs = parse_scrape_query(
        format!("info_hash={IH}&x=1&info_hash={other}").as_bytes(),
        10,
    )
    .unwrap();
    assert_eq!(hs, vec![InfoHash(IH_BYTES), InfoHash([b'b'; 20])]);
    assert_eq!(
        parse_scrape_query(b"", 10).unwrap_err(),
        QueryError::Missing("info_hash")
    );
    assert_eq!(
        parse_scrape_query(b"info_hash=abc", 10)
            .unwrap_err()
            .to_string(),
        "info_hash must be 20 bytes, got 3"
    );
    let three = format!("info_hash={IH}&info_hash={IH}&info_hash={IH}");
    assert_eq!(
        parse_scrape_query(three.as_bytes(), 2).unwrap_err(),
        QueryError::TooManyHashes { max: 2 }
    );
}

fn peer(addr: &str, id: u8) -> ReplyPeer {
    ReplyPeer {
        addr: addr.parse().unwrap(),
        peer_id: PeerId([id; 20]),
    }
}

#[test]
fn compact_reply_fixture() {
    let mut out = Vec::new();
    let reply = AnnounceReply {
        complete: 1,
        incomplete: 2,
        interval: 1800,
        min_interval: Some(900),
        tracker_id: None,
        warning: None,
    };
    encode_announce_reply(
        &mut out,
        &reply,
        &[
            peer("10.0.0.1:6881", 1),
            peer("[::1]:258", 2),
            peer("1.2.3.4:65535", 3),
        ],
        PeerListFormat::Compact,
    );
    let mut want =
        b"d8:completei1e10:incompletei2e8:intervali1800e12:min intervali900e5:peers12:".to_vec();
    want.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, 1, 2, 3, 4, 0xff, 0xff]);
    want.extend_from_slice(b"6:peers618:");
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2]);
    want.push(b'e');
    assert_eq!(out, want);
}

#[test]
fn dict_reply_fixture_with_and_without_peer_id() {
    let reply = AnnounceReply {
        complete: 0,
        incomplete: 0,
        interval: 60,
        min_interval: None,
        tracker_id: Some(b"tid"),
        warning: Some("hi"),
    };
    let peers = [peer("10.0.0.1:80", b'x')];
    let mut out = Vec::new();
    encode_announce_reply(
        &mut out,
        &reply,
        &peers,
        PeerListFormat::Dict { with_peer_id: true },
    );
    assert_eq!(out, b"d8:completei0e10:incompletei0e8:intervali60e5:peersld2:ip8:10.0.0.17:peer id20:xxxxxxxxxxxxxxxxxxxx4:porti80eee10:tracker id3:tid15:warning message2:hie".to_vec());
    out.clear();
    encode_announce_reply(&mut out, &reply, &[], PeerListFormat::Compact);
    assert_eq!(out, b"d8:completei0e10:incompletei0e8:intervali60e5:peers0:10:tracker id3:tid15:warning message2:hie".to_vec());
    out.clear();
    encode_announce_reply(
        &mut out,
        &reply,
        &peers,
        PeerListFormat::Dict {
            with_peer_id: false,
        },
    );
    assert!(out
        .windows(30)
        .any(|w| w == b"5:peersld2:ip8:10.0.0.14:porti"));
}

#[test]
fn scrape_and_failure_fixtures() {
    let s = ScrapeStats {
        complete: 3,
        downloaded: 7,
        incomplete: 1,
    };
    let mut out = Vec::new();
    encode_scrape_reply(
        &mut out,
        &[
            (InfoHash([b'b'; 20]), s),
            (InfoHash([b'a'; 20]), ScrapeStats::default()),
            (InfoHash([b'b'; 20]), s),
        ],
    );
    let want = format!(
            "d5:filesd20:{}d8:completei0e10:downloadedi0e10:incompletei0ee20:{}d8:completei3e10:downloadedi7e10:incompletei1eeee",
            "a".repeat(20), "b".repeat(20)
        );
    assert_eq!(String::from_utf8(out).unwrap(), want);
    let mut out = Vec::new();
    encode_failure(&mut out, "missing info_hash");
    assert_eq!(out, b"d14:failure reason17:missing info_hashe");
}

#[test]
fn event_spellings() {
    for e in AnnounceEvent::ALL {
        assert_eq!(AnnounceEvent::parse(e.as_str()), Some(e));
    }
    assert_eq!(AnnounceEvent::parse("bogus"), None);
}
