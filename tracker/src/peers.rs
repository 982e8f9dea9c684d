//! One swarm's peer list for one address family: compact per-peer records keyed by (ip, port).
//!
//! Memory is the constraint (the target is well under 150 bytes per peer with a million
//! peers), so a peer is a 32-byte (IPv4) or 44-byte (IPv6) record in a `Vec`, and the
//! (ip, port) → slot index only exists for swarms big enough that a linear scan would hurt.
//! Typical private swarms have a handful of peers, where a scan of a few cache lines beats
//! any hash lookup and costs no memory.

use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;

/// Swarms with more peers than this get a hash index on (ip, port).
pub(crate) const INDEX_THRESHOLD: usize = 32;

/// A raw IP address of one family: `[u8; 4]` or `[u8; 16]`.
pub(crate) trait IpBytes: Copy + Eq + Hash {
    fn to_ip(self) -> IpAddr;
}

impl IpBytes for [u8; 4] {
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

impl IpBytes for [u8; 16] {
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

/// One peer as stored. Field order keeps the IPv4 record at 32 bytes (the label takes
/// what was padding).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer<A> {
    pub last_seen: u32,
    pub ip: A,
    pub port: u16,
    pub seeder: bool,
    /// The [`crate::labels::LabelId`] of `ip` (0: none).
    pub label: u8,
    pub peer_id: [u8; 20],
}

/// What an upsert did, so the swarm can keep its seeder and leecher counts exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// A new peer was added.
    Inserted,
    /// An existing peer was refreshed; carries whether it was a seeder before.
    Updated { was_seeder: bool },
    /// New peer refused: the list is at its size limit.
    Full,
    /// New peer refused: its IP already holds the most slots one address may.
    IpFull,
}

#[derive(Debug)]
pub(crate) struct PeerList<A> {
    peers: Vec<Peer<A>>,
    /// Slot numbers hashed by (ip, port); `None` until the list passes [`INDEX_THRESHOLD`].
    index: Option<Box<HashTable<u32>>>,
}

impl<A> Default for PeerList<A> {
    fn default() -> Self {
        PeerList {
            peers: Vec::new(),
            index: None,
        }
    }
}

impl<A: IpBytes> PeerList<A> {
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn peers(&self) -> &[Peer<A>] {
        &self.peers
    }

    fn hash<S: BuildHasher>(s: &S, ip: &A, port: u16) -> u64 {
        s.hash_one((ip, port))
    }

    pub fn find<S: BuildHasher>(&self, s: &S, ip: &A, port: u16) -> Option<usize> {
        match &self.index {
            Some(index) => {
                let peers = &self.peers;
                index
                    .find(Self::hash(s, ip, port), |&i| {
                        let p = &peers[i as usize];
                        p.ip == *ip && p.port == port
                    })
                    .map(|&i| i as usize)
            }
            None => self
                .peers
                .iter()
                .position(|p| p.ip == *ip && p.port == port),
        }
    }

    /// Inserts or refreshes the peer at (ip, port); refuses new peers past `max`, or when
    /// `new.ip` already has `max_per_ip` peers here.
    pub fn upsert<S: BuildHasher>(
        &mut self,
        s: &S,
        new: Peer<A>,
        max: usize,
        max_per_ip: usize,
    ) -> (Upsert, usize) {
        if let Some(i) = self.find(s, &new.ip, new.port) {
            let p = &mut self.peers[i];
            let was_seeder = p.seeder;
            *p = new;
            return (Upsert::Updated { was_seeder }, i);
        }
        if self.peers.len() >= max {
            return (Upsert::Full, 0);
        }
        // A scan, but only when a *new* (ip, port) joins (re-announces return above), and
        // only while the list is bigger than the cap could be filled by one address.
        if self.peers.len() >= max_per_ip
            && self
                .peers
                .iter()
                .filter(|p| p.ip == new.ip)
                .take(max_per_ip)
                .count()
                >= max_per_ip
        {
            return (Upsert::IpFull, 0);
        }
        // Grow by a quarter rather than doubling: most swarms are small and long-lived, and
        // doubling would leave up to half of every list's capacity unused.
        if self.peers.len() == self.peers.capacity() {
            self.peers.reserve_exact((self.peers.len() / 4).max(4));
        }
        let slot = self.peers.len();
        self.peers.push(new);
        match &mut self.index {
            Some(index) => {
                let peers = &self.peers;
                index.insert_unique(Self::hash(s, &new.ip, new.port), slot as u32, |&i| {
                    let p = &peers[i as usize];
                    Self::hash(s, &p.ip, p.port)
                });
            }
            None if self.peers.len() > INDEX_THRESHOLD => self.rebuild_index(s),
            None => {}
        }
        (Upsert::Inserted, slot)
    }

    /// Removes the peer in `slot` (swap-remove), keeping the index consistent.
    pub fn remove_at<S: BuildHasher>(&mut self, s: &S, slot: usize) -> Peer<A> {
        let last = self.peers.len() - 1;
        if let Some(index) = &mut self.index {
            let gone = self.peers[slot];
            if let Ok(e) =
                index.find_entry(Self::hash(s, &gone.ip, gone.port), |&i| i as usize == slot)
            {
                e.remove();
            }
            if slot != last {
                let moved = self.peers[last];
                if let Some(i) = index.find_mut(Self::hash(s, &moved.ip, moved.port), |&i| {
                    i as usize == last
                }) {
                    *i = slot as u32;
                }
            }
        }
        self.peers.swap_remove(slot)
    }

