//! The swarm-store seam: [`SwarmStore`] is what the front ends (HTTP, and UDP) call to
//! announce, scrape, read totals, reap and check health, whichever store runs behind it.
//!
//! Two stores implement it: [`memory::MemoryStore`] (dashmap in this process, the default;
//! its answers are ready at once) and [`redis::RedisStore`] (state in Redis or a Redis
//! Cluster, shared by several tracker instances). Callers pass already-parsed requests and
//! get back what they encode; they never see which store answered.
//!
//! Times are [`Secs`], wall-clock Unix seconds from [`Clock`]: where several instances
//! share state they must agree on who is stale, and a restart must not reset it.
//!
//! Every call is timed into the store latency histogram; remote failures and calls slower
//! than the configured timeout become [`StoreUnavailable`], are counted, and mark the
//! store unhealthy until a call succeeds again.

pub mod memory;
pub mod redis;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kpbt_proto::announce::{
    AnnounceEvent, AnnounceRequest, PeerListFormat, ReplyPeer, ScrapeStats,
};
use kpbt_proto::InfoHash;
use prometheus::{HistogramVec, IntCounterVec};

use crate::labels::Labels;

pub use memory::MemoryStore;
pub use redis::{
    CallOutcome, RedisStore, StoreSpec, StoreSpecError, ANNOUNCE_PATHS as REDIS_ANNOUNCE_PATHS,
};

/// Wall-clock seconds since the Unix epoch (u32 lasts until 2106).
pub type Secs = u32;

/// The tracker's time source: wall-clock seconds, advanced by a monotonic clock so that a
/// clock step while running cannot make every peer look stale (or fresh) at once.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_unix: u64,
}

impl Clock {
    pub fn new() -> Self {
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Clock {
            start: Instant::now(),
            start_unix,
        }
    }

    /// Now, in wall-clock [`Secs`].
    pub fn now(&self) -> Secs {
        let t = self.start_unix + self.start.elapsed().as_secs();
        u32::try_from(t).unwrap_or(u32::MAX)
    }

    /// Seconds since this clock was created (the tracker's uptime).
    pub fn uptime(&self) -> u32 {
        u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Sizing rules the store enforces.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub max_torrents: usize,
    pub max_peers_per_torrent: usize,
    /// Slots one IP may hold in one swarm (loopback exempt).
    pub max_peers_per_ip: usize,
    pub numwant_default: u32,
    pub numwant_max: u32,
    pub peer_timeout_secs: u32,
}

impl StoreLimits {
    /// Peers the client gets for its `numwant` (or the default), capped.
    pub fn numwant(&self, asked: Option<u32>) -> u32 {
        asked.unwrap_or(self.numwant_default).min(self.numwant_max)
    }
}

/// Sent when the shared store cannot be reached in time.
pub const STORE_UNAVAILABLE: &str =
    "tracker storage is unavailable, try again later (the tracker is up; its database is not)";

/// Announces the store refuses; nothing is allocated for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("tracker is full: too many torrents")]
    TooManyTorrents,
    #[error("swarm is full: too many peers")]
    SwarmFull,
    #[error("too many peers from your address in this swarm")]
    TooManyFromAddress,
    #[error("{}", STORE_UNAVAILABLE)]
    Unavailable,
}

impl AnnounceError {
    pub fn label(self) -> &'static str {
        match self {
            AnnounceError::TooManyTorrents => "torrent_limit",
            AnnounceError::SwarmFull => "swarm_full",
            AnnounceError::TooManyFromAddress => "address_limit",
            AnnounceError::Unavailable => "store_unavailable",
        }
    }
}

/// The store could not answer (Redis down, slow, or refusing); details are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", STORE_UNAVAILABLE)]
pub struct StoreUnavailable;

impl From<StoreUnavailable> for AnnounceError {
    fn from(_: StoreUnavailable) -> Self {
        AnnounceError::Unavailable
    }
}

