//! The `kpbt-tracker` binary: config precedence (file < env < flags), `--print-config`,
//! bad config, and a real run: listen on port 0, serve, stop gracefully on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpbt-tracker"));
    // Start from a clean environment for our own variables.
    for (k, _) in std::env::vars() {
        if k.starts_with("KPBT_TRACKER_") {
            c.env_remove(k);
        }
    }
    c
}

fn printed(c: &mut Command) -> kpbt_tracker::Config {
    let out = c.arg("--print-config").output().expect("run kpbt-tracker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("printed config parses")
}

#[test]
fn flags_override_env_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "numwant_max = 55\nannounce_interval_secs = 600\n").unwrap();
    let cfg = printed(bin().arg("--config").arg(&file));
    assert_eq!((cfg.numwant_max, cfg.announce_interval_secs), (55, 600));
    let cfg = printed(
        bin()
            .arg("--config")
            .arg(&file)
            .env("KPBT_TRACKER_NUMWANT_MAX", "66"),
    );
    assert_eq!((cfg.numwant_max, cfg.announce_interval_secs), (66, 600));
    let cfg = printed(
        bin()
            .args(["--numwant-max", "77", "--listen", "127.0.0.1:1,[::1]:2"])
            .arg("--config")
            .arg(&file)
            .env("KPBT_TRACKER_NUMWANT_MAX", "66"),
    );
    assert_eq!(cfg.numwant_max, 77);
    assert_eq!(cfg.listen.len(), 2);
    assert_eq!(printed(&mut bin()), kpbt_tracker::Config::default());
}

#[test]
fn bad_config_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "numwant_maxx = 5\n").unwrap();
    let out = bin().arg("--config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
    let out = bin()
        .args(["--numwant-default", "500", "--print-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("numwant_default"));
}

#[test]
fn serves_and_stops_gracefully_on_sigterm() {
    let mut child = bin()
        .args(["--listen", "127.0.0.1:0", "--log", "info"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next()
            .expect("tracker exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().expect("address in log line");
        }
    };
    let r = common::get(addr, "/health", &[]).expect("health");
    assert_eq!(r.status, 200);
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
