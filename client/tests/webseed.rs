//! Web seeds and origins (BEP 19): downloads from a real nginx origin alone, with a slow
//! peer beside it, from an origin with a corrupt piece, multi-file from a folder URL,
//! and past a hostile HTTP server. Bytes compared; the per-source counters checked.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kpbt_client::webseed::WebSeedState;
use kpbt_client::TorrentHandle;
use kpbt_testkit::Nginx;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Starts nginx on `root`, or returns None when it is missing and interop tests are
/// skipped (`KPBT_SKIP_INTEROP=1`; otherwise a missing nginx fails the test).
fn nginx(root: &Path) -> Option<Nginx> {
    if !kpbt_testkit::require_binary("nginx", "nginx") {
        return None;
    }
    Some(Nginx::serve(root).expect("nginx starts"))
}

/// Polls `cond` every 50 ms for up to `secs`; panics with `what` on timeout.
async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A read-only seeder of `meta` from `dir` that uploads at most `rate` bytes/s.
async fn slow_seeder(
    meta: &kpbt_proto::metainfo::Metainfo,
    dir: &Path,
    rate: usize,
) -> TorrentHandle {
    let mut cfg = config(dir, vec![]);
    cfg.seed_only = true;
    cfg.upload_limit = Some(rate as u64);
    kpbt_client::start(meta.clone(), cfg).await.unwrap()
}

