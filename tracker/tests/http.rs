//! End-to-end HTTP tests of the tracker, in-process on 127.0.0.1:0 with a raw HTTP client.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use serde_bencode::value::Value;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Config where the client address comes from `X-Forwarded-For`, so one test process can
/// play many hosts.
fn xff_config() -> kpbt_tracker::Config {
    kpbt_tracker::Config {
        real_ip_header: Some("X-Forwarded-For".into()),
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..test_config()
    }
}

fn announce_as(t: &TestTracker, ip: &str, path: &str) -> Dict {
    bget_at(t.addr(), path, &[("X-Forwarded-For", ip)])
}

#[test]
fn two_peers_find_each_other_and_never_themselves() {
    let t = TestTracker::start(test_config());
    let a = t.bget(&announce_path(1, 1, 5001, 100, "&event=started"));
    assert_eq!(failure(&a), None);
    assert_eq!(compact_peers(&a), Vec::<SocketAddr>::new());
    assert_eq!((int(&a, "complete"), int(&a, "incomplete")), (0, 1));
    assert_eq!(int(&a, "interval"), 1800);
    assert_eq!(int(&a, "min interval"), 900);
    let b = t.bget(&announce_path(1, 2, 5002, 100, "&event=started"));
    assert_eq!(compact_peers(&b), [sa("127.0.0.1:5001")]);
    assert_eq!(int(&b, "incomplete"), 2);
    let a = t.bget(&announce_path(1, 1, 5001, 100, ""));
    assert_eq!(compact_peers(&a), [sa("127.0.0.1:5002")]);
}

#[test]
fn seeders_get_no_seeders_and_stopped_removes() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(2, 1, 6001, 0, "&event=started"));
    t.bget(&announce_path(2, 2, 6002, 10, "&event=started"));
    // A left=0 peer's first announce: the leecher first, then the seeder (see
    // `left0_started_gets_leechers_then_seeders`); its re-announces get leechers only.
    let s2 = t.bget(&announce_path(2, 3, 6003, 0, "&event=started"));
    assert_eq!(
        compact_peers(&s2),
        [sa("127.0.0.1:6002"), sa("127.0.0.1:6001")]
    );
    let s2 = t.bget(&announce_path(2, 3, 6003, 0, ""));
    assert_eq!(compact_peers(&s2), [sa("127.0.0.1:6002")]);
    assert_eq!((int(&s2, "complete"), int(&s2, "incomplete")), (2, 1));
    let leecher = t.bget(&announce_path(2, 2, 6002, 10, ""));
    let mut got = compact_peers(&leecher);
    got.sort();
    assert_eq!(got, [sa("127.0.0.1:6001"), sa("127.0.0.1:6003")]);
    let stop = t.bget(&announce_path(2, 2, 6002, 10, "&event=stopped"));
    assert_eq!(compact_peers(&stop), Vec::<SocketAddr>::new());
    assert_eq!((int(&stop, "complete"), int(&stop, "incomplete")), (2, 0));
    let s1 = t.bget(&announce_path(2, 1, 6001, 0, ""));
    assert_eq!(
        compact_peers(&s1),
        Vec::<SocketAddr>::new(),
        "only seeders left"
    );
}

