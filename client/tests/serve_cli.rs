//! `kpbt-client serve` as a process, driven by the CLI verbs (`add`, `list`, `status`,
//! `pause`, `resume`, `remove`, `publish`): state survives SIGKILL and SIGTERM, and the
//! verbs say plainly when no session is running.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kpbt_testkit::ChildGuard;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kpbt-client");

fn client(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KPBT_API")
        .env_remove("KPBT_API_TOKEN")
        .output()
        .expect("run kpbt-client")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Starts `serve` on free ports and returns it with its API URL (read from its banner).
fn serve(state: &Path, logs: &Path, name: &str) -> (ChildGuard, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--state-dir"])
        .arg(state)
        .args([
            "--api",
            "127.0.0.1:0",
            "--port",
            "0",
            "--listen",
            "127.0.0.1",
        ])
        .env_remove("RUST_LOG");
    let mut child = ChildGuard::spawn(name, cmd, logs).unwrap();
    child
        .wait_for_output("; Ctrl-C to stop", Duration::from_secs(30))
        .unwrap();
    let banner = std::fs::read_to_string(child.stderr_log()).unwrap();
    let api = banner
        .split("API at ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .expect("banner names the API")
        .to_string();
    (child, api)
}

fn list(api: &str) -> Vec<Value> {
    let out = ok(client(&["list", "--json", "--api", api]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn wait_state(api: &str, ih: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = list(api);
        if l.iter()
            .any(|t| t["info_hash"] == ih && t["state"] == state)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{ih} never {state}: {l:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill(child: &ChildGuard, signal: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, signal) }, 0);
}

#[test]
fn serve_keeps_its_torrents_across_sigkill_and_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let (state, data, logs) = (
        work.path().join("state"),
        work.path().join("data"),
        work.path().join("logs"),
    );
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("build.tar"),
        kpbt_testkit::random_bytes(300_000, 5),
    )
    .unwrap();
    let torrent = work.path().join("build.tar.torrent");
    ok(client(&[
        "create",
        data.join("build.tar").to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "--quiet",
    ]));

    let (mut first, api) = serve(&state, &logs, "serve-1");
    let added = ok(client(&[
        "add",
        torrent.to_str().unwrap(),
        "--dir",
        data.to_str().unwrap(),
        "--api",
        &api,
    ]));
    assert!(added.starts_with("added build.tar ("), "{added}");
    let ih = added.split(['(', ')']).nth(1).unwrap().to_string();
    assert_eq!(ih.len(), 40);
    wait_state(&api, &ih, "seeding");
    let status = ok(client(&["status", &ih, "--api", &api]));
    assert!(
        status.contains("seeding")
            && status.contains("file 0: build.tar (")
            && status.contains("100.0%)"),
        "{status}"
    );
    // Adding it twice is refused with the session's reason.
    let again = client(&[
        "add",
        torrent.to_str().unwrap(),
        "--dir",
        data.to_str().unwrap(),
        "--api",
        &api,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already in the session"));
    let again = ok(client(&[
        "add",
        torrent.to_str().unwrap(),
        "--dir",
        data.to_str().unwrap(),
        "--exist-ok",
        "--api",
        &api,
    ]));
    assert!(again.starts_with("already in the session"), "{again}");

    // SIGKILL: no chance to save anything at exit.
    kill(&first, libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).unwrap();
    let (second, api) = serve(&state, &logs, "serve-2");
    wait_state(&api, &ih, "seeding");
    let paused = ok(client(&["pause", &ih, "--api", &api]));
    assert!(paused.contains("paused"), "{paused}");

    // SIGTERM: a clean stop, exit 0, and the paused flag survives it.
    let mut second = second;
    kill(&second, libc::SIGTERM);
    assert!(second.wait_exit(Duration::from_secs(20)).unwrap().success());
    let (_third, api) = serve(&state, &logs, "serve-3");
    wait_state(&api, &ih, "paused");
    ok(client(&["resume", &ih, "--api", &api]));
    wait_state(&api, &ih, "seeding");
    let removed = ok(client(&["remove", &ih, "--api", &api]));
    assert!(removed.contains(&ih));
    assert!(list(&api).is_empty());
    assert!(
        data.join("build.tar").exists(),
        "remove without --delete-data keeps the data"
    );

    // publish: make the torrent and seed it at once.
    std::fs::write(
        data.join("fresh.img"),
        kpbt_testkit::random_bytes(200_000, 6),
    )
    .unwrap();
    let out_torrent = work.path().join("fresh.torrent");
    let published = ok(client(&[
        "publish",
        data.join("fresh.img").to_str().unwrap(),
        "-o",
        out_torrent.to_str().unwrap(),
        "--quiet",
        "--api",
        &api,
    ]));
    let fresh_ih = published.split_whitespace().next().unwrap().to_string();
    assert!(
        published
            .trim_end()
            .ends_with(out_torrent.to_str().unwrap()),
        "{published}"
    );
    assert!(out_torrent.exists());
    wait_state(&api, &fresh_ih, "seeding");
}

#[test]
fn verbs_without_a_session_say_how_to_start_one() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let o = client(&["list", "--api", &api]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no kpbt-client session answers at")
            && err.contains("kpbt-client serve --state-dir"),
        "{err}"
    );
    let o = client(&["status", "zz", "--api", &api]);
    assert!(!o.status.success());
}
