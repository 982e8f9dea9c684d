//! `GET /swarms/{info_hash}` (deploy readiness) over HTTP: the JSON figures, `?expect=N`
//! (200 once N seeders, 425 Too Early before, also for a swarm nobody announced yet),
//! 404 / 400 errors, peers per label in config order, passkeys and the allowlist.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use kpbt_tracker::passkeys::KeyFile;
use serde_json::Value;

fn json(r: &Reply) -> Value {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.text()
    );
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn hex(h: u8) -> String {
    hex::encode([h; 20])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn figures_and_expect_from_first_poll_to_ready() {
    let t = TestTracker::start(test_config());
    let url = |q: &str| format!("/swarms/{}{q}", hex(1));
    // Nobody has announced yet: 404 without expect, 425 with zeros with it.
    let r = t.get(&url(""));
    assert_eq!(r.status, 404);
    assert!(json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("unknown swarm"));
    let r = t.get(&url("?expect=2"));
    assert_eq!(r.status, 425, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["info_hash"], hex(1));
    assert_eq!(
        (v["seeders"].as_u64(), v["leechers"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["completed"], 0);
    assert_eq!(v["last_completed"], Value::Null);
    assert_eq!(v["peers_per_label"], serde_json::json!({"none": 0}));
    assert_eq!(
        (v["expect"].as_u64(), v["ready"].as_bool()),
        (Some(2), Some(false))
    );

    // One leecher, then one seeder that completed: 1 of 2.
    t.bget(&announce_path(1, 1, 6001, 10, "&event=started"));
    t.bget(&announce_path(1, 2, 6002, 10, "&event=started"));
    let before = now();
    t.bget(&announce_path(1, 2, 6002, 0, "&event=completed"));
    let after = now();
    let r = t.get(&url("?expect=2"));
    assert_eq!(r.status, 425);
    let v = json(&r);
    assert_eq!(
        (
            v["seeders"].as_u64(),
            v["leechers"].as_u64(),
            v["completed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let last = v["last_completed"].as_u64().expect("a completion time");
    assert!(
        (before..=after).contains(&last),
        "{before} <= {last} <= {after}"
    );
    assert_eq!(v["peers_per_label"]["none"], 2);
    // Without expect: the same figures with 200.
    let r = t.get(&url(""));
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["seeders"], 1);
    assert!(json(&r).get("ready").is_none());

    // The second one completes: ready.
    t.bget(&announce_path(1, 1, 6001, 0, "&event=completed"));
    let r = t.get(&url("?expect=2"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(
        (v["seeders"].as_u64(), v["leechers"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["ready"], true);
    // More than asked for is ready too; other parameters are ignored.
    assert_eq!(t.get(&url("?x=1&expect=1")).status, 200);
    assert_eq!(t.get(&url("?expect=3")).status, 425);

    // The same swarm by its base32 name.
    let b32 = base32(&[1; 20]);
    let r = t.get(&format!("/swarms/{b32}?expect=2"));
    assert_eq!(r.status, 200, "{b32}: {}", r.text());
    assert_eq!(json(&r)["info_hash"], hex(1));
}

/// Torrents polled with `?expect=N` appear in /metrics as expected-versus-now seeders
/// (the dashboard's deploy readiness panel); torrents only read without it do not, and
/// only torrents the allowlist admits are remembered.
#[test]
fn readiness_metrics_show_watched_torrents_expected_against_seeders() {
    let t = TestTracker::start(test_config());
    let line = |text: &str, name: &str, h: u8| -> Option<String> {
        let series = format!("{name}{{info_hash=\"{}\"}} ", hex(h));
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()).map(str::to_owned))
    };
    let metrics = || t.get("/metrics").text();
    assert_eq!(
        line(&metrics(), "kpbt_tracker_readiness_expected_seeders", 1),
        None
    );
    t.bget(&announce_path(1, 1, 6001, 0, "&event=started"));
    t.bget(&announce_path(2, 2, 6002, 0, "&event=started"));
    assert_eq!(t.get(&format!("/swarms/{}?expect=3", hex(1))).status, 425);
    assert_eq!(t.get(&format!("/swarms/{}", hex(2))).status, 200);
    let m = metrics();
    assert_eq!(
        line(&m, "kpbt_tracker_readiness_expected_seeders", 1).as_deref(),
        Some("3")
    );
    assert_eq!(
        line(&m, "kpbt_tracker_readiness_seeders", 1).as_deref(),
        Some("1")
    );
    assert_eq!(
        line(&m, "kpbt_tracker_readiness_seeders", 2),
        None,
        "not watched"
    );
    // Seeders are read at each scrape; the latest expectation wins.
    t.bget(&announce_path(1, 3, 6003, 0, "&event=started"));
    assert_eq!(t.get(&format!("/swarms/{}?expect=2", hex(1))).status, 200);
    let m = metrics();
    assert_eq!(
        line(&m, "kpbt_tracker_readiness_expected_seeders", 1).as_deref(),
        Some("2")
    );
    assert_eq!(
        line(&m, "kpbt_tracker_readiness_seeders", 1).as_deref(),
        Some("2")
    );
}

/// RFC 4648 base32 without padding (an independent encoder for the test).
fn base32(b: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &x in b {
        acc = (acc << 8) | u32::from(x);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(A[(acc >> bits) as usize & 31] as char);
        }
    }
    out
}

#[test]
fn bad_requests_get_400_json() {
    let t = TestTracker::start(test_config());
    for path in [
        "/swarms/abc".to_string(),
        format!("/swarms/{}", &hex(1)[1..]),
        format!("/swarms/{}zz", &hex(1)[2..]),
    ] {
        let r = t.get(&path);
        assert_eq!(r.status, 400, "{path}");
        assert!(
            json(&r)["error"]
                .as_str()
                .unwrap()
                .contains("40 hex digits"),
            "{path}"
        );
    }
    for q in ["expect=", "expect=-1", "expect=two"] {
        let r = t.get(&format!("/swarms/{}?{q}", hex(1)));
        assert_eq!(r.status, 400, "{q}");
        assert!(
            json(&r)["error"].as_str().unwrap().contains("expect"),
            "{q}"
        );
    }
}

#[test]
fn peers_per_label_lists_the_config_labels_in_order_then_none() {
    let mut c = test_config();
    c.real_ip_header = Some("X-Forwarded-For".into());
    c.trusted_proxies = vec!["127.0.0.0/8".into()];
    c.labels = kpbt_tracker::labels::LabelsConfig(vec![
        (
            "zone-eu".into(),
            vec!["10.2.0.0/16".into(), "fd00::/8".into()],
        ),
        ("rack-a".into(), vec!["10.1.0.0/16".into()]),
    ]);
    let t = TestTracker::start(c);
    for (ip, id) in [
        ("10.1.0.1", 1),
        ("10.1.0.2", 2),
        ("fd00::3", 3),
        ("192.0.2.4", 4),
    ] {
        let path = announce_path(1, id, 6000 + u16::from(id), 5, "");
        bget_at(t.addr(), &path, &[("X-Forwarded-For", ip)]);
    }
    let r = t.get(&format!("/swarms/{}", hex(1)));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains(r#""peers_per_label":{"zone-eu":1,"rack-a":2,"none":1}"#),
        "{text}"
    );
    // A label with no peers in this swarm is listed with 0.
    bget_at(
        t.addr(),
        &announce_path(2, 9, 6009, 5, ""),
        &[("X-Forwarded-For", "10.1.0.9")],
    );
    let v = json(&t.get(&format!("/swarms/{}", hex(2))));
    assert_eq!(
        v["peers_per_label"],
        serde_json::json!({"zone-eu": 0, "rack-a": 1, "none": 0})
    );
}

#[test]
fn passkey_trackers_want_a_key_and_the_allowlist_hides_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let mut f = KeyFile::default();
    let key = f.add(None);
    f.write(&keys).unwrap();
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, format!("{}\n", hex(1))).unwrap();
    let t = TestTracker::start(kpbt_tracker::Config {
        passkeys: true,
        passkey_file: Some(keys),
        allowlist: Some(allow),
        ..test_config()
    });
    let k = key.as_str();
    t.bget(&announce_path(1, 1, 6001, 0, "&event=completed").replacen(
        "/announce",
        &format!("/announce/{k}"),
        1,
    ));
    for path in [
        format!("/swarms/{}", hex(1)),
        format!("/swarms/{}/{}", hex(1), "A".repeat(32)),
    ] {
        let r = t.get(&path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(json(&r)["error"].as_str().unwrap().contains("passkey"));
    }
    let r = t.get(&format!("/swarms/{}/{k}?expect=1", hex(1)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["seeders"], 1);
    // A torrent outside the allowlist reads as unknown, whatever the store holds.
    let r = t.get(&format!("/swarms/{}/{k}", hex(2)));
    assert_eq!(r.status, 404);
    assert_eq!(
        t.get(&format!("/swarms/{}/{k}?expect=1", hex(2))).status,
        425
    );
    // A tracker without passkeys refuses a key in the path, as for announces.
    let plain = TestTracker::start(test_config());
    let r = plain.get(&format!("/swarms/{}/{k}", hex(1)));
    assert_eq!(r.status, 403);
}

#[test]
fn rate_limited_like_stats() {
    let t = TestTracker::start(kpbt_tracker::Config {
        rate_limit_per_min: 1,
        rate_limit_burst: 1,
        ..test_config()
    });
    let path = format!("/swarms/{}?expect=1", hex(1));
    assert_eq!(t.get(&path).status, 425);
    let r = t.get(&path);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
}
