//! The swarm-store contract: one suite of scenarios, run against the memory store and
//! against the Redis store (a `redis-server` started per test on a free port). Both must
//! give the same peers, counts, scrape figures, expiry, `downloaded` counting and limits.
//!
//! A missing `redis-server` fails the Redis half loudly, unless `KPBT_SKIP_REDIS=1`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest, ScrapeStats};
use kpbt_proto::{InfoHash, PeerId};
use kpbt_testkit::{require_redis, RedisServer};
use kpbt_tracker::labels::{Labels, LabelsConfig};
use kpbt_tracker::store::{
    wants_peer_ids, AnnounceError, ReapReport, StoreLimits, StoreSpec, StoreStats, SwarmInfo,
    SwarmStore,
};

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
    subject_with_labels(kind, limits, Labels::empty())
}

fn subject_with_labels(kind: Kind, limits: StoreLimits, labels: Labels) -> Subject {
    let labels = Arc::new(labels);
    match kind {
        Kind::Memory => Subject {
            store: SwarmStore::memory_with_labels(limits, labels),
            _redis: None,
        },
        Kind::Redis => {
            let redis = RedisServer::start().expect("start redis-server");
            let spec: StoreSpec = redis.url(0).parse().unwrap();
            let store = SwarmStore::open_with_labels(&spec, limits, labels, Duration::from_secs(2))
                .unwrap();
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
    // A non-compact reply: the only kind that carries peer ids.
    let mut r = req(1, 2, 10, AnnounceEvent::Started);
    r.compact = false;
    let b = s.announce(&r, at(2), T0).await.unwrap();
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

/// Peer ids come with the peers when the reply carries them (non-compact without
/// `no_peer_id`), IPv4 and IPv6 alike; the other forms give the same peers.
async fn peer_ids_are_given_when_the_reply_carries_them(kind: Kind) {
    let s = subject(kind, roomy());
    let v6 = |n: u8| addr(&format!("[2001:db8::{n}]:{}", 2000 + u16::from(n)));
    let mut expected = HashSet::new();
    for n in 1..=6 {
        let (left, peer) = if n % 2 == 0 { (0, v6(n)) } else { (5, at(n)) };
        s.announce(&req(1, n, left, AnnounceEvent::Started), peer, T0)
            .await
            .unwrap();
        expected.insert((peer, PeerId([n; 20])));
    }
    let me = at(9);
    let mut r = req(1, 9, 5, AnnounceEvent::Started);
    r.compact = false;
    let o = s.announce(&r, me, T0).await.unwrap();
    let got: HashSet<(SocketAddr, PeerId)> = o.peers.iter().map(|p| (p.addr, p.peer_id)).collect();
    assert_eq!(got, expected);
    let all: HashSet<SocketAddr> = expected.iter().map(|(a, _)| *a).collect();
    for (compact, no_peer_id) in [(true, false), (true, true), (false, true)] {
        let mut r = req(1, 9, 5, AnnounceEvent::None);
        (r.compact, r.no_peer_id) = (compact, no_peer_id);
        let o = s.announce(&r, me, T0 + 1).await.unwrap();
        assert_eq!(addrs(&o), all, "compact={compact} no_peer_id={no_peer_id}");
        assert_eq!(o.peers.len(), all.len());
    }
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

/// A reply is a random part of each side, not the same peers every time: over repeated
/// announces every seeder of a swarm bigger than numwant is handed out.
async fn replies_are_random_parts_of_each_side(kind: Kind) {
    let s = subject(kind, roomy());
    let peer = |n: u8| addr(&format!("10.3.0.{n}:6881"));
    for n in 1..=60u8 {
        let left = if n <= 30 { 0 } else { 5 };
        s.announce(&req(1, n, left, AnnounceEvent::Started), peer(n), T0)
            .await
            .unwrap();
    }
    let mut seeders_seen = HashSet::new();
    for i in 0..20 {
        let mut r = req(1, 200, 5, AnnounceEvent::Started);
        r.numwant = Some(50);
        let o = s.announce(&r, peer(200), T0 + 1 + i).await.unwrap();
        assert_eq!(o.peers.len(), 50);
        seeders_seen.extend(addrs(&o).into_iter().filter(|a| a.ip() < peer(31).ip()));
    }
    // Each reply holds 25 of the 30 seeders; the same 25 twenty times over would be a
    // bias, not chance ((5/30)^20 for any one seeder to be left out every time).
    assert_eq!(
        seeders_seen.len(),
        30,
        "seeders handed out: {}",
        seeders_seen.len()
    );
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

/// The oldest peer coming back does not hide the next oldest from expiry.
async fn peers_expire_after_the_oldest_one_reannounced(kind: Kind) {
    let s = subject(kind, limits());
    ann(&s, 1, 1, 5, AnnounceEvent::Started, T0).await;
    ann(&s, 1, 2, 5, AnnounceEvent::Started, T0 + 10).await;
    ann(&s, 1, 3, 0, AnnounceEvent::Started, T0 + 10).await;
    ann(&s, 1, 1, 5, AnnounceEvent::None, T0 + 20).await;
    // Cutoff T0 + 5: nobody is stale any more.
    assert_eq!(s.reap(T0 + 105).await.unwrap(), ReapReport::default());
    // Cutoff T0 + 15: peers 2 and 3 are, peer 1 is not.
    let r = s.reap(T0 + 115).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (2, 0));
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 1
        }
    );
    let o = ann(&s, 1, 4, 5, AnnounceEvent::Started, T0 + 116).await;
    assert_eq!(addrs(&o), HashSet::from([at(1)]));
    // Cutoff T0 + 25: peer 1 goes too.
    let r = s.reap(T0 + 125).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (1, 0));
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

/// rack-a inside zone-eu's 10/8 (first match wins), zone-eu with an IPv6 network too.
fn rack_labels() -> Labels {
    LabelsConfig(vec![
        ("rack-a".into(), vec!["10.1.0.0/16".into()]),
        (
            "zone-eu".into(),
            vec!["10.0.0.0/8".into(), "fd00::/8".into()],
        ),
    ])
    .compile()
    .unwrap()
}

fn roomy() -> StoreLimits {
    StoreLimits {
        max_peers_per_torrent: 100,
        ..limits()
    }
}

/// Announces peer `id` from `ip` (port 6881) with `numwant`.
async fn ann_from(
    s: &SwarmStore,
    id: u8,
    ip: &str,
    left: u64,
    event: AnnounceEvent,
    numwant: Option<u32>,
) -> kpbt_tracker::store::AnnounceOutcome {
    let mut r = req(1, id, left, event);
    r.numwant = numwant;
    s.announce(&r, from(ip), T0)
        .await
        .unwrap_or_else(|e| panic!("announce of {ip}: {e}"))
}

fn from(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 6881)
}

fn set(ips: &[&str]) -> HashSet<SocketAddr> {
    ips.iter().map(|ip| from(ip)).collect()
}

const RACK_A_LEECHERS: [&str; 3] = ["10.1.0.1", "10.1.0.2", "10.1.0.3"];
const RACK_A_SEEDERS: [&str; 2] = ["10.1.0.11", "10.1.0.12"];
const ZONE_LEECHERS: [&str; 3] = ["10.2.0.1", "10.2.0.2", "fd00::3"];
const ZONE_SEEDERS: [&str; 1] = ["10.2.0.11"];
const OTHER_LEECHERS: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const OTHER_SEEDERS: [&str; 1] = ["192.0.2.11"];

/// A swarm of every kind: labelled and not, seeders and leechers, IPv4 and IPv6.
async fn labelled_swarm(kind: Kind) -> Subject {
    let s = subject_with_labels(kind, roomy(), rack_labels());
    let mut id = 1;
    for (ips, left) in [
        (&RACK_A_LEECHERS[..], 5),
        (&RACK_A_SEEDERS[..], 0),
        (&ZONE_LEECHERS[..], 5),
        (&ZONE_SEEDERS[..], 0),
        (&OTHER_LEECHERS[..], 5),
        (&OTHER_SEEDERS[..], 0),
    ] {
        for ip in ips {
            ann_from(&s, id, ip, left, AnnounceEvent::Completed, Some(0)).await;
            id += 1;
        }
    }
    s
}

/// The peers of a reply as addresses, in reply order.
fn order(o: &kpbt_tracker::store::AnnounceOutcome) -> Vec<SocketAddr> {
    o.peers.iter().map(|p| p.addr).collect()
}

fn assert_distinct_and_not(o: &kpbt_tracker::store::AnnounceOutcome, me: &str) {
    let got = order(o);
    assert_eq!(addrs(o).len(), got.len(), "duplicates in {got:?}");
    assert!(!got.contains(&from(me)), "self in {got:?}");
}

async fn labelled_announcers_get_their_own_label_first(kind: Kind) {
    let s = labelled_swarm(kind).await;
    let me = RACK_A_LEECHERS[0];
    let rack_a: HashSet<SocketAddr> = set(&RACK_A_LEECHERS[1..])
        .union(&set(&RACK_A_SEEDERS))
        .copied()
        .collect();
    // Exactly as many as the label has: all of them, and nobody else.
    let o = ann_from(&s, 1, me, 5, AnnounceEvent::None, Some(4)).await;
    assert_eq!(addrs(&o), rack_a);
    // More: the label's four first, then others (never rack-a again, never itself).
    let o = ann_from(&s, 1, me, 5, AnnounceEvent::None, Some(7)).await;
    assert_distinct_and_not(&o, me);
    let got = order(&o);
    assert_eq!(got.len(), 7);
    assert_eq!(
        got[..4].iter().copied().collect::<HashSet<_>>(),
        rack_a,
        "{got:?}"
    );
    assert!(got[4..].iter().all(|a| !rack_a.contains(a)), "{got:?}");
    // Fewer: only rack-a peers, still picked at random among them.
    let mut seen = HashSet::new();
    for _ in 0..30 {
        let o = ann_from(&s, 1, me, 5, AnnounceEvent::None, Some(2)).await;
        assert_distinct_and_not(&o, me);
        assert_eq!(o.peers.len(), 2);
        assert!(addrs(&o).is_subset(&rack_a), "{:?}", order(&o));
        let mut pair = order(&o);
        pair.sort();
        seen.insert(pair);
    }
    assert!(seen.len() > 1, "always the same two rack-a peers: {seen:?}");
    // Everyone but itself when numwant allows.
    let o = ann_from(&s, 1, me, 5, AnnounceEvent::None, Some(50)).await;
    assert_eq!(o.peers.len(), 11);
    assert_distinct_and_not(&o, me);
    // zone-eu from IPv6: its own label first, whichever family.
    let me6 = ZONE_LEECHERS[2];
    let zone: HashSet<SocketAddr> = set(&ZONE_LEECHERS[..2])
        .union(&set(&ZONE_SEEDERS))
        .copied()
        .collect();
    let o = ann_from(&s, 9, me6, 5, AnnounceEvent::None, Some(3)).await;
    assert_eq!(addrs(&o), zone);
    // Unlabelled announcers pick from the whole swarm as before.
    let o = ann_from(&s, 13, OTHER_LEECHERS[0], 5, AnnounceEvent::None, Some(50)).await;
    assert_eq!(o.peers.len(), 11);
    assert_distinct_and_not(&o, OTHER_LEECHERS[0]);
}

async fn labelled_seeders_get_their_labels_leechers_first_and_no_seeders(kind: Kind) {
    let s = labelled_swarm(kind).await;
    let me = RACK_A_SEEDERS[0];
    // Steady state: rack-a's leechers, then other leechers; seeders never.
    let o = ann_from(&s, 4, me, 0, AnnounceEvent::None, Some(3)).await;
    assert_eq!(addrs(&o), set(&RACK_A_LEECHERS));
    let o = ann_from(&s, 4, me, 0, AnnounceEvent::None, Some(5)).await;
    let got = order(&o);
    assert_eq!(
        got[..3].iter().copied().collect::<HashSet<_>>(),
        set(&RACK_A_LEECHERS)
    );
    let others: HashSet<SocketAddr> = set(&ZONE_LEECHERS)
        .union(&set(&OTHER_LEECHERS))
        .copied()
        .collect();
    assert!(got[3..].iter().all(|a| others.contains(a)), "{got:?}");
    let o = ann_from(&s, 4, me, 0, AnnounceEvent::Completed, Some(50)).await;
    let leechers: HashSet<SocketAddr> = others.union(&set(&RACK_A_LEECHERS)).copied().collect();
    assert_eq!(addrs(&o), leechers);
}

/// rqbit-style magnet clients announce `event=started&left=0` before they have the
/// metadata: they get leechers first, then seeders to fill numwant. With labels, the
/// kind comes first, the label second: rack-a leechers, other leechers, rack-a seeders,
/// other seeders.
async fn left0_started_gets_leechers_then_seeders(kind: Kind) {
    let s = labelled_swarm(kind).await;
    let me = "10.1.0.99";
    let o = ann_from(&s, 99, me, 0, AnnounceEvent::Started, Some(50)).await;
    assert_distinct_and_not(&o, me);
    let got = order(&o);
    let leechers: HashSet<SocketAddr> = set(&RACK_A_LEECHERS)
        .union(&set(&ZONE_LEECHERS))
        .chain(set(&OTHER_LEECHERS).iter())
        .copied()
        .collect();
    assert_eq!(got.len(), 12, "{got:?}");
    let groups: [HashSet<SocketAddr>; 4] = [
        set(&RACK_A_LEECHERS),
        set(&ZONE_LEECHERS)
            .union(&set(&OTHER_LEECHERS))
            .copied()
            .collect(),
        set(&RACK_A_SEEDERS),
        set(&ZONE_SEEDERS)
            .union(&set(&OTHER_SEEDERS))
            .copied()
            .collect(),
    ];
    let mut pos = 0;
    for g in &groups {
        let part: HashSet<SocketAddr> = got[pos..pos + g.len()].iter().copied().collect();
        assert_eq!(&part, g, "group at {pos} in {got:?}");
        pos += g.len();
    }
    // numwant smaller than the leechers: leechers only.
    let o = ann_from(&s, 99, "10.1.0.98", 0, AnnounceEvent::Started, Some(8)).await;
    assert!(addrs(&o).is_subset(&leechers), "{:?}", order(&o));
    assert_eq!(o.peers.len(), 8);
    // Its re-announces, with no event or `completed`: leechers only, whatever numwant.
    for event in [AnnounceEvent::None, AnnounceEvent::Completed] {
        let o = ann_from(&s, 99, me, 0, event, Some(50)).await;
        assert_eq!(addrs(&o), leechers, "{event:?}");
    }
    // Unlabelled, in a plain swarm: the same rule.
    let p = subject(kind, limits());
    ann(&p, 2, 1, 0, AnnounceEvent::Started, T0).await;
    ann(&p, 2, 2, 0, AnnounceEvent::Started, T0).await;
    ann(&p, 2, 3, 5, AnnounceEvent::Started, T0).await;
    let o = ann(&p, 2, 4, 0, AnnounceEvent::Started, T0).await;
    assert_eq!(o.peers[0].addr, at(3));
    assert_eq!(addrs(&o), HashSet::from([at(1), at(2), at(3)]));
    let o = ann(&p, 2, 4, 0, AnnounceEvent::None, T0 + 1).await;
    assert_eq!(addrs(&o), HashSet::from([at(3)]));
}

async fn peers_per_label_follow_joins_moves_stops_and_expiry(kind: Kind) {
    let s = labelled_swarm(kind).await;
    // [none, rack-a, zone-eu]
    assert_eq!(s.label_peers().await.unwrap(), [3, 5, 4]);
    let info = s.swarm(&InfoHash([1; 20])).await.unwrap().unwrap();
    assert_eq!(info.per_label, [3, 5, 4]);
    assert_eq!((info.seeders, info.leechers), (4, 8));
    // A leecher turning seeder stays in its label; a stop leaves it.
    ann_from(&s, 1, RACK_A_LEECHERS[0], 0, AnnounceEvent::None, Some(0)).await;
    ann_from(&s, 7, ZONE_LEECHERS[0], 0, AnnounceEvent::Stopped, None).await;
    assert_eq!(s.label_peers().await.unwrap(), [3, 5, 3]);
    // Another swarm counts too.
    let mut r = req(2, 50, 5, AnnounceEvent::Started);
    r.numwant = Some(0);
    s.announce(&r, from("10.1.7.7"), T0 + 50).await.unwrap();
    assert_eq!(s.label_peers().await.unwrap(), [3, 6, 3]);
    // Expiry: swarm 1's peers (T0) go, swarm 2's (T0 + 50) stays. An announce to
    // swarm 1 first (Redis drops stale peers on announces too, the memory store only
    // when reaping), then the reaper: the same figures either way.
    let mut r = req(1, 60, 5, AnnounceEvent::Started);
    r.numwant = Some(0);
    s.announce(&r, from("192.0.2.60"), T0 + 120).await.unwrap();
    s.reap(T0 + 120).await.unwrap();
    assert_eq!(s.label_peers().await.unwrap(), [1, 1, 0]);
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 2,
            seeders: 0,
            leechers: 2
        }
    );
    let info = s.swarm(&InfoHash([1; 20])).await.unwrap().unwrap();
    assert_eq!(info.per_label, [1, 0, 0]);
    let info = s.swarm(&InfoHash([2; 20])).await.unwrap().unwrap();
    assert_eq!(info.per_label, [0, 1, 0]);
    let r = s.reap(T0 + 1000).await.unwrap();
    assert_eq!(r.torrents_removed, 2);
    assert_eq!(s.label_peers().await.unwrap(), [0, 0, 0]);
    // Unlabelled stores count nothing by label.
    let plain = subject(kind, limits());
    ann(&plain, 1, 1, 5, AnnounceEvent::Started, T0).await;
    assert_eq!(plain.label_peers().await.unwrap(), Vec::<u64>::new());
    let info = plain.swarm(&InfoHash([1; 20])).await.unwrap().unwrap();
    assert_eq!(info.per_label, [1]);
}

