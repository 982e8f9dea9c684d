//! Unit tests of the swarm store (driven with explicit times, no sleeping).

use super::*;
use std::collections::HashSet;

fn limits() -> StoreLimits {
    StoreLimits {
        max_torrents: 3,
        max_peers_per_torrent: 4,
        max_peers_per_ip: 8,
        numwant_default: 50,
        numwant_max: 200,
        peer_timeout_secs: 100,
    }
}

fn req(hash: u8, id: u8, left: u64, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([id; 20]),
        port: 1,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        compact: true,
        no_peer_id: false,
        numwant: None,
        ip: None,
        key: None,
        tracker_id: None,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn peers_find_each_other_but_never_themselves() {
    let st = MemoryStore::new(limits());
    let a = st
        .announce(
            &req(1, 1, 10, AnnounceEvent::Started),
            addr("10.0.0.1:1000"),
            0,
        )
        .unwrap();
    assert!(a.peers.is_empty());
    assert_eq!((a.complete, a.incomplete), (0, 1));
    let b = st
        .announce(
            &req(1, 2, 10, AnnounceEvent::Started),
            addr("10.0.0.2:2000"),
            0,
        )
        .unwrap();
    assert_eq!(b.peers.len(), 1);
    assert_eq!(b.peers[0].addr, addr("10.0.0.1:1000"));
    assert_eq!(b.peers[0].peer_id, PeerId([1; 20]));
    let a = st
        .announce(
            &req(1, 1, 10, AnnounceEvent::None),
            addr("10.0.0.1:1000"),
            1,
        )
        .unwrap();
    assert_eq!(
        a.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        [addr("10.0.0.2:2000")]
    );
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 2
        }
    );
}

#[test]
fn seeders_get_only_leechers_and_completion_counts_once() {
    let st = MemoryStore::new(limits());
    st.announce(&req(1, 1, 0, AnnounceEvent::Started), addr("10.0.0.1:1"), 0)
        .unwrap();
    st.announce(&req(1, 2, 5, AnnounceEvent::Started), addr("10.0.0.2:1"), 0)
        .unwrap();
    // A seeder's steady-state announce (no event): leechers only.
    let s2 = st
        .announce(&req(1, 3, 0, AnnounceEvent::None), addr("10.0.0.3:1"), 0)
        .unwrap();
    assert_eq!(
        s2.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        [addr("10.0.0.2:1")]
    );
    // A left=0 `started` (a magnet client without metadata, or a seeder starting):
    // leechers first, then seeders to fill numwant.
    let s4 = st
        .announce(&req(1, 4, 0, AnnounceEvent::Started), addr("10.0.0.4:1"), 0)
        .unwrap();
    assert_eq!(s4.peers[0].addr, addr("10.0.0.2:1"));
    let rest: HashSet<SocketAddr> = s4.peers[1..].iter().map(|p| p.addr).collect();
    assert_eq!(
        rest,
        HashSet::from([addr("10.0.0.1:1"), addr("10.0.0.3:1")])
    );
    let done = st
        .announce(
            &req(1, 2, 0, AnnounceEvent::Completed),
            addr("10.0.0.2:1"),
            1,
        )
        .unwrap();
    assert!(done.counted_completion);
    assert!(
        done.peers.is_empty(),
        "a new seeder in an all-seeder swarm gets nobody"
    );
    // A repeated `completed` from an existing seeder is not a second download.
    let again = st
        .announce(
            &req(1, 2, 0, AnnounceEvent::Completed),
            addr("10.0.0.2:1"),
            2,
        )
        .unwrap();
    assert!(!again.counted_completion);
    let sc = st.scrape(&[InfoHash([1; 20]), InfoHash([9; 20])]);
    assert_eq!(
        sc[0].1,
        ScrapeStats {
            complete: 4,
            downloaded: 1,
            incomplete: 0
        }
    );
    assert_eq!(sc[1].1, ScrapeStats::default());
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 1,
            seeders: 4,
            leechers: 0
        }
    );
}

#[test]
fn stopped_removes_and_never_creates() {
    let st = MemoryStore::new(limits());
    let o = st
        .announce(&req(7, 1, 5, AnnounceEvent::Stopped), addr("10.0.0.1:1"), 0)
        .unwrap();
    assert_eq!((o.complete, o.incomplete), (0, 0));
    assert_eq!(st.stats().torrents, 0);
    st.announce(&req(1, 1, 5, AnnounceEvent::Started), addr("10.0.0.1:1"), 0)
        .unwrap();
    st.announce(&req(1, 2, 0, AnnounceEvent::Started), addr("10.0.0.2:1"), 0)
        .unwrap();
    let o = st
        .announce(&req(1, 1, 5, AnnounceEvent::Stopped), addr("10.0.0.1:1"), 0)
        .unwrap();
    assert_eq!((o.complete, o.incomplete), (1, 0));
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 1,
            seeders: 1,
            leechers: 0
        }
    );
    // The last peer leaves: the torrent is gone at once, not at the next reap.
    st.announce(&req(1, 2, 0, AnnounceEvent::Stopped), addr("10.0.0.2:1"), 0)
        .unwrap();
    assert_eq!(st.stats(), StoreStats::default());
    assert_eq!(st.reap(u32::MAX), ReapReport::default());
    // And it comes back on the next announce.
    st.announce(&req(1, 2, 0, AnnounceEvent::Started), addr("10.0.0.2:1"), 0)
        .unwrap();
    assert_eq!(st.stats().torrents, 1);
}

