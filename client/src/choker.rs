//! Choker: decides which peers we upload to. Regular slots go to the interested peers
//! that reciprocate best (download rate from them while leeching, upload rate to them
//! while seeding); one optimistic slot rotates every 30 s so newcomers get a chance.
//! Pure: the caller injects the time and the per-peer rates.

use crate::rng::XorShift64;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::picker::PeerKey;

/// How often the caller should re-run [`Choker::decide`] (BEP 3 suggests 10 s).
pub const RECHOKE_INTERVAL: Duration = Duration::from_secs(10);
/// How long an optimistic unchoke lasts before another peer gets the slot.
pub const OPTIMISTIC_INTERVAL: Duration = Duration::from_secs(30);

/// What the choker needs to know about one connected peer.
#[derive(Clone, Debug)]
pub struct PeerSnapshot {
    pub key: PeerKey,
    pub interested: bool,
    /// Bytes per second we receive from this peer.
    pub download_rate: u64,
    /// Bytes per second we send to this peer.
    pub upload_rate: u64,
}

/// Per-peer transfer rates over the last rechoke interval, from cumulative byte
/// counters (what [`PeerSnapshot`] needs).
#[derive(Debug, Default)]
pub struct RateMeter {
    last: HashMap<PeerKey, (u64, u64)>,
    rates: HashMap<PeerKey, (u64, u64)>,
}

impl RateMeter {
    /// Takes each connected peer's (downloaded, uploaded) totals `secs` after the last
    /// sample; peers not listed are forgotten.
    pub fn sample(&mut self, secs: f64, counters: impl IntoIterator<Item = (PeerKey, (u64, u64))>) {
        let secs = secs.max(0.001);
        self.rates.clear();
        let mut seen = HashMap::new();
        for (k, now) in counters {
            let before = self.last.get(&k).copied().unwrap_or((0, 0));
            let rate = |n: u64, b: u64| (n.saturating_sub(b) as f64 / secs) as u64;
            self.rates
                .insert(k, (rate(now.0, before.0), rate(now.1, before.1)));
            seen.insert(k, now);
        }
        self.last = seen;
    }

    /// (download, upload) bytes/s of `peer` over the last interval.
    pub fn rates(&self, peer: PeerKey) -> (u64, u64) {
        self.rates.get(&peer).copied().unwrap_or((0, 0))
    }
}

#[derive(Debug)]
pub struct Choker {
    regular_slots: usize,
    optimistic: Option<PeerKey>,
    optimistic_since: Option<Instant>,
    rng: XorShift64,
}