fn pieces_have(h: &TorrentHandle) -> u32 {
    h.summary().pieces_verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_alone_serves_a_download_with_no_peers_at_all() {
    let origin_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let Some(origin) = nginx(origin_dir.path()) else {
        return;
    };
    // The torrent's own url-list names the folder (ending in /): the name is appended.
    let content = data(3 * MIB + 12_345, 11);
    let meta = make_torrent_with_web_seeds(
        "payload.bin",
        64 * KIB as u32,
        &[(vec![], content.clone())],
        origin_dir.path(),
        &[origin.url()],
    );
    let mut h = kpbt_client::start(meta, config(out.path(), vec![]))
        .await
        .unwrap();
    wait_complete(&mut h, 60).await;
    let s = h.shutdown().await.unwrap();
    let seeds = &s.web_seeds;
    assert_eq!(
        std::fs::read(out.path().join("payload.bin")).unwrap(),
        content
    );
    assert_eq!(
        (s.peer_bytes, s.origin_bytes, s.downloaded),
        (0, content.len() as u64, content.len() as u64)
    );
    assert_eq!(seeds.len(), 1);
    assert_eq!(seeds[0].downloaded, content.len() as u64);
    assert_eq!((seeds[0].errors, seeds[0].bad_pieces), (0, 0));
    // Adjacent pieces were coalesced: far fewer requests than the 49 pieces.
    let requests = std::fs::read_to_string(origin.access_log())
        .unwrap()
        .lines()
        .count();
    assert!(requests <= 8, "{requests} requests for 49 pieces");
    assert_eq!(origin.bytes_sent(), content.len() as u64, "each byte once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_and_the_origin_both_deliver() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let Some(origin) = nginx(seed_dir.path()) else {
        return;
    };
    let content = data(6 * MIB + 777, 12);
    // Made without a url-list: the origin comes from `--origin` (Config::origins).
    let meta = make_torrent(
        "both.bin",
        64 * KIB as u32,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = slow_seeder(&meta, seed_dir.path(), 256 * KIB).await;
    let mut cfg = config(out.path(), vec![addr_of(&seeder)]);
    cfg.origins = vec![origin.url()];
    let mut h = kpbt_client::start(meta, cfg).await.unwrap();
    wait_complete(&mut h, 90).await;
    let s = h.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();
    assert_eq!(std::fs::read(out.path().join("both.bin")).unwrap(), content);
    eprintln!(
        "from peers {} bytes, from the origin {} bytes",
        s.peer_bytes, s.origin_bytes
    );
    assert!(s.peer_bytes > 0, "the peer delivered nothing");
    assert!(s.origin_bytes > 0, "the origin never took over");
    assert_eq!(s.peer_bytes + s.origin_bytes, content.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_origin_piece_comes_from_an_honest_peer_and_the_url_is_dropped() {
    let seed_dir = tempfile::tempdir().unwrap();
    let origin_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let piece = 32 * KIB;
    let content = data(40 * piece + 100, 13);
    let meta = make_torrent(
        "bad.bin",
        piece as u32,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    // The origin's copy differs in one byte of piece 17.
    let bad = 17;
    let mut corrupt = content.clone();
    corrupt[bad * piece + 5] ^= 0xff;
    std::fs::write(origin_dir.path().join("bad.bin"), &corrupt).unwrap();
    let Some(origin) = nginx(origin_dir.path()) else {
        return;
    };
    // No peer known at first: the origin runs at full speed and serves every piece but
    // piece 17, which fails its hash each time until the URL is dropped.
    let mut cfg = config(out.path(), vec![]);
    cfg.origins = vec![format!("{}bad.bin", origin.url())];
    let mut h = kpbt_client::start(meta.clone(), cfg).await.unwrap();
    wait_until("the origin to be dropped", 60, || {
        h.web_seeds()
            .first()
            .is_some_and(|s| s.state == WebSeedState::Dropped)
    })
    .await;
    let seeds = h.web_seeds();
    assert_eq!(seeds[0].bad_pieces, kpbt_client::webseed::MAX_BAD_PIECES);
    assert!(
        seeds[0].last_error.as_deref().unwrap().contains("SHA-1"),
        "{seeds:?}"
    );
    wait_until("every other piece", 30, || pieces_have(&h) == 40).await;
    assert!(!h.is_complete());
    // An honest peer (it dials us) supplies the missing piece.
    let mut seed_cfg = config(seed_dir.path(), vec![addr_of(&h)]);
    seed_cfg.seed_only = true;
    let seeder = kpbt_client::start(meta, seed_cfg).await.unwrap();
    wait_complete(&mut h, 60).await;
    let s = h.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();
    assert_eq!(std::fs::read(out.path().join("bad.bin")).unwrap(), content);
    assert_eq!(s.peer_bytes, piece as u64, "piece 17 from the peer");
    assert_eq!(s.origin_bytes, (content.len() - piece) as u64);
    assert!(
        s.banned.is_empty(),
        "nobody is banned for the origin's bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_last_peer_leaves_mid_piece_the_origin_finishes_the_torrent() {
    use bytes::Bytes;
    use kpbt_proto::wire::Message;
    if !kpbt_testkit::require_binary("nginx", "nginx") {
        return;
    }
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let piece = 64 * KIB;
    let content = data(8 * piece, 15);
    let meta = make_torrent(
        "left.bin",
        piece as u32,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    // The origin is down at first (nothing on its port yet).
    let port = kpbt_testkit::free_port();
    let mut cfg = config(out.path(), vec![]);
    cfg.origins = vec![format!("http://127.0.0.1:{port}/")];
    let mut h = kpbt_client::start(meta.clone(), cfg).await.unwrap();
    // A scripted peer with every piece sends one block of the first request, then
    // leaves: that piece is started, a quarter received, and nobody is asked for the
    // rest.
    let mut w = wire::Wire::connect(addr_of(&h), meta.info_hash).await;
    w.send(Message::Bitfield(Bytes::from_static(&[0xff]))).await;
    w.send(Message::Unchoke).await;
    let req = loop {
        match w.recv().await.expect("the leecher asks for blocks") {
            Message::Request(r) => break r,
            _ => continue,
        }
    };
    let at = req.index as usize * piece + req.begin as usize;
    w.send(Message::Piece {
        index: req.index,
        begin: req.begin,
        data: Bytes::copy_from_slice(&content[at..at + req.length as usize]),
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(w);
    let _origin = Nginx::serve_on(seed_dir.path(), port, "").expect("nginx");
    // The started piece is fetched whole from the origin with the rest.
    wait_complete(&mut h, 60).await;
    let s = h.shutdown().await.unwrap();
    assert_eq!(std::fs::read(out.path().join("left.bin")).unwrap(), content);
    assert_eq!((s.peer_bytes, s.origin_bytes), (0, content.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_pieces_spanning_files_come_from_a_folder_url() {
    let origin_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let Some(origin) = nginx(origin_dir.path()) else {
        return;
    };
    // Files smaller and larger than a piece, an empty one, names that need escaping.
    let files = vec![
        (vec!["a b.txt"], data(50_000, 1)),
        (vec!["empty"], Vec::new()),
        (vec!["sub", "ü #2.bin"], data(300_001, 2)),
        (vec!["sub", "c"], data(17, 3)),
        (vec!["z%.bin"], data(MIB + 3, 4)),
    ];
    let meta = make_torrent_with_web_seeds(
        "set 1",
        32 * KIB as u32,
        &files,
        origin_dir.path(),
        &[origin.url()],
    );
    let mut h = kpbt_client::start(meta, config(out.path(), vec![]))
        .await
        .unwrap();
    wait_complete(&mut h, 60).await;
    let s = h.shutdown().await.unwrap();
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    assert_eq!(s.origin_bytes, total as u64);
    for (path, content) in &files {
        let mut p = out.path().join("set 1");
        p.extend(path);
        assert_eq!(&std::fs::read(&p).unwrap(), content, "{}", p.display());
    }
    let log = std::fs::read_to_string(origin.access_log()).unwrap();
    assert!(log.contains("/set%201/sub/%C3%BC%20%232.bin"), "{log}");
    assert!(
        !log.contains("/empty"),
        "no request for an empty file: {log}"
    );
}

/// How a [`hostile_server`] answers every range request.
#[derive(Clone, Copy)]
enum Hostile {
    /// 206 naming other bytes than asked for.
    WrongRange,
    /// 200 with the whole file (the Range header ignored).
    IgnoresRange,
    /// 206 with the right range but more bytes than it, then close.
    TooLong,
    /// 206 with the right headers, half the body, then close.
    CutShort,
}

/// A web server for `content` that answers every request the `mode` way.
fn hostile_server(content: Arc<Vec<u8>>, mode: Hostile) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/h.bin", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            count.fetch_add(1, Ordering::Relaxed);
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => head.extend_from_slice(&b[..k]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_lowercase();
            let range = text
                .lines()
                .find_map(|l| l.strip_prefix("range: bytes="))
                .and_then(|r| r.trim().split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let len = content.len();
            let (a, b) = range.unwrap_or((0, len - 1));
            let n = b - a + 1;
            let (head, body): (String, &[u8]) = match mode {
                Hostile::WrongRange => {
                    // One byte off: the right length, the wrong bytes.
                    let s = if b + 1 < len { a + 1 } else { a - 1 };
                    (
                        format!("206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {n}", s + n - 1),
                        &content[s..s + n],
                    )
                }
                Hostile::IgnoresRange => (format!("200 OK\r\nContent-Length: {len}"), &content[..]),
                Hostile::TooLong => (
                    format!("206 Partial Content\r\nContent-Range: bytes {a}-{b}/{len}"),
                    &content[a..(b + 1000).min(len)],
                ),
                Hostile::CutShort => (
                    format!("206 Partial Content\r\nContent-Range: bytes {a}-{b}/{len}\r\nContent-Length: {n}"),
                    &content[a..a + n / 2],
                ),
            };
            let _ = s.write_all(format!("HTTP/1.1 {head}\r\nConnection: close\r\n\r\n").as_bytes());
            let _ = s.write_all(body);
        }
    });
    (url, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_web_servers_are_backed_off_while_a_good_one_completes() {
    let origin_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let Some(origin) = nginx(origin_dir.path()) else {
        return;
    };
    // Big enough for several 4 MiB runs, so every server is asked for one.
    let content = Arc::new(data(24 * MIB + 5, 14));
    let meta = make_torrent(
        "h.bin",
        64 * KIB as u32,
        &[(vec![], content.to_vec())],
        origin_dir.path(),
    );
    let modes = [
        (Hostile::WrongRange, "asked for bytes"),
        (Hostile::IgnoresRange, "ignored the Range header"),
        (Hostile::TooLong, "more than the"),
        (Hostile::CutShort, "bad body"),
    ];
    let servers: Vec<_> = modes
        .iter()
        .map(|(m, _)| hostile_server(content.clone(), *m))
        .collect();
    let mut cfg = config(out.path(), vec![]);
    cfg.origins = servers.iter().map(|(u, _)| u.clone()).collect();
    cfg.origins.push(origin.url());
    cfg.origin_connections = 5;
    let mut h = kpbt_client::start(meta, cfg).await.unwrap();
    wait_complete(&mut h, 60).await;
    let s = h.shutdown().await.unwrap();
    let seeds = &s.web_seeds;
    assert_eq!(std::fs::read(out.path().join("h.bin")).unwrap(), *content);
    assert_eq!(s.origin_bytes, content.len() as u64);
    for (i, (_, want)) in modes.iter().enumerate() {
        let v = &seeds[i];
        assert!(
            servers[i].1.load(Ordering::Relaxed) >= 1,
            "server {i} never asked"
        );
        // (A body that runs long or breaks off is refused there; the whole pieces
        // before that verified and count.)
        if matches!(modes[i].0, Hostile::WrongRange | Hostile::IgnoresRange) {
            assert_eq!(v.downloaded, 0, "{v:?}");
        }
        assert_eq!(v.bad_pieces, 0, "{v:?}");
        assert!(v.errors >= 1, "{v:?}");
        assert!(
            v.last_error.as_deref().is_some_and(|e| e.contains(want)),
            "server {i}: want {want:?} in {v:?}"
        );
    }
    let total: u64 = seeds.iter().map(|v| v.downloaded).sum();
    assert_eq!(total, content.len() as u64, "{seeds:#?}");
}

/// A magnet link's `ws=` web seed: the metadata comes from a slow peer (`x.pe`), the
/// saved .torrent carries the web seed as its `url-list`, and the download uses it
/// (the final line counts bytes from the origin), bytes compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_web_seed_is_kept_in_the_saved_torrent_and_used() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let Some(origin) = nginx(seed_dir.path()) else {
        return;
    };
    let content = data(4 * MIB + 321, 21);
    let meta = make_torrent(
        "ws.bin",
        64 * KIB as u32,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = slow_seeder(&meta, seed_dir.path(), 128 * KIB).await;
    let link = kpbt_proto::magnet::Magnet {
        info_hash: meta.info_hash,
        name: None,
        trackers: Vec::new(),
        peers: vec![addr_of(&seeder).to_string()],
        web_seeds: vec![origin.url()],
    }
    .to_uri();
    assert!(link.contains("&ws=http"), "{link}");
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args(["download", &link, "-o"])
        .arg(out.path())
        .args(["--no-trackers", "--port", "0"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(std::fs::read(out.path().join("ws.bin")).unwrap(), content);
    let saved = kpbt_proto::metainfo::Metainfo::from_bytes(
        &std::fs::read(out.path().join("ws.bin.torrent")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.info_hash, meta.info_hash);
    assert_eq!(saved.web_seeds, vec![origin.url()]);
    let done = stderr
        .lines()
        .find(|l| l.starts_with("done:"))
        .unwrap_or_else(|| panic!("no final line:\n{stderr}"));
    assert!(done.contains("from origin"), "{done}");
    seeder.shutdown().await.unwrap();
}

/// A web server for the files under `root` that holds each range request for a moment
/// before answering, and records the most requests it was answering at once.
fn counting_origin(root: std::path::PathBuf) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let record = most.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let (root, now, most) = (root.clone(), now.clone(), most.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&b[..k]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let Ok(content) = std::fs::read(root.join(path)) else {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                };
                let (a, z) = text
                    .to_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.trim().split_once('-'))
                    .and_then(|(a, z)| Some((a.parse::<usize>().ok()?, z.parse::<usize>().ok()?)))
                    .unwrap_or((0, content.len() - 1));
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(60));
                now.fetch_sub(1, Ordering::SeqCst);
                let len = content.len();
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{z}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        z - a + 1
                    )
                    .as_bytes(),
                );
                let _ = s.write_all(&content[a..=z]);
            });
        }
    });
    (url, record)
}

/// In a session, `origin_connections` bounds the origin requests of all its torrents
/// together, not of each: three torrents from one origin never have more than 2
/// requests at once there (each alone would use 2), and all complete, bytes compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_s_torrents_share_its_origin_connections() {
    use kpbt_client::session::{AddOptions, Session, SessionConfig};
    let origin_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (url, most) = counting_origin(origin_dir.path().to_path_buf());
    let mut cfg = SessionConfig::new(state.path());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.use_trackers = false;
    cfg.origin_connections = 2;
    let session = Session::start(cfg).await.unwrap();
    let mut wanted = Vec::new();
    for i in 0..3u64 {
        let name = format!("shared{i}.bin");
        let content = data(3 * MIB + 1000 * i as usize, 40 + i);
        let (_, torrent) =
            single_file_torrent(&name, 64 * KIB as u32, &content, origin_dir.path(), &[]);
        let v = session
            .add(
                &torrent,
                AddOptions {
                    dir: out.path().to_path_buf(),
                    origins: vec![url.clone()],
                    ..AddOptions::default()
                },
            )
            .unwrap();
        wanted.push((name, content, v.info_hash));
    }
    let ihs: Vec<_> = wanted.iter().map(|(_, _, ih)| ih.clone()).collect();
    wait_until("all three complete from the origin", 90, || {
        session
            .list()
            .iter()
            .filter(|v| ihs.contains(&v.info_hash))
            .all(|v| v.progress >= 1.0)
    })
    .await;
    for (name, content, _) in &wanted {
        assert_eq!(
            &std::fs::read(out.path().join(name)).unwrap(),
            content,
            "{name}"
        );
    }
    let most = most.load(Ordering::SeqCst);
    eprintln!("at most {most} origin requests at once");
    assert_eq!(
        most, 2,
        "the session's 2 origin connections, shared by its 3 torrents"
    );
    session.shutdown().await;
}