async fn swarm_figures_with_the_last_completion_time(kind: Kind) {
    let s = subject(kind, limits());
    assert_eq!(s.swarm(&InfoHash([1; 20])).await.unwrap(), None);
    ann(&s, 1, 1, 10, AnnounceEvent::Started, T0).await;
    ann(&s, 1, 2, 10, AnnounceEvent::Started, T0).await;
    assert_eq!(
        s.swarm(&InfoHash([1; 20])).await.unwrap(),
        Some(SwarmInfo {
            seeders: 0,
            leechers: 2,
            completed: 0,
            last_completed: None,
            per_label: vec![2],
        })
    );
    ann(&s, 1, 1, 0, AnnounceEvent::Completed, T0 + 5).await;
    ann(&s, 1, 2, 0, AnnounceEvent::Completed, T0 + 9).await;
    // A repeated `completed` is not counted, and does not move the time.
    ann(&s, 1, 2, 0, AnnounceEvent::Completed, T0 + 20).await;
    // Seeding from the start (no `completed`) is a seeder, not a completion.
    ann(&s, 1, 3, 0, AnnounceEvent::Started, T0 + 30).await;
    let info = s.swarm(&InfoHash([1; 20])).await.unwrap().unwrap();
    assert_eq!(
        (
            info.seeders,
            info.leechers,
            info.completed,
            info.last_completed
        ),
        (3, 0, 2, Some(T0 + 9))
    );
    for n in 1..=3 {
        ann(&s, 1, n, 0, AnnounceEvent::Stopped, T0 + 40).await;
    }
    assert_eq!(s.swarm(&InfoHash([1; 20])).await.unwrap(), None);
}