/// Magnet clients without metadata announce `event=started&left=0` (rqbit does): they
/// must get seeders, or they never start. Leechers still come first (a real seeder
/// starting up wants them), seeders fill the rest of numwant; re-announces (no event,
/// `completed`) keep the seeders-get-no-seeders rule.
#[test]
fn left0_started_gets_leechers_then_seeders() {
    let t = TestTracker::start(test_config());
    for n in 1..=3u8 {
        t.bget(&announce_path(
            3,
            n,
            7000 + u16::from(n),
            0,
            "&event=completed",
        ));
        t.bget(&announce_path(
            3,
            10 + n,
            7010 + u16::from(n),
            99,
            "&event=started",
        ));
    }
    let seeders: Vec<SocketAddr> = (1..=3)
        .map(|n| sa(&format!("127.0.0.1:{}", 7000 + n)))
        .collect();
    let leechers: Vec<SocketAddr> = (1..=3)
        .map(|n| sa(&format!("127.0.0.1:{}", 7010 + n)))
        .collect();
    let sorted = |mut v: Vec<SocketAddr>| {
        v.sort();
        v
    };
    // numwant 5: all three leechers, then two of the three seeders.
    let d = t.bget(&announce_path(3, 20, 7020, 0, "&event=started&numwant=5"));
    assert_eq!(failure(&d), None);
    let got = compact_peers(&d);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        sorted(got[..3].to_vec()),
        leechers,
        "leechers first: {got:?}"
    );
    assert!(got[3..].iter().all(|p| seeders.contains(p)), "{got:?}");
    assert_ne!(got[3], got[4]);
    assert_eq!((int(&d, "complete"), int(&d, "incomplete")), (4, 3));
    // numwant 2: leechers only, because there are enough of them.
    let d = t.bget(&announce_path(3, 21, 7021, 0, "&event=started&numwant=2"));
    assert!(compact_peers(&d).iter().all(|p| leechers.contains(p)));
    assert_eq!(compact_peers(&d).len(), 2);
    // The same peer re-announcing, and a completed seeder: leechers only.
    for extra in ["", "&event=completed"] {
        let d = t.bget(&announce_path(3, 20, 7020, 0, extra));
        assert_eq!(sorted(compact_peers(&d)), leechers, "{extra:?}");
    }
    // An all-seeder swarm: a magnet client's `started` still gets the seeders.
    t.bget(&announce_path(4, 1, 7101, 0, "&event=started"));
    let d = t.bget(&announce_path(4, 2, 7102, 0, "&event=started"));
    assert_eq!(compact_peers(&d), [sa("127.0.0.1:7101")]);
    let d = t.bget(&announce_path(4, 2, 7102, 0, ""));
    assert_eq!(compact_peers(&d), Vec::<SocketAddr>::new());
}

fn scrape_stats(d: &Dict, h: u8) -> (i64, i64, i64) {
    let Some(Value::Dict(files)) = d.get(&b"files"[..]) else {
        panic!("no files dict: {d:?}");
    };
    let Some(Value::Dict(f)) = files.get(&[h; 20][..]) else {
        panic!("no entry for {h}: {files:?}");
    };
    (
        int(f, "complete"),
        int(f, "downloaded"),
        int(f, "incomplete"),
    )
}

#[test]
fn completed_counts_in_multi_hash_scrape() {
    let t = TestTracker::start(kpbt_tracker::Config {
        max_scrape_hashes: 4,
        ..test_config()
    });
    t.bget(&announce_path(3, 1, 7001, 10, "&event=started"));
    t.bget(&announce_path(3, 2, 7002, 10, "&event=started"));
    t.bget(&announce_path(3, 1, 7001, 0, "&event=completed"));
    t.bget(&announce_path(4, 1, 7001, 5, "&event=started"));
    let path = format!(
        "/scrape?info_hash={}&info_hash={}&info_hash={}",
        enc(&[4; 20]),
        enc(&[3; 20]),
        enc(&[9; 20])
    );
    let s = t.bget(&path);
    assert_eq!(scrape_stats(&s, 3), (1, 1, 1));
    assert_eq!(scrape_stats(&s, 4), (0, 0, 1));
    assert_eq!(scrape_stats(&s, 9), (0, 0, 0));
    let bad = t.bget("/scrape?info_hash=short");
    assert_eq!(
        failure(&bad).as_deref(),
        Some("info_hash must be 20 bytes, got 5")
    );
    let none = t.bget("/scrape");
    assert_eq!(failure(&none).as_deref(), Some("missing info_hash"));
    let many: String = (0..5)
        .map(|_| format!("info_hash={}&", enc(&[1; 20])))
        .collect();
    let too_many = t.bget(&format!("/scrape?{many}"));
    assert_eq!(
        failure(&too_many).as_deref(),
        Some("too many info_hash values (at most 4)")
    );
}

fn dict_peers(d: &Dict) -> Vec<&std::collections::HashMap<Vec<u8>, Value>> {
    let Some(Value::List(l)) = d.get(&b"peers"[..]) else {
        panic!("peers is not a list: {d:?}");
    };
    l.iter()
        .map(|p| match p {
            Value::Dict(p) => p,
            other => panic!("peer is not a dict: {other:?}"),
        })
        .collect()
}

