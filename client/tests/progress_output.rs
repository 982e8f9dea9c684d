//! What `kpbt-client download` prints as progress, read from the real binary: into a
//! pipe (plain lines: resume, completion, seeding figures) and into a pseudo-terminal
//! (the bar, left where it was on Ctrl-C).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// `kpbt-client download --seed` of `torrent` into `out` from `peer`, listening on `port`.
fn download_cmd(torrent: &std::path::Path, out: &std::path::Path, peer: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kpbt-client"));
    c.args(["download", "--no-trackers", "--peer", peer, "-o"])
        .arg(out)
        .arg(torrent)
        .stdout(Stdio::null());
    c
}

fn terminate(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// Waits for a line matching `want` on `lines`, keeping every line seen in `seen`.
fn wait_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if want(&l) {
                    return l;
                }
            }
            Err(e) => panic!("no {what} line ({e}); stderr so far:\n{}", seen.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_progress_says_resuming_complete_and_then_shows_seeding_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let (seed_dir, out) = (tmp.path().join("seed"), tmp.path().join("out"));
    let piece = 32 * 1024;
    let content = data(40 * piece + 777, 50);
    let (meta, torrent) = single_file_torrent("r.bin", piece as u32, &content, &seed_dir, &[]);
    let torrent_path = tmp.path().join("r.torrent");
    std::fs::write(&torrent_path, torrent).unwrap();
    // 30 of the 41 pieces are already in place, the rest is garbage.
    let mut partial = content[..30 * piece].to_vec();
    partial.resize(content.len(), 0xAA);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("r.bin"), &partial).unwrap();
    let seeder = kpbt_client::start(meta.clone(), config(&seed_dir, vec![]))
        .await
        .unwrap();

    let port = kpbt_testkit::free_port();
    let mut child = download_cmd(&torrent_path, &out, &addr_of(&seeder).to_string())
        .args(["--seed", "--port", &port.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kpbt-client");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let lines2 = tokio::task::block_in_place(|| {
        let complete = wait_line(&lines, &mut seen, "completion", |l| {
            l.starts_with("r.bin: complete in ")
        });
        (complete, seen.clone())
    });
    let (complete, before) = lines2;
    assert!(
        before.contains(&"r.bin: resuming: 30 of 41 pieces on disk".to_owned()),
        "no resume line before completion:\n{}",
        before.join("\n")
    );
    // "r.bin: complete in X (RATE), now seeding", with units from units.rs.
    let rest = complete.strip_prefix("r.bin: complete in ").unwrap();
    let (time, rate) = rest
        .strip_suffix("), now seeding")
        .and_then(|r| r.split_once(" ("))
        .unwrap_or_else(|| panic!("completion line: {complete}"));
    assert!(
        [" ms", " s"].iter().any(|u| time.ends_with(u)),
        "{complete}"
    );
    assert!(
        ["B/s", "KiB/s", "MiB/s", "GiB/s"]
            .iter()
            .any(|u| rate.ends_with(&format!(" {u}"))),
        "{complete}"
    );

    // Someone downloads from the binary (and only from it): its seeding line shows
    // the upload in human units, and never a download rate.
    let other = tempfile::tempdir().unwrap();
    let binary = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut leecher = kpbt_client::start(meta.clone(), config(other.path(), vec![binary]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    assert_eq!(std::fs::read(other.path().join("r.bin")).unwrap(), content);
    let seeding = tokio::task::block_in_place(|| {
        wait_line(&lines, &mut seen, "seeding with uploads", |l| {
            l.starts_with("r.bin: seeding, up ") && !l.contains(" 0 B uploaded")
        })
    });
    let figures = seeding.strip_prefix("r.bin: seeding, up ").unwrap();
    let parts: Vec<&str> = figures.split(", ").collect();
    assert_eq!(parts.len(), 3, "{seeding}");
    assert!(parts[0].ends_with("/s"), "{seeding}");
    let (size, unit) = parts[1]
        .strip_suffix(" uploaded")
        .and_then(|s| s.split_once(' '))
        .unwrap_or_else(|| panic!("{seeding}"));
    assert!(size.parse::<f64>().unwrap() > 0.0, "{seeding}");
    assert!(["KiB", "MiB"].contains(&unit), "{seeding}");
    let (n, noun) = parts[2].split_once(' ').unwrap();
    let n: u32 = n.parse().unwrap();
    assert_eq!(noun, if n == 1 { "peer" } else { "peers" }, "{seeding}");
    leecher.shutdown().await.unwrap();

    terminate(&child, libc::SIGTERM);
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert!(status.success(), "{status}:\n{}", seen.join("\n"));
    for l in &seen {
        assert!(!l.contains("ETA 0 ms"), "absurd ETA: {l}");
        assert!(!l.contains(" 1 peers") && !l.contains(" 1 pieces"), "{l}");
    }
    assert_eq!(std::fs::read(out.join("r.bin")).unwrap(), content);
    seeder.shutdown().await.unwrap();
}

/// A pseudo-terminal: (master, slave), 120 columns so the bar has room.
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the out-pointers; name and termios
    // may be null; the winsize pointer is valid for the call.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_a_terminal_leaves_the_bar_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let (seed_dir, out) = (tmp.path().join("seed"), tmp.path().join("out"));
    let content = data(4 * 1024 * 1024, 51);
    let (meta, torrent) = single_file_torrent("t.bin", 32 * 1024, &content, &seed_dir, &[]);
    let torrent_path = tmp.path().join("t.torrent");
    std::fs::write(&torrent_path, torrent).unwrap();
    let seeder = kpbt_client::start(meta, config(&seed_dir, vec![]))
        .await
        .unwrap();

    let (master, slave) = pty();
    // 256 KiB/s over 4 MiB: 16 s, so the interrupt lands mid-download.
    let child = download_cmd(&torrent_path, &out, &addr_of(&seeder).to_string())
        .args(["--port", "0", "--download-limit", "256K"])
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("run kpbt-client");
    let screen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = screen.clone();
    let mut master = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave) has exited.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = |s: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&s.lock().unwrap()).into_owned();
    // Wait until the bar shows progress of this run (a rate above 0 B/s).
    let deadline = Instant::now() + DEADLINE;
    let drawn = loop {
        let t = text(&screen);
        if let Some(at) = t.rfind("t.bin [") {
            let bar = &t[at..];
            if bar.contains("/s, ETA ") && !bar.contains(" 0 B/s") && !bar.contains("ETA -") {
                break bar.to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no progress drawn:\n{t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    terminate(&child, libc::SIGINT);
    let mut child = child;
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    reader.join().unwrap();
    let all = text(&screen);
    assert_eq!(status.code(), Some(1), "stopped before completing:\n{all}");
    // Before the fix, the bar was redrawn full at the interrupt; now every draw after
    // the interrupt shows the same partial bar.
    assert!(
        !all.contains(&format!("[{}]", "=".repeat(30))),
        "full bar drawn after Ctrl-C:\n{all}"
    );
    assert!(!all.contains("100.0%"), "{all}");
    assert!(drawn.contains("% ("), "{drawn}");
    seeder.shutdown().await.unwrap();
}
