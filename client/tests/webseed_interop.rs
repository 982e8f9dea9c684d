//! Web seeds (BEP 19) against software we did not write: aria2 downloads a torrent that
//! `kpbt-client create --web-seed` made, from an nginx origin alone (proving the
//! `url-list` we write); `kpbt-client download` fetches torrents that mktorrent made
//! with `-w` (a folder URL) and, with `--origin`, without. Bytes compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kpbt_testkit::{assert_same_file, free_port, make_multi_file_tree, Aria2, Nginx};

const BIN: &str = env!("CARGO_BIN_EXE_kpbt-client");

fn tools(extra: &[(&str, &str)]) -> bool {
    kpbt_testkit::require_binary("nginx", "nginx") && kpbt_testkit::require_binaries(extra)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `root/NAME/...` as the multi-file tree, returning its relative file paths.
fn tree(root: &Path, name: &str) -> Vec<PathBuf> {
    make_multi_file_tree(&root.join(name), 5)
        .expect("payload")
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn assert_same_tree(a: &Path, b: &Path, files: &[PathBuf]) {
    for f in files {
        assert_same_file(&a.join(f), &b.join(f));
    }
}

#[test]
fn aria2_downloads_a_kpbt_made_torrent_from_the_web_seed_alone() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let origin_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(origin_dir.path(), "rel 1");
    let origin = Nginx::serve(origin_dir.path()).expect("nginx");
    let torrent = work.path().join("rel.torrent");
    let src = origin_dir.path().join("rel 1");
    run(Command::new(BIN)
        .args(["create", "-q", "--piece-length", "64K", "--web-seed"])
        .arg(origin.url())
        .arg("-o")
        .arg(&torrent)
        .arg(&src));
    // No tracker and no peers: aria2 can only use the url-list.
    let out = work.path().join("dl");
    let mut dl = Aria2::download(&torrent, &out, free_port()).expect("aria2 starts");
    dl.wait_complete(Duration::from_secs(60))
        .expect("aria2 completes from the web seed");
    assert_same_tree(&src, &out.join("rel 1"), &files);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(src.join(f)).unwrap().len())
        .sum();
    assert!(
        origin.bytes_sent() >= total,
        "nginx sent {} of {total} bytes",
        origin.bytes_sent()
    );
}

#[test]
fn kpbt_downloads_a_mktorrent_w_torrent_from_a_folder_url() {
    if !tools(&[("mktorrent", "mktorrent")]) {
        return;
    }
    let origin_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let files = tree(origin_dir.path(), "set");
    let origin = Nginx::serve(origin_dir.path()).expect("nginx");
    let torrent = work.path().join("set.torrent");
    let src = origin_dir.path().join("set");
    run(Command::new("mktorrent")
        .args(["-l", "16", "-d", "-w"])
        .arg(origin.url())
        .arg("-o")
        .arg(&torrent)
        .arg(&src));
    let out = work.path().join("dl");
    let o = run(Command::new(BIN)
        .args(["download", "--port", "0", "--no-trackers", "-o"])
        .arg(&out)
        .arg(&torrent));
    assert_same_tree(&src, &out.join("set"), &files);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("from peers, ") && stderr.contains(" from origin)"),
        "{stderr}"
    );
}

#[test]
fn download_origin_serves_a_torrent_made_without_web_seeds() {
    if !tools(&[("mktorrent", "mktorrent")]) {
        return;
    }
    let origin_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let payload = origin_dir.path().join("image.raw");
    kpbt_testkit::write_random_file(&payload, 2 * 1024 * 1024 + 99, 8).unwrap();
    let origin = Nginx::serve(origin_dir.path()).expect("nginx");
    let torrent = kpbt_testkit::mktorrent(&payload, "http://127.0.0.1:9/announce", 16, false);
    let out = work.path().join("dl");
    // The file URL itself (no trailing /), through the CLI.
    let url = format!("{}image.raw", origin.url());
    let o = run(Command::new(BIN)
        .args([
            "download",
            "--port",
            "0",
            "--no-trackers",
            "--origin",
            &url,
            "-o",
        ])
        .arg(&out)
        .arg(&torrent));
    assert_same_file(&payload, &out.join("image.raw"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("0 B from peers, 2.0 MiB from origin"),
        "{stderr}"
    );
    // A bad --origin is refused before anything starts, saying what is wanted.
    let bad = Command::new(BIN)
        .args([
            "download",
            "--no-trackers",
            "--origin",
            "origin.example/x",
            "-o",
        ])
        .arg(&out)
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("--origin") && msg.contains("http(s) URL"),
        "{msg}"
    );
}
