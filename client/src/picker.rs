//! Piece picker: which blocks to request from which peer (rarest-first, random first
//! pieces, endgame), and the bookkeeping of requested/received blocks. Pure: no I/O,
//! no clocks; randomness comes from a seed so tests are deterministic.

use crate::rng::XorShift64;
use kpbt_proto::geometry::Geometry;
use kpbt_proto::wire::Bitfield;
use std::collections::HashMap;

mod origin;
pub use origin::OriginScope;

/// Opaque identifier of one peer connection within a torrent.
pub type PeerKey = u64;

/// Size of one requested block (BEP 3 de-facto standard).
pub const BLOCK_LEN: u32 = 16 * 1024;

/// Pieces picked at random (instead of rarest) until we have this many, so a fresh
/// leecher quickly has something to trade (BEP 3 "random first piece").
const RANDOM_FIRST_PIECES: u32 = 4;

/// In endgame a block is requested from at most this many peers at once.
const ENDGAME_MAX_REQUESTERS: usize = 3;

/// One block of one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub piece: u32,
    /// Block number within the piece (byte offset = `block * BLOCK_LEN`).
    pub block: u32,
}

impl Block {
    pub fn begin(&self) -> u32 {
        self.block * BLOCK_LEN
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceState {
    Missing,
    /// Some blocks requested or received; has an entry in `active`.
    Active,
    /// Reserved for the origin (web seeds): fetched whole over HTTP, never picked for
    /// a peer meanwhile.
    Origin,
    /// All blocks received, waiting for the SHA-1 check.
    Hashing,
    Have,
}

#[derive(Default, Debug)]
struct Slot {
    received: bool,
    requesters: Vec<PeerKey>,
}

#[derive(Debug)]
struct Active {
    /// The peer that started this piece: it continues it first, so a piece usually
    /// comes from one peer and a hash failure can be attributed.
    owner: PeerKey,
    slots: Vec<Slot>,
    unrequested: u32,
    received: u32,
}

/// What happened when a block arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First copy of this block. `piece_complete` means every block is now in and the
    /// piece moved to hashing; `cancel` lists other peers that also requested it
    /// (endgame) and should be sent a cancel.
    New {
        piece_complete: bool,
        cancel: Vec<PeerKey>,
    },
    /// We already had this block (endgame duplicate) or the piece is not in flight.
    Duplicate,
}

#[derive(Debug)]
pub struct Picker {
    piece_len: u32,
    total_len: u64,
    state: Vec<PieceState>,
    availability: Vec<u32>,
    active: HashMap<u32, Active>,
    missing: u32,
    /// The verified pieces, in wire form: the torrent's one have-set (the bitfield
    /// sent to peers, the resume data and the API read it here).
    have: Bitfield,
    max_active: usize,
    rng: XorShift64,
    /// Pieces a reader is waiting for (a file streamed while it downloads): started
    /// before anything rarer, lowest first.
    urgent: std::ops::Range<u32>,
}

impl Picker {
    /// `max_active` bounds how many pieces may be in flight at once (each needs a
    /// piece-sized buffer), which bounds memory.
    pub fn new(
        piece_count: u32,
        piece_len: u32,
        total_len: u64,
        max_active: usize,
        seed: u64,
    ) -> Self {
        Picker {
            piece_len,
            total_len,
            state: vec![PieceState::Missing; piece_count as usize],
            availability: vec![0; piece_count as usize],
            active: HashMap::new(),
            missing: piece_count,
            have: Bitfield::new(piece_count),
            max_active: max_active.max(1),
            rng: XorShift64::new(seed),
            urgent: 0..0,
        }
    }

    /// Makes `pieces` the next to start (replacing any earlier urgent range).
    pub fn set_urgent(&mut self, pieces: std::ops::Range<u32>) {
        self.urgent = pieces.start.min(self.piece_count())..pieces.end.min(self.piece_count());
    }

    pub fn piece_count(&self) -> u32 {
        self.state.len() as u32
    }

