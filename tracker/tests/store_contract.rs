//! The swarm-store contract: one suite of scenarios, run against the memory store and
//! against the Redis store (a `redis-server` started per test on a free port). Both must
//! give the same peers, counts, scrape figures, expiry, `downloaded` counting and limits.
//!
//! A missing `redis-server` fails the Redis half loudly, unless `KPBT_SKIP_REDIS=1`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest, ScrapeStats};
use kpbt_proto::{InfoHash, PeerId};
use kpbt_testkit::{require_redis, RedisServer};
use kpbt_tracker::store::{AnnounceError, StoreLimits, StoreSpec, StoreStats, SwarmStore};

/// Wall-clock seconds in 2027: what the trackers pass in, so Redis sees real-looking times.
const T0: u32 = 1_800_000_000;

fn limits() -> StoreLimits {
    StoreLimits {
        max_torrents: 3,
        max_peers_per_torrent: 6,
        max_peers_per_ip: 2,
        numwant_default: 50,
        numwant_max: 200,
        peer_timeout_secs: 100,
    }
}

/// A store under test; keeps its Redis server alive as long as the store.
struct Subject {
    store: SwarmStore,
    _redis: Option<RedisServer>,
}

impl std::ops::Deref for Subject {
    type Target = SwarmStore;
    fn deref(&self) -> &SwarmStore {
        &self.store
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Redis,
}

fn subject(kind: Kind, limits: StoreLimits) -> Subject {
    match kind {
        Kind::Memory => Subject {
            store: SwarmStore::memory(limits),
            _redis: None,
        },
        Kind::Redis => {
            let redis = RedisServer::start().expect("start redis-server");
            let spec: StoreSpec = redis.url(0).parse().unwrap();
            let store = SwarmStore::open(&spec, limits, Duration::from_secs(2)).unwrap();
            Subject {
                store,
                _redis: Some(redis),
            }
        }
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

/// Peer `n` of a test: its own address and id.
fn at(n: u8) -> SocketAddr {
    addr(&format!("10.0.0.{n}:{}", 1000 + u16::from(n)))
}

async fn ann(
    s: &SwarmStore,
    hash: u8,
    n: u8,
    left: u64,
    event: AnnounceEvent,
    now: u32,
) -> kpbt_tracker::store::AnnounceOutcome {
    s.announce(&req(hash, n, left, event), at(n), now)
        .await
        .unwrap_or_else(|e| panic!("announce of peer {n}: {e}"))
}

async fn scrape_one(s: &SwarmStore, hash: u8) -> ScrapeStats {
    s.scrape(&[InfoHash([hash; 20])]).await.unwrap()[0].1
}

fn addrs(o: &kpbt_tracker::store::AnnounceOutcome) -> HashSet<SocketAddr> {
    o.peers.iter().map(|p| p.addr).collect()
}

async fn peers_find_each_other_never_themselves(kind: Kind) {
    let s = subject(kind, limits());
    let a = ann(&s, 1, 1, 10, AnnounceEvent::Started, T0).await;
    assert!(a.peers.is_empty());
    assert_eq!((a.complete, a.incomplete), (0, 1));
    let b = ann(&s, 1, 2, 10, AnnounceEvent::Started, T0).await;
    assert_eq!(b.peers.len(), 1);
    assert_eq!(b.peers[0].addr, at(1));
    assert_eq!(b.peers[0].peer_id, PeerId([1; 20]));
    let a = ann(&s, 1, 1, 10, AnnounceEvent::None, T0 + 1).await;
    assert_eq!(addrs(&a), HashSet::from([at(2)]));
    assert_eq!((a.complete, a.incomplete), (0, 2));
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 2
        }
    );
}

async fn seeders_get_only_leechers_and_leechers_get_everyone(kind: Kind) {
    let s = subject(kind, limits());
    for n in 1..=2 {
        ann(&s, 1, n, 0, AnnounceEvent::Started, T0).await;
    }
    for n in 3..=5 {
        ann(&s, 1, n, 7, AnnounceEvent::Started, T0).await;
    }
    let seed = ann(&s, 1, 1, 0, AnnounceEvent::None, T0 + 1).await;
    assert_eq!(addrs(&seed), HashSet::from([at(3), at(4), at(5)]));
    assert_eq!((seed.complete, seed.incomplete), (2, 3));
    let leech = ann(&s, 1, 3, 7, AnnounceEvent::None, T0 + 1).await;
    assert_eq!(addrs(&leech), HashSet::from([at(1), at(2), at(4), at(5)]));
}

async fn numwant_is_honoured_with_distinct_peers_and_never_self(kind: Kind) {
    let s = subject(kind, limits());
    for n in 1..=6 {
        ann(&s, 1, n, 5, AnnounceEvent::Started, T0).await;
    }
    for want in [0u32, 1, 3, 5, 9] {
        let mut r = req(1, 6, 5, AnnounceEvent::None);
        r.numwant = Some(want);
        let o = s.announce(&r, at(6), T0 + 1).await.unwrap();
        let got = addrs(&o);
        assert_eq!(o.peers.len(), want.min(5) as usize, "numwant {want}");
        assert_eq!(got.len(), o.peers.len(), "distinct peers");
        assert!(!got.contains(&at(6)), "self in reply");
    }
}

async fn completed_is_counted_once_per_peer_and_scraped(kind: Kind) {
    let s = subject(kind, limits());
    ann(&s, 1, 1, 10, AnnounceEvent::Started, T0).await;
    let done = ann(&s, 1, 1, 0, AnnounceEvent::Completed, T0 + 1).await;
    assert!(done.counted_completion);
    // A repeated `completed` from a peer already seeding is not another download.
    let again = ann(&s, 1, 1, 0, AnnounceEvent::Completed, T0 + 2).await;
    assert!(!again.counted_completion);
    ann(&s, 1, 2, 10, AnnounceEvent::Started, T0).await;
    assert_eq!(
        scrape_one(&s, 1).await,
        ScrapeStats {
            complete: 1,
            downloaded: 1,
            incomplete: 1
        }
    );
    // Unknown torrents scrape as zeros, in request order.
    let both = s
        .scrape(&[InfoHash([9; 20]), InfoHash([1; 20])])
        .await
        .unwrap();
    assert_eq!(both[0], (InfoHash([9; 20]), ScrapeStats::default()));
    assert_eq!(both[1].0, InfoHash([1; 20]));
    assert_eq!(both[1].1.downloaded, 1);
}

async fn seeder_and_leecher_transitions_keep_counts(kind: Kind) {
    let s = subject(kind, limits());
    ann(&s, 1, 1, 10, AnnounceEvent::Started, T0).await;
    let o = ann(&s, 1, 1, 0, AnnounceEvent::None, T0 + 1).await;
    assert_eq!((o.complete, o.incomplete), (1, 0));
    let o = ann(&s, 1, 1, 3, AnnounceEvent::None, T0 + 2).await;
    assert_eq!((o.complete, o.incomplete), (0, 1));
    assert_eq!(s.stats().await.unwrap().leechers, 1);
    assert_eq!(s.stats().await.unwrap().seeders, 0);
}

async fn stopped_removes_the_peer_and_never_creates_a_swarm(kind: Kind) {
    let s = subject(kind, limits());
    let o = ann(&s, 2, 1, 0, AnnounceEvent::Stopped, T0).await;
    assert!(o.peers.is_empty());
    assert_eq!(s.stats().await.unwrap().torrents, 0);
    ann(&s, 1, 1, 0, AnnounceEvent::Started, T0).await;
    ann(&s, 1, 2, 5, AnnounceEvent::Started, T0).await;
    let o = ann(&s, 1, 1, 0, AnnounceEvent::Stopped, T0 + 1).await;
    assert!(o.peers.is_empty());
    assert_eq!((o.complete, o.incomplete), (0, 1));
    let o = ann(&s, 1, 2, 5, AnnounceEvent::None, T0 + 1).await;
    assert!(o.peers.is_empty(), "the stopped peer is gone");
    ann(&s, 1, 2, 5, AnnounceEvent::Stopped, T0 + 2).await;
    // The last peer's `stopped` drops the swarm at once.
    assert_eq!(s.stats().await.unwrap(), StoreStats::default());
    assert_eq!(scrape_one(&s, 1).await, ScrapeStats::default());
    let r = s.reap(T0 + 3).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (0, 0));
}

