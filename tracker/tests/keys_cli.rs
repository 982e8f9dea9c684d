//! `kpbt-tracker keys add|list|revoke` through the real binary, and the real server using
//! that file: keys survive a restart, and a key added while running works after SIGHUP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpbt-tracker"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KPBT_TRACKER_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs `kpbt-tracker --passkey-file FILE keys ARGS...`; returns stdout, asserting success.
fn keys(file: &Path, args: &[&str]) -> String {
    let out = bin()
        .arg("--passkey-file")
        .arg(file)
        .arg("keys")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running tracker process; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts with passkeys on (via a config file, the way an operator would) and waits for
    /// the "listening" log line.
    fn start(dir: &Path, keyfile: &Path) -> Server {
        let cfg = dir.join("tracker.toml");
        std::fs::write(
            &cfg,
            format!(
                "passkeys = true\npasskey_file = {:?}\nallowlist_poll_secs = 3600\n",
                keyfile.to_str().unwrap()
            ),
        )
        .unwrap();
        let mut child = bin()
            .args(["--listen", "127.0.0.1:0", "--log", "info", "--config"])
            .arg(&cfg)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("tracker exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().parse().unwrap();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, addr }
    }

    fn announce(&self, key: &str) -> Option<String> {
        let path =
            announce_path(1, 1, 1001, 5, "").replacen("/announce", &format!("/announce/{key}"), 1);
        failure(&bget_at(self.addr, &path, &[]))
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_list_revoke_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let a = keys(&file, &["add", "--note", "alice's laptop"])
        .trim()
        .to_owned();
    let b = keys(&file, &["add"]).trim().to_owned();
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
    assert_ne!(a, b);
    let list = keys(&file, &["list"]);
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(
        (rows[0][0], rows[0][1], rows[0][3]),
        (a.as_str(), "active", "alice's laptop")
    );
    assert_eq!((rows[1][0], rows[1][1]), (b.as_str(), "active"));
    assert!(keys(&file, &["revoke", &a]).contains("revoked"));
    let list = keys(&file, &["list"]);
    assert!(
        list.lines().next().unwrap().contains("\trevoked\t"),
        "{list}"
    );
    // The key file can also come from the config file, as an operator would run it.
    let cfg = dir.path().join("tracker.toml");
    std::fs::write(
        &cfg,
        format!("passkey_file = {:?}\n", file.to_str().unwrap()),
    )
    .unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["keys", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    // Errors: unknown key, and no key file given at all.
    let out = bin()
        .arg("--passkey-file")
        .arg(&file)
        .args(["keys", "revoke", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such key"));
    let out = bin().args(["keys", "list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passkey file"));
}

#[test]
fn keys_persist_across_restart_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let good = keys(&file, &["add"]).trim().to_owned();
    let gone = keys(&file, &["add"]).trim().to_owned();
    keys(&file, &["revoke", &gone]);

    let s = Server::start(dir.path(), &file);
    assert_eq!(s.announce(&good), None);
    assert_eq!(s.announce(&gone).as_deref(), Some("passkey revoked"));
    // Added while running (poll interval is an hour here): SIGHUP makes it valid.
    let late = keys(&file, &["add"]).trim().to_owned();
    s.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.announce(&late).is_some() {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the keys");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);

    // A fresh process reads the same file: same answers.
    let s = Server::start(dir.path(), &file);
    assert_eq!(s.announce(&good), None);
    assert_eq!(s.announce(&late), None);
    assert_eq!(s.announce(&gone).as_deref(), Some("passkey revoked"));
    assert_eq!(
        failure(&bget_at(s.addr, &announce_path(1, 1, 1001, 5, ""), &[])).as_deref(),
        Some(kpbt_tracker::http::PASSKEY_REQUIRED)
    );
}
