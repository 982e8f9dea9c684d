//! A private swarm on loopback through our in-process tracker: one upload-limited kpbt
//! seeder and five kpbt leechers. The leechers must get most of their data from each
//! other, every copy must be exact, and the tracker must see one `completed` per
//! leecher and a `stopped` from each at shutdown.

mod common;

use std::time::{Duration, Instant};

use common::tracker::Tracker;
use common::*;

const LEECHERS: usize = 5;

/// Polls `cond` until it holds; panics after `secs`.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leechers_get_most_data_from_each_other() {
    let tracker = Tracker::start();
    let url = tracker.announce_url();
    let tmp = tempfile::tempdir().unwrap();
    let content = data(4 * 1024 * 1024 + 99, 50);
    let seed_dir = tmp.path().join("seed");
    let (meta, _) = single_file_torrent("w.bin", 32 * 1024, &content, &seed_dir, &[url]);
    let ih = meta.info_hash;
    let mut cfg = config(&seed_dir, vec![]);
    cfg.use_trackers = true;
    // 1 MiB/s: one copy takes the seeder ~4 s, all five ~20 s.
    cfg.upload_limit = Some(1024 * 1024);
    let seeder = kpbt_client::start(meta.clone(), cfg).await.unwrap();
    assert!(seeder.is_complete());
    until(20, "seeder announced", || tracker.scrape(ih).complete == 1).await;
    let t0 = Instant::now();
    let mut leechers = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..LEECHERS {
        let dir = tmp.path().join(format!("l{i}"));
        let mut cfg = config(&dir, vec![]);
        cfg.use_trackers = true;
        leechers.push(kpbt_client::start(meta.clone(), cfg).await.unwrap());
        dirs.push(dir);
    }
    for l in &mut leechers {
        wait_complete(l, 90).await;
    }
    let elapsed = t0.elapsed();
    // `completed` is announced once per leecher (the seeder started complete: none).
    until(20, "completed announces", || {
        tracker.scrape(ih).downloaded == LEECHERS as u32
    })
    .await;
    let mut leeched = 0;
    for l in leechers {
        let s = l.shutdown().await.unwrap();
        assert!(s.complete);
        leeched += s.downloaded;
    }
    for d in &dirs {
        assert_eq!(std::fs::read(d.join("w.bin")).unwrap(), content);
    }
    let stats = tracker.scrape(ih);
    assert_eq!(
        (stats.complete, stats.incomplete, stats.downloaded),
        (1, 0, LEECHERS as u32),
        "after stopped announces only the seeder remains; completed counted once each"
    );
    let s = seeder.shutdown().await.unwrap();
    eprintln!(
        "swarm: {} leechers x {} bytes in {elapsed:?}; seeder uploaded {} of {leeched} leeched",
        LEECHERS,
        content.len(),
        s.uploaded
    );
    assert_eq!(leeched, LEECHERS as u64 * content.len() as u64);
    assert!(
        s.uploaded * 2 < leeched,
        "seeder uploaded {} of {leeched}: leechers did not share",
        s.uploaded
    );
}
