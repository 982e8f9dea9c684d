//! Per-client request rate limit: a token bucket per IPv4 address or IPv6 /64, in a table
//! of bounded size.
//!
//! IPv6 is keyed by /64 because one host usually owns a whole /64: per-address buckets
//! would give it 2^64 of them. The table holds at most `max_ips` buckets; a bucket that
//! has refilled to full is indistinguishable from no bucket, so when the table is full the
//! idle ones are swept out. If it is still full (more distinct clients active at once than
//! the cap), new clients are refused until some go idle: the cap bounds memory, and
//! refusing is the only answer that keeps it bounded without letting a flood of fresh
//! addresses reset everyone's budget.
//!
//! Time is passed in (`now: Instant`), so tests drive refills without sleeping.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;

/// Bucket key: an IPv4 address, or the /64 prefix of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut p = [0u8; 8];
                p.copy_from_slice(&o[..8]);
                ClientKey::V6(p)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Milliseconds since the limiter started, at the last refill.
    last_ms: u64,
}

/// Rate-limit settings; see the `rate_limit_*` config keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second per client.
    pub per_sec: f64,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Most clients tracked at once.
    pub max_clients: usize,
}

pub struct RateLimiter {
    limit: RateLimit,
    buckets: DashMap<ClientKey, Bucket>,
    start: Instant,
    /// When the last sweep for idle buckets ran (ms since `start`), so a full table under
    /// a flood of new addresses is swept at most once a second, not on every request.
    last_sweep_ms: AtomicU64,
}

/// Sweeps of a full table at most this often.
const SWEEP_EVERY_MS: u64 = 1000;

impl RateLimiter {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        RateLimiter {
            limit,
            buckets: DashMap::new(),
            start: now,
            last_sweep_ms: AtomicU64::new(0),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Refilled token count of `b` at `t`, capped at the burst.
    fn refilled(&self, b: &Bucket, t: u64) -> f64 {
        let earned = t.saturating_sub(b.last_ms) as f64 * self.limit.per_sec / 1000.0;
        (b.tokens + earned).min(f64::from(self.limit.burst))
    }

    /// Takes one token for `ip` at `now`; `false` means over the limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let t = self.ms(now);
        let key = ClientKey::of(ip);
        if let Some(mut b) = self.buckets.get_mut(&key) {
            return self.take(&mut b, t);
        }
        if self.buckets.len() >= self.limit.max_clients {
            let last = self.last_sweep_ms.load(Ordering::Relaxed);
            let due = t.saturating_sub(last) >= SWEEP_EVERY_MS || last == 0;
            if due
                && self
                    .last_sweep_ms
                    .compare_exchange(last, t.max(1), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.sweep(now);
            }
            if self.buckets.len() >= self.limit.max_clients {
                return false;
            }
        }
        let mut b = self.buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(self.limit.burst),
            last_ms: t,
        });
        self.take(&mut b, t)
    }

    fn take(&self, b: &mut Bucket, t: u64) -> bool {
        b.tokens = self.refilled(b, t);
        b.last_ms = b.last_ms.max(t);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that have refilled completely (their clients have been idle long
    /// enough that forgetting them changes nothing). Also run by the reaper.
    pub fn sweep(&self, now: Instant) {
        let t = self.ms(now);
        let burst = f64::from(self.limit.burst);
        self.buckets.retain(|_, b| self.refilled(b, t) < burst);
    }

    /// Clients currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(per_sec: f64, burst: u32, max_clients: usize) -> (RateLimiter, Instant) {
        let t0 = Instant::now();
        let l = RateLimiter::new(
            RateLimit {
                per_sec,
                burst,
                max_clients,
            },
            t0,
        );
        (l, t0)
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let (l, t0) = limiter(2.0, 3, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..3).all(|_| l.allow(ip, t0)));
        assert!(!l.allow(ip, t0));
        // Half a second at 2/s earns one token.
        let t = t0 + Duration::from_millis(500);
        assert!(l.allow(ip, t));
        assert!(!l.allow(ip, t));
        // Another client is unaffected.
        assert!(l.allow("10.0.0.2".parse().unwrap(), t));
        // Time going backwards (another thread's older `now`) earns nothing.
        assert!(!l.allow(ip, t0));
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        let (l, t0) = limiter(1.0, 1, 10);
        assert!(l.allow("2001:db8:1:2::1".parse().unwrap(), t0));
        assert!(!l.allow("2001:db8:1:2:ffff::9".parse().unwrap(), t0));
        assert!(l.allow("2001:db8:1:3::1".parse().unwrap(), t0));
        assert!(l.allow("::ffff:10.0.0.1".parse().unwrap(), t0));
        assert!(!l.allow("10.0.0.1".parse().unwrap(), t0));
    }

    #[test]
    fn table_is_bounded_and_idle_clients_are_evicted() {
        let (l, t0) = limiter(1.0, 2, 100);
        for i in 0..100u32 {
            assert!(l.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        // Full of active clients: a new one is refused, nothing grows.
        let newcomer: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!l.allow(newcomer, t0 + Duration::from_millis(10)));
        assert_eq!(l.tracked(), 100);
        // Two seconds later everyone has refilled: the sweep frees the table.
        let later = t0 + Duration::from_secs(2);
        assert!(l.allow(newcomer, later));
        assert_eq!(l.tracked(), 1);
        l.sweep(later + Duration::from_secs(5));
        assert_eq!(l.tracked(), 0);
    }
}
