//! The picker's side of web seeds and origins: which pieces an HTTP fetch may reserve,
//! and where a run of them starts so that a fleet of leechers sharing one origin fetches
//! different pieces from it.
//!
//! Leechers cannot see each other's origin requests, only the pieces each announces once
//! it has them. A run continues where the previous one ended while that piece is still
//! eligible; when it is not (a peer announced it: this leecher ran into the part of the
//! torrent another one is fetching), the next run starts in the middle of the longest
//! stretch of eligible pieces, the place farthest from what anyone is known to work on.
//! Leechers that know nothing yet start at random. So a fleet splits the torrent between
//! them instead of fetching from the frontier another leecher is about to deliver.

use super::{Picker, PieceState};

/// Which pieces [`Picker::reserve_for_origin`] may give the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginScope {
    /// Missing pieces no connected peer has (availability 0).
    Unavailable,
    /// Any missing piece.
    Missing,
    /// Any missing piece, and pieces started by peers that nobody is requesting any
    /// more (their peer left or choked us): without this, a torrent whose peers all
    /// left mid-piece could never finish from the origin.
    Stalled,
}

impl Picker {
    fn origin_eligible(&self, p: u32, scope: OriginScope) -> bool {
        match self.state[p as usize] {
            PieceState::Missing => {
                scope != OriginScope::Unavailable || self.availability[p as usize] == 0
            }
            PieceState::Active => {
                scope == OriginScope::Stalled
                    && self.active[&p]
                        .slots
                        .iter()
                        .all(|s| s.requesters.is_empty())
            }
            _ => false,
        }
    }