async fn expiry_drops_only_peers_past_the_timeout(kind: Kind) {
    let s = subject(kind, limits());
    ann(&s, 1, 1, 0, AnnounceEvent::Started, T0).await;
    ann(&s, 2, 1, 5, AnnounceEvent::Started, T0).await;
    ann(&s, 1, 2, 5, AnnounceEvent::Started, T0 + 50).await;
    assert_eq!(s.reap(T0 + 100).await.unwrap().peers_removed, 0);
    // At T0+120 only the T0 announces are older than 100 s.
    let r = s.reap(T0 + 120).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (2, 1));
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 1
        }
    );
    assert_eq!(scrape_one(&s, 2).await, ScrapeStats::default());
    let o = ann(&s, 1, 3, 5, AnnounceEvent::Started, T0 + 121).await;
    assert_eq!(addrs(&o), HashSet::from([at(2)]));
    let r = s.reap(T0 + 1000).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (2, 1));
    assert_eq!(s.stats().await.unwrap(), StoreStats::default());
}

async fn swarm_torrent_and_address_limits(kind: Kind) {
    let s = subject(kind, limits());
    // Per-IP: two ports of one address fit, a third does not; loopback is exempt.
    let from = |port: u16| addr(&format!("192.0.2.7:{port}"));
    for (n, port) in [(1u8, 1u16), (2, 2)] {
        s.announce(&req(1, n, 5, AnnounceEvent::Started), from(port), T0)
            .await
            .unwrap();
    }
    let third = s
        .announce(&req(1, 3, 5, AnnounceEvent::Started), from(3), T0)
        .await;
    assert_eq!(third.unwrap_err(), AnnounceError::TooManyFromAddress);
    s.announce(&req(1, 2, 5, AnnounceEvent::None), from(2), T0 + 1)
        .await
        .expect("a known address:port re-announces");
    for port in 1..=3 {
        s.announce(
            &req(1, 10 + port as u8, 5, AnnounceEvent::Started),
            addr(&format!("127.0.0.1:{port}")),
            T0,
        )
        .await
        .expect("loopback is exempt from the per-IP cap");
    }
    // Swarm: 6 peers max (5 now).
    ann(&s, 1, 20, 5, AnnounceEvent::Started, T0).await;
    let full = s
        .announce(&req(1, 21, 5, AnnounceEvent::Started), at(21), T0)
        .await;
    assert_eq!(full.unwrap_err(), AnnounceError::SwarmFull);
    ann(&s, 1, 20, 5, AnnounceEvent::None, T0 + 1).await;
    // Torrents: 3 max.
    ann(&s, 2, 1, 5, AnnounceEvent::Started, T0).await;
    ann(&s, 3, 1, 5, AnnounceEvent::Started, T0).await;
    let more = s
        .announce(&req(4, 1, 5, AnnounceEvent::Started), at(1), T0)
        .await;
    assert_eq!(more.unwrap_err(), AnnounceError::TooManyTorrents);
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 3,
            seeders: 0,
            leechers: 8
        }
    );
}

