//! Hostile clients against a real server: request floods (rate limit), one host filling a
//! swarm from many ports, slow and stalled connections, oversized and malformed requests.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use kpbt_tracker::http::{HEADERS_TOO_LARGE, RATE_LIMITED};

fn xff(ip: &str) -> [(&str, &str); 1] {
    [("X-Forwarded-For", ip)]
}

fn xff_config() -> kpbt_tracker::Config {
    kpbt_tracker::Config {
        real_ip_header: Some("X-Forwarded-For".into()),
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..test_config()
    }
}

/// Writes `bytes`, then reads until the server closes (or 10 s pass); returns how long
/// that took and what came back.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (Duration, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    // A reset after the server's answer is also "closed".
    let _ = s.read_to_end(&mut out);
    (started.elapsed(), out)
}

fn status_line(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn rate_limit_refuses_per_client_with_failure_reason_or_429() {
    let t = TestTracker::start(kpbt_tracker::Config {
        rate_limit_per_min: 1,
        rate_limit_burst: 3,
        ..xff_config()
    });
    let a = announce_path(1, 1, 1001, 5, "");
    for _ in 0..3 {
        assert_eq!(failure(&bget_at(t.addr(), &a, &xff("10.0.0.1"))), None);
    }
    // Over the limit: still HTTP 200 with a failure reason (what clients display).
    let d = bget_at(t.addr(), &a, &xff("10.0.0.1"));
    assert_eq!(failure(&d).as_deref(), Some(RATE_LIMITED));
    let d = bget_at(t.addr(), "/scrape?info_hash=x", &xff("10.0.0.1"));
    assert_eq!(failure(&d).as_deref(), Some(RATE_LIMITED));
    // Other endpoints: 429.
    let r = get(t.addr(), "/stats", &xff("10.0.0.1")).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    // Another client has its own budget; /health is never limited.
    assert_eq!(failure(&bget_at(t.addr(), &a, &xff("10.0.0.2"))), None);
    assert_eq!(
        get(t.addr(), "/health", &xff("10.0.0.1")).unwrap().status,
        200
    );
    assert_eq!(t.state.metrics.rate_limited.get(), 3);
    let m = get(t.addr(), "/metrics", &xff("10.0.0.3")).unwrap().text();
    assert!(m.contains("kpbt_tracker_rate_limited_total 3"), "{m}");
    assert!(m.contains("kpbt_tracker_failures_total{reason=\"rate_limited\"} 3"));
}

#[test]
fn rate_limit_is_off_by_default() {
    let t = TestTracker::start(test_config());
    assert!(t.state.limiter.is_none());
    for i in 0..50u16 {
        let d = t.bget(&announce_path(1, 1, 1001 + i, 5, ""));
        assert_eq!(failure(&d), None);
    }
}

#[test]
fn one_address_cannot_fill_a_swarm_from_many_ports() {
    let t = TestTracker::start(kpbt_tracker::Config {
        max_peers_per_ip_per_torrent: 2,
        ..xff_config()
    });
    let from =
        |ip: &str, port: u16, h: u8| bget_at(t.addr(), &announce_path(h, 1, port, 5, ""), &xff(ip));
    assert_eq!(failure(&from("10.0.0.1", 1, 1)), None);
    assert_eq!(failure(&from("10.0.0.1", 2, 1)), None);
    assert_eq!(
        failure(&from("10.0.0.1", 3, 1)).as_deref(),
        Some("too many peers from your address in this swarm")
    );
    // Known slots re-announce; other addresses and other swarms are unaffected.
    assert_eq!(failure(&from("10.0.0.1", 2, 1)), None);
    assert_eq!(failure(&from("10.0.0.2", 3, 1)), None);
    assert_eq!(failure(&from("10.0.0.1", 3, 2)), None);
    assert_eq!(int(&from("10.0.0.9", 9, 1), "incomplete"), 4);
    let m = t.get("/metrics").text();
    assert!(
        m.contains("kpbt_tracker_failures_total{reason=\"address_limit\"} 1"),
        "{m}"
    );
}

#[test]
fn loopback_is_exempt_from_the_per_address_cap() {
    let t = TestTracker::start(kpbt_tracker::Config {
        max_peers_per_ip_per_torrent: 2,
        ..test_config()
    });
    for port in 1..=5 {
        assert_eq!(failure(&t.bget(&announce_path(1, 1, port, 5, ""))), None);
    }
}

#[test]
fn a_stalled_half_request_is_disconnected_within_the_timeout() {
    let t = TestTracker::start(kpbt_tracker::Config {
        client_request_timeout_ms: 300,
        ..test_config()
    });
    let (took, reply) = send_raw(t.addr(), b"GET /announce?info_hash=");
    assert!(took >= Duration::from_millis(250), "closed early: {took:?}");
    assert!(took < Duration::from_secs(5), "not disconnected: {took:?}");
    assert!(
        reply.is_empty() || status_line(&reply).contains("408"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn a_trickling_client_does_not_extend_its_deadline() {
    let t = TestTracker::start(kpbt_tracker::Config {
        client_request_timeout_ms: 300,
        ..test_config()
    });
    let mut s = TcpStream::connect(t.addr()).unwrap();
    let started = Instant::now();
    // One byte every 50 ms (slowloris): each write would reset a per-read idle timer.
    let head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for b in head {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !closed {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty() || status_line(&buf).contains("408"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow client held the connection for {:?}",
        started.elapsed()
    );
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let t = TestTracker::start(kpbt_tracker::Config {
        keep_alive_secs: 1,
        ..test_config()
    });
    let (took, reply) = send_raw(t.addr(), b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(status_line(&reply).contains("200"));
    assert!(
        took < Duration::from_secs(5),
        "idle connection kept {took:?}"
    );
}

#[test]
fn oversized_headers_get_a_clear_error() {
    let t = TestTracker::start(test_config());
    let big = "y".repeat(10_000);
    let hdr = [("X-Big", big.as_str())];
    let d = bget_at(t.addr(), &announce_path(1, 1, 1, 5, ""), &hdr);
    assert_eq!(failure(&d).as_deref(), Some(HEADERS_TOO_LARGE));
    let r = get(t.addr(), "/stats", &hdr).unwrap();
    assert_eq!(r.status, 431);
    // Beyond what actix buffers: its own bare 431, and the server carries on.
    let huge = format!(
        "GET /announce?x={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    let (_, reply) = send_raw(t.addr(), huge.as_bytes());
    assert!(
        status_line(&reply).contains("431"),
        "{}",
        status_line(&reply)
    );
    assert_eq!(t.get("/health").status, 200);
}

#[test]
fn malformed_http_is_refused_by_actix_and_the_server_carries_on() {
    let t = TestTracker::start(test_config());
    let cases: [&[u8]; 5] = [
        b"GET /announce?\x01\x02 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /announce?info_hash=\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /announce?a b c HTTP/1.1\r\nHost: t\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\r\n\r\n",
        b"GET /announce HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    ];
    for raw in cases {
        let (_, reply) = send_raw(t.addr(), raw);
        // actix's parser answers before any handler runs: a bare 400, no bencoded body.
        assert!(
            status_line(&reply).contains("400"),
            "{:?}: {}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(t.get("/health").status, 200);
}
