//! The in-process swarm store (dashmap): torrent → peers in this process's memory, behind
//! the same `announce` / `scrape` / `reap` calls as the seam, answered synchronously.
//!
//! Times are [`Secs`] passed in by the caller, which keeps per-peer state small and lets
//! tests drive reaping without sleeping.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest, ReplyPeer, ScrapeStats};
use kpbt_proto::{InfoHash, PeerId};

use super::{
    AnnounceError, AnnounceOutcome, ReapReport, Secs, StoreLimits, StoreStats, SwarmInfo, Wanted,
};
use crate::labels::{LabelId, Labels};
use crate::peers::{IpBytes, Peer, PeerList, Upsert};

#[derive(Debug, Default)]
struct Swarm {
    v4: PeerList<[u8; 4]>,
    v6: PeerList<[u8; 16]>,
    seeders: u32,
    /// `completed` events seen (the scrape `downloaded` figure).
    completed: u32,
    /// When the last counted `completed` arrived (0: never).
    last_completed: Secs,
}

impl Swarm {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn leechers(&self) -> u32 {
        self.len() as u32 - self.seeders
    }
}

/// Which list and slot the announcing peer occupies, so selection can skip it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// All torrents and their peers.
pub struct MemoryStore {
    swarms: DashMap<InfoHash, Swarm>,
    /// Hashes (ip, port) for the per-swarm indexes; randomly keyed against flooding.
    hasher: RandomState,
    limits: StoreLimits,
    // Totals kept exact on every change so /stats and gauges need no full scan.
    torrents: AtomicUsize,
    seeders: AtomicI64,
    leechers: AtomicI64,
    labels: Arc<Labels>,
    /// Peers per label, indexed by [`LabelId`] (0: none), kept exact like the totals.
    label_peers: Box<[AtomicI64]>,
}

impl MemoryStore {
    pub fn new(limits: StoreLimits) -> Self {
        Self::with_labels(limits, Arc::new(Labels::empty()))
    }

