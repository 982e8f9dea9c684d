//! Memory cost of the swarm store, in-process: announces N peers over T torrents straight
//! into `Store` and reports the RSS growth per peer. (The honest figure is the HTTP one in
//! scripts/bench-tracker.sh, which includes the server; this isolates the data structure.)
//!
//! `cargo run --release -p kpbt-tracker --example store_mem -- [peers] [torrents]`

use std::net::SocketAddr;

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest};
use kpbt_proto::{InfoHash, PeerId};
use kpbt_tracker::{MemoryStore, StoreLimits};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn hash_of(t: u32) -> InfoHash {
    let mut h = [0x5au8; 20];
    h[..4].copy_from_slice(&t.to_be_bytes());
    h[16..].copy_from_slice(&t.wrapping_mul(2_654_435_761).to_le_bytes());
    InfoHash(h)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let peers: u32 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let torrents: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let store = MemoryStore::new(StoreLimits {
        max_torrents: 10_000_000,
        max_peers_per_torrent: 1_000_000,
        max_peers_per_ip: usize::MAX,
        numwant_default: 0,
        numwant_max: 0,
        peer_timeout_secs: 3900,
    });
    let before = rss_bytes();
    let start = std::time::Instant::now();
    for i in 0..peers {
        let t = i % torrents;
        let n = i / torrents;
        let mut id = [b'p'; 20];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let req = AnnounceRequest {
            info_hash: hash_of(t),
            peer_id: PeerId(id),
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: u64::from(n % 2),
            event: AnnounceEvent::Started,
            compact: true,
            no_peer_id: false,
            numwant: Some(0),
            ip: None,
            key: None,
            tracker_id: None,
        };
        // A distinct IPv4 address per peer, as in a real swarm.
        let addr = SocketAddr::from(((0x0a00_0000u32 + i).to_be_bytes(), 6881));
        if let Err(e) = store.announce(&req, addr, 0) {
            eprintln!("announce {i} refused: {e}");
            std::process::exit(1);
        }
    }
    let elapsed = start.elapsed();
    let after = rss_bytes();
    let stats = store.stats();
    println!(
        "store_mem: peers={} torrents={} rss_delta={} bytes ({:.1} bytes/peer), peer-list heap {:.1} bytes/peer, {:.0} announces/s in-process",
        stats.seeders + stats.leechers,
        stats.torrents,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / f64::from(peers),
        store.peer_heap_bytes() as f64 / f64::from(peers),
        f64::from(peers) / elapsed.as_secs_f64(),
    );
}