#[test]
fn non_compact_replies_with_and_without_peer_id() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(5, 7, 8001, 10, ""));
    let d = t.bget(&announce_path(5, 8, 8002, 10, "&compact=0"));
    let peers = dict_peers(&d);
    assert_eq!(peers.len(), 1);
    assert_eq!(bytes(peers[0], "ip"), b"127.0.0.1");
    assert_eq!(int(peers[0], "port"), 8001);
    assert_eq!(bytes(peers[0], "peer id"), [7u8; 20]);
    let d = t.bget(&announce_path(5, 8, 8002, 10, "&compact=0&no_peer_id=1"));
    let peers = dict_peers(&d);
    assert!(!peers[0].contains_key(&b"peer id"[..]));
    assert_eq!(int(peers[0], "port"), 8001);
}

#[test]
fn ipv6_peers_go_in_peers6_via_header() {
    let t = TestTracker::start(xff_config());
    announce_as(&t, "2001:db8::1", &announce_path(6, 1, 9001, 10, ""));
    announce_as(&t, "10.0.0.2", &announce_path(6, 2, 9002, 10, ""));
    let v6 = announce_as(&t, "2001:db8::3", &announce_path(6, 3, 9003, 10, ""));
    assert_eq!(compact_peers6(&v6), [sa("[2001:db8::1]:9001")]);
    assert_eq!(compact_peers(&v6), [sa("10.0.0.2:9002")]);
    let v4 = announce_as(&t, "10.0.0.2", &announce_path(6, 2, 9002, 10, ""));
    let mut six = compact_peers6(&v4);
    six.sort();
    assert_eq!(six, [sa("[2001:db8::1]:9001"), sa("[2001:db8::3]:9003")]);
    // Proxy chains: the last entry is the one our proxy added.
    let d = announce_as(&t, "1.1.1.1, 10.0.0.9", &announce_path(6, 4, 9004, 0, ""));
    assert!(compact_peers(&d).contains(&sa("10.0.0.2:9002")));
    let scrape = t.bget(&format!("/scrape?info_hash={}", enc(&[6; 20])));
    let Some(Value::Dict(files)) = scrape.get(&b"files"[..]) else {
        panic!()
    };
    let Some(Value::Dict(f)) = files.get(&[6u8; 20][..]) else {
        panic!()
    };
    assert_eq!(int(f, "incomplete"), 3);
    // Without the header the one resolver falls back to the TCP peer (as the rate
    // limiter always did), so the announce counts and is attributed to the proxy.
    let no_header = t.bget(&announce_path(6, 5, 9005, 0, ""));
    assert_eq!(failure(&no_header), None);
    let other = announce_as(&t, "10.0.0.7", &announce_path(6, 6, 9006, 10, ""));
    assert!(compact_peers(&other).contains(&sa("127.0.0.1:9005")));
}

#[test]
fn forwarded_header_and_ip_param_are_ignored_from_untrusted_addresses() {
    let t = TestTracker::start(kpbt_tracker::Config {
        real_ip_header: Some("X-Forwarded-For".into()),
        honor_ip_param: true,
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..test_config()
    });
    announce_as(
        &t,
        "10.0.0.1",
        &announce_path(8, 1, 7001, 10, "&ip=10.9.9.9"),
    );
    let d = t.bget(&announce_path(8, 2, 7002, 10, ""));
    assert_eq!(compact_peers(&d), [sa("127.0.0.1:7001")]);
}

#[test]
fn ipv6_listener_puts_peers_in_peers6() {
    let Ok(l6) = TcpListener::bind("[::1]:0") else {
        eprintln!("NOTE: no IPv6 loopback here; covered by ipv6_peers_go_in_peers6_via_header");
        return;
    };
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = TestTracker::start_on(test_config(), vec![l4, l6]);
    let v6addr = t.addrs[1];
    bget_at(v6addr, &announce_path(7, 1, 4001, 10, ""), &[]);
    let v4 = t.bget(&announce_path(7, 2, 4002, 10, ""));
    assert_eq!(compact_peers6(&v4), [sa("[::1]:4001")]);
    let v6 = bget_at(v6addr, &announce_path(7, 1, 4001, 10, ""), &[]);
    assert_eq!(compact_peers(&v6), [sa("127.0.0.1:4002")]);
    assert!(compact_peers6(&v6).is_empty());
}