    pub fn piece_size(&self, piece: u32) -> u32 {
        Geometry {
            piece_length: self.piece_len,
            total_length: self.total_len,
        }
        .piece_size(piece)
    }

    pub fn blocks_in(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_LEN)
    }

    pub fn block_len(&self, b: Block) -> u32 {
        (self.piece_size(b.piece) - b.begin()).min(BLOCK_LEN)
    }

    pub fn have(&self, piece: u32) -> bool {
        self.have.get(piece)
    }

    pub fn have_count(&self) -> u32 {
        self.have.count_ones()
    }

    /// The verified pieces.
    pub fn have_set(&self) -> &Bitfield {
        &self.have
    }

    pub fn is_complete(&self) -> bool {
        self.have.count_ones() == self.piece_count()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// True when the piece is neither had nor being checked: worth being interested in.
    pub fn wants(&self, piece: u32) -> bool {
        matches!(
            self.state.get(piece as usize),
            Some(PieceState::Missing | PieceState::Active | PieceState::Origin)
        )
    }

    /// Marks a piece verified at startup (resume) without going through hashing.
    pub fn set_have(&mut self, piece: u32) {
        match self.state[piece as usize] {
            PieceState::Have => return,
            PieceState::Missing => self.missing -= 1,
            PieceState::Active => {
                self.active.remove(&piece);
            }
            PieceState::Hashing | PieceState::Origin => {}
        }
        self.state[piece as usize] = PieceState::Have;
        self.have.set(piece);
    }

    pub fn inc_availability(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_add(1);
        }
    }

