//! The tracker over HTTP with `store = redis://...`: two instances on one Redis share one
//! swarm and agree in `/stats`; with Redis gone, announces get a bencoded "storage is
//! unavailable" within the timeout, `/health` is 503 with the reason, the error counter
//! moves, and service resumes by itself when Redis is back.
//!
//! Needs `redis-server` (apt); `KPBT_SKIP_REDIS=1` skips, saying so.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use kpbt_testkit::{require_redis, RedisServer};

fn redis_config(redis: &RedisServer) -> kpbt_tracker::Config {
    kpbt_tracker::Config {
        store: redis.url(0),
        store_timeout_ms: 500,
        ..test_config()
    }
}

fn stats(t: &TestTracker) -> serde_json::Value {
    let r = t.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn two_trackers_on_one_redis_share_the_swarm() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let a = TestTracker::start(redis_config(&redis));
    let b = TestTracker::start(redis_config(&redis));
    assert_eq!(
        a.bget(&announce_path(1, 1, 5001, 0, "&event=started"))
            .get(&b"failure reason"[..]),
        None
    );
    let via_b = b.bget(&announce_path(1, 2, 5002, 10, "&event=started"));
    assert_eq!(failure(&via_b), None);
    assert_eq!(
        compact_peers(&via_b),
        ["127.0.0.1:5001".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!((int(&via_b, "complete"), int(&via_b, "incomplete")), (1, 1));
    let via_a = a.bget(&announce_path(1, 3, 5003, 10, "&event=started"));
    let mut peers = compact_peers(&via_a);
    peers.sort();
    assert_eq!(
        peers,
        ["127.0.0.1:5001", "127.0.0.1:5002"].map(|s| s.parse::<SocketAddr>().unwrap())
    );
    let (sa, sb) = (stats(&a), stats(&b));
    for k in ["torrents", "seeders", "leechers"] {
        assert_eq!(sa[k], sb[k], "{k}");
    }
    assert_eq!(
        (
            sa["torrents"].as_u64(),
            sa["seeders"].as_u64(),
            sa["leechers"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(sa["store"], "redis");
    // Per-instance request counters stay per instance.
    assert_eq!(
        (sa["announces"].as_u64(), sb["announces"].as_u64()),
        (Some(2), Some(1))
    );
}

#[test]
fn redis_outage_gives_failure_reasons_and_unhealthy_then_recovers() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port();
    let t = TestTracker::start(redis_config(&redis));
    assert_eq!(failure(&t.bget(&announce_path(2, 1, 6001, 5, ""))), None);
    redis.kill();
    let started = Instant::now();
    let d = t.bget(&announce_path(2, 2, 6002, 5, ""));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let why = failure(&d).expect("a failure reason while Redis is down");
    assert!(why.contains("storage is unavailable"), "{why}");
    let s = t.bget(&format!("/scrape?info_hash={}", enc(&[2; 20])));
    assert!(failure(&s).is_some_and(|f| f.contains("storage is unavailable")));
    let h = t.get("/health");
    assert_eq!(h.status, 503);
    assert!(
        h.text().starts_with("unhealthy: redis store:"),
        "{}",
        h.text()
    );
    let m = t.get("/metrics").text();
    let errors: u64 = m
        .lines()
        .filter(|l| l.starts_with("kpbt_tracker_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(errors >= 3, "store errors counted: {m}");
    assert!(
        m.contains("kpbt_tracker_failures_total{reason=\"store_unavailable\"} 2"),
        "{m}"
    );
    assert!(m.contains("kpbt_tracker_store_duration_seconds_bucket{op=\"announce\""));

    let _back = RedisServer::start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = t.bget(&announce_path(2, 2, 6002, 5, ""));
        match failure(&d) {
            None => {
                assert_eq!(
                    int(&d, "incomplete"),
                    1,
                    "a fresh Redis: the swarm starts over"
                );
                break;
            }
            Some(f) => assert!(f.contains("storage is unavailable"), "{f}"),
        }
        assert!(
            Instant::now() < deadline,
            "tracker did not recover within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.get("/health").status, 200);
}

#[test]
fn tracker_starts_while_redis_is_down_and_reports_it() {
    if !require_redis() {
        return;
    }
    let port = kpbt_testkit::free_port();
    let config = kpbt_tracker::Config {
        store: format!("redis://127.0.0.1:{port}"),
        store_timeout_ms: 300,
        ..test_config()
    };
    let tracker = kpbt_tracker::background::BackgroundTracker::start_on_loopback(config)
        .expect("starts without Redis");
    let h = get(tracker.addr(), "/health", &[]).unwrap();
    assert_eq!(h.status, 503, "{}", h.text());
    let d = bget_at(tracker.addr(), &announce_path(3, 1, 7001, 5, ""), &[]);
    assert!(failure(&d).is_some_and(|f| f.contains("storage is unavailable")));
    let _redis = RedisServer::start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(tracker.addr(), "/health", &[]).unwrap().status != 200 {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = bget_at(tracker.addr(), &announce_path(3, 1, 7001, 5, ""), &[]);
    assert_eq!(failure(&d), None);
}

/// Labels with a shared store: a peer announced through one instance is listed first to
/// a rack-mate announcing through the other, and both instances' gauges agree on peers
/// per label (they sum the Redis buckets, not their own announces).
#[test]
fn labels_work_across_instances_on_one_redis() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let config = || kpbt_tracker::Config {
        real_ip_header: Some("X-Forwarded-For".into()),
        trusted_proxies: vec!["127.0.0.0/8".into()],
        labels: kpbt_tracker::labels::LabelsConfig(vec![(
            "rack-a".into(),
            vec!["10.1.0.0/16".into()],
        )]),
        ..redis_config(&redis)
    };
    let (a, b) = (TestTracker::start(config()), TestTracker::start(config()));
    let ann = |t: &TestTracker, ip: &str, id: u8, numwant: u32| {
        let path = announce_path(
            4,
            id,
            7000 + u16::from(id),
            5,
            &format!("&numwant={numwant}"),
        );
        let d = bget_at(t.addr(), &path, &[("X-Forwarded-For", ip)]);
        assert_eq!(failure(&d), None);
        compact_peers(&d)
    };
    ann(&a, "10.1.0.1", 1, 0);
    for id in 2..=4 {
        ann(&a, &format!("192.0.2.{id}"), id, 0);
    }
    let got = ann(&b, "10.1.0.5", 5, 1);
    assert_eq!(got, ["10.1.0.1:7001".parse::<SocketAddr>().unwrap()]);
    for t in [&a, &b] {
        let m = t.get("/metrics").text();
        for line in [
            "kpbt_tracker_peers_per_label{label=\"rack-a\"} 2",
            "kpbt_tracker_peers_per_label{label=\"none\"} 3",
        ] {
            assert!(m.contains(line), "{line} in\n{m}");
        }
    }
}

/// `/swarms/{info_hash}` on a shared store answers for announces made through any
/// instance, with the completion time Redis keeps.
#[test]
fn readiness_reads_the_shared_swarm() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let (a, b) = (
        TestTracker::start(redis_config(&redis)),
        TestTracker::start(redis_config(&redis)),
    );
    let url = format!("/swarms/{}?expect=2", hex::encode([5u8; 20]));
    assert_eq!(b.get(&url).status, 425);
    a.bget(&announce_path(5, 1, 7101, 0, "&event=completed"));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    a.bget(&announce_path(5, 2, 7102, 3, "&event=started"));
    let r = b.get(&url);
    assert_eq!(r.status, 425, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["seeders"].as_u64(), v["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["completed"], 1);
    let last = v["last_completed"].as_u64().unwrap();
    assert!(last.abs_diff(started) <= 2, "{last} vs {started}");
    b.bget(&announce_path(5, 2, 7102, 0, "&event=completed"));
    assert_eq!(a.get(&url).status, 200);
}

/// `kpbt_tracker_redis_announce_paths_total` says how each announce was served: a known
/// peer's re-announce by the pipeline, the rest by the script.
#[test]
fn announce_paths_are_counted() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let t = TestTracker::start(redis_config(&redis));
    let path = |p: &str| -> u64 {
        let m = t.get("/metrics").text();
        let line = format!("kpbt_tracker_redis_announce_paths_total{{path=\"{p}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("no {line:?} in /metrics:\n{m}"))
            .parse()
            .unwrap()
    };
    assert_eq!((path("pipeline"), path("script")), (0, 0));
    for (id, port) in [(1, 5001), (2, 5002)] {
        let r = t.bget(&announce_path(1, id, port, 10, "&event=started"));
        assert_eq!(failure(&r), None);
    }
    let again = t.bget(&announce_path(1, 1, 5001, 10, ""));
    assert_eq!(
        compact_peers(&again),
        ["127.0.0.1:5002".parse::<SocketAddr>().unwrap()]
    );
    // The same peer finished without a `completed`: the pipeline hands it to the script.
    let done = t.bget(&announce_path(1, 1, 5001, 0, ""));
    assert_eq!((int(&done, "complete"), int(&done, "incomplete")), (1, 1));
    assert_eq!(
        (
            path("pipeline"),
            path("script"),
            path("pipeline_then_script")
        ),
        (1, 2, 1)
    );
}