#[test]
fn forged_peer_id_from_another_address_does_not_overwrite() {
    let t = TestTracker::start(xff_config());
    announce_as(&t, "10.0.0.1", &announce_path(8, 1, 3000, 10, ""));
    // 10.0.0.66 reuses peer 1's id and port, then says it stopped.
    announce_as(&t, "10.0.0.66", &announce_path(8, 1, 3000, 10, ""));
    announce_as(
        &t,
        "10.0.0.66",
        &announce_path(8, 1, 3000, 10, "&event=stopped"),
    );
    let d = announce_as(&t, "10.0.0.2", &announce_path(8, 2, 3000, 10, "&compact=0"));
    let peers = dict_peers(&d);
    assert_eq!(peers.len(), 1);
    assert_eq!(
        bytes(peers[0], "ip"),
        b"10.0.0.1",
        "the genuine peer survives"
    );
    assert_eq!(bytes(peers[0], "peer id"), [1u8; 20]);
}

#[test]
fn ip_parameter_only_honoured_when_enabled() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(9, 1, 2001, 10, "&ip=10.9.9.9"));
    let d = t.bget(&announce_path(9, 2, 2002, 10, ""));
    assert_eq!(compact_peers(&d), [sa("127.0.0.1:2001")]);
    let t = TestTracker::start(kpbt_tracker::Config {
        honor_ip_param: true,
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..test_config()
    });
    t.bget(&announce_path(9, 1, 2001, 10, "&ip=10.9.9.9"));
    let d = t.bget(&announce_path(9, 2, 2002, 10, ""));
    assert_eq!(compact_peers(&d), [sa("10.9.9.9:2001")]);
}

#[test]
fn malformed_requests_get_200_and_a_failure_reason() {
    let t = TestTracker::start(test_config());
    let id = enc(&[1; 20]);
    let cases: Vec<(String, &str)> = vec![
        ("/announce".into(), "missing info_hash"),
        (
            format!("/announce?info_hash={id}&port=1"),
            "missing peer_id",
        ),
        (
            format!("/announce?info_hash=abc&peer_id={id}&port=1"),
            "info_hash must be 20 bytes, got 3",
        ),
        (
            format!("/announce?info_hash={id}&peer_id={id}&port=0"),
            "port must be 1..=65535, got 0",
        ),
        (
            format!("/announce?info_hash={id}&peer_id={id}&port=65536"),
            "port must be 1..=65535, got 65536",
        ),
        (
            format!("/announce?info_hash={id}&peer_id={id}&port=1&left=-5"),
            "left must be a non-negative integer",
        ),
        (
            format!("/announce?info_hash={id}&peer_id={id}&port=1&uploaded=99999999999999999999"),
            "uploaded is out of range",
        ),
        (
            format!("/announce?info_hash={id}&peer_id={id}&port=1&event=paused"),
            "unknown event \"paused\"",
        ),
        (
            format!(
                "/announce?info_hash=%zz{}&peer_id={id}&port=1",
                "a".repeat(19)
            ),
            "bad percent-encoding in info_hash",
        ),
        (
            format!(
                "/announce?info_hash={id}&peer_id={id}&port=1&x={}",
                "y".repeat(5000)
            ),
            "query string is 5149 bytes, over the 4096-byte limit",
        ),
    ];
    for (path, want) in cases {
        let d = t.bget(&path);
        assert_eq!(failure(&d).as_deref(), Some(want), "{path}");
    }
    // A huge numwant is capped, not refused.
    let d = t.bget(&announce_path(1, 1, 1, 1, "&numwant=4294967296000"));
    assert_eq!(failure(&d), None);
    let m = t.get("/metrics").text();
    assert!(
        m.contains("kpbt_tracker_failures_total{reason=\"bad_port\"} 2"),
        "{m}"
    );
    assert!(m.contains("kpbt_tracker_failures_total{reason=\"missing_param\"} 2"));
    assert_eq!(t.get("/nope").status, 404);
}

