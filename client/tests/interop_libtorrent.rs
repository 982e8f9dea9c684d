//! Interop with libtorrent (rasterbar 2.0, through python3-libtorrent) on loopback, and
//! magnet links with transmission: kpbt downloads magnet links from a libtorrent seeder
//! (through kpbt-tracker, and with `x.pe` and no tracker) and from a transmission
//! seeder; libtorrent fetches the metadata from a kpbt seeder via a magnet link and
//! completes; libtorrent's Fast extension (have-all, reject when choked) seen by a
//! scripted peer and handled by our library. Bytes are compared. Needs
//! python3-libtorrent, transmission-cli and mktorrent (scripts/install-deps.sh);
//! KPBT_SKIP_INTEROP=1 skips.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::wire::Wire;
use kpbt_proto::extension::{ExtendedHandshake, HANDSHAKE_ID};
use kpbt_proto::magnet::Magnet;
use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::wire::{BlockRequest, Handshake, Message};
use kpbt_proto::PeerId;
use kpbt_testkit::*;

const PAYLOAD_LEN: u64 = 5 * 1024 * 1024 + 12_345;
const WAIT: Duration = Duration::from_secs(60);

fn load(torrent: &Path) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `dir/seed/payload.bin` (random) and a public torrent for it, announcing to
/// `trackers` (none: a torrent that only magnet `x.pe` peers can serve).
fn payload_torrent(dir: &Path, seed: u64, trackers: &[String]) -> (PathBuf, Metainfo) {
    let content = random_bytes(PAYLOAD_LEN as usize, seed);
    let (meta, bytes) = common::single_file_torrent(
        "payload.bin",
        64 * 1024,
        &content,
        &dir.join("seed"),
        trackers,
    );
    let path = dir.join("payload.torrent");
    std::fs::write(&path, bytes).unwrap();
    (path, meta)
}

fn magnet(meta: &Metainfo, trackers: Vec<String>, peers: Vec<String>) -> String {
    Magnet {
        info_hash: meta.info_hash,
        name: Some(meta.info.name.clone()),
        trackers,
        peers,
        web_seeds: Vec::new(),
    }
    .to_uri()
}

/// `kpbt-client download LINK -o OUT`; panics with its stderr unless it exits 0.
fn cli_download(link: &str, out: &Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args(["download", link, "-o"])
        .arg(out)
        .args(["--port", "0", "-v"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "kpbt-client failed:\n{stderr}");
    assert!(
        stderr.contains("metadata received and verified"),
        "the metadata came over ut_metadata:\n{stderr}"
    );
}

fn assert_magnet_download(seed_dir: &Path, out: &Path, meta: &Metainfo) {
    assert_same_file(&seed_dir.join("payload.bin"), &out.join("payload.bin"));
    let saved = load(&out.join("payload.bin.torrent"));
    assert_eq!(saved.info_hash, meta.info_hash);
    assert_eq!(saved.info_bytes, meta.info_bytes);
}

fn wait_scrape(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cli_downloads_a_magnet_link_from_libtorrent_via_kpbt_tracker() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start();
    let (torrent, meta) = payload_torrent(tmp.path(), 41, &[tracker.announce_url()]);
    let seed_dir = tmp.path().join("seed");
    let _seeder = Libtorrent::seed(&torrent, &seed_dir, free_port()).expect("seed");
    wait_scrape("libtorrent never announced to kpbt-tracker", || {
        tracker.scrape(meta.info_hash).complete >= 1
    });
    let out = tmp.path().join("dl");
    cli_download(
        &magnet(&meta, vec![tracker.announce_url()], vec![]),
        &out,
        &[],
    );
    assert_magnet_download(&seed_dir, &out, &meta);
    assert_eq!(tracker.scrape(meta.info_hash).downloaded, 1);
}

#[test]
fn cli_downloads_a_magnet_link_from_libtorrent_with_x_pe_and_no_tracker() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let (torrent, meta) = payload_torrent(tmp.path(), 42, &[]);
    let seed_dir = tmp.path().join("seed");
    let port = free_port();
    let _seeder = Libtorrent::seed(&torrent, &seed_dir, port).expect("seed");
    let out = tmp.path().join("dl");
    let link = magnet(&meta, vec![], vec![loopback(port).to_string()]);
    cli_download(&link, &out, &[]);
    assert_magnet_download(&seed_dir, &out, &meta);
}

