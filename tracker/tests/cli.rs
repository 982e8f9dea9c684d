//! The `kpbt-tracker` binary: config precedence (file < env < flags), `--print-config`,
//! `--help`, bad config and other user errors (exit codes, messages once), logs (no colour
//! on a pipe, no passkeys), the `health` probe, and a real run: listen on port 0, serve,
//! stop gracefully on SIGTERM.

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
fn udp_listen_and_key_come_from_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "udp_listen = \"127.0.0.1:7001\"\n").unwrap();
    let cfg = printed(bin().arg("--config").arg(&file));
    assert_eq!(cfg.udp_listen, ["127.0.0.1:7001".parse().unwrap()]);
    let cfg = printed(
        bin()
            .arg("--config")
            .arg(&file)
            .env("KPBT_TRACKER_UDP_LISTEN", "127.0.0.1:7002,[::1]:7003")
            .env(
                "KPBT_TRACKER_UDP_CONNECTION_KEY",
                "000102030405060708090a0b0c0d0e0f",
            ),
    );
    assert_eq!(cfg.udp_listen.len(), 2);
    assert_eq!(
        cfg.udp_connection_key.as_deref(),
        Some("000102030405060708090a0b0c0d0e0f")
    );
    let cfg = printed(
        bin()
            .args(["--udp-listen", "127.0.0.1:7004"])
            .arg("--config")
            .arg(&file),
    );
    assert_eq!(cfg.udp_listen, ["127.0.0.1:7004".parse().unwrap()]);
    let out = bin()
        .args(["--udp-connection-key", "nothex", "--print-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("udp_connection_key"));
}

#[test]
fn bad_config_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "numwant_maxx = 5\n").unwrap();
    let out = bin().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
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

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_groups_and_describes_every_option_with_defaults() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let headings = [
        "Listening:",
        "Announce replies:",
        "Peers and swarms:",
        "Request limits:",
        "Access control:",
        "Config file and logging:",
    ];
    let at: Vec<usize> = headings
        .iter()
        .map(|h| {
            help.find(&format!("\n{h}\n"))
                .unwrap_or_else(|| panic!("{h}\n{help}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "heading order: {at:?}");
    // Long help: each option line is followed by its description.
    let lines: Vec<&str> = help.lines().collect();
    let mut options = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("--") || l.trim_start().starts_with("-h,") {
            options += 1;
            let next = lines.get(i + 1).map_or("", |n| n.trim());
            assert!(
                !next.is_empty() && !next.starts_with('['),
                "{l}: no description"
            );
        }
    }
    assert!(options >= 30, "{options} options\n{help}");
    // Defaults come from Config::default().
    let d = kpbt_tracker::Config::default();
    for want in [
        format!("[default: {}]", d.announce_interval_secs),
        format!("[default: {}]", d.max_query_len),
        format!("[default: {}]", d.rate_limit_max_clients),
        format!("[default: {}]", d.listen[0]),
    ] {
        assert!(help.contains(&want), "{want}\n{help}");
    }
}

#[test]
fn print_config_is_a_complete_sample_that_parses_back() {
    let out = bin().arg("--print-config").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    // Every field, by serde's own list of them (an unknown-field error names them all).
    let err = toml::from_str::<kpbt_tracker::Config>("x_ = 1")
        .unwrap_err()
        .to_string();
    let fields: Vec<&str> = err
        .split("expected one of")
        .nth(1)
        .unwrap()
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    assert!(fields.len() > 20);
    // `labels` is a table, printed last: as a commented-out example while unset.
    assert_eq!(fields.last(), Some(&"labels"));
    assert!(text.contains("\n# [labels]  # unset"), "{text}");
    for f in &fields[..fields.len() - 1] {
        let set = text.lines().any(|l| l.starts_with(&format!("{f} = ")));
        let unset = text.lines().any(|l| l.starts_with(&format!("# {f} = ")));
        assert!(set ^ unset, "{f} missing (or twice) in\n{text}");
    }
    for f in [
        "min_interval_secs",
        "peer_timeout_secs",
        "allowlist",
        "passkey_file",
        "real_ip_header",
        "public_url",
    ] {
        assert!(
            text.contains(&format!("\n# {f} = ")),
            "{f} should be commented\n{text}"
        );
    }
    let back: kpbt_tracker::Config = toml::from_str(&text).unwrap();
    assert_eq!(back, kpbt_tracker::Config::default());
    // Uncommenting every line gives a valid config with every key set.
    let all: String = text
        .lines()
        .filter(|l| l.contains(" = ") || l.starts_with("# ["))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    let full: kpbt_tracker::Config = toml::from_str(&all).unwrap();
    let labels: Vec<&str> = full.labels.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(labels, ["rack-a", "zone-eu"]);
    full.labels.validate().unwrap();
    assert_eq!(
        full.public_url.as_deref(),
        Some("http://tracker.example:6969")
    );
    assert_eq!(full.min_interval_secs, Some(900));
}

#[test]
fn listen_accepts_a_string_an_array_and_host_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "listen = \"localhost:7100\"\n").unwrap();
    let cfg = printed(bin().arg("--config").arg(&file));
    assert_eq!(cfg.listen.len(), 1);
    assert!(cfg.listen[0].ip().is_loopback() && cfg.listen[0].port() == 7100);
    std::fs::write(&file, "listen = [\"127.0.0.1:7101\", \"localhost:7102\"]\n").unwrap();
    let cfg = printed(bin().arg("--config").arg(&file));
    assert_eq!(cfg.listen[0], "127.0.0.1:7101".parse().unwrap());
    assert_eq!(cfg.listen[1].port(), 7102);
    let cfg = printed(bin().env("KPBT_TRACKER_LISTEN", "localhost:7103"));
    assert_eq!(cfg.listen[0].port(), 7103);
    let cfg = printed(bin().args(["--listen", "localhost:7104"]));
    assert!(cfg.listen[0].ip().is_loopback() && cfg.listen[0].port() == 7104);
    // Unresolvable: the error names the address, from the file and from the flag.
    std::fs::write(&file, "listen = \"no-such-host.invalid:1\"\n").unwrap();
    let out = bin().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("cannot resolve listen address \"no-such-host.invalid:1\""),
        "{}",
        stderr_of(&out)
    );
    let out = bin()
        .args(["--listen", "no-such-host.invalid:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(stderr_of(&out).contains("no-such-host.invalid:1"));
}

#[test]
fn user_errors_print_once_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "numwant_maxx = 5\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&file)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("kpbt-tracker: error: parsing config file"),
        "{err}"
    );
    assert_eq!(
        err.matches("unknown field `numwant_maxx`").count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("1 | numwant_maxx = 5").count(), 1, "{err}");
    for bad in ["backtrace", "Caused by", "panicked"] {
        assert!(
            !err.to_lowercase().contains(&bad.to_lowercase()),
            "{bad}: {err}"
        );
    }
    // A port in use: the cause once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args(["--listen", &addr])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let last = err.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!("kpbt-tracker: error: binding {addr}: Address already in use (os error 98)"),
        "{err}"
    );
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
}