/// Many announces at once (the Redis store sends those waiting together as one script
/// call): each is applied whole and in turn, as if alone — every reply counts the peers
/// before it plus itself, so the counts are exactly 1..=N, and nothing is lost.
async fn concurrent_announces_apply_one_at_a_time(kind: Kind) {
    const N: u16 = 300;
    let s = subject(
        kind,
        StoreLimits {
            max_peers_per_torrent: 1000,
            ..roomy()
        },
    );
    let announces = (0..N).map(|i| {
        let s = &s;
        async move {
            let mut r = req(7, 0, if i % 3 == 0 { 0 } else { 5 }, AnnounceEvent::Started);
            r.peer_id = PeerId([(i % 251) as u8; 20]);
            r.numwant = Some(10);
            let peer = addr(&format!("10.1.{}.{}:6881", i / 200, i % 200 + 1));
            s.announce(&r, peer, T0).await.unwrap()
        }
    });
    let replies = futures_util::future::join_all(announces).await;
    let mut seen: Vec<u32> = replies.iter().map(|o| o.complete + o.incomplete).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=u32::from(N)).collect::<Vec<_>>());
    for o in &replies {
        assert!(o.peers.len() <= 10);
    }
    let st = scrape_one(&s, 7).await;
    assert_eq!((st.complete, st.incomplete), (100, 200));
}

