//! Interop with third-party BitTorrent software on loopback through a real tracker
//! (opentracker, and kpbt-tracker): we download from aria2 and transmission seeders, and
//! aria2 and transmission download from our seeder (which dials transmission). Bytes are
//! compared. Needs aria2c, transmission-cli, opentracker and mktorrent
//! (scripts/install-deps.sh); KPBT_SKIP_INTEROP=1 skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kpbt_proto::metainfo::Metainfo;
use kpbt_testkit::*;

const PAYLOAD_LEN: u64 = 5 * 1024 * 1024 + 12_345;
const WAIT: Duration = Duration::from_secs(60);

fn tools(extra: &[(&str, &str)]) -> bool {
    let mut all = vec![("opentracker", "opentracker"), ("mktorrent", "mktorrent")];
    all.extend_from_slice(extra);
    require_binaries(&all)
}

fn load(torrent: &Path) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap()
}

/// Our library as a leecher that finds its peers only through the torrent's tracker.
fn download_with_library(torrent: &Path, out: &Path) -> kpbt_client::Summary {
    let meta = load(torrent);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = common::config(out, vec![]);
        cfg.use_trackers = true;
        let mut h = kpbt_client::start(meta, cfg).await.unwrap();
        common::wait_complete(&mut h, WAIT.as_secs()).await;
        h.shutdown().await.unwrap()
    })
}

#[test]
fn downloads_from_aria2_seeder_via_kpbt_tracker() {
    if !require_binaries(&[("aria2c", "aria2"), ("mktorrent", "mktorrent")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start();
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, PAYLOAD_LEN, 25).expect("write payload");
    let torrent = mktorrent(&data, &tracker.announce_url(), 16, true);
    let ih = kpbt_proto::InfoHash(info_hash(&torrent));
    let _seeder = Aria2::seed(&torrent, &tmp.path().join("seed"), free_port()).expect("seed");
    let deadline = Instant::now() + WAIT;
    while tracker.scrape(ih).complete < 1 {
        assert!(
            Instant::now() < deadline,
            "aria2 never announced to kpbt-tracker"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tmp.path().join("dl");
    let s = download_with_library(&torrent, &out);
    assert!(s.complete);
    assert_same_file(&data, &out.join("payload.bin"));
    assert_eq!(
        tracker.scrape(ih).downloaded,
        1,
        "our completed announce was counted"
    );
}

#[test]
fn cli_downloads_from_aria2_seeder_via_tracker() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 21);
    let _seeder = Aria2::seed(&swarm.torrent, swarm.seed_dir(), free_port()).expect("seed");
    swarm.wait_for_seeder(WAIT);
    let out = tmp.path().join("dl");
    let t0 = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args(["download", "--quiet", "--port", "0", "-o"])
        .arg(&out)
        .arg(&swarm.torrent)
        .status()
        .expect("run kpbt-client");
    assert!(
        status.success(),
        "kpbt-client download exited with {status}"
    );
    swarm.assert_downloaded(&out);
    eprintln!("aria2 -> kpbt-client (CLI): {:?}", t0.elapsed());
}

#[test]
fn library_downloads_multi_file_torrent_from_aria2() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let root = tmp.path().join("seed").join("tree");
    let files = make_multi_file_tree(&root, 22).unwrap();
    let mut tracker = OpenTracker::start(&[]).expect("start opentracker");
    let torrent = mktorrent(&root, &tracker.announce_url(), 15, true);
    let ih = info_hash(&torrent);
    tracker.allow(&ih).unwrap();
    let _seeder = Aria2::seed(&torrent, &tmp.path().join("seed"), free_port()).expect("seed");
    tracker
        .wait_for_seeders(&ih, 1, WAIT)
        .expect("seeder announced");
    let out = tmp.path().join("dl");
    let s = download_with_library(&torrent, &out);
    assert!(s.complete);
    for (rel, _) in files {
        assert_same_file(&root.join(&rel), &out.join("tree").join(&rel));
    }
}