    /// Where a run starts when it cannot continue: a random piece of the middle third
    /// of the longest stretch of eligible pieces (random, so two leechers choosing at
    /// the same moment rarely choose alike), or anywhere when every piece is eligible.
    fn origin_spread_start(&mut self, scope: OriginScope) -> Option<u32> {
        let n = self.piece_count();
        let (mut best, mut run_start) = (0..0, None);
        for p in 0..=n {
            let eligible = p < n && self.origin_eligible(p, scope);
            match (eligible, run_start) {
                (true, None) => run_start = Some(p),
                (false, Some(s)) => {
                    if p - s > best.end - best.start {
                        best = s..p;
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        let len = best.end - best.start;
        if len == 0 {
            return None;
        }
        let (from, span) = if len == n {
            (0, n)
        } else {
            (best.start + len / 3, (len - 2 * (len / 3)).max(1))
        };
        Some(from + (self.rng.next_u64() % u64::from(span)) as u32)
    }

    /// Reserves a run of consecutive pieces for the origin, at most `max`: an urgent
    /// piece first; else the run continuing at `after` (the end of this torrent's
    /// previous run) when that piece is eligible; else one started by
    /// `origin_spread_start` (see the module's doc). Which pieces are eligible is
    /// `scope`'s to say; never one we have, one hashing, or one a peer has an
    /// outstanding request for. Peers never pick a reserved piece;
    /// [`Picker::origin_release`] hands it back, [`Picker::origin_fetched`] moves it to
    /// hashing. Blocks already received of a stalled piece are dropped: the origin
    /// fetches it whole (the caller frees its buffer).
    pub fn reserve_for_origin(
        &mut self,
        after: Option<u32>,
        max: u32,
        scope: OriginScope,
    ) -> Option<std::ops::Range<u32>> {
        let n = self.piece_count();
        if n == 0 || max == 0 || (self.missing == 0 && scope != OriginScope::Stalled) {
            return None;
        }
        let start = match self
            .urgent
            .clone()
            .find(|&p| self.origin_eligible(p, scope))
            .or_else(|| after.filter(|&p| p < n && self.origin_eligible(p, scope)))
        {
            Some(p) => p,
            None => self.origin_spread_start(scope)?,
        };
        let mut end = start + 1;
        while end < n && end - start < max && self.origin_eligible(end, scope) {
            end += 1;
        }
        for p in start..end {
            if self.state[p as usize] == PieceState::Missing {
                self.missing -= 1;
            } else {
                self.active.remove(&p);
            }
            self.state[p as usize] = PieceState::Origin;
        }
        Some(start..end)
    }

    /// A reserved piece the origin did not deliver (an error, a timeout): missing again.
    pub fn origin_release(&mut self, piece: u32) {
        if self.state.get(piece as usize) == Some(&PieceState::Origin) {
            self.state[piece as usize] = PieceState::Missing;
            self.missing += 1;
        }
    }

    /// The origin delivered every byte of a reserved piece: on to the SHA-1 check, whose
    /// result arrives as for a peer's piece ([`Picker::piece_verified`] or
    /// [`Picker::piece_failed`]). False if the piece was not reserved.
    pub fn origin_fetched(&mut self, piece: u32) -> bool {
        let reserved = self.state.get(piece as usize) == Some(&PieceState::Origin);
        if reserved {
            self.state[piece as usize] = PieceState::Hashing;
        }
        reserved
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Arrival, Block, BLOCK_LEN};
    use super::*;

    fn all(_: u32) -> bool {
        true
    }

    #[test]
    fn origin_reserves_runs_of_unavailable_pieces_that_peers_then_skip() {
        use OriginScope::{Missing as M, Unavailable as U};
        let mut p = Picker::new(10, BLOCK_LEN, 10 * BLOCK_LEN as u64, 16, 3);
        p.set_have(1);
        p.inc_availability(5);
        // After 0: piece 0 only (1 is had); after 2: 2..5 (5 is held by a peer).
        assert_eq!(p.reserve_for_origin(Some(0), 4, U), Some(0..1));
        assert_eq!(p.reserve_for_origin(Some(2), 8, U), Some(2..5));
        // Bounded by `max`.
        assert_eq!(p.reserve_for_origin(Some(6), 2, U), Some(6..8));
        assert_eq!(p.reserve_for_origin(Some(9), 9, U), Some(9..10));
        // 10 is past the end, 9 is reserved: the one stretch left is piece 8.
        assert_eq!(p.reserve_for_origin(Some(10), 9, U), Some(8..9));
        assert_eq!(
            p.reserve_for_origin(Some(0), 9, U),
            None,
            "only 5 is left, a peer has it"
        );
        assert_eq!(
            p.reserve_for_origin(Some(0), 9, M),
            Some(5..6),
            "taking over: any missing"
        );
        // Reserved pieces are still wanted (interest) but never picked for a peer,
        // not even in endgame.
        assert!(p.wants(3));
        let mut out = vec![];
        p.pick(7, all, 100, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Released pieces go back to the peers; fetched ones go through the hash check.
        p.origin_release(3);
        p.origin_release(3);
        p.pick(7, all, 100, &mut out);
        assert_eq!(out, vec![Block { piece: 3, block: 0 }]);
        assert!(p.origin_fetched(4));
        assert!(!p.origin_fetched(4), "no longer reserved");
        assert!(!p.origin_fetched(3), "a peer's now");
        p.piece_verified(4);
        assert!(p.have(4));
        assert!(p.origin_fetched(2));
        p.piece_failed(2);
        // The have-set peers and resume data read: piece 1 (set at the start) and 4.
        assert_eq!(p.have_set().iter_set().collect::<Vec<_>>(), [1, 4]);
        assert_eq!(p.have_count(), 2);
        assert_eq!(
            p.reserve_for_origin(None, 9, M),
            Some(2..3),
            "failed: missing again"
        );
    }

    #[test]
    fn origin_takes_urgent_pieces_first_and_never_what_we_have_or_peers_fetch() {
        use OriginScope::Missing as M;
        let mut p = Picker::new(8, BLOCK_LEN, 8 * BLOCK_LEN as u64, 16, 3);
        let mut out = vec![];
        p.pick(1, |i| i == 0, 1, &mut out); // piece 0 in flight from a peer
        p.set_have(7);
        p.set_urgent(5..7);
        assert_eq!(p.reserve_for_origin(Some(0), 8, M), Some(5..7));
        // 1..5 is left: a run starts in its middle third and the rest follows.
        let a = p.reserve_for_origin(None, 8, M).unwrap();
        assert!((2..=3).contains(&a.start) && a.end == 5, "{a:?}");
        let mut got = vec![a];
        while let Some(r) = p.reserve_for_origin(None, 8, M) {
            got.push(r);
        }
        got.sort_by_key(|r| r.start);
        let pieces: Vec<u32> = got.into_iter().flatten().collect();
        assert_eq!(pieces, vec![1, 2, 3, 4]);
        assert_eq!(p.reserve_for_origin(None, 0, M), None);
        assert!(!p.is_complete());
    }

    #[test]
    fn a_run_that_meets_another_leechers_pieces_restarts_in_the_longest_gap() {
        use OriginScope::Unavailable as U;
        let mut p = Picker::new(100, BLOCK_LEN, 100 * BLOCK_LEN as u64, 16, 7);
        // Nothing known: anywhere.
        let first = p.reserve_for_origin(None, 1, U).unwrap();
        p.origin_release(first.start);
        // Another leecher announced 10..20, and has 60..62.
        for i in (10..20).chain(60..62) {
            p.inc_availability(i);
        }
        // Continuing at 10 is not possible: the run starts in the middle third of the
        // longest stretch, 20..60 (40 pieces: 33..47), never at the other's frontier.
        for _ in 0..20 {
            let r = p.reserve_for_origin(Some(10), 1, U).unwrap();
            assert!((33..47).contains(&r.start), "{r:?}");
            p.origin_release(r.start);
        }
        // A run continues while it can.
        assert_eq!(p.reserve_for_origin(Some(40), 4, U), Some(40..44));
        assert_eq!(p.reserve_for_origin(Some(44), 4, U), Some(44..48));
    }

    #[test]
    fn stalled_pieces_of_departed_peers_can_go_to_the_origin() {
        use OriginScope::{Missing, Stalled};
        let mut p = Picker::new(3, 2 * BLOCK_LEN, 6 * BLOCK_LEN as u64, 16, 3);
        // Peer 1 gets half of piece 0 and leaves; peer 2 is fetching piece 1.
        let mut a = vec![];
        p.pick(1, |i| i == 0, 2, &mut a);
        let _ = p.block_received(1, a[0]);
        p.peer_gone(1, vec![a[1]]);
        let mut b = vec![];
        p.pick(2, |i| i == 1, 2, &mut b);
        p.set_have(2);
        // Nothing is missing; piece 0 is stalled, piece 1 is in flight.
        assert_eq!(p.reserve_for_origin(None, 8, Missing), None);
        assert_eq!(p.reserve_for_origin(Some(1), 8, Stalled), Some(0..1));
        assert_eq!(
            p.reserve_for_origin(None, 8, Stalled),
            None,
            "piece 1 is peer 2's"
        );
        assert_eq!(p.active_count(), 1);
        // Peer 1's late block is a duplicate now; the origin's piece verifies.
        assert_eq!(p.block_received(1, a[1]), Arrival::Duplicate);
        assert!(p.origin_fetched(0));
        p.piece_verified(0);
        assert!(p.have(0));
        // Released instead: plain missing again, for anyone.
        p.peer_gone(2, b.clone());
        assert_eq!(p.reserve_for_origin(None, 8, Missing), Some(1..2));
        p.origin_release(1);
        assert!(p.wants(1));
        let mut c = vec![];
        p.pick(3, all, 8, &mut c);
        assert_eq!(c.len(), 2);
    }
}