/// Announces that reach the store at the same moment (on Redis: batched into one script
/// call) create swarms up to the torrent cap and no further, each swarm wholly in or
/// out, and stops that empty swarms free their places; the store's totals always equal
/// the sums of the swarms' own figures.
async fn concurrent_joins_and_stops_keep_totals_and_the_torrent_cap(kind: Kind) {
    const HASHES: u8 = 40;
    const CAP: usize = 20;
    let s = subject(
        kind,
        StoreLimits {
            max_torrents: CAP,
            max_peers_per_torrent: 1000,
            ..roomy()
        },
    );
    // Peer k (0..3) of hash h: seeders are one in three.
    let peer = |h: u8, k: u8| addr(&format!("10.2.{h}.{}:6881", k + 1));
    let join = |h: u8, k: u8| {
        let s = &s;
        async move {
            let mut r = req(
                h,
                h.wrapping_mul(3).wrapping_add(k),
                if k == 0 { 0 } else { 5 },
                AnnounceEvent::Started,
            );
            r.numwant = Some(5);
            (h, s.announce(&r, peer(h, k), T0).await)
        }
    };
    // Every hash's sums against the store's totals.
    async fn totals_match(s: &SwarmStore) -> StoreStats {
        let hashes: Vec<InfoHash> = (1..=HASHES).map(|h| InfoHash([h; 20])).collect();
        let mut sums = StoreStats::default();
        for (_, st) in s.scrape(&hashes).await.unwrap() {
            if st.complete + st.incomplete > 0 {
                sums.torrents += 1;
            }
            sums.seeders += u64::from(st.complete);
            sums.leechers += u64::from(st.incomplete);
        }
        assert_eq!(
            s.stats().await.unwrap(),
            sums,
            "totals against the swarms' sums"
        );
        sums
    }

    let joins = (1..=HASHES).flat_map(|h| (0..3).map(move |k| (h, k)));
    let replies = futures_util::future::join_all(joins.map(|(h, k)| join(h, k))).await;
    let mut accepted = std::collections::BTreeMap::<u8, usize>::new();
    for (h, r) in &replies {
        match r {
            Ok(_) => *accepted.entry(*h).or_default() += 1,
            Err(AnnounceError::TooManyTorrents) => {}
            Err(e) => panic!("join to swarm {h}: {e}"),
        }
    }
    assert_eq!(accepted.len(), CAP, "swarms created up to the cap");
    assert!(
        accepted.values().all(|&n| n == 3),
        "each swarm wholly in or out: {accepted:?}"
    );
    assert_eq!(
        totals_match(&s).await,
        StoreStats {
            torrents: CAP as u64,
            seeders: CAP as u64,
            leechers: 2 * CAP as u64
        }
    );

    // Half the swarms stop every peer while the refused hashes try again.
    let (gone, _kept): (Vec<u8>, Vec<u8>) = accepted.keys().partition(|&&h| h % 2 == 0);
    let refused: Vec<u8> = (1..=HASHES).filter(|h| !accepted.contains_key(h)).collect();
    let stops = gone
        .iter()
        .flat_map(|&h| (0..3).map(move |k| (h, k)))
        .map(|(h, k)| {
            let s = &s;
            async move {
                let r = req(
                    h,
                    h.wrapping_mul(3).wrapping_add(k),
                    if k == 0 { 0 } else { 5 },
                    AnnounceEvent::Stopped,
                );
                s.announce(&r, peer(h, k), T0 + 1).await.unwrap();
            }
        });
    let retries = refused.iter().map(|&h| join(h, 0));
    let (_, retried) = futures_util::future::join(
        futures_util::future::join_all(stops),
        futures_util::future::join_all(retries),
    )
    .await;
    let now_in = retried.iter().filter(|(_, r)| r.is_ok()).count();
    let after = totals_match(&s).await;
    assert_eq!(after.torrents as usize, CAP - gone.len() + now_in);
    assert!(after.torrents as usize <= CAP);
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
    concurrent_joins_and_stops_keep_totals_and_the_torrent_cap,
    replies_are_random_parts_of_each_side,
    peers_find_each_other_never_themselves,
    peer_ids_are_given_when_the_reply_carries_them,
    seeders_get_only_leechers_and_leechers_get_everyone,
    numwant_is_honoured_with_distinct_peers_and_never_self,
    completed_is_counted_once_per_peer_and_scraped,
    seeder_and_leecher_transitions_keep_counts,
    stopped_removes_the_peer_and_never_creates_a_swarm,
    expiry_drops_only_peers_past_the_timeout,
    peers_expire_after_the_oldest_one_reannounced,
    swarm_torrent_and_address_limits,
    ipv6_peers_are_kept_and_returned,
    health_is_ok_while_the_store_answers,
    labelled_announcers_get_their_own_label_first,
    labelled_seeders_get_their_labels_leechers_first_and_no_seeders,
    left0_started_gets_leechers_then_seeders,
    peers_per_label_follow_joins_moves_stops_and_expiry,
    swarm_figures_with_the_last_completion_time,
    concurrent_announces_apply_one_at_a_time,
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

/// The Redis store's label bookkeeping leaves nothing behind: a label's zsets mirror the
/// main ones while peers are in them, and once every peer has stopped or expired only the
/// bucket's totals hash remains, with no per-label fields.
#[tokio::test]
async fn redis_label_keys_empty_with_their_swarm() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let spec: StoreSpec = redis.url(0).parse().unwrap();
    let s = SwarmStore::open_with_labels(
        &spec,
        roomy(),
        Arc::new(rack_labels()),
        Duration::from_secs(2),
    )
    .unwrap();
    // An integer reply, or a bulk string holding one (HGET); a missing field is 0.
    let int = |args: &[&str]| -> i64 {
        let r = redis.cmd(args).unwrap();
        let text = String::from_utf8_lossy(&r).into_owned();
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or("");
        match first.as_bytes().first() {
            Some(b':') => first[1..].parse().unwrap(),
            Some(b'$') if first == "$-1" => 0,
            Some(b'$') => lines.next().unwrap().parse().unwrap(),
            _ => panic!("{args:?}: {text}"),
        }
    };
    let key = |suffix: &str| format!("{{{}}}{suffix}", "01".repeat(20));
    ann_from(&s, 1, "10.1.0.1", 5, AnnounceEvent::Started, None).await;
    ann_from(&s, 2, "10.1.0.2", 5, AnnounceEvent::Started, None).await;
    ann_from(&s, 3, "fd00::3", 0, AnnounceEvent::Started, None).await;
    ann_from(&s, 4, "192.0.2.4", 5, AnnounceEvent::Started, None).await;
    assert_eq!(int(&["ZCARD", &key("l:rack-a")]), 2);
    assert_eq!(int(&["ZCARD", &key("s:zone-eu")]), 1);
    assert_eq!(int(&["HGET", "kpbt:st", "n:rack-a"]), 2);
    // A leecher that completes moves to its label's seeders.
    ann_from(&s, 1, "10.1.0.1", 0, AnnounceEvent::Completed, None).await;
    assert_eq!(int(&["ZCARD", &key("l:rack-a")]), 1);
    assert_eq!(int(&["ZCARD", &key("s:rack-a")]), 1);
    assert_eq!(int(&["HGET", "kpbt:st", "n:rack-a"]), 2);
    // A stop, then expiry for the rest (the reaper's own script).
    ann_from(&s, 2, "10.1.0.2", 5, AnnounceEvent::Stopped, None).await;
    assert_eq!(int(&["EXISTS", &key("l:rack-a")]), 0);
    assert_eq!(int(&["HGET", "kpbt:st", "n:rack-a"]), 1);
    let r = s.reap(T0 + 1000).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (3, 1));
    assert_eq!(int(&["DBSIZE"]), 1, "only the bucket totals remain");
    assert_eq!(
        int(&["HLEN", "kpbt:st"]),
        3,
        "t, s and l; no n:LABEL fields"
    );
    assert_eq!(s.label_peers().await.unwrap(), [0, 0, 0]);
}