/// A tracker child process with passkeys on, its stderr collected to the end.
fn run_logged(dir: &std::path::Path, log: &str, key: &str) -> String {
    let keys = dir.join("keys.toml");
    std::fs::write(&keys, format!("[[key]]\nkey = \"{key}\"\ncreated = 1\n")).unwrap();
    let mut child = bin()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--passkeys",
            "true",
            "--log",
            log,
        ])
        .arg("--passkey-file")
        .arg(&keys)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr: std::net::SocketAddr = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "exited early: {seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    let unknown = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    for k in [key, unknown] {
        let path = common::announce_path(1, 1, 1001, 5, "&passkey=QUERYSECRET").replacen(
            "/announce",
            &format!("/announce/{k}"),
            1,
        );
        common::get(addr, &path, &[]).unwrap();
        common::get(addr, &format!("/scrape/{k}?info_hash=QUERYSECRET"), &[]).unwrap();
    }
    // Malformed and oversized requests too, which take actix's error paths.
    common::get(addr, &format!("/announce/{key}?info_hash=%zz"), &[]).unwrap();
    common::get(
        addr,
        &format!("/announce/{key}"),
        &[("X-Big", &"a".repeat(9000))],
    )
    .unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    seen + &rest
}

#[test]
fn logs_have_no_colour_on_a_pipe_and_never_a_passkey() {
    let dir = tempfile::tempdir().unwrap();
    let key = "SeCrEtKeY0123456789abcdefghijklm";
    for log in ["info", "trace"] {
        let logs = run_logged(dir.path(), log, key);
        assert!(logs.contains("listening on"), "{logs}");
        assert!(logs.contains("stopped"), "{logs}");
        assert!(
            !logs.contains("\x1b["),
            "ANSI escape in piped logs:\n{logs}"
        );
        assert!(!logs.contains(key), "passkey in the {log} log:\n{logs}");
        assert!(!logs.contains("ZZZZZZZZ"), "unknown key in the {log} log");
        assert!(!logs.contains("QUERYSECRET"), "query in the {log} log");
        if log == "trace" {
            // The refusals were logged, with the key and query redacted.
            assert!(logs.contains("/announce/<key>?<"), "{logs}");
        }
    }
}

#[test]
fn a_broken_key_file_is_reported_without_quoting_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let key = "SeCrEtKeY0123456789abcdefghijklm";
    std::fs::write(
        &keys,
        format!("[[key]]\nkey = \"{key}\"\ncreated = \"x\"\n"),
    )
    .unwrap();
    let out = bin()
        .args(["--listen", "127.0.0.1:0", "--passkeys", "true"])
        .arg("--passkey-file")
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("keys.toml: line 3:"), "{err}");
    assert!(!err.contains(key), "{err}");
}

fn health(url: &str) -> (Option<i32>, String, String) {
    let out = bin().args(["health", url]).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_of(&out),
    )
}

#[test]
fn health_probe_exit_codes_and_reasons() {
    let t = common::TestTracker::start(common::test_config());
    let url = format!("http://{}/health", t.addr());
    let (code, out, _) = health(&url);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("ok: {url} answered HTTP 200"));
    // The probe ignores the tracker's own settings (a container's env is the tracker's).
    let out = bin()
        .args(["health", &url])
        .env("KPBT_TRACKER_CONFIG", "/nonexistent.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let (code, _, err) = health(&format!("http://{}/nope", t.addr()));
    assert_eq!(code, Some(1));
    assert!(err.contains("answered HTTP 404"), "{err}");
    // Nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _, err) = health(&format!("http://{free}/health"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("cannot connect to {free}")) && err.contains("refused"),
        "{err}"
    );
    // Listening but never answering: gives up after the 2 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = health(&format!("http://{}/health", silent.local_addr().unwrap()));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no answer") && err.contains("within 2 s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (code, _, err) = health("https://127.0.0.1/health");
    assert_eq!(code, Some(1));
    assert!(err.contains("must start with http://"), "{err}");
    drop(silent);
}