/// The result of an accepted announce.
#[derive(Debug, Clone, Default)]
pub struct AnnounceOutcome {
    /// Seeders in the swarm, including the announcing peer.
    pub complete: u32,
    /// Leechers in the swarm, including the announcing peer.
    pub incomplete: u32,
    /// Other peers for the client, never itself, chosen by [`Wanted`] (and labels). Their
    /// ids are only filled in when [`wants_peer_ids`] (zeros otherwise).
    pub peers: Vec<ReplyPeer>,
    /// Whether this announce was counted as a completed download.
    pub counted_completion: bool,
}

/// Which peers an announce is given (both stores apply the same rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// A leecher: seeders and leechers.
    Everyone,
    /// A seeder re-announcing (no event, or `completed`): leechers only, since seeders
    /// have nothing to give each other.
    Leechers,
    /// A `left=0` peer's `started` (its first appearance): leechers first, then seeders
    /// to fill `numwant`. Magnet clients without metadata announce `left=0` (they do not
    /// know the size yet); given no seeders they could never start.
    LeechersThenSeeders,
}

impl Wanted {
    pub fn of(req: &AnnounceRequest) -> Self {
        match (req.left == 0, req.event) {
            (false, _) => Wanted::Everyone,
            (true, AnnounceEvent::Started) => Wanted::LeechersThenSeeders,
            (true, _) => Wanted::Leechers,
        }
    }
}

/// Whether the reply to `req` carries peer ids: only a non-compact reply without
/// `no_peer_id` does. Otherwise a store may leave [`ReplyPeer::peer_id`] zeroed (the
/// Redis store then does not read them).
pub fn wants_peer_ids(req: &AnnounceRequest) -> bool {
    PeerListFormat::for_request(req) == PeerListFormat::Dict { with_peer_id: true }
}

/// One swarm's figures, for `GET /swarms/{info_hash}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmInfo {
    pub seeders: u32,
    pub leechers: u32,
    /// Completed downloads counted (the scrape `downloaded` figure).
    pub completed: u32,
    /// When the last counted completion arrived (wall-clock [`Secs`]).
    pub last_completed: Option<Secs>,
    /// Peers per label, indexed by [`crate::labels::LabelId`] (0: none).
    pub per_label: Vec<u32>,
}

/// What one reaper pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    pub peers_removed: u64,
    pub torrents_removed: u64,
}

/// Store-wide totals (over every instance sharing the store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub torrents: u64,
    pub seeders: u64,
    pub leechers: u64,
}

/// The store's health as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Unhealthy(String),
}

/// Store operations, as labelled in the latency histogram and error counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Announce,
    Scrape,
    Stats,
    Reap,
    Ping,
    /// One swarm's figures (`/swarms/{info_hash}`).
    Swarm,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Announce,
        Op::Scrape,
        Op::Stats,
        Op::Reap,
        Op::Ping,
        Op::Swarm,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Op::Announce => "announce",
            Op::Scrape => "scrape",
            Op::Stats => "stats",
            Op::Reap => "reap",
            Op::Ping => "ping",
            Op::Swarm => "swarm",
        }
    }
}

/// Where the seam reports timings and errors (handles into the tracker's registry).
#[derive(Clone)]
pub struct StoreMetrics {
    /// `op` label; seconds per store call.
    pub latency: HistogramVec,
    /// `op` label; failed or timed-out store calls.
    pub errors: IntCounterVec,
    /// `path` label; announces the Redis store served, by how (see [`RedisStore`]).
    pub redis_paths: IntCounterVec,
}

enum Backend {
    Memory(MemoryStore),
    Redis(Box<RedisStore>),
}

/// The one store the front ends talk to.
pub struct SwarmStore {
    backend: Backend,
    limits: StoreLimits,
    labels: Arc<Labels>,
    timeout: Duration,
    metrics: Option<StoreMetrics>,
    /// The last failure's description while the store is failing; `None` when healthy.
    failing: Mutex<Option<String>>,
}

impl SwarmStore {
    /// The in-process store.
    pub fn memory(limits: StoreLimits) -> Self {
        Self::memory_with_labels(limits, Arc::new(Labels::empty()))
    }

