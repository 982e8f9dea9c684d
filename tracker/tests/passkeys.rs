//! Passkeys over HTTP: valid, missing, unknown and revoked keys on announce and scrape,
//! revocation taking effect on reload (explicit and polled), composition with the
//! allowlist, and passkey URLs on a tracker that does not use them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kpbt_tracker::http::PASSKEY_REQUIRED;
use kpbt_tracker::passkeys::{KeyFile, Passkey};

fn keyed(key: &str, path: &str) -> String {
    path.replacen("/announce", &format!("/announce/{key}"), 1)
}

fn passkey_config(file: &Path) -> kpbt_tracker::Config {
    kpbt_tracker::Config {
        passkeys: true,
        passkey_file: Some(file.to_owned()),
        allowlist_poll_secs: 1,
        ..test_config()
    }
}

/// A key file with one active and one revoked key.
fn key_file(path: &Path) -> (Passkey, Passkey, KeyFile) {
    let mut f = KeyFile::default();
    let good = f.add(Some("alice".into()));
    let revoked = f.add(None);
    f.revoke(revoked.as_str()).unwrap();
    f.write(path).unwrap();
    (good, revoked, f)
}

#[test]
fn valid_missing_unknown_and_revoked_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let (good, revoked, _) = key_file(&path);
    let t = TestTracker::start(passkey_config(&path));
    let a = announce_path(1, 1, 1001, 5, "");

    let d = t.bget(&a);
    assert_eq!(failure(&d).as_deref(), Some(PASSKEY_REQUIRED));
    let d = t.bget(&keyed(good.as_str(), &a));
    assert_eq!(failure(&d), None, "{d:?}");
    assert_eq!(int(&d, "incomplete"), 1);
    let unknown = Passkey::generate();
    let d = t.bget(&keyed(unknown.as_str(), &a));
    assert_eq!(failure(&d).as_deref(), Some("unknown passkey"));
    let d = t.bget(&keyed(revoked.as_str(), &a));
    assert_eq!(failure(&d).as_deref(), Some("passkey revoked"));
    // Garbage in the key position (wrong length, escapes, dots) is just an unknown key.
    for junk in ["x", "%00%ff", "..", &"A".repeat(4000)] {
        let d = t.bget(&keyed(junk, &a));
        assert_eq!(failure(&d).as_deref(), Some("unknown passkey"), "{junk}");
    }

    let scrape = format!("?info_hash={}", enc(&[1; 20]));
    let d = t.bget(&format!("/scrape{scrape}"));
    assert_eq!(failure(&d).as_deref(), Some(PASSKEY_REQUIRED));
    let d = t.bget(&format!("/scrape/{good}{scrape}"));
    assert!(d.contains_key(&b"files"[..]), "{d:?}");
    let d = t.bget(&format!("/scrape/{revoked}{scrape}"));
    assert_eq!(failure(&d).as_deref(), Some("passkey revoked"));

    let m = t.get("/metrics").text();
    assert!(m.contains("kpbt_tracker_passkey_rejections_total 9"), "{m}");
    for reason in ["passkey_missing", "passkey_unknown", "passkey_revoked"] {
        assert!(
            m.contains(&format!(
                "kpbt_tracker_failures_total{{reason=\"{reason}\"}}"
            )),
            "{reason}"
        );
    }
    // The store never saw the refused announces.
    assert_eq!(block_on(t.state.store.stats()).unwrap().leechers, 1);
}

#[test]
fn revocation_takes_effect_on_reload_and_on_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let (good, _, mut file) = key_file(&path);
    let t = TestTracker::start(passkey_config(&path));
    let a = announce_path(1, 1, 1001, 5, "");
    assert_eq!(failure(&t.bget(&keyed(good.as_str(), &a))), None);

    // Explicit reload (what SIGHUP does).
    file.revoke(good.as_str()).unwrap();
    file.write(&path).unwrap();
    assert_eq!(t.state.reload_passkeys().unwrap(), Some(0));
    let d = t.bget(&keyed(good.as_str(), &a));
    assert_eq!(failure(&d).as_deref(), Some("passkey revoked"));

    // The poller picks up a new key without being told.
    let fresh = file.add(None);
    file.write(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while failure(&t.bget(&keyed(fresh.as_str(), &a))).is_some() {
        assert!(Instant::now() < deadline, "poller never reloaded the keys");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A broken file keeps the keys in force.
    std::fs::write(&path, "[[key]]\nkey = \"short\"\ncreated = 1\n").unwrap();
    assert!(t.state.reload_passkeys().is_err());
    assert_eq!(failure(&t.bget(&keyed(fresh.as_str(), &a))), None);
}

#[test]
fn allowlist_and_passkeys_are_both_checked() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let (good, revoked, _) = key_file(&keys);
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, format!("{}\n", hex::encode([1u8; 20]))).unwrap();
    let t = TestTracker::start(kpbt_tracker::Config {
        allowlist: Some(allow),
        ..passkey_config(&keys)
    });
    let allowed = announce_path(1, 1, 1001, 5, "");
    let other = announce_path(2, 1, 1001, 5, "");
    assert_eq!(failure(&t.bget(&keyed(good.as_str(), &allowed))), None);
    let d = t.bget(&keyed(good.as_str(), &other));
    assert_eq!(failure(&d).as_deref(), Some("torrent not in allowlist"));
    let d = t.bget(&keyed(revoked.as_str(), &allowed));
    assert_eq!(failure(&d).as_deref(), Some("passkey revoked"));
}

#[test]
fn passkey_urls_without_passkeys_are_refused() {
    let t = TestTracker::start(test_config());
    let key = Passkey::generate();
    let d = t.bget(&keyed(key.as_str(), &announce_path(1, 1, 1001, 5, "")));
    assert_eq!(
        failure(&d).as_deref(),
        Some("this tracker does not use passkeys: announce to /announce")
    );
    assert_eq!(t.state.metrics.passkey_rejections.get(), 0);
}