    /// A store that groups peers by `labels` (replies list the announcer's label first).
    pub fn with_labels(limits: StoreLimits, labels: Arc<Labels>) -> Self {
        MemoryStore {
            swarms: DashMap::new(),
            hasher: RandomState::new(),
            limits,
            torrents: AtomicUsize::new(0),
            seeders: AtomicI64::new(0),
            leechers: AtomicI64::new(0),
            label_peers: (0..=labels.len()).map(|_| AtomicI64::new(0)).collect(),
            labels,
        }
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Records an announce from `peer` (the address peers should connect to) at `now`.
    pub fn announce(
        &self,
        req: &AnnounceRequest,
        peer: SocketAddr,
        now: Secs,
    ) -> Result<AnnounceOutcome, AnnounceError> {
        let ip = peer.ip().to_canonical();
        let port = peer.port();
        if req.event == AnnounceEvent::Stopped {
            return Ok(self.stop(&req.info_hash, ip, port));
        }
        let mut swarm = match self.swarms.entry(req.info_hash) {
            Entry::Occupied(e) => e.into_ref(),
            Entry::Vacant(e) => {
                let max = self.limits.max_torrents;
                if self
                    .torrents
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_err()
                {
                    return Err(AnnounceError::TooManyTorrents);
                }
                e.insert(Swarm::default())
            }
        };
        let swarm = &mut *swarm;
        let seeder = req.left == 0;
        let label = self.labels.lookup(ip);
        let room = self.limits.max_peers_per_torrent;
        // Loopback means the same host: tests, benchmarks, or a proxy without
        // real_ip_header, where a per-address cap would count everyone as one.
        let per_ip = if ip.is_loopback() {
            usize::MAX
        } else {
            self.limits.max_peers_per_ip
        };
        let (upsert, family, slot) = match ip {
            IpAddr::V4(v4) => {
                let max = room.saturating_sub(swarm.v6.len());
                let (u, s) = swarm.v4.upsert(
                    &self.hasher,
                    record(v4.octets(), port, seeder, label, req.peer_id, now),
                    max,
                    per_ip,
                );
                (u, Family::V4, s)
            }
            IpAddr::V6(v6) => {
                let max = room.saturating_sub(swarm.v4.len());
                let (u, s) = swarm.v6.upsert(
                    &self.hasher,
                    record(v6.octets(), port, seeder, label, req.peer_id, now),
                    max,
                    per_ip,
                );
                (u, Family::V6, s)
            }
        };
        let was_seeder = match upsert {
            // The swarm may have been created for this announce; an empty swarm is
            // impossible here since max_peers_per_torrent >= 1, so nothing leaks.
            Upsert::Full => return Err(AnnounceError::SwarmFull),
            Upsert::IpFull => return Err(AnnounceError::TooManyFromAddress),
            Upsert::Inserted => {
                self.label_peers[label.index()].fetch_add(1, Ordering::Relaxed);
                None
            }
            Upsert::Updated { was_seeder } => Some(was_seeder),
        };
        match (was_seeder, seeder) {
            (None, true) => self.add_counts(1, 0, &mut swarm.seeders, 1),
            (None, false) => self.add_counts(0, 1, &mut swarm.seeders, 0),
            (Some(false), true) => self.add_counts(1, -1, &mut swarm.seeders, 1),
            (Some(true), false) => self.add_counts(-1, 1, &mut swarm.seeders, -1),
            (Some(_), _) => {}
        }
        let counted_completion = req.event == AnnounceEvent::Completed && was_seeder != Some(true);
        if counted_completion {
            swarm.completed = swarm.completed.saturating_add(1);
            swarm.last_completed = now;
        }
        let numwant = req
            .numwant
            .unwrap_or(self.limits.numwant_default)
            .min(self.limits.numwant_max) as usize;
        let wanted = Wanted::of(req);
        let peers = select_peers(swarm, family, slot, wanted, label, numwant);
        Ok(AnnounceOutcome {
            complete: swarm.seeders,
            incomplete: swarm.leechers(),
            peers,
            counted_completion,
        })
    }

    fn add_counts(&self, seeders: i64, leechers: i64, swarm_seeders: &mut u32, delta: i32) {
        if seeders != 0 {
            self.seeders.fetch_add(seeders, Ordering::Relaxed);
        }
        if leechers != 0 {
            self.leechers.fetch_add(leechers, Ordering::Relaxed);
        }
        *swarm_seeders = swarm_seeders.wrapping_add_signed(delta);
    }

    /// `stopped`: removes the peer if known; never creates a swarm.
    fn stop(&self, hash: &InfoHash, ip: IpAddr, port: u16) -> AnnounceOutcome {
        let Some(mut swarm_guard) = self.swarms.get_mut(hash) else {
            return AnnounceOutcome::default();
        };
        let swarm = &mut *swarm_guard;
        let removed = match ip {
            IpAddr::V4(v4) => {
                let ip = v4.octets();
                swarm.v4.find(&self.hasher, &ip, port).map(|i| {
                    let p = swarm.v4.remove_at(&self.hasher, i);
                    (p.seeder, p.label)
                })
            }
            IpAddr::V6(v6) => {
                let ip = v6.octets();
                swarm.v6.find(&self.hasher, &ip, port).map(|i| {
                    let p = swarm.v6.remove_at(&self.hasher, i);
                    (p.seeder, p.label)
                })
            }
        };
        if let Some((_, label)) = removed {
            self.label_gone(label, 1);
        }
        match removed.map(|(seeder, _)| seeder) {
            Some(true) => self.add_counts(-1, 0, &mut swarm.seeders, -1),
            Some(false) => self.add_counts(0, -1, &mut swarm.seeders, 0),
            None => {}
        }
        let outcome = AnnounceOutcome {
            complete: swarm.seeders,
            incomplete: swarm.leechers(),
            peers: Vec::new(),
            counted_completion: false,
        };
        // The last peer left: drop the swarm now, as the reaper would, so the torrent
        // count (and its gauge) falls at once. remove_if re-checks under the shard lock,
        // in case an announce refilled it after we let go.
        let emptied = swarm.len() == 0;
        drop(swarm_guard);
        if emptied && self.swarms.remove_if(hash, |_, s| s.len() == 0).is_some() {
            self.torrents.fetch_sub(1, Ordering::Relaxed);
        }
        outcome
    }

    /// Figures for each requested torrent (zeros for unknown ones), in request order.
    pub fn scrape(&self, hashes: &[InfoHash]) -> Vec<(InfoHash, ScrapeStats)> {
        hashes
            .iter()
            .map(|h| {
                let stats = self
                    .swarms
                    .get(h)
                    .map_or_else(ScrapeStats::default, |s| ScrapeStats {
                        complete: s.seeders,
                        downloaded: s.completed,
                        incomplete: s.leechers(),
                    });
                (*h, stats)
            })
            .collect()
    }

    /// Drops peers not seen for `peer_timeout_secs` before `now`, and swarms left empty.
    pub fn reap(&self, now: Secs) -> ReapReport {
        let cutoff = now.saturating_sub(self.limits.peer_timeout_secs);
        let mut report = ReapReport::default();
        let (mut seeders_gone, mut leechers_gone) = (0i64, 0i64);
        let mut labels_gone = vec![0i64; self.label_peers.len()];
        self.swarms.retain(|_, swarm| {
            let (s4, l4) = swarm.v4.reap(&self.hasher, cutoff, |p| {
                labels_gone[usize::from(p.label)] += 1;
            });
            let (s6, l6) = swarm.v6.reap(&self.hasher, cutoff, |p| {
                labels_gone[usize::from(p.label)] += 1;
            });
            swarm.seeders -= s4 + s6;
            seeders_gone += i64::from(s4 + s6);
            leechers_gone += i64::from(l4 + l6);
            report.peers_removed += u64::from(s4 + l4 + s6 + l6);
            let keep = swarm.len() > 0;
            if !keep {
                report.torrents_removed += 1;
            }
            keep
        });
        self.seeders.fetch_sub(seeders_gone, Ordering::Relaxed);
        self.leechers.fetch_sub(leechers_gone, Ordering::Relaxed);
        for (label, gone) in labels_gone.into_iter().enumerate() {
            if gone > 0 {
                self.label_gone(label as u8, gone);
            }
        }
        self.torrents
            .fetch_sub(report.torrents_removed as usize, Ordering::Relaxed);
        report
    }

    fn label_gone(&self, label: u8, n: i64) {
        if let Some(c) = self.label_peers.get(usize::from(label)) {
            c.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Peers per label over every swarm, indexed by [`LabelId`] (0: none).
    pub fn label_peers(&self) -> Vec<u64> {
        self.label_peers
            .iter()
            .map(|c| c.load(Ordering::Relaxed).max(0) as u64)
            .collect()
    }

    /// One swarm's figures and peers per label; `None` for a swarm with no peers.
    /// Counts labels by walking the swarm's peers: for readiness polls, not announces.
    pub fn swarm(&self, hash: &InfoHash) -> Option<SwarmInfo> {
        let s = self.swarms.get(hash)?;
        let mut per_label = vec![0u32; self.label_peers.len()];
        for label in
            s.v4.peers()
                .iter()
                .map(|p| p.label)
                .chain(s.v6.peers().iter().map(|p| p.label))
        {
            if let Some(n) = per_label.get_mut(usize::from(label)) {
                *n += 1;
            }
        }
        Some(SwarmInfo {
            seeders: s.seeders,
            leechers: s.leechers(),
            completed: s.completed,
            last_completed: (s.last_completed > 0).then_some(s.last_completed),
            per_label,
        })
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            torrents: self.torrents.load(Ordering::Relaxed) as u64,
            seeders: self.seeders.load(Ordering::Relaxed).max(0) as u64,
            leechers: self.leechers.load(Ordering::Relaxed).max(0) as u64,
        }
    }

    /// Heap bytes held by peer lists (excluding the torrent map), for memory reports.
    pub fn peer_heap_bytes(&self) -> usize {
        self.swarms
            .iter()
            .map(|s| s.v4.heap_bytes() + s.v6.heap_bytes())
            .sum()
    }
}

fn record<A>(ip: A, port: u16, seeder: bool, label: LabelId, id: PeerId, now: Secs) -> Peer<A> {
    Peer {
        last_seen: now,
        ip,
        port,
        seeder,
        label: label.0,
        peer_id: id.0,
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
}

/// xorshift64: only used to pick where peer selection starts, so quality barely matters.
fn next_random() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        x
    })
}

