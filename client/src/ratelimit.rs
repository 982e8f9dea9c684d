//! Token-bucket rate limiting shared by every peer of a session (`--upload-limit`,
//! `--download-limit`), with optional per-torrent limits on top. Callers reserve bytes
//! and sleep until the bucket has paid them off, so many peers drawing from one bucket
//! together stay under the rate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so the limiter can be tested with paused time.
use tokio::time::Instant;

/// How much unused allowance may pile up, as seconds of the rate: enough to absorb
/// scheduling jitter, small enough that an idle period doesn't turn into a long burst.
const BURST_SECS: f64 = 0.1;

/// A bytes-per-second limit; `None` rate means unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    rate: Option<u64>,
    /// May go negative: the debt of reservations not yet paid off by elapsed time.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: Option<u64>) -> RateLimiter {
        RateLimiter {
            state: Mutex::new(Bucket {
                rate: rate.filter(|r| *r > 0),
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    pub fn set_rate(&self, rate: Option<u64>) {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        b.rate = rate.filter(|r| *r > 0);
        b.tokens = 0.0;
        b.last = Instant::now();
    }

    pub fn rate(&self) -> Option<u64> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    /// Takes `n` bytes of allowance; returns how long to wait before using them.
    /// Reserving first and sleeping after (instead of polling) keeps waiters in
    /// arrival order and lets one large reservation exceed the burst size.
    fn reserve(&self, n: u64) -> Duration {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rate) = b.rate else {
            return Duration::ZERO;
        };
        let rate = rate as f64;
        let now = Instant::now();
        let refill = (now - b.last).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(rate * BURST_SECS);
        b.last = now;
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }

    /// Waits until `n` more bytes may pass.
    pub async fn acquire(&self, n: u64) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A torrent's limit stacked on the host's: bytes pass when both allow them.
#[derive(Debug)]
pub struct StackedLimit {
    pub host: Arc<RateLimiter>,
    pub torrent: RateLimiter,
}

impl StackedLimit {
    pub fn new(host: Arc<RateLimiter>) -> StackedLimit {
        StackedLimit {
            host,
            torrent: RateLimiter::new(None),
        }
    }

    pub async fn acquire(&self, n: u64) {
        self.torrent.acquire(n).await;
        self.host.acquire(n).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throughput_respects_the_limit_across_tasks() {
        let rate = 100 * 1024;
        let limiter = Arc::new(RateLimiter::new(Some(rate)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        // Four "peers" each pushing 50 blocks of 16 KiB through one shared bucket.
        for _ in 0..4 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    l.acquire(16 * 1024).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let total = 4 * 50 * 16 * 1024u64;
        let secs = start.elapsed().as_secs_f64();
        let expected = total as f64 / rate as f64; // 32 s
        assert!(secs >= expected - BURST_SECS - 0.01, "too fast: {secs} s");
        assert!(secs <= expected + 1.0, "too slow: {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_does_not_bank_a_large_burst() {
        let limiter = RateLimiter::new(Some(1000));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        limiter.acquire(1000).await;
        limiter.acquire(1000).await;
        // At most BURST_SECS of the rate was banked during the idle minute.
        assert!(start.elapsed() >= Duration::from_secs_f64(2.0 - BURST_SECS - 0.01));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits_and_rate_can_change() {
        let limiter = RateLimiter::new(None);
        let start = Instant::now();
        limiter.acquire(u64::MAX / 2).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.set_rate(Some(10));
        limiter.acquire(20).await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(RateLimiter::new(Some(0)).rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lower_of_host_and_torrent_limits_wins() {
        let host = Arc::new(RateLimiter::new(Some(1000)));
        let a = StackedLimit::new(host.clone());
        let b = StackedLimit::new(host);
        b.torrent.set_rate(Some(100));
        let start = Instant::now();
        // Two torrents share the host's 1000 B/s: 2000 bytes take about 2 s in all.
        tokio::join!(
            a.acquire(1000),
            a.acquire(500),
            b.acquire(100),
            b.acquire(100)
        );
        assert!(start.elapsed() >= Duration::from_secs_f64(1.7 - BURST_SECS - 0.05));
        // b alone is held to its own 100 B/s although the host allows more.
        let start = Instant::now();
        b.acquire(100).await;
        b.acquire(100).await;
        assert!(start.elapsed() >= Duration::from_secs_f64(2.0 - BURST_SECS - 0.01));
    }
}