async fn ipv6_peers_are_kept_and_returned(kind: Kind) {
    let s = subject(kind, limits());
    let v6 = addr("[2001:db8::5]:6881");
    s.announce(&req(1, 1, 5, AnnounceEvent::Started), v6, T0)
        .await
        .unwrap();
    let o = ann(&s, 1, 2, 5, AnnounceEvent::Started, T0).await;
    assert_eq!(addrs(&o), HashSet::from([v6]));
    let o = s
        .announce(&req(1, 1, 5, AnnounceEvent::None), v6, T0 + 1)
        .await
        .unwrap();
    assert_eq!(addrs(&o), HashSet::from([at(2)]));
}

async fn health_is_ok_while_the_store_answers(kind: Kind) {
    let s = subject(kind, limits());
    assert_eq!(s.health().await, kpbt_tracker::store::Health::Ok);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $name() { super::$name(super::Kind::Memory).await } )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    if super::require_redis() {
                        super::$name(super::Kind::Redis).await
                    }
                }
            )*
        }
    };
}

contract!(
    peers_find_each_other_never_themselves,
    seeders_get_only_leechers_and_leechers_get_everyone,
    numwant_is_honoured_with_distinct_peers_and_never_self,
    completed_is_counted_once_per_peer_and_scraped,
    seeder_and_leecher_transitions_keep_counts,
    stopped_removes_the_peer_and_never_creates_a_swarm,
    expiry_drops_only_peers_past_the_timeout,
    swarm_torrent_and_address_limits,
    ipv6_peers_are_kept_and_returned,
    health_is_ok_while_the_store_answers,
);

/// Redis down: announces fail fast with "storage unavailable", health says why; when a
/// server is back on the same port, the store recovers by itself.
#[tokio::test]
async fn redis_outage_gives_unavailable_within_the_timeout_and_recovers() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port();
    let spec: StoreSpec = redis.url(0).parse().unwrap();
    let s = SwarmStore::open(&spec, limits(), Duration::from_millis(500)).unwrap();
    ann(&s, 1, 1, 5, AnnounceEvent::Started, T0).await;
    redis.kill();
    let started = std::time::Instant::now();
    let e = s
        .announce(&req(1, 2, 5, AnnounceEvent::Started), at(2), T0)
        .await
        .unwrap_err();
    assert_eq!(e, AnnounceError::Unavailable);
    assert!(e.to_string().contains("storage is unavailable"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let kpbt_tracker::store::Health::Unhealthy(why) = s.health().await else {
        panic!("healthy with Redis down");
    };
    assert!(!why.is_empty());
    assert!(s.scrape(&[InfoHash([1; 20])]).await.is_err());
    let _back = RedisServer::start_on(port).unwrap();
    // The connection manager reconnects on a later call; bounded, no sleeps as sync.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s
            .announce(&req(1, 2, 5, AnnounceEvent::Started), at(2), T0)
            .await
        {
            Ok(o) => {
                // A fresh server without persistence: the swarm starts over.
                assert_eq!((o.complete, o.incomplete), (0, 1));
                break;
            }
            Err(e) => {
                assert_eq!(e, AnnounceError::Unavailable);
                assert!(std::time::Instant::now() < deadline, "no recovery in 10 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(s.health().await, kpbt_tracker::store::Health::Ok);
}