#[test]
fn library_downloads_from_transmission_seeder() {
    if !tools(&[("transmission-cli", "transmission-cli")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 23);
    let _seeder = Transmission::seed(&swarm.torrent, swarm.seed_dir(), free_port()).expect("seed");
    swarm.wait_for_seeder(WAIT);
    let out = tmp.path().join("dl");
    let t0 = Instant::now();
    let s = download_with_library(&swarm.torrent, &out);
    assert!(s.complete);
    swarm.assert_downloaded(&out);
    eprintln!("transmission -> kpbt: {:?}", t0.elapsed());
}

#[test]
fn aria2_downloads_from_our_seeder() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 24);
    let meta = load(&swarm.torrent);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(swarm.seed_dir(), vec![]);
    cfg.use_trackers = true;
    let seeder = rt.block_on(kpbt_client::start(meta, cfg)).unwrap();
    assert!(seeder.is_complete(), "our seeder verified the data");
    swarm.wait_for_seeder(WAIT);
    let out = tmp.path().join("dl");
    let mut dl = Aria2::download(&swarm.torrent, &out, free_port()).expect("download");
    dl.wait_complete(WAIT)
        .expect("aria2 download from kpbt completes");
    swarm.assert_downloaded(&out);
    let s = rt.block_on(seeder.shutdown()).unwrap();
    assert!(s.uploaded >= PAYLOAD_LEN, "uploaded {} bytes", s.uploaded);
}

#[test]
fn transmission_downloads_from_our_seeder() {
    if !tools(&[("transmission-cli", "transmission-cli")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 25);
    // transmission never dials loopback peers, so our seeder must dial it: start the
    // downloader first, so our seeder's first announce already returns its address.
    let out = tmp.path().join("dl");
    let mut dl = Transmission::download(&swarm.torrent, &out, free_port()).expect("download");
    let deadline = Instant::now() + WAIT;
    while swarm
        .tracker
        .scrape(&swarm.info_hash)
        .map_or(true, |s| s.incomplete < 1)
    {
        assert!(Instant::now() < deadline, "transmission never announced");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(swarm.seed_dir(), vec![]);
    cfg.use_trackers = true;
    let seeder = rt
        .block_on(kpbt_client::start(load(&swarm.torrent), cfg))
        .unwrap();
    assert!(seeder.is_complete(), "our seeder verified the data");
    dl.wait_complete(WAIT)
        .expect("transmission download from kpbt completes");
    swarm.assert_downloaded(&out);
    let s = rt.block_on(seeder.shutdown()).unwrap();
    assert!(s.uploaded >= PAYLOAD_LEN, "uploaded {} bytes", s.uploaded);
    eprintln!("kpbt -> transmission: {:?}", t0.elapsed());
}

#[test]
fn aria2_fetches_metadata_from_our_seeder_via_a_magnet_link() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 26);
    let meta = load(&swarm.torrent);
    let magnet = kpbt_proto::magnet::Magnet {
        info_hash: meta.info_hash,
        name: Some(meta.info.name.clone()),
        trackers: meta.trackers.iter().flatten().cloned().collect(),
        peers: Vec::new(),
        web_seeds: Vec::new(),
    }
    .to_uri();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(swarm.seed_dir(), vec![]);
    cfg.use_trackers = true;
    let seeder = rt.block_on(kpbt_client::start(meta, cfg)).unwrap();
    swarm.wait_for_seeder(WAIT);
    let out = tmp.path().join("dl");
    // aria2 knows only the magnet link: the info dictionary must come from our seeder.
    let mut dl = Aria2::download(Path::new(&magnet), &out, free_port()).expect("download");
    dl.wait_complete(WAIT)
        .expect("aria2 magnet download from kpbt completes");
    swarm.assert_downloaded(&out);
    rt.block_on(seeder.shutdown()).unwrap();
}

