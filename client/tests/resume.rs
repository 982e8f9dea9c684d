//! Durable resume through the real binary: `kpbt-client download` is SIGKILLed half
//! way (a download limit makes "half way" reliable), its resume file must claim only
//! pieces that are really on disk, and a restart completes without fetching it all.
//! A SIGTERMed download saves its progress, and the restart trusts it (no re-hash).

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kpbt_client::resume;
use sha1::{Digest, Sha1};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_download_resumes_and_fetches_only_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    let out = tmp.path().join("out");
    let piece = 64 * 1024;
    let content = data(8 * 1024 * 1024 + 321, 40);
    let (meta, torrent) = single_file_torrent("k.bin", piece as u32, &content, &seed_dir, &[]);
    let torrent_path = tmp.path().join("k.torrent");
    std::fs::write(&torrent_path, torrent).unwrap();
    let seeder = kpbt_client::start(meta.clone(), config(&seed_dir, vec![]))
        .await
        .unwrap();
    let peer = addr_of(&seeder).to_string();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
            .args([
                "download",
                "--port",
                "0",
                "--no-trackers",
                "--peer",
                &peer,
                "-o",
            ])
            .arg(&out)
            .arg(&torrent_path)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run kpbt-client")
    };
    // 1 MiB/s over 8 MiB: the periodic save (every 5 s) lands mid-download.
    let mut first = run(&["--download-limit", "1M"]);
    let rpath = resume::resume_path(&out, "k.bin");
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = loop {
        let parsed = std::fs::read(&rpath)
            .ok()
            .and_then(|b| resume::decode(&b).ok());
        if let Some(d) = parsed {
            let n: u32 = d.have.iter().map(|b| b.count_ones()).sum();
            if n > 0 {
                break d;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no resume save with pieces in time"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "first run exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.wait().unwrap();
    let claimed: Vec<u32> = (0..saved.piece_count)
        .filter(|p| saved.have[(*p / 8) as usize] & (0x80 >> (p % 8)) != 0)
        .collect();
    assert!(
        (claimed.len() as u32) < saved.piece_count,
        "killed before the end"
    );
    // Whatever the resume file (now, after the kill) claims is on disk and correct.
    let now = resume::decode(&std::fs::read(&rpath).unwrap()).expect("resume file intact");
    let on_disk = std::fs::read(out.join("k.bin")).unwrap();
    for p in 0..now.piece_count {
        if now.have[(p / 8) as usize] & (0x80 >> (p % 8)) != 0 {
            let r = p as usize * piece..((p as usize + 1) * piece).min(content.len());
            assert_eq!(
                Sha1::digest(&on_disk[r.clone()]).as_slice(),
                Sha1::digest(&content[r]).as_slice(),
                "piece {p} claimed but not on disk"
            );
        }
    }
    let mut second = run(&[]);
    let mut err = String::new();
    let mut stderr = second.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        stderr.read_to_string(&mut err).unwrap();
        err
    });
    let status = tokio::task::spawn_blocking(move || second.wait())
        .await
        .unwrap()
        .unwrap();
    let err = reader.join().unwrap();
    assert!(status.success(), "second run failed: {err}");
    assert_eq!(std::fs::read(out.join("k.bin")).unwrap(), content);
    let downloaded: u64 = err
        .lines()
        .find_map(|l| {
            // "done: ...; downloaded 3.2 MiB (3355443 bytes), uploaded 0 B"
            let rest = l.split("downloaded ").nth(1)?;
            let exact = rest.split_once('(').map_or(rest, |(_, e)| e);
            exact.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary line in: {err}"));
    let resumed: u64 = claimed
        .iter()
        .map(|p| (content.len() - *p as usize * piece).min(piece) as u64)
        .sum();
    assert!(
        downloaded + resumed <= content.len() as u64 && downloaded < content.len() as u64,
        "second run downloaded {downloaded} of {} bytes",
        content.len()
    );
    // A clean finish leaves a resume file claiming everything.
    let done = resume::decode(&std::fs::read(&rpath).unwrap()).unwrap();
    let n: u32 = done.have.iter().map(|b| b.count_ones()).sum();
    assert_eq!(n, done.piece_count);
    seeder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_saves_resume_data_that_the_restart_trusts() {
    let tmp = tempfile::tempdir().unwrap();
    let seed_dir = tmp.path().join("seed");
    let out = tmp.path().join("out");
    let content = data(4 * 1024 * 1024 + 5, 41);
    let (meta, torrent) = single_file_torrent("t.bin", 32 * 1024, &content, &seed_dir, &[]);
    let torrent_path = tmp.path().join("t.torrent");
    std::fs::write(&torrent_path, torrent).unwrap();
    let seeder = kpbt_client::start(meta.clone(), config(&seed_dir, vec![]))
        .await
        .unwrap();
    let peer = addr_of(&seeder).to_string();
    let mut first = Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args([
            "download",
            "--quiet",
            "--port",
            "0",
            "--no-trackers",
            "--peer",
            &peer,
        ])
        .args(["--download-limit", "512K", "-o"])
        .arg(&out)
        .arg(&torrent_path)
        .spawn()
        .unwrap();
    // Wait until a few pieces are on disk (blocks are 512 bytes); the periodic save at
    // start was empty and the next is 5 s away, so what is saved comes from SIGTERM.
    let rpath = resume::resume_path(&out, "t.bin");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(out.join("t.bin")).map_or(true, |m| m.blocks() * 512 < 3 * 32768) {
        assert!(Instant::now() < deadline, "nothing written in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = first.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success(), "stopped before completing: exit code 1");
    let saved = resume::decode(&std::fs::read(&rpath).unwrap()).expect("saved at shutdown");
    let claimed: u32 = saved.have.iter().map(|b| b.count_ones()).sum();
    assert!(
        claimed > 0 && claimed < saved.piece_count,
        "{claimed} pieces saved"
    );
    // The restart logs that it trusted the resume file instead of hashing.
    let second = Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args([
            "-v",
            "download",
            "--quiet",
            "--port",
            "0",
            "--no-trackers",
            "--peer",
            &peer,
        ])
        .arg("-o")
        .arg(&out)
        .arg(&torrent_path)
        .env("RUST_LOG", "kpbt_client=info")
        .output();
    let second = tokio::task::spawn_blocking(move || second)
        .await
        .unwrap()
        .unwrap();
    // tracing colours its output even into a pipe: drop the escape sequences.
    let raw = String::from_utf8_lossy(&second.stderr);
    let mut err = String::new();
    let mut in_escape = false;
    for c in raw.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, c) => err.push(c),
            _ => {}
        }
    }
    assert!(second.status.success(), "{err}");
    assert!(
        err.contains(&format!("trusted={claimed}")) && err.contains("resume file accepted"),
        "restart did not trust the resume file: {err}"
    );
    assert_eq!(std::fs::read(out.join("t.bin")).unwrap(), content);
    seeder.shutdown().await.unwrap();
}
