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

/// `keys add ARGS...`: the new key, from the `key` line of the output.
fn add(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["add"];
    all.extend_from_slice(args);
    let out = keys(file, &all);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key "))
        .unwrap_or_else(|| panic!("no key line in {out:?}"))
        .trim()
        .to_owned();
    assert_eq!(key.len(), 32, "{out}");
    key
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
    let a = add(&file, &["--note", "alice's laptop"]);
    let b = add(&file, &[]);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
    assert_ne!(a, b);
    let list = keys(&file, &["list"]);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert_eq!(
        rows[0],
        ["KEY", "STATUS", "CREATED", "REVOKED", "NOTE"],
        "{list}"
    );
    assert_eq!(
        (rows[1][0], rows[1][1], rows[1][3], rows[1][4]),
        (a.as_str(), "active", "-", "alice's laptop")
    );
    assert_eq!((rows[2][0], rows[2][1]), (b.as_str(), "active"));
    // Created: RFC 3339 UTC, this year (not raw unix seconds).
    let created = rows[1][2];
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    assert!(created.starts_with("20"), "{created}");
    // Revoke by the announce URL a user was given.
    let out = keys(
        &file,
        &["revoke", &format!("http://tracker:6969/announce/{a}")],
    );
    assert!(out.contains(&format!("revoked {a}")), "{out}");
    let list = keys(&file, &["list"]);
    let row = list.lines().nth(1).unwrap();
    assert!(row.contains("  revoked  "), "{list}");
    // Columns by position (the key is random and may contain any letter).
    let cols: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cols[1], "revoked", "{row}");
    for t in [cols[2], cols[3]] {
        assert!(
            t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{row}"
        );
    }
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
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // Errors: unknown key, already revoked, and no key file given at all.
    let out = bin()
        .arg("--passkey-file")
        .arg(&file)
        .args(["keys", "revoke", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such key"));
    let out = bin()
        .arg("--passkey-file")
        .arg(&file)
        .args(["keys", "revoke", &a])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    let out = bin().args(["keys", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passkey file"));
}

#[test]
fn list_or_revoke_on_a_missing_file_says_how_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    for args in [&["list"][..], &["revoke", &"a".repeat(32)]] {
        let out = bin()
            .arg("--passkey-file")
            .arg(&file)
            .arg("keys")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("passkey file {} does not exist", file.display()))
                && err.contains("keys add"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!file.exists(), "{args:?} must not create the file");
    }
}

#[test]
fn key_file_is_private_and_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    add(&file, &[]);
    assert_eq!(mode(&file), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let k = add(&file, &[]);
    assert_eq!(mode(&file), 0o640);
    keys(&file, &["revoke", &k]);
    assert_eq!(mode(&file), 0o640);
    // Nothing but the file in the directory (no temp files left, none readable).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn add_prints_the_announce_url_to_hand_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    // Without public_url: the path, and a hint on stderr.
    let out = bin()
        .arg("--passkey-file")
        .arg(&file)
        .args(["keys", "add"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("key")
        .unwrap()
        .trim();
    assert!(
        stdout.contains(&format!("announce path /announce/{key}\n")),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("public_url"));
    // With it, from the flag (alias --announce-url) or from the config file.
    let out = keys(&file, &["add", "--announce-url", "http://tracker:6969/"]);
    let key = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("key")
        .unwrap()
        .trim();
    assert!(
        out.contains(&format!(
            "announce URL  http://tracker:6969/announce/{key}\n"
        )),
        "{out}"
    );
    let cfg = dir.path().join("tracker.toml");
    std::fs::write(&cfg, "public_url = \"https://t.example/private\"\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .arg("--passkey-file")
        .arg(&file)
        .args(["keys", "add"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("announce URL  https://t.example/private/announce/"),
        "{stdout}"
    );
    let list = keys(&file, &["list"]);
    assert_eq!(list.lines().count(), 4);
    let out = bin()
        .arg("--passkey-file")
        .arg(&file)
        .args(["--public-url", "tracker:6969", "keys", "add"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("public_url"));
}

#[test]
fn keys_persist_across_restart_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let good = add(&file, &[]);
    let gone = add(&file, &[]);
    keys(&file, &["revoke", &gone]);

    let s = Server::start(dir.path(), &file);
    assert_eq!(s.announce(&good), None);
    assert_eq!(s.announce(&gone).as_deref(), Some("passkey revoked"));
    // Added while running (poll interval is an hour here): SIGHUP makes it valid.
    let late = add(&file, &[]);
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