    /// The in-process store, grouping peers by `labels`.
    pub fn memory_with_labels(limits: StoreLimits, labels: Arc<Labels>) -> Self {
        let m = MemoryStore::with_labels(limits, labels.clone());
        Self::with(Backend::Memory(m), limits, labels)
    }

    /// The store `spec` names. Redis connects lazily (and reconnects by itself), so this
    /// succeeds while Redis is down; calls then fail until it is reachable.
    pub fn open(
        spec: &StoreSpec,
        limits: StoreLimits,
        timeout: Duration,
    ) -> Result<Self, StoreSpecError> {
        Self::open_with_labels(spec, limits, Arc::new(Labels::empty()), timeout)
    }

    /// [`SwarmStore::open`], grouping peers by `labels`. Every instance sharing a Redis
    /// store should have the same labels.
    pub fn open_with_labels(
        spec: &StoreSpec,
        limits: StoreLimits,
        labels: Arc<Labels>,
        timeout: Duration,
    ) -> Result<Self, StoreSpecError> {
        let backend = match spec {
            StoreSpec::Memory => Backend::Memory(MemoryStore::with_labels(limits, labels.clone())),
            other => {
                let mut r = RedisStore::open(other, limits, timeout)?;
                r.set_labels(labels.clone());
                Backend::Redis(Box::new(r))
            }
        };
        let mut s = Self::with(backend, limits, labels);
        s.timeout = timeout;
        Ok(s)
    }

    fn with(backend: Backend, limits: StoreLimits, labels: Arc<Labels>) -> Self {
        SwarmStore {
            backend,
            limits,
            labels,
            timeout: Duration::from_secs(1),
            metrics: None,
            failing: Mutex::new(None),
        }
    }