/// Which peers one selection pass takes: by kind (seeder or not) and by label.
#[derive(Clone, Copy)]
struct Filter {
    /// `Some(true)`: seeders only; `Some(false)`: leechers only; `None`: both.
    seeders: Option<bool>,
    /// `Some(true)`: the announcer's label only; `Some(false)`: any other; `None`: all.
    same_label: Option<bool>,
    label: u8,
}

impl Filter {
    fn accepts<A>(&self, p: &Peer<A>) -> bool {
        self.seeders.is_none_or(|s| s == p.seeder)
            && self
                .same_label
                .is_none_or(|same| same == (p.label == self.label))
    }
}

/// Up to `want` peers, each pass starting at a random slot so load spreads over the swarm.
/// Passes run in order until `want` are found: by kind ([`Wanted`]), then, for a labelled
/// announcer, its own label before the rest; within a pass, the requester's own address
/// family first. The passes are disjoint, so no peer is listed twice.
fn select_peers(
    swarm: &Swarm,
    own: Family,
    own_slot: usize,
    wanted: Wanted,
    label: LabelId,
    want: usize,
) -> Vec<ReplyPeer> {
    let others = swarm.len().saturating_sub(1);
    let mut out = Vec::with_capacity(want.min(others));
    if want == 0 {
        return out;
    }
    let kinds: &[Option<bool>] = match wanted {
        Wanted::Everyone => &[None],
        Wanted::Leechers => &[Some(false)],
        Wanted::LeechersThenSeeders => &[Some(false), Some(true)],
    };
    let groups: &[Option<bool>] = if label.is_none() {
        &[None]
    } else {
        &[Some(true), Some(false)]
    };
    let order = match own {
        Family::V4 => [Family::V4, Family::V6],
        Family::V6 => [Family::V6, Family::V4],
    };
    for &seeders in kinds {
        for &same_label in groups {
            let filter = Filter {
                seeders,
                same_label,
                label: label.0,
            };
            for fam in order {
                let skip = (fam == own).then_some(own_slot);
                match fam {
                    Family::V4 => take_from(swarm.v4.peers(), skip, filter, want, &mut out),
                    Family::V6 => take_from(swarm.v6.peers(), skip, filter, want, &mut out),
                }
                if out.len() >= want {
                    return out;
                }
            }
        }
    }
    out
}

/// Most slots one pass looks at per address family. Only matters in a huge swarm where
/// the pass's peers are rare (a seeder among seeders looking for leechers, a rack with
/// few peers), where finding them would otherwise mean scanning every record on every
/// announce; such an announcer may then get fewer of them than exist.
const MAX_PROBES: usize = 4096;

fn take_from<A: IpBytes>(
    peers: &[Peer<A>],
    skip: Option<usize>,
    filter: Filter,
    want: usize,
    out: &mut Vec<ReplyPeer>,
) {
    let n = peers.len();
    if n == 0 {
        return;
    }
    let start = (next_random() % n as u64) as usize;
    for i in (start..n).chain(0..start).take(MAX_PROBES) {
        if Some(i) == skip {
            continue;
        }
        let p = &peers[i];
        if !filter.accepts(p) {
            continue;
        }
        out.push(ReplyPeer {
            addr: SocketAddr::new(p.ip.to_ip(), p.port),
            peer_id: PeerId(p.peer_id),
        });
        if out.len() >= want {
            return;
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