/// The host agent: one `serve` session seeds two torrents through one peer port, and
/// two transmission downloaders get their bytes from it.
#[test]
fn transmission_downloads_two_torrents_from_one_session() {
    if !tools(&[("transmission-cli", "transmission-cli")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarms = [
        SingleFileSwarm::new(&tmp.path().join("a"), PAYLOAD_LEN, 31),
        SingleFileSwarm::new(&tmp.path().join("b"), PAYLOAD_LEN / 2, 32),
    ];
    // transmission never dials loopback peers: downloaders first, so the session's
    // first announces already return their addresses and it dials them.
    let mut downloads = Vec::new();
    for (i, swarm) in swarms.iter().enumerate() {
        let out = tmp.path().join(format!("dl{i}"));
        let dl = Transmission::download(&swarm.torrent, &out, free_port()).expect("download");
        let deadline = Instant::now() + WAIT;
        while swarm
            .tracker
            .scrape(&swarm.info_hash)
            .map_or(true, |s| s.incomplete < 1)
        {
            assert!(Instant::now() < deadline, "transmission never announced");
            std::thread::sleep(Duration::from_millis(50));
        }
        downloads.push((dl, out));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = tmp.path().join("state");
    let session = rt.block_on(async {
        let mut cfg = kpbt_client::session::SessionConfig::new(&state);
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        kpbt_client::session::Session::start(cfg).await.unwrap()
    });
    for swarm in &swarms {
        let opts = kpbt_client::session::AddOptions {
            dir: swarm.seed_dir().to_path_buf(),
            seed_only: true,
            ..Default::default()
        };
        let bytes = std::fs::read(&swarm.torrent).unwrap();
        rt.block_on(async { session.add(&bytes, opts) })
            .expect("add");
    }
    for ((dl, out), swarm) in downloads.iter_mut().zip(&swarms) {
        dl.wait_complete(WAIT)
            .expect("transmission download from the session completes");
        swarm.assert_downloaded(out);
    }
    let totals = session.totals();
    assert!(
        totals.uploaded >= PAYLOAD_LEN + PAYLOAD_LEN / 2,
        "the one session uploaded both: {} bytes",
        totals.uploaded
    );
    rt.block_on(session.shutdown());
}

/// A magnet link through kpbt-tracker: the metadata and then the data come from an
/// aria2 seeder.
#[test]
fn cli_downloads_a_magnet_link_from_aria2_seeder_via_kpbt_tracker() {
    if !require_binaries(&[("aria2c", "aria2"), ("mktorrent", "mktorrent")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start();
    let data = tmp.path().join("seed").join("payload.bin");
    write_random_file(&data, PAYLOAD_LEN, 27).expect("write payload");
    let torrent = mktorrent(&data, &tracker.announce_url(), 16, false);
    let meta = load(&torrent);
    let _seeder = Aria2::seed(&torrent, &tmp.path().join("seed"), free_port()).expect("seed");
    let deadline = Instant::now() + WAIT;
    while tracker.scrape(meta.info_hash).complete < 1 {
        assert!(
            Instant::now() < deadline,
            "aria2 never announced to kpbt-tracker"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let link = kpbt_proto::magnet::Magnet {
        info_hash: meta.info_hash,
        name: None,
        trackers: vec![tracker.announce_url()],
        peers: Vec::new(),
        web_seeds: Vec::new(),
    }
    .to_uri();
    let out = tmp.path().join("dl");
    let o = Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args(["download", &link, "-o"])
        .arg(&out)
        .args(["--port", "0", "--quiet"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_file(&data, &out.join("payload.bin"));
    let saved = load(&out.join("payload.bin.torrent"));
    assert_eq!(saved.info_hash, meta.info_hash);
}

/// IPv6: our library downloads from an aria2 seeder over [::1] (no tracker: the
/// seeder's address is given).
#[test]
fn library_downloads_from_aria2_over_ipv6() {
    if !tools(&[("aria2c", "aria2")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let swarm = SingleFileSwarm::new(tmp.path(), PAYLOAD_LEN, 28);
    let port = free_port();
    let _seeder = Aria2::seed_with(
        &swarm.torrent,
        swarm.seed_dir(),
        port,
        &["--disable-ipv6=false"],
    )
    .expect("seed");
    let out = tmp.path().join("dl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(async {
        let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let mut cfg = common::config(&out, vec![v6]);
        cfg.listen = "[::1]:0".parse().unwrap();
        let mut h = kpbt_client::start(load(&swarm.torrent), cfg).await.unwrap();
        common::wait_complete(&mut h, WAIT.as_secs()).await;
        assert!(h.peers().iter().all(|p| p.is_ipv6()), "{:?}", h.peers());
        h.shutdown().await.unwrap()
    });
    assert!(s.complete);
    swarm.assert_downloaded(&out);
}