    /// Reports timings and errors to `metrics` from now on.
    pub fn set_metrics(&mut self, metrics: StoreMetrics) {
        if let Backend::Redis(r) = &mut self.backend {
            r.set_path_counters(&metrics.redis_paths);
        }
        self.metrics = Some(metrics);
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// The labels peers are grouped by (empty when none are configured).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// `memory`, `redis` or `redis-cluster`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(r) => r.kind(),
        }
    }

    /// The in-process store, if that is what runs (memory reports, tests).
    pub fn as_memory(&self) -> Option<&MemoryStore> {
        match &self.backend {
            Backend::Memory(m) => Some(m),
            Backend::Redis(_) => None,
        }
    }

    /// Records an announce from `peer` (the address other peers should connect to).
    pub async fn announce(
        &self,
        req: &AnnounceRequest,
        peer: SocketAddr,
        now: Secs,
    ) -> Result<AnnounceOutcome, AnnounceError> {
        match &self.backend {
            Backend::Memory(m) => self.timed(Op::Announce, || m.announce(req, peer, now)),
            Backend::Redis(r) => {
                match self.remote(Op::Announce, r.announce(req, peer, now)).await {
                    Ok(result) => result,
                    Err(StoreUnavailable) => Err(AnnounceError::Unavailable),
                }
            }
        }
    }

    /// Figures for each requested torrent (zeros for unknown ones), in request order.
    pub async fn scrape(
        &self,
        hashes: &[InfoHash],
    ) -> Result<Vec<(InfoHash, ScrapeStats)>, StoreUnavailable> {
        match &self.backend {
            Backend::Memory(m) => Ok(self.timed(Op::Scrape, || m.scrape(hashes))),
            Backend::Redis(r) => self.remote(Op::Scrape, r.scrape(hashes)).await,
        }
    }

    /// Totals over the whole store (every instance's swarms, for a shared store).
    pub async fn stats(&self) -> Result<StoreStats, StoreUnavailable> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.stats()),
            Backend::Redis(r) => self.remote(Op::Stats, r.stats()).await,
        }
    }

    /// Peers per label over the whole store, indexed by [`crate::labels::LabelId`]
    /// (0: none). Empty when no labels are configured (nothing is asked of the store).
    pub async fn label_peers(&self) -> Result<Vec<u64>, StoreUnavailable> {
        if self.labels.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Memory(m) => Ok(m.label_peers()),
            Backend::Redis(r) => self.remote(Op::Stats, r.label_peers()).await,
        }
    }

    /// One swarm's figures; `None` when the store holds no peers for it.
    pub async fn swarm(&self, hash: &InfoHash) -> Result<Option<SwarmInfo>, StoreUnavailable> {
        match &self.backend {
            Backend::Memory(m) => Ok(self.timed(Op::Swarm, || m.swarm(hash))),
            Backend::Redis(r) => self.remote(Op::Swarm, r.swarm(hash)).await,
        }
    }

    /// Drops peers not seen for `peer_timeout_secs` before `now`, and swarms left empty.
    /// With a shared store every instance reaps; the passes are idempotent.
    pub async fn reap(&self, now: Secs) -> Result<ReapReport, StoreUnavailable> {
        match &self.backend {
            Backend::Memory(m) => Ok(self.timed(Op::Reap, || m.reap(now))),
            // Reaping walks many keys: give it more time than a request.
            Backend::Redis(r) => {
                let t = self.timeout * 10;
                self.remote_within(Op::Reap, t, r.reap(now)).await
            }
        }
    }

    /// Whether the store answers now (a PING for Redis, within the timeout).
    pub async fn health(&self) -> Health {
        match &self.backend {
            Backend::Memory(_) => Health::Ok,
            Backend::Redis(r) => match self.remote(Op::Ping, r.ping()).await {
                Ok(()) => Health::Ok,
                Err(StoreUnavailable) => Health::Unhealthy(
                    self.failure()
                        .unwrap_or_else(|| format!("{} store did not answer", self.kind())),
                ),
            },
        }
    }

    /// The last failure's description, while the store is failing.
    pub fn failure(&self) -> Option<String> {
        self.failing.lock().map_or(None, |f| f.clone())
    }

    fn timed<T>(&self, op: Op, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.observe(op, started);
        out
    }

    fn observe(&self, op: Op, started: Instant) {
        if let Some(m) = &self.metrics {
            m.latency
                .with_label_values(&[op.label()])
                .observe(started.elapsed().as_secs_f64());
        }
    }

    async fn remote<T>(
        &self,
        op: Op,
        fut: impl std::future::Future<Output = Result<T, redis::RemoteError>>,
    ) -> Result<T, StoreUnavailable> {
        self.remote_within(op, self.timeout, fut).await
    }

    /// Runs a remote call with a deadline: a hung connection must never hang a request.
    async fn remote_within<T>(
        &self,
        op: Op,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<T, redis::RemoteError>>,
    ) -> Result<T, StoreUnavailable> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, fut).await;
        // The store heals its connection from these (a call dropped at the deadline
        // never ends inside the store, so it is told here).
        if let Backend::Redis(r) = &self.backend {
            r.after_call(match &outcome {
                Ok(Ok(_)) => CallOutcome::Ok,
                Ok(Err(e)) => CallOutcome::Failed(e),
                Err(_) => CallOutcome::TimedOut,
            });
        }
        let result = match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "{} store did not answer within {} ms",
                self.kind(),
                timeout.as_millis()
            )),
        };
        self.observe(op, started);
        match result {
            Ok(v) => {
                if let Ok(mut f) = self.failing.lock() {
                    if f.take().is_some() {
                        tracing::info!("{} store answering again", self.kind());
                    }
                }
                Ok(v)
            }
            Err(why) => {
                if let Some(m) = &self.metrics {
                    m.errors.with_label_values(&[op.label()]).inc();
                }
                if let Ok(mut f) = self.failing.lock() {
                    // Log the first failure of a run, not every request while it lasts.
                    if f.is_none() {
                        tracing::warn!("{} store failing ({}): {why}", self.kind(), op.label());
                    }
                    *f = Some(why);
                }
                Err(StoreUnavailable)
            }
        }
    }
}
