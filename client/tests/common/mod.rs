//! Shared helpers for the client's integration tests: in-process torrents and peers.
#![allow(dead_code)]

pub mod tracker;
pub mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kpbt_client::{Config, TorrentHandle};
use kpbt_proto::metainfo::{build_torrent, Metainfo, NewTorrent};
use sha1::{Digest, Sha1};

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    kpbt_testkit::random_bytes(len, seed)
}

/// Builds a torrent for `files` (relative path components, contents); a single entry
/// with an empty path means a single-file torrent named `name`. Writes the data under
/// `dir` the way a download would lay it out.
pub fn make_torrent(
    name: &str,
    piece_len: u32,
    files: &[(Vec<&str>, Vec<u8>)],
    dir: &Path,
) -> Metainfo {
    make_torrent_full(name, piece_len, files, dir, false, &[])
}

/// `make_torrent`, optionally private (BEP 27).
pub fn make_torrent_opts(
    name: &str,
    piece_len: u32,
    files: &[(Vec<&str>, Vec<u8>)],
    dir: &Path,
    private: bool,
) -> Metainfo {
    make_torrent_full(name, piece_len, files, dir, private, &[])
}

/// [`make_torrent`] with BEP 19 web seeds in its `url-list`.
pub fn make_torrent_with_web_seeds(
    name: &str,
    piece_len: u32,
    files: &[(Vec<&str>, Vec<u8>)],
    dir: &Path,
    web_seeds: &[String],
) -> Metainfo {
    make_torrent_full(name, piece_len, files, dir, false, web_seeds)
}

fn make_torrent_full(
    name: &str,
    piece_len: u32,
    files: &[(Vec<&str>, Vec<u8>)],
    dir: &Path,
    private: bool,
    web_seeds: &[String],
) -> Metainfo {
    let all: Vec<u8> = files.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let hashes = all
        .chunks(piece_len as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let single = files.len() == 1 && files[0].0.is_empty();
    for (p, d) in files {
        let mut path = dir.join(name);
        for c in p {
            path.push(c);
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, d).unwrap();
    }
    let t = NewTorrent {
        name: name.into(),
        piece_length: piece_len,
        piece_hashes: hashes,
        files: if single {
            vec![]
        } else {
            files
                .iter()
                .map(|(p, d)| (p.iter().map(|s| s.to_string()).collect(), d.len() as u64))
                .collect()
        },
        single_file_length: single.then(|| files[0].1.len() as u64),
        private,
        web_seeds: web_seeds.to_vec(),
        ..Default::default()
    };
    Metainfo::from_bytes(&build_torrent(&t)).expect("valid torrent")
}

pub fn config(dir: &Path, peers: Vec<SocketAddr>) -> Config {
    init_logs();
    let mut c = Config::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.use_trackers = false;
    c.peers = peers;
    c
}

/// The address other peers should dial to reach `h`.
pub fn addr_of(h: &TorrentHandle) -> SocketAddr {
    SocketAddr::new("127.0.0.1".parse().unwrap(), h.listen_addr().port())
}

pub async fn wait_complete(h: &mut TorrentHandle, secs: u64) {
    tokio::time::timeout(Duration::from_secs(secs), h.wait_complete())
        .await
        .expect("download did not complete in time")
        .expect("download failed");
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A single-file .torrent for `content` announcing to `trackers` (one tier each),
/// with the data written to `dir/name`. Returns the parsed torrent and its bytes.
pub fn single_file_torrent(
    name: &str,
    piece_len: u32,
    content: &[u8],
    dir: &Path,
    trackers: &[String],
) -> (Metainfo, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
    let t = NewTorrent {
        name: name.into(),
        piece_length: piece_len,
        piece_hashes: content
            .chunks(piece_len as usize)
            .map(|c| Sha1::digest(c).into())
            .collect(),
        single_file_length: Some(content.len() as u64),
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        ..Default::default()
    };
    let bytes = build_torrent(&t);
    (Metainfo::from_bytes(&bytes).expect("valid torrent"), bytes)
}