/// libtorrent knows only the magnet link and finds our seeder through kpbt-tracker.
#[test]
fn libtorrent_fetches_metadata_from_our_seeder_via_kpbt_tracker() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start();
    let (_, meta) = payload_torrent(tmp.path(), 43, &[tracker.announce_url()]);
    let seed_dir = tmp.path().join("seed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(&seed_dir, vec![]);
    cfg.use_trackers = true;
    let seeder = rt.block_on(kpbt_client::start(meta.clone(), cfg)).unwrap();
    assert!(seeder.is_complete());
    wait_scrape("our seeder never announced", || {
        tracker.scrape(meta.info_hash).complete >= 1
    });
    let out = tmp.path().join("dl");
    let link = magnet(&meta, vec![tracker.announce_url()], vec![]);
    let mut dl = Libtorrent::download(&link, &out, free_port(), &LtOptions::default()).unwrap();
    dl.wait_metadata(WAIT).expect("libtorrent got the metadata");
    dl.wait_complete(WAIT).expect("libtorrent completes");
    assert_same_file(&seed_dir.join("payload.bin"), &out.join("payload.bin"));
    let s = rt.block_on(seeder.shutdown()).unwrap();
    assert!(s.uploaded >= PAYLOAD_LEN, "uploaded {} bytes", s.uploaded);
}

/// The same with the seeder's address in the link (`x.pe`) and no tracker at all.
#[test]
fn libtorrent_fetches_metadata_from_our_seeder_with_x_pe() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let (_, meta) = payload_torrent(tmp.path(), 44, &[]);
    let seed_dir = tmp.path().join("seed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seeder = rt
        .block_on(kpbt_client::start(
            meta.clone(),
            common::config(&seed_dir, vec![]),
        ))
        .unwrap();
    let out = tmp.path().join("dl");
    let link = magnet(&meta, vec![], vec![common::addr_of(&seeder).to_string()]);
    let mut dl = Libtorrent::download(&link, &out, free_port(), &LtOptions::default()).unwrap();
    dl.wait_metadata(WAIT).expect("libtorrent got the metadata");
    dl.wait_complete(WAIT).expect("libtorrent completes");
    assert_same_file(&seed_dir.join("payload.bin"), &out.join("payload.bin"));
    rt.block_on(seeder.shutdown()).unwrap();
}

/// IPv6: our library downloads from a libtorrent seeder over [::1].
#[test]
fn library_downloads_from_libtorrent_over_ipv6() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let (torrent, meta) = payload_torrent(tmp.path(), 45, &[]);
    let seed_dir = tmp.path().join("seed");
    let port = free_port();
    let opts = LtOptions {
        listen: vec!["::1".into()],
        ..Default::default()
    };
    let _seeder = Libtorrent::seed_with(&torrent, &seed_dir, port, &opts).expect("seed");
    let out = tmp.path().join("dl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let mut cfg = common::config(&out, vec![v6]);
        cfg.listen = "[::1]:0".parse().unwrap();
        let mut h = kpbt_client::start(meta, cfg).await.unwrap();
        common::wait_complete(&mut h, WAIT.as_secs()).await;
        assert!(h.peers().iter().all(|p| p.is_ipv6()), "{:?}", h.peers());
        assert!(h.shutdown().await.unwrap().complete);
    });
    assert_same_file(&seed_dir.join("payload.bin"), &out.join("payload.bin"));
}

/// Reads until a message `want` accepts; panics on disconnect or after `secs`.
async fn recv_until<T>(
    w: &mut Wire,
    secs: u64,
    what: &str,
    mut want: impl FnMut(Message) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            let m = w
                .recv()
                .await
                .unwrap_or_else(|| panic!("disconnected before {what}"));
            if let Some(t) = want(m) {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {secs} s"))
}

/// BEP 6 against libtorrent, on the wire: a libtorrent seeder opens with have-all (not
/// a bitfield), and once it chokes us, a request is answered with a reject (not
/// silence) and the connection stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_seeder_says_have_all_and_rejects_requests_once_it_chokes() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let (torrent, meta) = payload_torrent(tmp.path(), 46, &[]);
    let seed_dir = tmp.path().join("seed");
    let port = free_port();
    // Unchokes as usual, but chokes every peer 3 s after it started.
    let opts = LtOptions {
        choke_after: Some(3.0),
        ..Default::default()
    };
    let seeder = tokio::task::spawn_blocking(move || {
        Libtorrent::seed_with(&torrent, &seed_dir, port, &opts).expect("seed")
    })
    .await
    .unwrap();
    let mut w = Wire::connect_with(
        loopback(port),
        Handshake::new(meta.info_hash, PeerId([4; 20]))
            .with_extension_protocol()
            .with_fast(),
    )
    .await;
    // The extension handshake (BEP 10 wants it first), then have-all.
    match w.recv().await.expect("open") {
        Message::Extended {
            id: HANDSHAKE_ID,
            payload,
        } => {
            let hs = ExtendedHandshake::decode(&payload).unwrap();
            assert!(hs.client.unwrap().starts_with("libtorrent/2."));
            assert_eq!(hs.metadata_size, Some(meta.info_bytes.len() as u32));
        }
        other => panic!("expected the extension handshake, got {other:?}"),
    }
    assert_eq!(
        w.recv().await,
        Some(Message::HaveAll),
        "have-all, not a bitfield"
    );
    w.send(Message::Interested).await;
    // Pieces we may fetch even while choked: a request for one of them is served.
    let mut allowed = HashSet::new();
    recv_until(&mut w, 10, "an unchoke", |m| match m {
        Message::AllowedFast(p) => {
            allowed.insert(p);
            None
        }
        Message::Unchoke => Some(()),
        _ => None,
    })
    .await;
    recv_until(&mut w, 15, "the choke", |m| match m {
        Message::AllowedFast(p) => {
            allowed.insert(p);
            None
        }
        Message::Choke => Some(()),
        Message::Unchoke => None,
        _ => None,
    })
    .await;
    let piece = (0..meta.info.piece_count())
        .find(|p| !allowed.contains(p))
        .unwrap();
    let r = BlockRequest {
        index: piece,
        begin: 0,
        length: 16 * 1024,
    };
    w.send(Message::Request(r)).await;
    let got = recv_until(&mut w, 5, "a reject", |m| match m {
        Message::Reject(x) => Some(x),
        Message::Piece { index, .. } => panic!("piece {index} served while choked"),
        _ => None,
    })
    .await;
    assert_eq!(got, r);
    // Still connected: a keep-alive goes through and nothing closes the connection.
    w.send(Message::KeepAlive).await;
    let closed = tokio::time::timeout(Duration::from_millis(1500), w.recv()).await;
    assert!(
        !matches!(closed, Ok(None)),
        "libtorrent dropped us after the reject"
    );
    drop(seeder);
}

