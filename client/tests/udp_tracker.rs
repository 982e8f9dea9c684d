//! kpbt-client through `udp://` trackers only (BEP 15): our seeder and our leecher find
//! each other through kpbt-tracker's UDP port and through opentracker's (a tracker we did
//! not write), and the download arrives byte-identical. Needs opentracker and mktorrent
//! (scripts/install-deps.sh); KPBT_SKIP_INTEROP=1 skips when they are missing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use kpbt_proto::metainfo::Metainfo;
use kpbt_testkit::*;

const PAYLOAD_LEN: u64 = 3 * 1024 * 1024 + 4321;
const WAIT: Duration = Duration::from_secs(60);

/// Seeds `data` with our library and downloads it with our library into a fresh
/// directory, both announcing only to `torrent`'s tracker; `wait_seeder` returns once the
/// tracker knows the seeder.
fn seed_and_download(tmp: &Path, data: &Path, torrent: &Path, wait_seeder: impl Fn()) {
    let meta = Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(data.parent().unwrap(), vec![]);
    cfg.use_trackers = true;
    let seeder = rt.block_on(kpbt_client::start(meta.clone(), cfg)).unwrap();
    assert!(seeder.is_complete(), "our seeder verified the data");
    wait_seeder();
    let out = tmp.join("dl");
    let summary = rt.block_on(async {
        let mut cfg = common::config(&out, vec![]);
        cfg.use_trackers = true;
        let mut h = kpbt_client::start(meta, cfg).await.unwrap();
        common::wait_complete(&mut h, WAIT.as_secs()).await;
        h.shutdown().await.unwrap()
    });
    assert!(summary.complete);
    assert_same_file(data, &out.join("payload.bin"));
    rt.block_on(seeder.shutdown()).unwrap();
}

#[test]
fn downloads_through_kpbt_udp_tracker() {
    if !require_binaries(&[("mktorrent", "mktorrent")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start_with_udp();
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, PAYLOAD_LEN, 31).unwrap();
    let torrent = mktorrent(&data, &tracker.udp_announce_url(), 16, true);
    let ih = kpbt_proto::InfoHash(info_hash(&torrent));
    seed_and_download(tmp.path(), &data, &torrent, || {
        let deadline = Instant::now() + WAIT;
        while tracker.scrape(ih).complete < 1 {
            assert!(Instant::now() < deadline, "seeder never announced over UDP");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // started x2, completed, and the stopped ones: every announce went over UDP.
    assert!(tracker.udp_announces() >= 3, "{}", tracker.udp_announces());
    // The swarm is gone once both stopped, so the completion is read from the counter.
    assert_eq!(tracker.completed_total(), 1, "completed counted");
}

#[test]
fn downloads_through_opentracker_udp_port() {
    if !require_binaries(&[("opentracker", "opentracker"), ("mktorrent", "mktorrent")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let mut tracker = OpenTracker::start(&[]).expect("start opentracker");
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, PAYLOAD_LEN, 32).unwrap();
    // opentracker serves UDP on the same port number as HTTP.
    let url = format!("udp://127.0.0.1:{}/announce", tracker.port());
    let torrent = mktorrent(&data, &url, 16, true);
    let ih = info_hash(&torrent);
    tracker.allow(&ih).unwrap();
    seed_and_download(tmp.path(), &data, &torrent, || {
        tracker
            .wait_for_seeders(&ih, 1, WAIT)
            .expect("our seeder announced to opentracker over UDP");
    });
}
