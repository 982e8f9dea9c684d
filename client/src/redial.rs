//! When to dial a peer address again after our connection to it ended: an exponential
//! back-off per address, so a peer that turned us away a moment ago (restarting, or
//! still closing the connection we had with it, as Transmission does right after a
//! magnet link's metadata connection) is tried again within a second or two, and a dead
//! one costs a handful of attempts before it is given up. Pure: the caller passes the
//! time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Wait before the first redial; doubled per attempt that followed.
const FIRST: Duration = Duration::from_secs(1);
const MOST: Duration = Duration::from_secs(120);
/// A connection that lasted this long worked: the back-off starts over.
const HEALTHY: Duration = Duration::from_secs(30);
/// Dials in a row (none of them healthy) after which an address is given up; the tracker
/// or PEX may hand it out again later.
const GIVE_UP_AFTER: u32 = 10;
/// Addresses remembered at most; beyond, those not waiting for a redial are forgotten.
const MAX_TRACKED: usize = 2048;

#[derive(Default)]
pub(crate) struct Redial {
    entries: HashMap<SocketAddr, Entry>,
    /// No entry is due before this (it may be early: a due entry dialled since); read
    /// on every turn of the torrent task's loop, so kept instead of scanned for.
    earliest: Option<Instant>,
}

struct Entry {
    /// Dials since the last healthy connection.
    attempts: u32,
    /// When it may be dialled again; `None` while a dial may start at once (or is
    /// under way).
    due: Option<Instant>,
}

impl Redial {
    /// Whether `addr` may be dialled at `now` (not backing off).
    pub fn may_dial(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.entries
            .get(addr)
            .and_then(|e| e.due)
            .is_none_or(|due| due <= now)
    }

    /// A dial to `addr` starts.
    pub fn dialled(&mut self, addr: SocketAddr) {
        if self.entries.len() >= MAX_TRACKED && !self.entries.contains_key(&addr) {
            self.entries.retain(|_, e| e.due.is_some());
        }
        let e = self.entries.entry(addr).or_insert(Entry {
            attempts: 0,
            due: None,
        });
        e.attempts = e.attempts.saturating_add(1);
        e.due = None;
    }

    /// Our dial to `addr` ended after `lasted` (refused, failed, or closed later): when
    /// it is due again, or `None` when it is given up.
    pub fn ended(&mut self, addr: SocketAddr, now: Instant, lasted: Duration) -> Option<Instant> {
        let e = self.entries.get_mut(&addr)?;
        if lasted >= HEALTHY {
            e.attempts = 1;
        }
        if e.attempts >= GIVE_UP_AFTER {
            self.entries.remove(&addr);
            return None;
        }
        let wait = FIRST
            .saturating_mul(1 << (e.attempts.saturating_sub(1)).min(16))
            .min(MOST);
        let due = now + wait;
        e.due = Some(due);
        self.earliest = Some(self.earliest.map_or(due, |t| t.min(due)));
        Some(due)
    }

    /// When to look for due addresses next ([`Redial::take_due`]); `None` while none
    /// waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.earliest
    }

    /// The addresses due by `now`: they may be dialled from now on.
    pub fn take_due(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        let mut earliest = None::<Instant>;
        for (a, e) in &mut self.entries {
            match e.due {
                Some(d) if d <= now => {
                    e.due = None;
                    out.push(*a);
                }
                Some(d) => earliest = Some(earliest.map_or(d, |t| t.min(d))),
                None => {}
            }
        }
        self.earliest = earliest;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    #[test]
    fn a_refused_peer_is_tried_again_after_one_then_two_then_four_seconds() {
        let mut r = Redial::default();
        let t0 = Instant::now();
        let a = addr(1);
        assert!(r.may_dial(&a, t0));
        let mut now = t0;
        for wait in [1, 2, 4, 8, 16] {
            r.dialled(a);
            let due = r.ended(a, now, Duration::ZERO).unwrap();
            assert_eq!(due - now, Duration::from_secs(wait));
            assert!(!r.may_dial(&a, now));
            assert_eq!(r.next_due(), Some(due));
            assert!(r.take_due(due - Duration::from_millis(1)).is_empty());
            assert_eq!(r.take_due(due), vec![a]);
            assert!(r.may_dial(&a, due));
            assert_eq!(r.next_due(), None);
            now = due;
        }
    }

    #[test]
    fn a_healthy_connection_starts_the_back_off_over_and_dead_peers_are_given_up() {
        let mut r = Redial::default();
        let t0 = Instant::now();
        let (a, b) = (addr(1), addr(2));
        for _ in 0..5 {
            r.dialled(a);
            r.ended(a, t0, Duration::ZERO);
        }
        r.dialled(a);
        let due = r.ended(a, t0, HEALTHY).unwrap();
        assert_eq!(
            due - t0,
            FIRST,
            "it worked for a while: back to the first wait"
        );
        let mut given_up = false;
        for _ in 0..GIVE_UP_AFTER {
            r.dialled(b);
            if r.ended(b, t0, Duration::ZERO).is_none() {
                given_up = true;
            }
        }
        assert!(given_up);
        assert!(
            r.may_dial(&b, t0),
            "forgotten: a tracker may hand it out again"
        );
        assert!(
            r.ended(addr(3), t0, Duration::ZERO).is_none(),
            "never dialled"
        );
        let waits = (1..GIVE_UP_AFTER).map(|k| FIRST.saturating_mul(1 << (k - 1)).min(MOST));
        assert_eq!(waits.max(), Some(MOST), "the waits are capped");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut r = Redial::default();
        for p in 0..(3 * MAX_TRACKED) as u16 {
            r.dialled(addr(p));
        }
        assert!(r.entries.len() <= MAX_TRACKED);
    }
}