    /// Drops peers last seen before `cutoff`, calling `gone` with each; returns
    /// (seeders, leechers) removed.
    pub fn reap<S: BuildHasher>(
        &mut self,
        s: &S,
        cutoff: u32,
        mut gone: impl FnMut(&Peer<A>),
    ) -> (u32, u32) {
        let (mut seeders, mut leechers) = (0u32, 0u32);
        self.peers.retain(|p| {
            let keep = p.last_seen >= cutoff;
            if !keep {
                gone(p);
                if p.seeder {
                    seeders += 1;
                } else {
                    leechers += 1;
                }
            }
            keep
        });
        if seeders + leechers > 0 {
            // Give memory back once a list has shrunk a lot (a swarm that peaked and faded).
            if self.peers.capacity() > 8 && self.peers.len() < self.peers.capacity() / 4 {
                self.peers.shrink_to(self.peers.len() * 5 / 4);
            }
            if self.peers.len() > INDEX_THRESHOLD {
                self.rebuild_index(s);
            } else {
                self.index = None;
            }
        }
        (seeders, leechers)
    }

    fn rebuild_index<S: BuildHasher>(&mut self, s: &S) {
        let peers = &self.peers;
        let mut index = HashTable::with_capacity(peers.len());
        for (i, p) in peers.iter().enumerate() {
            index.insert_unique(Self::hash(s, &p.ip, p.port), i as u32, |&j| {
                let q = &peers[j as usize];
                Self::hash(s, &q.ip, q.port)
            });
        }
        self.index = Some(Box::new(index));
    }

    /// Heap bytes owned by this list (for the memory report).
    pub fn heap_bytes(&self) -> usize {
        self.peers.capacity() * std::mem::size_of::<Peer<A>>()
            + self.index.as_ref().map_or(0, |i| {
                i.allocation_size() + std::mem::size_of::<HashTable<u32>>()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    fn peer(n: u32, seeder: bool) -> Peer<[u8; 4]> {
        Peer {
            last_seen: n,
            ip: n.to_be_bytes(),
            port: 1000 + (n % 7) as u16,
            seeder,
            label: (n % 3) as u8,
            peer_id: [n as u8; 20],
        }
    }

    #[test]
    fn record_sizes_stay_small() {
        assert_eq!(std::mem::size_of::<Peer<[u8; 4]>>(), 32);
        assert_eq!(std::mem::size_of::<Peer<[u8; 16]>>(), 44);
    }

    #[test]
    fn upsert_find_remove_across_index_threshold() {
        let s = RandomState::new();
        let mut l = PeerList::default();
        for n in 0..200 {
            assert_eq!(
                l.upsert(&s, peer(n, n % 3 == 0), 1000, usize::MAX).0,
                Upsert::Inserted
            );
        }
        assert!(l.index.is_some());
        assert_eq!(
            l.upsert(&s, peer(5, true), 1000, usize::MAX).0,
            Upsert::Updated { was_seeder: false }
        );
        assert_eq!(l.len(), 200);
        // Remove every other peer and check each remaining one is still found in its slot.
        for n in (0..200).step_by(2) {
            let p = peer(n, false);
            let slot = l.find(&s, &p.ip, p.port).unwrap();
            l.remove_at(&s, slot);
        }
        for n in 0..200 {
            let p = peer(n, false);
            let found = l.find(&s, &p.ip, p.port);
            if n % 2 == 0 {
                assert_eq!(found, None);
            } else {
                let slot = found.unwrap();
                assert_eq!(l.peers()[slot].ip, p.ip);
            }
        }
        assert_eq!(
            l.upsert(&s, peer(999, false), 100, usize::MAX).0,
            Upsert::Full
        );
    }

    #[test]
    fn per_ip_cap_counts_ports_of_one_address() {
        let s = RandomState::new();
        let mut l = PeerList::default();
        let at = |port: u16| Peer {
            port,
            ..peer(7, false)
        };
        for port in 1..=3 {
            assert_eq!(l.upsert(&s, at(port), 100, 3).0, Upsert::Inserted);
        }
        assert_eq!(l.upsert(&s, at(4), 100, 3).0, Upsert::IpFull);
        // Known (ip, port) still re-announces; other addresses still join.
        assert_eq!(
            l.upsert(&s, at(2), 100, 3).0,
            Upsert::Updated { was_seeder: false }
        );
        assert_eq!(l.upsert(&s, peer(8, false), 100, 3).0, Upsert::Inserted);
    }

    #[test]
    fn reap_drops_old_peers_and_counts_them() {
        let s = RandomState::new();
        let mut l = PeerList::default();
        for n in 0..50 {
            l.upsert(&s, peer(n, n < 10), 1000, usize::MAX);
        }
        let mut labels = [0u32; 3];
        assert_eq!(
            l.reap(&s, 40, |p| labels[usize::from(p.label)] += 1),
            (10, 30)
        );
        // Peers 0..40 are gone: 14 with n % 3 == 0, 13 each with 1 and 2.
        assert_eq!(labels, [14, 13, 13]);
        assert_eq!(l.len(), 10);
        assert!(l.index.is_none());
        for n in 40..50 {
            let p = peer(n, false);
            assert!(l.find(&s, &p.ip, p.port).is_some());
        }
    }
}
