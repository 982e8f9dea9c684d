//! A real third-party client against our tracker: two aria2c processes (a seeder and a
//! downloader) find each other only through kpbt-tracker, over HTTP and over UDP (BEP 15),
//! and the download must arrive byte-identical. Needs `aria2c` and `mktorrent` (scripts/install-deps.sh); with
//! `KPBT_SKIP_INTEROP=1` and the tools missing it prints SKIPPED and passes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kpbt_proto::InfoHash;
use kpbt_testkit::{
    assert_same_file, free_port, info_hash, mktorrent, require_binaries, write_random_file, Aria2,
    TempDir,
};

const WAIT: Duration = Duration::from_secs(60);

fn scrape(t: &TestTracker, ih: &[u8; 20]) -> kpbt_proto::announce::ScrapeStats {
    block_on(t.state.store.scrape(&[InfoHash(*ih)])).expect("memory store")[0].1
}

#[test]
fn aria2_seeder_and_downloader_meet_through_kpbt_tracker() {
    if !require_binaries(&[("aria2c", "aria2"), ("mktorrent", "mktorrent")]) {
        return;
    }
    let t = TestTracker::start(test_config());
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, 3 * 1024 * 1024 + 777, 42).expect("payload");
    let url = format!("http://{}/announce", t.addr());
    let torrent = mktorrent(&data, &url, 16, true);
    let ih = info_hash(&torrent);

    let _seeder = Aria2::seed(&torrent, &tmp.path().join("seed"), free_port()).expect("seeder");
    let deadline = Instant::now() + WAIT;
    while scrape(&t, &ih).complete < 1 {
        assert!(Instant::now() < deadline, "aria2 seeder never announced");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = tmp.path().join("dl");
    let mut dl = Aria2::download(&torrent, &out, free_port()).expect("downloader");
    dl.wait_complete(WAIT).expect("aria2 download completes");
    assert_same_file(&data, &out.join("payload.bin"));

    // Both announced `started`; the downloader left with `stopped` (aria2 with
    // --seed-time=0 goes straight to `stopped` with left=0, sending no `completed`), so
    // only the seeder remains.
    let m = t.get("/metrics").text();
    assert!(
        m.contains(
            "kpbt_tracker_announces_total{event=\"started\",outcome=\"ok\",protocol=\"http\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "kpbt_tracker_announces_total{event=\"stopped\",outcome=\"ok\",protocol=\"http\"} 1"
        ),
        "{m}"
    );
    let s = scrape(&t, &ih);
    assert_eq!((s.complete, s.incomplete), (1, 0), "{s:?}");
}

/// aria2 speaks BEP 15 only with its DHT enabled (its UDP tracker client shares the DHT's
/// socket); with an empty DHT file and no entry point that DHT talks to nobody. The
/// torrent is public because aria2 turns DHT, and with it UDP trackers, off for private
/// ones.
#[test]
fn aria2_seeder_and_downloader_meet_through_kpbt_udp_tracker() {
    if !require_binaries(&[("aria2c", "aria2"), ("mktorrent", "mktorrent")]) {
        return;
    }
    let t = kpbt_tracker::background::BackgroundTracker::start_on_loopback_with_udp(test_config())
        .expect("tracker starts");
    let tmp = TempDir::new().expect("tempdir");
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, 2 * 1024 * 1024 + 321, 43).expect("payload");
    let torrent = mktorrent(&data, &t.udp_announce_url(), 16, false);
    let ih = InfoHash(info_hash(&torrent));
    let scrape = || block_on(t.state().store.scrape(&[ih])).expect("memory store")[0].1;
    let dht = |name: &str| {
        [
            "--enable-dht=true".to_string(),
            format!("--dht-listen-port={}", free_port()),
            format!("--dht-file-path={}", tmp.path().join(name).display()),
        ]
    };
    let seed_dht = dht("seed-dht.dat");
    let seed_args: Vec<&str> = seed_dht.iter().map(String::as_str).collect();
    let _seeder = Aria2::seed_with(&torrent, &tmp.path().join("seed"), free_port(), &seed_args)
        .expect("seeder");
    let deadline = Instant::now() + WAIT;
    while scrape().complete < 1 {
        assert!(
            Instant::now() < deadline,
            "aria2 seeder never announced over UDP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = tmp.path().join("dl");
    let dl_dht = dht("dl-dht.dat");
    let dl_args: Vec<&str> = dl_dht.iter().map(String::as_str).collect();
    let mut dl = Aria2::download_with(&torrent, &out, free_port(), &dl_args).expect("downloader");
    dl.wait_complete(WAIT).expect("aria2 download completes");
    assert_same_file(&data, &out.join("payload.bin"));
    let m = String::from_utf8(t.state().metrics.render()).unwrap();
    assert!(
        m.contains(
            "kpbt_tracker_announces_total{event=\"started\",outcome=\"ok\",protocol=\"udp\"} 2"
        ),
        "{m}"
    );
    assert!(m.contains(
        "kpbt_tracker_announces_total{event=\"started\",outcome=\"ok\",protocol=\"http\"} 0"
    ));
}
