//! Durable resume through the real binary: `kpbt-client download` is SIGKILLed half
//! way (a download limit makes "half way" reliable), its resume file must claim only
//! pieces that are really on disk, and a restart completes without fetching it all.

mod common;

use std::io::Read;
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
            l.split("downloaded ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
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