    pub fn dec_availability(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_sub(1);
        }
    }

    /// Appends up to `max` blocks for `peer` to request to `out`, marking them
    /// requested. `peer_has` says which pieces the peer has.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: impl Fn(u32) -> bool,
        max: usize,
        out: &mut Vec<Block>,
    ) {
        let start = out.len();
        let want = |out: &Vec<Block>| out.len() - start < max;

        // 1. Continue pieces this peer started.
        let mut own: Vec<u32> = self
            .active
            .iter()
            .filter(|(_, a)| a.owner == peer && a.unrequested > 0)
            .map(|(&p, _)| p)
            .collect();
        own.sort_unstable();
        for p in own {
            if !want(out) {
                return;
            }
            self.take_unrequested(p, peer, max - (out.len() - start), out);
        }

        // 2. Start new pieces, rarest first (random while we have almost nothing).
        while want(out) && self.active.len() < self.max_active && self.missing > 0 {
            let Some(p) = self.choose_new_piece(&peer_has) else {
                break;
            };
            let slots = (0..self.blocks_in(p))
                .map(|_| Slot::default())
                .collect::<Vec<_>>();
            let n = slots.len() as u32;
            self.active.insert(
                p,
                Active {
                    owner: peer,
                    slots,
                    unrequested: n,
                    received: 0,
                },
            );
            self.state[p as usize] = PieceState::Active;
            self.missing -= 1;
            self.take_unrequested(p, peer, max - (out.len() - start), out);
        }

        // 3. Help with other peers' pieces (e.g. a slow or departed owner).
        if want(out) {
            let mut others: Vec<u32> = self
                .active
                .iter()
                .filter(|(&p, a)| a.owner != peer && a.unrequested > 0 && peer_has(p))
                .map(|(&p, _)| p)
                .collect();
            others.sort_unstable();
            for p in others {
                if !want(out) {
                    return;
                }
                self.take_unrequested(p, peer, max - (out.len() - start), out);
            }
        }

        // 4. Endgame: nothing left unrequested anywhere, so duplicate outstanding
        // requests to finish quickly; the first copy wins and the rest are cancelled.
        if want(out) && self.missing == 0 && self.active.values().all(|a| a.unrequested == 0) {
            let mut pieces: Vec<u32> = self
                .active
                .keys()
                .copied()
                .filter(|&p| peer_has(p))
                .collect();
            pieces.sort_unstable();
            for p in pieces {
                let a = self.active.get_mut(&p).expect("listed");
                for (i, s) in a.slots.iter_mut().enumerate() {
                    if out.len() - start >= max {
                        return;
                    }
                    if !s.received
                        && !s.requesters.contains(&peer)
                        && s.requesters.len() < ENDGAME_MAX_REQUESTERS
                    {
                        s.requesters.push(peer);
                        out.push(Block {
                            piece: p,
                            block: i as u32,
                        });
                    }
                }
            }
        }
    }

    fn take_unrequested(&mut self, p: u32, peer: PeerKey, max: usize, out: &mut Vec<Block>) {
        let a = self.active.get_mut(&p).expect("active piece");
        let mut taken = 0;
        for (i, s) in a.slots.iter_mut().enumerate() {
            if taken == max || a.unrequested == 0 {
                break;
            }
            if !s.received && s.requesters.is_empty() {
                s.requesters.push(peer);
                a.unrequested -= 1;
                taken += 1;
                out.push(Block {
                    piece: p,
                    block: i as u32,
                });
            }
        }
    }

    fn choose_new_piece(&mut self, peer_has: &impl Fn(u32) -> bool) -> Option<u32> {
        let n = self.piece_count();
        if n == 0 {
            return None;
        }
        for p in self.urgent.clone() {
            if self.state[p as usize] == PieceState::Missing && peer_has(p) {
                return Some(p);
            }
        }
        let offset = (self.rng.next_u64() % n as u64) as u32;
        let random = self.have.count_ones() < RANDOM_FIRST_PIECES;
        let mut best: Option<(u32, u32)> = None;
        for k in 0..n {
            let p = (offset + k) % n;
            if self.state[p as usize] != PieceState::Missing || !peer_has(p) {
                continue;
            }
            if random {
                return Some(p);
            }
            let a = self.availability[p as usize];
            if best.is_none_or(|(_, b)| a < b) {
                best = Some((p, a));
                if a <= 1 {
                    break; // cannot get rarer than "only this peer has it"
                }
            }
        }
        best.map(|(p, _)| p)
    }

    /// True if `peer` has an outstanding request for `b` on record.
    pub fn is_requester(&self, peer: PeerKey, b: Block) -> bool {
        self.active
            .get(&b.piece)
            .and_then(|a| a.slots.get(b.block as usize))
            .is_some_and(|s| s.requesters.contains(&peer))
    }

    /// One-line description of the picker state, for debug logs.
    pub fn describe(&self) -> String {
        let hashing = self
            .state
            .iter()
            .filter(|s| **s == PieceState::Hashing)
            .count();
        let origin = self
            .state
            .iter()
            .filter(|s| **s == PieceState::Origin)
            .count();
        let mut act: Vec<String> = self
            .active
            .iter()
            .take(8)
            .map(|(p, a)| {
                let req: Vec<&Vec<PeerKey>> = a.slots.iter().map(|s| &s.requesters).collect();
                format!(
                    "{p}:owner={} unreq={} recv={} req={req:?}",
                    a.owner, a.unrequested, a.received
                )
            })
            .collect();
        act.sort();
        format!(
            "have={} missing={} hashing={hashing} origin={origin} active={} [{}]",
            self.have.count_ones(),
            self.missing,
            self.active.len(),
            act.join(", ")
        )
    }

    /// Records the arrival of `b` from `peer`.
    pub fn block_received(&mut self, peer: PeerKey, b: Block) -> Arrival {
        let Some(a) = self.active.get_mut(&b.piece) else {
            return Arrival::Duplicate;
        };
        let Some(s) = a.slots.get_mut(b.block as usize) else {
            return Arrival::Duplicate;
        };
        if s.received {
            return Arrival::Duplicate;
        }
        if s.requesters.is_empty() {
            // Was unrequested (a cancelled request answered late): still useful.
            a.unrequested -= 1;
        }
        s.received = true;
        let cancel: Vec<PeerKey> = s.requesters.drain(..).filter(|&k| k != peer).collect();
        a.received += 1;
        let piece_complete = a.received as usize == a.slots.len();
        if piece_complete {
            self.active.remove(&b.piece);
            self.state[b.piece as usize] = PieceState::Hashing;
        }
        Arrival::New {
            piece_complete,
            cancel,
        }
    }

    /// `peer` will not answer its request for `b` (choked, disconnected, timed out).
    pub fn cancel_request(&mut self, peer: PeerKey, b: Block) {
        let Some(a) = self.active.get_mut(&b.piece) else {
            return;
        };
        let Some(s) = a.slots.get_mut(b.block as usize) else {
            return;
        };
        if let Some(i) = s.requesters.iter().position(|&k| k == peer) {
            s.requesters.swap_remove(i);
            if s.requesters.is_empty() && !s.received {
                a.unrequested += 1;
            }
        }
    }

    /// Hands the pieces a departed peer owned to whoever comes next.
    pub fn peer_gone(&mut self, peer: PeerKey, outstanding: impl IntoIterator<Item = Block>) {
        for b in outstanding {
            self.cancel_request(peer, b);
        }
        // Pieces it started but never received anything for are returned whole, so
        // they can be picked by rarity again instead of lingering as active.
        let dead: Vec<u32> = self
            .active
            .iter()
            .filter(|(_, a)| {
                a.owner == peer
                    && a.received == 0
                    && a.slots.iter().all(|s| s.requesters.is_empty())
            })
            .map(|(&p, _)| p)
            .collect();
        for p in dead {
            self.active.remove(&p);
            self.state[p as usize] = PieceState::Missing;
            self.missing += 1;
        }
        for a in self.active.values_mut() {
            if a.owner == peer {
                a.owner = PeerKey::MAX; // orphaned: anyone may continue it
            }
        }
    }

    pub fn piece_verified(&mut self, piece: u32) {
        if self.state.get(piece as usize) == Some(&PieceState::Hashing) {
            self.state[piece as usize] = PieceState::Have;
            self.have.set(piece);
        }
    }

    /// The piece failed its hash: every block must be fetched again.
    pub fn piece_failed(&mut self, piece: u32) {
        if self.state.get(piece as usize) == Some(&PieceState::Hashing) {
            self.state[piece as usize] = PieceState::Missing;
            self.missing += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: u32) -> bool {
        true
    }

    #[test]
    fn block_geometry_handles_short_last_piece() {
        // 3 pieces of 40 KiB, last one 10 KiB.
        let p = Picker::new(3, 40 * 1024, 90 * 1024, 8, 1);
        assert_eq!(p.piece_size(2), 10 * 1024);
        assert_eq!(p.blocks_in(0), 3);
        assert_eq!(p.block_len(Block { piece: 0, block: 2 }), 8 * 1024);
        assert_eq!(p.blocks_in(2), 1);
        assert_eq!(p.block_len(Block { piece: 2, block: 0 }), 10 * 1024);
    }

    #[test]
    fn urgent_pieces_start_first_in_order_if_the_peer_has_them() {
        let mut p = Picker::new(20, BLOCK_LEN, 20 * BLOCK_LEN as u64, 16, 9);
        p.set_urgent(12..15);
        let has = |i: u32| i != 12;
        let mut out = vec![];
        p.pick(1, has, 2, &mut out);
        let pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
        assert_eq!(pieces, vec![13, 14]);
        p.set_urgent(18..99); // clamped to the piece count
        out.clear();
        p.pick(1, all, 3, &mut out);
        let pieces: Vec<u32> = out.iter().map(|b| b.piece).collect();
        assert_eq!(&pieces[..2], &[18, 19]);
    }

    #[test]
    fn rarest_first_after_random_start() {
        let mut p = Picker::new(10, BLOCK_LEN, 10 * BLOCK_LEN as u64, 16, 7);
        for i in 0..RANDOM_FIRST_PIECES {
            p.set_have(i);
        }
        for i in 0..10 {
            p.inc_availability(i);
            p.inc_availability(i);
        }
        p.dec_availability(7); // piece 7 is the rarest
        let mut out = vec![];
        p.pick(1, all, 1, &mut out);
        assert_eq!(out, vec![Block { piece: 7, block: 0 }]);
    }

    #[test]
    fn only_picks_pieces_the_peer_has_and_respects_max_active() {
        let mut p = Picker::new(8, 2 * BLOCK_LEN, 16 * BLOCK_LEN as u64, 2, 3);
        let mut out = vec![];
        p.pick(1, |i| i == 5 || i == 6 || i == 7, 100, &mut out);
        assert_eq!(out.len(), 4, "two active pieces of two blocks each");
        assert!(out.iter().all(|b| (5..=7).contains(&b.piece)));
        assert_eq!(p.active_count(), 2);
        let mut again = vec![];
        p.pick(1, all, 100, &mut again);
        assert!(
            again.is_empty(),
            "cap reached and everything requested, not endgame yet"
        );
    }

    #[test]
    fn full_download_cycle_and_endgame_duplicates_with_cancel() {
        let mut p = Picker::new(2, 2 * BLOCK_LEN, 4 * BLOCK_LEN as u64, 8, 9);
        let mut a = vec![];
        p.pick(1, all, 100, &mut a);
        assert_eq!(a.len(), 4);
        // Peer 2 finds nothing unrequested, so it is endgame: it duplicates.
        let mut b = vec![];
        p.pick(2, all, 100, &mut b);
        assert_eq!(b.len(), 4);
        // Peer 2 delivers the first block: peer 1 must be cancelled.
        assert_eq!(
            p.block_received(2, b[0]),
            Arrival::New {
                piece_complete: false,
                cancel: vec![1]
            }
        );
        assert_eq!(p.block_received(1, b[0]), Arrival::Duplicate);
        for blk in &a {
            let _ = p.block_received(1, *blk);
        }
        assert!(!p.is_complete(), "pieces are hashing, not yet had");
        p.piece_verified(0);
        p.piece_failed(1);
        assert_eq!(p.have_count(), 1);
        // The failed piece is fetched again from scratch.
        let mut c = vec![];
        p.pick(3, all, 100, &mut c);
        assert_eq!(c.iter().filter(|x| x.piece == 1).count(), 2);
        for blk in c {
            let _ = p.block_received(3, blk);
        }
        p.piece_verified(1);
        assert!(p.is_complete());
    }

    #[test]
    fn departed_peer_blocks_are_requested_again() {
        let mut p = Picker::new(1, 4 * BLOCK_LEN, 4 * BLOCK_LEN as u64, 8, 5);
        let mut a = vec![];
        p.pick(1, all, 2, &mut a);
        assert_eq!(a.len(), 2);
        let _ = p.block_received(1, a[0]);
        p.peer_gone(1, vec![a[1]]);
        let mut b = vec![];
        p.pick(2, all, 100, &mut b);
        let mut got: Vec<u32> = b.iter().map(|x| x.block).collect();
        got.sort();
        assert_eq!(
            got,
            vec![1, 2, 3],
            "block 0 was received, the rest are re-picked"
        );
    }

    #[test]
    fn untouched_piece_of_departed_peer_returns_to_missing() {
        let mut p = Picker::new(4, BLOCK_LEN, 4 * BLOCK_LEN as u64, 8, 5);
        let mut a = vec![];
        p.pick(1, all, 1, &mut a);
        p.peer_gone(1, a.clone());
        assert_eq!(p.active_count(), 0);
        assert!(p.wants(a[0].piece));
    }

    #[test]
    fn cancel_request_makes_block_available_again() {
        let mut p = Picker::new(1, BLOCK_LEN, BLOCK_LEN as u64, 8, 5);
        let mut a = vec![];
        p.pick(1, all, 1, &mut a);
        p.cancel_request(1, a[0]);
        let mut b = vec![];
        p.pick(2, all, 1, &mut b);
        assert_eq!(a, b);
    }
}