/// Our leecher is choked by libtorrent mid-download: the blocks it had asked for are
/// rejected (BEP 6), it stays connected, and it completes from a seeder that shows up
/// afterwards. Bytes compared.
#[test]
fn library_choked_by_libtorrent_midway_completes_from_another_seeder() {
    if !require_libtorrent() {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let (torrent, meta) = payload_torrent(tmp.path(), 47, &[]);
    let seed_dir = tmp.path().join("seed");
    let port = free_port();
    let opts = LtOptions {
        choke_after: Some(4.0),
        ..Default::default()
    };
    let mut lt = Libtorrent::seed_with(&torrent, &seed_dir, port, &opts).expect("seed");
    let out = tmp.path().join("dl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = common::config(&out, vec![loopback(port)]);
    // Slow enough that the choke comes long before the end.
    cfg.download_limit = Some(512 * 1024);
    let mut leecher = rt.block_on(kpbt_client::start(meta.clone(), cfg)).unwrap();
    lt.guard()
        .wait_for_output("CHOKING", WAIT)
        .expect("libtorrent chokes");
    // Let the choke (and the rejects of our queued requests) arrive.
    std::thread::sleep(Duration::from_secs(2));
    let before = leecher.summary();
    assert!(
        before.pieces_verified > 0 && !before.complete,
        "libtorrent served part of the torrent before choking: {before:?}"
    );
    assert_eq!(
        leecher.peers(),
        vec![loopback(port)],
        "still connected to libtorrent after its choke"
    );
    // A kpbt seeder that dials the leecher brings the rest.
    let seeder = rt
        .block_on(kpbt_client::start(
            meta,
            common::config(&seed_dir, vec![common::addr_of(&leecher)]),
        ))
        .unwrap();
    rt.block_on(common::wait_complete(&mut leecher, WAIT.as_secs()));
    assert_same_file(&seed_dir.join("payload.bin"), &out.join("payload.bin"));
    rt.block_on(leecher.shutdown()).unwrap();
    rt.block_on(seeder.shutdown()).unwrap();
}

/// A magnet link with the address of a transmission seeder (`x.pe`, no tracker): we
/// dial it (transmission never dials loopback peers), fetch the metadata from it and
/// download. Bytes compared. (The seeder's torrent announces to kpbt-tracker only so
/// that the test knows when transmission serves it: right after "Verification is
/// done" it still resets connections.)
#[test]
fn cli_downloads_a_magnet_link_from_transmission_with_x_pe() {
    if !require_binaries(&[("transmission-cli", "transmission-cli")]) {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let tracker = common::tracker::Tracker::start();
    let (torrent, meta) = payload_torrent(tmp.path(), 48, &[tracker.announce_url()]);
    let seed_dir = tmp.path().join("seed");
    let port = free_port();
    let _seeder = Transmission::seed(&torrent, &seed_dir, port).expect("seed");
    wait_scrape("transmission never announced to kpbt-tracker", || {
        tracker.scrape(meta.info_hash).complete >= 1
    });
    let out = tmp.path().join("dl");
    let link = magnet(&meta, vec![], vec![loopback(port).to_string()]);
    cli_download(&link, &out, &[]);
    assert_magnet_download(&seed_dir, &out, &meta);
}