impl Choker {
    pub fn new(regular_slots: usize, seed: u64) -> Self {
        Choker {
            regular_slots,
            optimistic: None,
            optimistic_since: None,
            rng: XorShift64::new(seed),
        }
    }

    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// Returns the set of peers that should be unchoked now; everyone else is choked.
    pub fn decide(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[PeerSnapshot],
    ) -> HashSet<PeerKey> {
        let mut interested: Vec<&PeerSnapshot> = peers.iter().filter(|p| p.interested).collect();
        let rate = |p: &PeerSnapshot| {
            if seeding {
                p.upload_rate
            } else {
                p.download_rate
            }
        };
        // Stable tie-break by key so equal rates don't flap between calls.
        interested.sort_by(|a, b| rate(b).cmp(&rate(a)).then(a.key.cmp(&b.key)));
        let mut unchoked: HashSet<PeerKey> = interested
            .iter()
            .take(self.regular_slots)
            .map(|p| p.key)
            .collect();

        let current_valid = self
            .optimistic
            .is_some_and(|k| interested.iter().any(|p| p.key == k) && !unchoked.contains(&k));
        let expired = self
            .optimistic_since
            .is_none_or(|t| now.saturating_duration_since(t) >= OPTIMISTIC_INTERVAL);
        if !current_valid || expired {
            let pool: Vec<PeerKey> = interested
                .iter()
                .map(|p| p.key)
                .filter(|k| !unchoked.contains(k) && Some(*k) != self.optimistic)
                .collect();
            let next = if pool.is_empty() {
                // Nobody else to rotate to: keep the current one if still eligible.
                self.optimistic.filter(|_| current_valid)
            } else {
                Some(pool[(self.rng.next_u64() % pool.len() as u64) as usize])
            };
            if next != self.optimistic || self.optimistic_since.is_none() || expired {
                self.optimistic_since = Some(now);
            }
            self.optimistic = next;
        }
        if let Some(k) = self.optimistic {
            unchoked.insert(k);
        }
        unchoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_measures_the_last_interval_and_forgets_departed_peers() {
        let mut m = RateMeter::default();
        m.sample(10.0, [(1, (1000, 0)), (2, (0, 500))]);
        assert_eq!((m.rates(1), m.rates(2)), ((100, 0), (0, 50)));
        m.sample(10.0, [(1, (3000, 100))]);
        assert_eq!(m.rates(1), (200, 10));
        assert_eq!(m.rates(2), (0, 0), "peer 2 left");
        // A peer that comes back starts from zero, and counters never go backwards.
        m.sample(5.0, [(2, (100, 0)), (1, (10, 100))]);
        assert_eq!((m.rates(2), m.rates(1)), ((20, 0), (0, 0)));
    }

    fn peer(key: PeerKey, interested: bool, down: u64, up: u64) -> PeerSnapshot {
        PeerSnapshot {
            key,
            interested,
            download_rate: down,
            upload_rate: up,
        }
    }

    #[test]
    fn leeching_unchokes_best_uploaders_to_us_plus_one_optimistic() {
        let mut c = Choker::new(2, 42);
        let peers = vec![
            peer(1, true, 100, 0),
            peer(2, true, 900, 0),
            peer(3, true, 500, 0),
            peer(4, true, 10, 0),
            peer(5, false, 10_000, 0), // not interested: never unchoked
        ];
        let t0 = Instant::now();
        let u = c.decide(t0, false, &peers);
        assert!(u.contains(&2) && u.contains(&3));
        assert!(!u.contains(&5));
        assert_eq!(u.len(), 3);
        let opt = c.optimistic().unwrap();
        assert!(opt == 1 || opt == 4);
    }

    #[test]
    fn seeding_ranks_by_upload_rate() {
        let mut c = Choker::new(1, 1);
        let peers = vec![
            peer(1, true, 0, 5),
            peer(2, true, 1000, 1),
            peer(3, true, 0, 50),
        ];
        let u = c.decide(Instant::now(), true, &peers);
        assert!(u.contains(&3));
        assert!(!u.contains(&2) || c.optimistic() == Some(2));
    }

    #[test]
    fn optimistic_slot_rotates_only_after_30s() {
        let mut c = Choker::new(0, 7);
        let peers: Vec<_> = (1..=5).map(|k| peer(k, true, 0, 0)).collect();
        let t0 = Instant::now();
        c.decide(t0, false, &peers);
        let first = c.optimistic().unwrap();
        for s in [10, 20, 29] {
            c.decide(t0 + Duration::from_secs(s), false, &peers);
            assert_eq!(c.optimistic(), Some(first), "kept at {s}s");
        }
        c.decide(t0 + Duration::from_secs(30), false, &peers);
        let second = c.optimistic().unwrap();
        assert_ne!(second, first, "rotated at 30s to somebody else");
        c.decide(t0 + Duration::from_secs(45), false, &peers);
        assert_eq!(c.optimistic(), Some(second));
    }

    #[test]
    fn optimistic_replaced_when_it_leaves_or_loses_interest() {
        let mut c = Choker::new(0, 3);
        let t0 = Instant::now();
        let mut peers: Vec<_> = (1..=3).map(|k| peer(k, true, 0, 0)).collect();
        c.decide(t0, false, &peers);
        let first = c.optimistic().unwrap();
        peers.retain(|p| p.key != first);
        let u = c.decide(t0 + Duration::from_secs(1), false, &peers);
        let second = c.optimistic().unwrap();
        assert_ne!(second, first);
        assert_eq!(u, HashSet::from([second]));
    }

    #[test]
    fn no_interested_peers_means_nobody_unchoked() {
        let mut c = Choker::new(4, 3);
        let peers = vec![peer(1, false, 5, 5)];
        assert!(c.decide(Instant::now(), false, &peers).is_empty());
    }
}
