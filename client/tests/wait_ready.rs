//! `kpbt-client wait-ready`, the real binary, against an in-process kpbt tracker: it times
//! out (exit 1, with the figures) while too few peers are complete, exits 0 once two
//! seeders have announced `completed`, prints a line per change while it polls, names a
//! dead tracker clearly, and stops at once when a passkey tracker refuses it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kpbt_tracker::background::BackgroundTracker;

const BIN: &str = env!("CARGO_BIN_EXE_kpbt-client");

fn tracker(config: kpbt_tracker::Config) -> BackgroundTracker {
    let config = kpbt_tracker::Config {
        workers: 1,
        ..config
    };
    BackgroundTracker::start_on_loopback(config).expect("tracker starts")
}

fn wait_ready(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("wait-ready").args(args).env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    wait_ready(args).output().expect("run kpbt-client")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn enc(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

/// Announces peer `id` for torrent `[hash; 20]` (on port 7000 + id) to `path_prefix`
/// (`/announce` or `/announce/KEY`).
fn announce(at: SocketAddr, path_prefix: &str, hash: u8, id: u8, left: u64, event: &str) {
    let path = format!(
        "{path_prefix}?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left={left}&event={event}",
        enc(&[hash; 20]),
        enc(&[id; 20]),
        7000 + u16::from(id)
    );
    let (status, body) = kpbt_testkit::http_get(at, &path, Duration::from_secs(5)).unwrap();
    assert_eq!(status, 200);
    assert!(!text(&body).contains("failure reason"), "{}", text(&body));
}

#[test]
fn times_out_while_too_few_are_complete_then_exits_0_after_two_seeders() {
    let t = tracker(kpbt_tracker::Config::default());
    let url = t.announce_url();
    let ih = hex::encode([7u8; 20]);
    let args = |timeout: &'static str| {
        let mut v = vec!["--tracker", url.as_str(), "--info-hash", ih.as_str()];
        v.extend(["--expect", "2", "--timeout", timeout, "--interval", "0.1"]);
        v
    };

    // Before anyone announced: 0 of 2, and a timeout.
    let started = Instant::now();
    let o = run(&args("0.5"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "0 of 2 complete (0 leechers)\n");
    assert_eq!(
        text(&o.stderr),
        "not ready after 0.5 s: 0 of 2 complete (0 leechers)\n"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // One leecher: still 0 of 2.
    announce(t.addr(), "/announce", 7, 1, 100, "started");
    let o = run(&args("0.5"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "0 of 2 complete (1 leecher)\n");
    assert!(
        text(&o.stderr).contains("not ready after 0.5 s: 0 of 2 complete (1 leecher)"),
        "{}",
        text(&o.stderr)
    );

    // Polling while the swarm changes: a line per change, exit 0 at two seeders.
    let mut child = wait_ready(&args("60"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").unwrap();
    assert_eq!(next(), "0 of 2 complete (1 leecher)");
    announce(t.addr(), "/announce", 7, 1, 0, "completed");
    assert_eq!(next(), "1 of 2 complete (0 leechers)");
    announce(t.addr(), "/announce", 7, 2, 0, "completed");
    assert_eq!(next(), "2 of 2 complete (0 leechers)");
    assert_eq!(next(), "ready: 2 of 2 complete");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    // Once ready, a new run exits 0 at its first poll; the info hash may be base32.
    let b32 = "A4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYH";
    let mut fast = args("5");
    fast[3] = b32;
    let o = run(&fast);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "2 of 2 complete (0 leechers)\nready: 2 of 2 complete\n"
    );
}

#[test]
fn a_dead_tracker_is_named_with_the_reason() {
    let port = kpbt_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let ih = hex::encode([1u8; 20]);
    let o = run(&[
        "--tracker",
        &url,
        "--info-hash",
        &ih,
        "--expect",
        "1",
        "--timeout",
        "1",
        "--interval",
        "0.2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(text(&o.stdout), "");
    let reason = format!("cannot reach the tracker at http://127.0.0.1:{port}: connection refused");
    // Said once while retrying, and again in the final error.
    assert_eq!(err.matches(&reason).count(), 2, "{err}");
    assert!(err.contains("retrying until the timeout"), "{err}");
    assert!(err.contains("error: not ready after 1 s: "), "{err}");
}

#[test]
fn a_passkey_tracker_refuses_at_once_without_the_key_and_answers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let mut f = kpbt_tracker::passkeys::KeyFile::default();
    let key = f.add(None);
    f.write(&keys).unwrap();
    let t = tracker(kpbt_tracker::Config {
        passkeys: true,
        passkey_file: Some(keys),
        ..kpbt_tracker::Config::default()
    });
    let ih = hex::encode([3u8; 20]);
    let keyed = format!("/announce/{}", key.as_str());
    announce(t.addr(), &keyed, 3, 1, 0, "completed");
    let base = format!("http://{}", t.addr());
    let started = Instant::now();
    let o = run(&[
        "--tracker",
        &base,
        "--info-hash",
        &ih,
        "--expect",
        "1",
        "--timeout",
        "60",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusals are final"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("refused: this tracker requires a passkey"),
        "{err}"
    );
    assert!(err.contains("--tracker"), "{err}");
    // The announce URL with the key: the key goes along (and never into messages).
    let url = format!("{base}{keyed}");
    let o = run(&["--tracker", &url, "--info-hash", &ih, "--expect", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).ends_with("ready: 1 of 1 complete\n"));
}
