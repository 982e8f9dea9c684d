//! Which peers this tracker instance has lately kept in a swarm: the hint that decides
//! whether an event-less announce first tries the re-announce fast path.
//!
//! A peer the store does not hold (a new one that sent no `started`, one that expired,
//! one whose earlier announces all went to another instance) would make the fast path
//! fail and the announce pay for both the pipeline and the script. The hint is only a
//! guess, never the truth: a slot holds one peer's fingerprint and a newcomer to a taken
//! slot evicts it, so a peer can be forgotten (the script then serves it, as it did
//! before the fast path existed) or, rarely, mistaken for another (the fast path then
//! finds out and hands over to the script). Fixed size, no locks.

use std::sync::atomic::{AtomicU32, Ordering};

use kpbt_proto::InfoHash;

/// Slots: 4 MiB, about the peers one instance re-announces within a peer timeout at
/// some tens of thousands of announces per second.
const SLOTS: usize = 1 << 20;

pub(super) struct Recent {
    slots: Box<[AtomicU32]>,
}

impl Recent {
    pub fn new() -> Self {
        Self::with_slots(SLOTS)
    }

    fn with_slots(n: usize) -> Self {
        assert!(n.is_power_of_two(), "a power of two of slots");
        Recent {
            slots: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The peer's slot and its fingerprint there (never 0, which marks an empty slot).
    fn place(&self, hash: &InfoHash, addr: &[u8]) -> (usize, u32) {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
            u64::from_le_bytes(w)
        };
        let mut x = word(&hash.0[..8]) ^ word(&hash.0[8..16]).rotate_left(17);
        for chunk in addr.chunks(8) {
            x = mix(x ^ word(chunk));
        }
        x = mix(x ^ addr.len() as u64);
        let slot = (x as usize) & (self.slots.len() - 1);
        let tag = ((x >> 32) as u32).max(1);
        (slot, tag)
    }

    /// The peer is in the swarm after an announce this instance served.
    pub fn kept(&self, hash: &InfoHash, addr: &[u8]) {
        let (slot, tag) = self.place(hash, addr);
        self.slots[slot].store(tag, Ordering::Relaxed);
    }

    /// The peer left (or was refused): forgotten, unless its slot went to another peer.
    pub fn gone(&self, hash: &InfoHash, addr: &[u8]) {
        let (slot, tag) = self.place(hash, addr);
        let _ = self.slots[slot].compare_exchange(tag, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether the peer was kept lately (and not evicted since).
    pub fn seen(&self, hash: &InfoHash, addr: &[u8]) -> bool {
        let (slot, tag) = self.place(hash, addr);
        self.slots[slot].load(Ordering::Relaxed) == tag
    }
}

/// SplitMix64's finaliser: every input bit reaches every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> [u8; 6] {
        let p = n.to_be_bytes();
        [10, 0, p[0], p[1], 0x1a, 0xe1]
    }

    #[test]
    fn a_kept_peer_is_seen_until_it_is_gone() {
        let r = Recent::with_slots(1 << 10);
        let h = InfoHash([3; 20]);
        assert!(!r.seen(&h, &addr(1)));
        r.kept(&h, &addr(1));
        assert!(r.seen(&h, &addr(1)));
        // Same address, other swarm; same swarm, other port: other peers.
        assert!(!r.seen(&InfoHash([4; 20]), &addr(1)));
        let mut other_port = addr(1);
        other_port[5] ^= 1;
        assert!(!r.seen(&h, &other_port));
        r.gone(&h, &addr(1));
        assert!(!r.seen(&h, &addr(1)));
    }

    #[test]
    fn a_full_table_forgets_rather_than_grows_and_gone_spares_the_new_owner() {
        let r = Recent::with_slots(1 << 4);
        let h = InfoHash([7; 20]);
        for n in 0..1000 {
            r.kept(&h, &addr(n));
        }
        let seen = (0..1000).filter(|&n| r.seen(&h, &addr(n))).count();
        assert!(seen <= 16, "{seen} seen in 16 slots");
        assert!(
            seen >= 8,
            "the last ones kept are mostly still there: {seen}"
        );
        // A peer whose slot another took: its `gone` leaves the other's entry.
        let (a, b) = (0..1000)
            .flat_map(|i| (0..1000).map(move |j| (i, j)))
            .find(|&(i, j)| i != j && r.place(&h, &addr(i)).0 == r.place(&h, &addr(j)).0)
            .expect("two peers share a slot among 1000 in 16");
        r.kept(&h, &addr(a));
        r.kept(&h, &addr(b));
        r.gone(&h, &addr(a));
        assert!(r.seen(&h, &addr(b)));
    }

    #[test]
    fn fingerprints_spread_over_the_slots() {
        let r = Recent::with_slots(1 << 12);
        let mut used = std::collections::HashSet::new();
        for n in 0..4096 {
            used.insert(r.place(&InfoHash([1; 20]), &addr(n)).0);
        }
        // Random placement fills about 1 - 1/e of the slots.
        assert!(used.len() > 2400, "{} of 4096 slots used", used.len());
    }
}
