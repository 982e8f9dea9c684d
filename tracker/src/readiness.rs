//! The swarms deploy scripts are waiting on: each `GET /swarms/{info_hash}?expect=N`
//! remembers N for that torrent (a bounded, recently-asked set), so `/metrics` and the
//! swarm-health dashboard can show seeders against what the deploy expects.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kpbt_proto::InfoHash;

/// Torrents remembered at most (one metric series pair each): a deploy waits on a few
/// artifacts at a time, and the series must stay bounded whatever clients ask.
pub const MAX_WATCHED: usize = 16;
/// A torrent nobody has asked about for this long is forgotten (its deploy is over).
pub const WATCH_FOR: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Watched {
    entries: Mutex<Vec<Entry>>,
}

struct Entry {
    hash: InfoHash,
    expected: u32,
    asked: Instant,
}

impl Watched {
    /// Remembers that a deploy expects `expected` seeders of `hash`; the least recently
    /// asked torrent makes room when the set is full.
    pub fn ask(&self, hash: InfoHash, expected: u32, now: Instant) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = e.iter_mut().find(|x| x.hash == hash) {
            x.expected = expected;
            x.asked = now;
            return;
        }
        if e.len() >= MAX_WATCHED {
            if let Some(oldest) = (0..e.len()).min_by_key(|&i| e[i].asked) {
                e.swap_remove(oldest);
            }
        }
        e.push(Entry {
            hash,
            expected,
            asked: now,
        });
    }

    /// The torrents still watched at `now` with their expected seeders, in info-hash
    /// order; forgets those not asked about within [`WATCH_FOR`].
    pub fn current(&self, now: Instant) -> Vec<(InfoHash, u32)> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.retain(|x| now.saturating_duration_since(x.asked) < WATCH_FOR);
        let mut out: Vec<_> = e.iter().map(|x| (x.hash, x.expected)).collect();
        out.sort_by_key(|(h, _)| h.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    #[test]
    fn the_set_keeps_the_latest_expectation_and_stays_bounded() {
        let w = Watched::default();
        let t0 = Instant::now();
        w.ask(h(1), 3, t0);
        w.ask(h(1), 5, t0 + Duration::from_secs(1));
        assert_eq!(w.current(t0), vec![(h(1), 5)]);
        for n in 2..=(MAX_WATCHED as u8 + 3) {
            w.ask(h(n), u32::from(n), t0 + Duration::from_secs(u64::from(n)));
        }
        let now = w.current(t0 + Duration::from_secs(30));
        assert_eq!(now.len(), MAX_WATCHED);
        // The least recently asked went first: 1, 2 and 3.
        assert_eq!(now[0], (h(4), 4));
        assert!(!now.iter().any(|(x, _)| *x == h(1)));
    }

    #[test]
    fn torrents_nobody_asks_about_any_more_are_forgotten() {
        let w = Watched::default();
        let t0 = Instant::now();
        w.ask(h(1), 2, t0);
        w.ask(h(2), 2, t0 + WATCH_FOR);
        assert_eq!(w.current(t0 + WATCH_FOR), vec![(h(2), 2)]);
        assert!(w.current(t0 + 2 * WATCH_FOR).is_empty());
    }
}