/// A fresh redis-server and the store on it.
fn redis_store() -> (RedisServer, SwarmStore) {
    let redis = RedisServer::start().expect("start redis-server");
    let spec: StoreSpec = redis.url(0).parse().unwrap();
    let s = SwarmStore::open(&spec, limits(), Duration::from_secs(2)).unwrap();
    (redis, s)
}

/// The index score of swarm `h` (the info hash of `h` repeated) on a single Redis;
/// `None` when it is not in the index.
fn index_score(redis: &RedisServer, h: u8) -> Option<u32> {
    let member = hex::encode([h; 20]);
    let r = redis.cmd(&["ZSCORE", "kpbt:ix", &member]).unwrap();
    // A bulk string ("$10\r\n1800000000\r\n"), or a null ("$-1\r\n").
    String::from_utf8_lossy(&r)
        .split("\r\n")
        .nth(1)
        .and_then(|t| t.parse().ok())
}

/// Redis drops stale peers on announces too, once its index says a swarm may hold some:
/// the index score is a lower bound of the swarm's oldest last-seen that the announce
/// after a trim sets exactly, and the totals stay exact.
#[tokio::test]
async fn redis_announce_trims_stale_peers_by_the_index() {
    if !require_redis() {
        return;
    }
    let (redis, s) = redis_store();
    let score = || index_score(&redis, 1).expect("swarm 1 in the index");
    ann(&s, 1, 1, 5, AnnounceEvent::Started, T0).await;
    ann(&s, 1, 2, 5, AnnounceEvent::Started, T0 + 10).await;
    ann(&s, 1, 3, 0, AnnounceEvent::Started, T0 + 10).await;
    assert_eq!(score(), T0);
    ann(&s, 1, 1, 5, AnnounceEvent::None, T0 + 20).await;
    assert!(
        score() <= T0 + 10,
        "index {} above the oldest peer",
        score()
    );
    // Cutoff T0 + 15: peers 2 and 3 leave as peer 4 arrives.
    let o = ann(&s, 1, 4, 5, AnnounceEvent::Started, T0 + 115).await;
    assert_eq!((o.complete, o.incomplete), (0, 2));
    assert_eq!(addrs(&o), HashSet::from([at(1)]));
    assert_eq!(score(), T0 + 20);
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 2
        }
    );
    assert_eq!(s.reap(T0 + 115).await.unwrap(), ReapReport::default());
}