#[test]
fn peers_are_keyed_by_address_not_peer_id() {
    let st = MemoryStore::new(limits());
    st.announce(&req(1, 1, 5, AnnounceEvent::Started), addr("10.0.0.1:1"), 0)
        .unwrap();
    // Another host claims the same peer id: it becomes a second peer, the first stays.
    let forged = st
        .announce(
            &req(1, 1, 5, AnnounceEvent::Started),
            addr("10.0.0.66:1"),
            0,
        )
        .unwrap();
    assert_eq!(
        forged.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        [addr("10.0.0.1:1")]
    );
    // A stop from the forger removes only the forger.
    st.announce(
        &req(1, 1, 5, AnnounceEvent::Stopped),
        addr("10.0.0.66:1"),
        0,
    )
    .unwrap();
    assert_eq!(st.scrape(&[InfoHash([1; 20])])[0].1.incomplete, 1);
    // IPv4-mapped IPv6 is the same host as plain IPv4.
    let mapped = st
        .announce(
            &req(1, 9, 5, AnnounceEvent::None),
            addr("[::ffff:10.0.0.1]:1"),
            0,
        )
        .unwrap();
    assert_eq!(mapped.incomplete, 1);
}

#[test]
fn limits_refuse_without_allocating() {
    let st = MemoryStore::new(limits());
    for h in 1..=3 {
        st.announce(&req(h, 1, 5, AnnounceEvent::Started), addr("10.0.0.1:1"), 0)
            .unwrap();
    }
    let e = st
        .announce(&req(4, 1, 5, AnnounceEvent::Started), addr("10.0.0.1:1"), 0)
        .unwrap_err();
    assert_eq!(e, AnnounceError::TooManyTorrents);
    assert_eq!(st.stats().torrents, 3);
    for i in 2..=4 {
        st.announce(
            &req(1, i, 5, AnnounceEvent::None),
            addr(&format!("10.0.0.{i}:1")),
            0,
        )
        .unwrap();
    }
    let e = st
        .announce(&req(1, 5, 5, AnnounceEvent::None), addr("[::5]:1"), 0)
        .unwrap_err();
    assert_eq!(e, AnnounceError::SwarmFull);
    // Existing peers keep announcing.
    st.announce(&req(1, 4, 0, AnnounceEvent::None), addr("10.0.0.4:1"), 1)
        .unwrap();
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 3,
            seeders: 1,
            leechers: 5
        }
    );
}

#[test]
fn reap_uses_the_given_time() {
    let st = MemoryStore::new(limits());
    st.announce(&req(1, 1, 0, AnnounceEvent::None), addr("10.0.0.1:1"), 10)
        .unwrap();
    st.announce(&req(1, 2, 5, AnnounceEvent::None), addr("10.0.0.2:1"), 50)
        .unwrap();
    st.announce(&req(2, 2, 5, AnnounceEvent::None), addr("10.0.0.2:1"), 20)
        .unwrap();
    assert_eq!(st.reap(100), ReapReport::default());
    assert_eq!(
        st.reap(111),
        ReapReport {
            peers_removed: 1,
            torrents_removed: 0
        }
    );
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 2,
            seeders: 0,
            leechers: 2
        }
    );
    assert_eq!(
        st.reap(121),
        ReapReport {
            peers_removed: 1,
            torrents_removed: 1
        }
    );
    assert_eq!(
        st.stats(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 1
        }
    );
    assert_eq!(
        st.reap(151),
        ReapReport {
            peers_removed: 1,
            torrents_removed: 1
        }
    );
    assert_eq!(st.stats(), StoreStats::default());
}

#[test]
fn selection_is_capped_and_spread() {
    let st = MemoryStore::new(StoreLimits {
        max_peers_per_torrent: 1000,
        numwant_max: 10,
        ..limits()
    });
    for i in 0..100u32 {
        let a = SocketAddr::new(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 7);
        st.announce(&req(1, i as u8, 5, AnnounceEvent::None), a, 0)
            .unwrap();
    }
    let mut seen = HashSet::new();
    for _ in 0..50 {
        let mut r = req(1, 200, 5, AnnounceEvent::None);
        r.numwant = Some(u32::MAX);
        let o = st.announce(&r, addr("10.1.0.0:9"), 0).unwrap();
        assert_eq!(o.peers.len(), 10, "numwant is capped at numwant_max");
        assert!(o.peers.iter().all(|p| p.addr != addr("10.1.0.0:9")));
        seen.extend(o.peers.iter().map(|p| p.addr));
    }
    assert!(
        seen.len() > 30,
        "random start spreads load, saw {}",
        seen.len()
    );
}