#[test]
fn allowlist_rejects_then_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allow.txt");
    std::fs::write(&path, format!("# allowed\n{}\n", hex::encode([1u8; 20]))).unwrap();
    let t = TestTracker::start(kpbt_tracker::Config {
        allowlist: Some(path.clone()),
        allowlist_poll_secs: 1,
        ..test_config()
    });
    assert_eq!(failure(&t.bget(&announce_path(1, 1, 1000, 5, ""))), None);
    let d = t.bget(&announce_path(2, 1, 1000, 5, ""));
    assert_eq!(failure(&d).as_deref(), Some("torrent not in allowlist"));
    // Explicit reload (what SIGHUP does).
    std::fs::write(
        &path,
        format!("{}\n{}\n", hex::encode([1u8; 20]), hex::encode([2u8; 20])),
    )
    .unwrap();
    assert_eq!(t.state.reload_allowlist().unwrap(), Some(2));
    assert_eq!(failure(&t.bget(&announce_path(2, 1, 1000, 5, ""))), None);
    // Reload by polling the file: wait (bounded) for hash 3 to be accepted.
    std::fs::write(&path, format!("{}\n", hex::encode([3u8; 20]))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while failure(&t.bget(&announce_path(3, 1, 1000, 5, ""))).is_some() {
        assert!(
            Instant::now() < deadline,
            "poller never reloaded the allowlist"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        failure(&t.bget(&announce_path(1, 1, 1000, 5, ""))).as_deref(),
        Some("torrent not in allowlist")
    );
    let m = t.get("/metrics").text();
    assert!(m.contains("kpbt_tracker_allowlist_rejections_total"), "{m}");
    assert!(t.state.metrics.allowlist_rejections.get() >= 2);
}

#[test]
fn torrent_and_swarm_limits() {
    let t = TestTracker::start(kpbt_tracker::Config {
        max_torrents: 1,
        max_peers_per_torrent: 2,
        ..test_config()
    });
    t.bget(&announce_path(1, 1, 1001, 5, ""));
    let d = t.bget(&announce_path(2, 1, 1001, 5, ""));
    assert_eq!(
        failure(&d).as_deref(),
        Some("tracker is full: too many torrents")
    );
    t.bget(&announce_path(1, 2, 1002, 5, ""));
    let d = t.bget(&announce_path(1, 3, 1003, 5, ""));
    assert_eq!(
        failure(&d).as_deref(),
        Some("swarm is full: too many peers")
    );
    // Known peers still re-announce.
    assert_eq!(failure(&t.bget(&announce_path(1, 2, 1002, 0, ""))), None);
    let stats: serde_json::Value = serde_json::from_slice(&t.get("/stats").body).unwrap();
    assert_eq!(stats["torrents"], 1);
    assert_eq!(stats["seeders"], 1);
    assert_eq!(stats["leechers"], 1);
}

#[test]
fn reaping_with_an_injected_time() {
    let t = TestTracker::start(test_config());
    // Bracket the announces' timestamps so a slow machine cannot make this flaky.
    let before = t.state.clock.now();
    t.bget(&announce_path(1, 1, 1001, 5, ""));
    t.bget(&announce_path(1, 2, 1002, 0, ""));
    let after = t.state.clock.now();
    let timeout = t.state.config.peer_timeout();
    assert_eq!(
        block_on(t.state.reap(before + timeout - 1))
            .unwrap()
            .peers_removed,
        0
    );
    let r = block_on(t.state.reap(after + timeout + 1)).unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (2, 1));
    let s = t.bget(&format!("/scrape?info_hash={}", enc(&[1; 20])));
    let Some(Value::Dict(files)) = s.get(&b"files"[..]) else {
        panic!()
    };
    let Some(Value::Dict(f)) = files.get(&[1u8; 20][..]) else {
        panic!()
    };
    assert_eq!((int(f, "complete"), int(f, "incomplete")), (0, 0));
    let m = t.get("/metrics").text();
    assert!(m.contains("kpbt_tracker_peers_reaped_total 2"), "{m}");
    assert!(m.contains("kpbt_tracker_torrents 0"));
}