/// A known peer's event-less re-announce is served by plain commands, without the
/// announce script; everything else (a `started`, a newcomer without an event, a side
/// change, a new peer id, a reply with ids, stale peers to trim) goes to the script,
/// and every answer is the one the script gives.
#[tokio::test]
async fn redis_reannounces_skip_the_script_and_the_rest_do_not() {
    if !require_redis() {
        return;
    }
    let (redis, s) = redis_store();
    let scripts = || redis.command_calls("evalsha").unwrap();
    // Runs `f` and tells whether it called the script.
    macro_rules! scripted {
        ($e:expr) => {{
            let before = scripts();
            let out = $e;
            (out, scripts() > before)
        }};
    }
    let (_, used) = scripted!(ann(&s, 1, 1, 5, AnnounceEvent::Started, T0).await);
    assert!(used, "a started goes to the script");
    let (_, used) = scripted!(ann(&s, 1, 2, 0, AnnounceEvent::None, T0).await);
    assert!(used, "a newcomer without an event goes to the script");
    ann(&s, 1, 3, 5, AnnounceEvent::Started, T0).await;
    // A second seeder, on IPv6.
    let v6 = addr("[2001:db8::5]:1005");
    s.announce(&req(1, 5, 0, AnnounceEvent::Started), v6, T0)
        .await
        .unwrap();

    let (o, used) = scripted!(ann(&s, 1, 1, 5, AnnounceEvent::None, T0 + 10).await);
    assert!(!used, "a re-announce skips the script");
    assert_eq!((o.complete, o.incomplete), (2, 2));
    assert_eq!(addrs(&o), HashSet::from([at(2), at(3), v6]));
    let (o, used) = scripted!(ann(&s, 1, 2, 0, AnnounceEvent::None, T0 + 10).await);
    assert!(!used, "a seeder's re-announce too");
    assert_eq!(addrs(&o), HashSet::from([at(1), at(3)]), "leechers only");
    let mut r = req(1, 5, 0, AnnounceEvent::None);
    r.numwant = Some(1);
    let (o, used) = scripted!(s.announce(&r, v6, T0 + 10).await.unwrap());
    assert!(!used, "an IPv6 seeder's re-announce too");
    assert_eq!(o.peers.len(), 1);
    assert!([at(1), at(3)].contains(&o.peers[0].addr));
    // The refreshed last-seen is real: at T0 + 105 (cutoff T0 + 5) only peer 3 is stale.
    let r = s.reap(T0 + 105).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (1, 0));
    s.announce(&req(1, 5, 0, AnnounceEvent::Stopped), v6, T0 + 105)
        .await
        .unwrap();

    // Leecher 1 finishes without a `completed`: a side change, for the script.
    let (o, used) = scripted!(ann(&s, 1, 1, 0, AnnounceEvent::None, T0 + 106).await);
    assert!(used, "a side change goes to the script");
    assert_eq!((o.complete, o.incomplete), (2, 0));
    // A restarted client on the same address and port, with a new id.
    let r = req(1, 7, 0, AnnounceEvent::None);
    let (o, used) = scripted!(s.announce(&r, at(1), T0 + 107).await.unwrap());
    assert!(used, "a new peer id goes to the script");
    assert_eq!((o.complete, o.incomplete), (2, 0));
    // Peer 3, reaped above, comes back asking for a reply with ids.
    let mut r = req(1, 3, 5, AnnounceEvent::None);
    r.compact = false;
    let (o, used) = scripted!(s.announce(&r, at(3), T0 + 107).await.unwrap());
    assert!(used, "a reply with ids comes from the script");
    assert_eq!(o.peers.len(), 2);
    let ids: HashSet<PeerId> = o.peers.iter().map(|p| p.peer_id).collect();
    assert_eq!(ids, HashSet::from([PeerId([7; 20]), PeerId([2; 20])]));

    // Nobody announces for a while: at T0 + 250 (cutoff T0 + 150) every peer is stale,
    // and peer 3's re-announce has the others trimmed (by the script) before it is
    // answered.
    let (o, used) = scripted!(ann(&s, 1, 3, 5, AnnounceEvent::None, T0 + 250).await);
    assert!(used, "stale peers to trim go to the script");
    assert_eq!((o.complete, o.incomplete), (0, 1));
    assert!(o.peers.is_empty());
    assert_eq!(
        s.stats().await.unwrap(),
        StoreStats {
            torrents: 1,
            seeders: 0,
            leechers: 1
        }
    );
}

