//! The `kpbt-client` binary as a user meets it: exit codes, messages, and above all that
//! `seed` never touches the data it is given.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use kpbt_testkit::ChildGuard;
use sha1::{Digest, Sha1};

const BIN: &str = env!("CARGO_BIN_EXE_kpbt-client");

fn client(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run kpbt-client")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry under `root`: relative path → (size, mtime, SHA-1 of the content).
type Snapshot = BTreeMap<PathBuf, (u64, SystemTime, [u8; 20])>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if m.is_dir() {
                out.insert(rel, (0, m.modified().unwrap(), [0; 20]));
                walk(root, &e.path(), out);
            } else {
                let digest = Sha1::digest(std::fs::read(e.path()).unwrap()).into();
                out.insert(rel, (m.len(), m.modified().unwrap(), digest));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// `work/src/rel/{a.bin, sub/b.bin}` and `work/rel.torrent` (64 KiB pieces, no tracker).
fn multi_file_torrent() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let rel = work.path().join("src/rel");
    std::fs::create_dir_all(rel.join("sub")).unwrap();
    std::fs::write(rel.join("a.bin"), kpbt_testkit::random_bytes(300_000, 1)).unwrap();
    std::fs::write(
        rel.join("sub/b.bin"),
        kpbt_testkit::random_bytes(200_000, 2),
    )
    .unwrap();
    let o = client(
        &[
            "create",
            "src/rel",
            "--piece-length",
            "64K",
            "-o",
            "rel.torrent",
            "-q",
        ],
        work.path(),
    );
    assert!(o.status.success(), "create failed: {}", stderr(&o));
    let torrent = work.path().join("rel.torrent");
    (work, torrent)
}

fn seed(torrent: &Path, dir: &Path) -> Output {
    let (t, d) = (torrent.to_str().unwrap(), dir.to_str().unwrap());
    client(
        &["seed", t, d, "--port", "0", "-q"],
        dir.parent().unwrap_or(dir),
    )
}

#[test]
fn seed_refuses_the_content_folder_and_writes_nothing() {
    let (work, torrent) = multi_file_torrent();
    let before = snapshot(work.path());
    let o = seed(&torrent, &work.path().join("src/rel"));
    let err = stderr(&o);
    assert!(!o.status.success(), "seed of the content folder must fail");
    assert!(
        err.contains("DIR must be the folder that holds \"rel\""),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
    assert_eq!(
        snapshot(work.path()),
        before,
        "nothing created or changed: {err}"
    );
}

#[test]
fn seed_names_a_short_file_and_leaves_it_short() {
    let (work, torrent) = multi_file_torrent();
    let a = work.path().join("src/rel/a.bin");
    let f = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
    f.set_len(100_000).unwrap();
    drop(f);
    let before = snapshot(work.path());
    let o = seed(&torrent, &work.path().join("src"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("a.bin: short: 100000 bytes, expected 300000"),
        "{err}"
    );
    assert!(err.contains("kpbt-client download TORRENT -o"), "{err}");
    assert!(!err.contains("DIR must be"), "right DIR, no hint: {err}");
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 100_000);
    assert_eq!(snapshot(work.path()), before);
}

#[test]
fn seed_names_a_corrupt_file_and_does_not_repair_it() {
    let (work, torrent) = multi_file_torrent();
    let b = work.path().join("src/rel/sub/b.bin");
    let mut bytes = std::fs::read(&b).unwrap();
    bytes[150_000] ^= 0xff;
    std::fs::write(&b, &bytes).unwrap();
    let before = snapshot(work.path());
    let o = seed(&torrent, &work.path().join("src"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("b.bin: 1 piece fail"), "{err}");
    assert!(!err.contains("a.bin"), "a.bin is intact: {err}");
    assert_eq!(snapshot(work.path()), before);
}

#[test]
fn seed_does_not_create_a_missing_dir() {
    let (work, torrent) = multi_file_torrent();
    let missing = work.path().join("nope");
    let o = seed(&torrent, &missing);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!missing.exists());
}

#[test]
fn seed_serves_complete_data_without_writing_anything() {
    let (work, torrent) = multi_file_torrent();
    let before = snapshot(work.path());
    let mut cmd = Command::new(BIN);
    cmd.arg("seed")
        .arg(&torrent)
        .args(["src", "--port", "0", "--listen", "127.0.0.1"])
        .current_dir(work.path());
    let logs = tempfile::tempdir().unwrap();
    let mut child = ChildGuard::spawn("seeder", cmd, logs.path()).unwrap();
    child
        .wait_for_output("Ctrl-C to stop", Duration::from_secs(30))
        .unwrap();
    let pid = child.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{}", child.log_tails());
    assert_eq!(
        snapshot(work.path()),
        before,
        "no resume file, no touched mtimes"
    );
}

#[test]
fn create_validates_defaults_and_refuses_to_overwrite() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("data.bin"), vec![7u8; 40_000]).unwrap();
    let o = client(&["create", "data.bin", "-q"], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(work.path().join("data.bin.torrent").is_file(), "default -o");

    let o = client(&["create", "data.bin", "-q"], work.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pass --force"), "{}", stderr(&o));
    let o = client(&["create", "data.bin", "-q", "--force"], work.path());
    assert!(o.status.success(), "{}", stderr(&o));

    for bad in ["127.0.0.1:6969", "ftp://t/announce", "udp://t/announce"] {
        let o = client(
            &["create", "data.bin", "-o", "x.torrent", "--tracker", bad],
            work.path(),
        );
        assert!(!o.status.success(), "{bad} accepted");
        assert!(stderr(&o).contains(bad), "{}", stderr(&o));
        assert!(!work.path().join("x.torrent").exists());
    }

    let o = client(
        &["create", "data.bin", "-o", "p.torrent", "--private", "-q"],
        work.path(),
    );
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("warning: a private torrent with no --tracker"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn info_prints_human_sizes_dates_and_singulars() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("one.bin"), vec![1u8; 3 << 20]).unwrap();
    let o = client(&["create", "one.bin", "-q"], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = client(&["info", "one.bin.torrent"], work.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("size:         3.0 MiB (3145728 bytes)"),
        "{out}"
    );
    assert!(out.contains("files:        1 file\n"), "{out}");
    assert!(
        out.contains("pieces:       192 pieces of 16.0 KiB"),
        "{out}"
    );
    assert!(
        out.contains("created:      ") && out.contains(" GMT"),
        "{out}"
    );
}

#[test]
fn user_errors_are_said_once_plainly() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.bin"), vec![1u8; 50_000]).unwrap();
    let o = client(&["create", "f.bin", "-q"], work.path());
    assert!(o.status.success());

    let o = client(
        &[
            "download",
            "f.bin.torrent",
            "-o",
            "f.bin",
            "--peer",
            "127.0.0.1:9",
        ],
        work.path(),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("f.bin is not a directory"),
        "{}",
        stderr(&o)
    );

    let o = client(
        &[
            "download",
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
        ],
        work.path(),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("the magnet link names no tracker (tr=) and no peer (x.pe=)"),
        "{}",
        stderr(&o)
    );
    let o = client(
        &[
            "seed",
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
            ".",
        ],
        work.path(),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("this command needs the .torrent file, not a magnet link")
            && stderr(&o).contains("0123456789abcdef0123456789abcdef01234567"),
        "{}",
        stderr(&o)
    );
    let o = client(&["download", "magnet:?xt=urn:btih:12"], work.path());
    assert!(
        stderr(&o).contains("cannot use this magnet link: magnet info hash \"12\""),
        "{}",
        stderr(&o)
    );

    // A taken --port: the OS's cause once, no backtrace (RUST_BACKTRACE=1 is set), no colour.
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = client(
        &[
            "download",
            "f.bin.torrent",
            "-o",
            "out",
            "--peer",
            "127.0.0.1:9",
            "--port",
            &port,
        ],
        work.path(),
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(err.contains("pick another --port"), "{err}");
    assert!(
        !err.contains("stack backtrace") && !err.contains("Backtrace"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in a pipe: {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn passkeys_stay_out_of_the_log_and_a_dead_tracker_says_why() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f.bin"), vec![1u8; 50_000]).unwrap();
    // Port 1 on loopback refuses connections.
    let url = "http://127.0.0.1:1/announce/S3CRETPASSKEY0123456789";
    let o = client(&["create", "f.bin", "-q", "--tracker", url], work.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut cmd = Command::new(BIN);
    cmd.args([
        "-vv",
        "download",
        "f.bin.torrent",
        "-o",
        "out",
        "--port",
        "0",
    ])
    .current_dir(work.path())
    .env_remove("RUST_LOG");
    let logs = tempfile::tempdir().unwrap();
    let mut child = ChildGuard::spawn("leecher", cmd, logs.path()).unwrap();
    child
        .wait_for_output("trying again in", Duration::from_secs(30))
        .unwrap();
    child.kill();
    let err = std::fs::read_to_string(child.stderr_log()).unwrap();
    assert!(!err.contains("S3CRETPASSKEY"), "passkey leaked: {err}");
    let line = err
        .lines()
        .find(|l| l.contains("trying again in"))
        .expect("announce warning");
    assert!(
        line.contains("http://127.0.0.1:1/announce/<redacted>: connection refused"),
        "{line}"
    );
    assert!(!err.contains("trying the next tracker"), "{err}");
    let warnings = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("connection refused"))
        .count();
    assert_eq!(warnings, 1, "one log line per attempt: {err}");
}

#[test]
fn health_probe_exits_by_status() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for (i, s) in server.incoming().take(2).enumerate() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let status = if i == 0 {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    let url = format!("http://{addr}/health");
    let dir = std::env::temp_dir();
    assert!(client(&["health", &url], &dir).status.success());
    let o = client(&["health", &url], &dir);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    let o = client(&["health", "http://127.0.0.1:1/health"], &dir);
    assert!(!o.status.success());
}

/// Runs kpbt-client under `ulimit -n LIMIT` (soft and hard), so it cannot raise it.
fn client_limited(limit: u32, args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG");
    cmd
}

#[test]
fn many_files_under_a_low_descriptor_limit() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("seed/many");
    std::fs::create_dir_all(&tree).unwrap();
    // 300 files of ~5 KiB under a limit of 64 descriptors: one descriptor per file
    // (as before the bounded cache) fails at open.
    for i in 0..300u64 {
        let bytes = kpbt_testkit::random_bytes(5_000 + i as usize, i);
        std::fs::write(tree.join(format!("f{i:03}.bin")), bytes).unwrap();
    }
    let o = client_limited(
        64,
        &["create", "seed/many", "-q", "-o", "many.torrent"],
        work.path(),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "create: {}", stderr(&o));
    let logs = tempfile::tempdir().unwrap();
    let mut seeder = ChildGuard::spawn(
        "seeder",
        client_limited(
            64,
            &[
                "seed",
                "many.torrent",
                "seed",
                "--port",
                "0",
                "--listen",
                "127.0.0.1",
                "-v",
            ],
            work.path(),
        ),
        logs.path(),
    )
    .unwrap();
    seeder
        .wait_for_output("Ctrl-C to stop", Duration::from_secs(60))
        .unwrap();
    let log = std::fs::read_to_string(seeder.stderr_log()).unwrap();
    let port = log
        .lines()
        .find_map(|l| l.split("on port ").nth(1)?.split(';').next())
        .expect("seeding line names the port")
        .to_string();
    let peer = format!("127.0.0.1:{port}");
    let o = client_limited(
        64,
        &[
            "download",
            "many.torrent",
            "-o",
            "out",
            "--port",
            "0",
            "--peer",
            &peer,
            "--no-trackers",
            "-q",
        ],
        work.path(),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "download: {}", stderr(&o));
    for i in 0..300u64 {
        let name = format!("f{i:03}.bin");
        assert_eq!(
            std::fs::read(work.path().join("out/many").join(&name)).unwrap(),
            std::fs::read(tree.join(&name)).unwrap(),
            "{name}"
        );
    }
}