#[test]
fn metrics_and_stats_endpoints() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(1, 1, 1001, 5, "&event=started"));
    t.bget(&announce_path(1, 1, 1001, 0, "&event=completed"));
    t.bget(&announce_path(1, 2, 1002, 5, ""));
    t.bget(&format!("/scrape?info_hash={}", enc(&[1; 20])));
    let m = t.get("/metrics");
    assert_eq!(m.status, 200);
    let text = m.text();
    for name in [
        "kpbt_tracker_announces_total",
        "kpbt_tracker_scrapes_total",
        "kpbt_tracker_failures_total",
        "kpbt_tracker_request_duration_seconds_bucket",
        "kpbt_tracker_torrents",
        "kpbt_tracker_seeders",
        "kpbt_tracker_leechers",
        "kpbt_tracker_peers_reaped_total",
        "kpbt_tracker_completed_total",
        "kpbt_tracker_allowlist_rejections_total",
    ] {
        assert!(text.contains(&format!("\n{name}")), "missing {name}");
    }
    // Every sample line parses as `name{labels} value`.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (_, value) = line.rsplit_once(' ').expect("sample has a value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample {line}"));
    }
    assert!(text.contains(
        "kpbt_tracker_announces_total{event=\"completed\",outcome=\"ok\",protocol=\"http\"} 1"
    ));
    assert!(text.contains(
        "kpbt_tracker_announces_total{event=\"started\",outcome=\"ok\",protocol=\"http\"} 1"
    ));
    assert!(text.contains("kpbt_tracker_completed_total 1"));
    assert!(text.contains("kpbt_tracker_seeders 1"));
    assert!(text.contains("kpbt_tracker_request_duration_seconds_count{endpoint=\"announce\"} 3"));
    let s = t.get("/stats");
    assert_eq!(s.header("content-type"), Some("application/json"));
    let j: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(j["torrents"], 1);
    assert_eq!(j["seeders"], 1);
    assert_eq!(j["leechers"], 1);
    assert_eq!(j["announces"], 3);
    assert_eq!(j["scrapes"], 1);
    assert_eq!(j["completed"], 1);
    assert_eq!(t.get("/health").text(), "ok\n");
}

/// The value of an unlabelled sample `name value`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_have_build_process_and_start_series_and_prometheus_content_type() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = TestTracker::start(test_config());
    let m = t.get("/metrics");
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = m.text();
    let build = format!(
        "kpbt_tracker_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{text}");
    let start = sample(&text, "kpbt_tracker_start_time_seconds").expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Set when the tracker started: after `before`, not later than now (one second of
    // slack for the float rendering).
    assert!(
        start >= before.floor() - 1.0 && start <= now + 1.0,
        "{start}"
    );
    // The process collector reads /proc/self: this process, so its figures are real.
    let rss = sample(&text, "process_resident_memory_bytes").expect("rss");
    assert!(rss > 1e6, "{rss}");
    assert!(sample(&text, "process_open_fds").expect("fds") >= 3.0);
    assert!(sample(&text, "process_start_time_seconds").is_some());
    assert!(sample(&text, "process_cpu_seconds_total").is_some());
}

#[test]
fn torrents_gauge_falls_when_the_last_peer_stops() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(9, 1, 7001, 0, "&event=started"));
    t.bget(&announce_path(9, 2, 7002, 5, "&event=started"));
    let m = t.get("/metrics").text();
    assert_eq!(sample(&m, "kpbt_tracker_torrents"), Some(1.0), "{m}");
    t.bget(&announce_path(9, 1, 7001, 0, "&event=stopped"));
    let m = t.get("/metrics").text();
    assert_eq!(sample(&m, "kpbt_tracker_torrents"), Some(1.0), "{m}");
    t.bget(&announce_path(9, 2, 7002, 5, "&event=stopped"));
    // No reap in between (the reaper runs every reap_interval_secs; none has been due).
    let m = t.get("/metrics").text();
    assert_eq!(sample(&m, "kpbt_tracker_torrents"), Some(0.0), "{m}");
    assert_eq!(sample(&m, "kpbt_tracker_seeders"), Some(0.0));
    assert_eq!(sample(&m, "kpbt_tracker_leechers"), Some(0.0));
    assert_eq!(sample(&m, "kpbt_tracker_peers_reaped_total"), Some(0.0));
    let s: serde_json::Value = serde_json::from_slice(&t.get("/stats").body).unwrap();
    assert_eq!(s["torrents"], 0);
}

#[test]
fn root_page_names_the_endpoints() {
    let t = TestTracker::start(test_config());
    let r = t.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = r.text();
    assert!(text.starts_with("kpbt-tracker "), "{text}");
    for endpoint in ["/announce", "/scrape", "/stats", "/metrics", "/health"] {
        assert!(
            text.contains(&format!("GET {endpoint} ")),
            "{endpoint}: {text}"
        );
    }
    assert_eq!(t.get("/nothing-here").status, 404);
}