/// An instance whose clock is behind the swarm's index score (every peer was last seen
/// later than it thinks it is): its re-announce goes to the script, which lowers the
/// index to the peer's new last-seen, so the peer still expires on time; the pipeline
/// before it never lowers a score.
#[tokio::test]
async fn redis_reannounce_from_a_clock_behind_keeps_the_index_a_lower_bound() {
    if !require_redis() {
        return;
    }
    let (redis, s) = redis_store();
    let index = || index_score(&redis, 1);
    ann(&s, 1, 1, 5, AnnounceEvent::Started, T0 + 50).await;
    ann(&s, 1, 2, 5, AnnounceEvent::Started, T0 + 50).await;
    assert_eq!(index(), Some(T0 + 50));
    let before = redis.command_calls("evalsha").unwrap();
    let o = ann(&s, 1, 1, 5, AnnounceEvent::None, T0 + 40).await;
    assert!(
        redis.command_calls("evalsha").unwrap() > before,
        "the script ran"
    );
    assert_eq!((o.complete, o.incomplete), (0, 2));
    assert_eq!(index(), Some(T0 + 40));
    // Cutoff T0 + 41: peer 1 (last seen T0 + 40) is stale, peer 2 (T0 + 50) is not.
    let r = s.reap(T0 + 141).await.unwrap();
    assert_eq!((r.peers_removed, r.torrents_removed), (1, 0));
}

/// The memory store as the oracle: one long pseudo-random run of announces (joins,
/// re-announces, side changes, completions, stops, refusals by every limit, labelled and
/// not, IPv4 and IPv6, every reply form) and reaps, the same against both stores, must
/// give the same answers and the same figures throughout. The reaper runs whenever time
/// moves on, before any announce could meet a stale peer (the Redis store would drop it
/// on the announce, the memory store only when reaping).
#[tokio::test]
async fn redis_and_memory_agree_over_a_random_run() {
    if !require_redis() {
        return;
    }
    let limits = StoreLimits {
        max_torrents: 3,
        max_peers_per_torrent: 9,
        max_peers_per_ip: 2,
        numwant_default: 50,
        numwant_max: 200,
        peer_timeout_secs: 30,
    };
    let mem = subject_with_labels(Kind::Memory, limits, rack_labels());
    let red = subject_with_labels(Kind::Redis, limits, rack_labels());
    // Three ports on some addresses, so the per-address cap (2) refuses the third.
    let ips = [
        "10.1.0.1",
        "10.1.0.2",
        "10.2.0.1",
        "fd00::3",
        "192.0.2.1",
        "2001:db8::9",
    ];
    let peers: Vec<SocketAddr> = ips
        .iter()
        .flat_map(|ip| (1..=3).map(move |port| SocketAddr::new(ip.parse().unwrap(), port)))
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        // xorshift64*: deterministic, so a failure replays.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    };
    let mut now = T0;
    for step in 0..3000 {
        if rnd(8) == 0 {
            now += 1 + rnd(6) as u32;
            let (a, b) = (mem.reap(now).await.unwrap(), red.reap(now).await.unwrap());
            assert_eq!(a, b, "reap at step {step}");
        }
        let n = rnd(peers.len() as u64) as usize;
        let mut r = req(
            1 + rnd(4) as u8,
            n as u8,
            [0, 5][rnd(2) as usize],
            AnnounceEvent::None,
        );
        r.event = [
            AnnounceEvent::None,
            AnnounceEvent::None,
            AnnounceEvent::Started,
            AnnounceEvent::Completed,
            AnnounceEvent::Stopped,
        ][rnd(5) as usize];
        r.numwant = [None, Some(0), Some(1), Some(3)][rnd(4) as usize];
        (r.compact, r.no_peer_id) = [(true, false), (false, false), (false, true)][rnd(3) as usize];
        let (a, b) = (
            mem.announce(&r, peers[n], now).await,
            red.announce(&r, peers[n], now).await,
        );
        let what = format!(
            "step {step}: {:?} from {} to {}",
            r.event, peers[n], r.info_hash.0[0]
        );
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    (
                        a.complete,
                        a.incomplete,
                        a.counted_completion,
                        a.peers.len()
                    ),
                    (
                        b.complete,
                        b.incomplete,
                        b.counted_completion,
                        b.peers.len()
                    ),
                    "{what}"
                );
                let got = addrs(&b);
                assert_eq!(got.len(), b.peers.len(), "duplicates, {what}");
                assert!(!got.contains(&peers[n]), "self in the reply, {what}");
                if wants_peer_ids(&r) {
                    for p in &b.peers {
                        let i = peers.iter().position(|q| *q == p.addr).unwrap();
                        assert_eq!(p.peer_id, PeerId([i as u8; 20]), "{what}");
                    }
                }
            }
            (a, b) => assert_eq!(a.map(drop), b.map(drop), "{what}"),
        }
        if step % 16 == 0 {
            assert_eq!(
                mem.stats().await.unwrap(),
                red.stats().await.unwrap(),
                "{what}"
            );
            assert_eq!(
                mem.label_peers().await.unwrap(),
                red.label_peers().await.unwrap(),
                "{what}"
            );
        }
    }
    let hashes: Vec<InfoHash> = (1..=4).map(|h| InfoHash([h; 20])).collect();
    assert_eq!(
        mem.scrape(&hashes).await.unwrap(),
        red.scrape(&hashes).await.unwrap()
    );
    for h in &hashes {
        assert_eq!(mem.swarm(h).await.unwrap(), red.swarm(h).await.unwrap());
    }
    // Some announces were the re-announce pipeline's (its MULTI), some the script's.
    let redis = red._redis.as_ref().unwrap();
    assert!(
        redis.command_calls("multi").unwrap() > 100,
        "the pipeline served too few"
    );
    assert!(
        redis.command_calls("evalsha").unwrap() > 100,
        "the script served too few"
    );
    // Everyone expires: both end empty.
    let (a, b) = (
        mem.reap(now + 1000).await.unwrap(),
        red.reap(now + 1000).await.unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(red.stats().await.unwrap(), StoreStats::default());
}
