//! The Redis store: swarm state in one Redis server or a Redis Cluster, shared by every
//! tracker instance pointed at it, and the `store = ...` setting that selects it.
//!
//! Key layout. A swarm's keys share one hash tag, the info hash in hex, so each swarm
//! lives in one cluster slot and an announce is one round trip whatever the swarm's
//! size (two when the pipeline hands over): a known peer's event-less re-announce is one
//! MULTI/EXEC pipeline of plain commands (`redis/reannounce.rs`), everything else one Lua
//! script call (`redis_announce.lua`, batched on a single server), and a re-announce the
//! pipeline finds it cannot serve one of each:
//! - `{H}s`, `{H}l`: sorted sets of seeders and leechers; member = the peer's address
//!   (4 or 16 IP bytes, then the port big-endian, the compact form), score = last seen
//!   (wall-clock seconds). Counts are `ZCARD`s; stale peers are found by score.
//! - `{H}p`: hash of address → peer id (20 bytes) followed by the peer's label name
//!   (nothing when unlabelled), IP bytes → peers from that IP (the per-IP cap), `d` →
//!   completed downloads and `c` → when the last one was counted. Field lengths (6/18,
//!   4/16, 1) cannot collide.
//! - `{H}s:NAME`, `{H}l:NAME`: the seeders and leechers with label NAME, with the same
//!   scores as in `{H}s`/`{H}l`; every removal from those goes through the peer's label,
//!   so they empty (and vanish) with the swarm.
//!
//! Totals and the reaper's index live in *buckets* that share the swarm's slot, so the
//! same script updates them atomically: `kpbt:ix{T}` (sorted set: swarm → a lower bound
//! of its oldest peer's last-seen, 0 when empty; an announce leaves it alone unless it
//! falls, so the oldest peer re-announcing costs no write, and a script that removes
//! stale peers sets it exactly) and `kpbt:st{T}` (hash: `t` torrents, `s` seeders, `l`
//! leechers, `n:NAME` peers with label NAME). A single Redis has one bucket (`T` empty);
//! a cluster has one per slot, `T` a `{tag}` of that slot. `/stats` sums the buckets; the
//! reaper visits only the swarms whose score is below the cutoff (a range query on the
//! index): those holding stale peers, and those whose oldest peer came back since the
//! score was set (the visit sets it exactly), never all keys.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest, ReplyPeer, ScrapeStats};
use kpbt_proto::{InfoHash, PeerId};
use prometheus::{IntCounter, IntCounterVec};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::{
    wants_peer_ids, AnnounceError, AnnounceOutcome, ReapReport, Secs, StoreLimits, StoreStats,
    SwarmInfo, Wanted,
};
use crate::labels::Labels;
use calls::{eval, AnnounceCall, Batcher, Shared};
pub use cluster::key_slot;
use cluster::{refused_by_topology, slot_tags, ClusterConn};
pub use error::{CallOutcome, RemoteError};
use reannounce::{Reannounce, Verdict};
use recent::Recent;

mod calls;
mod cluster;
mod error;
mod parts;
mod reannounce;
mod recent;

/// Which store to run: the `store` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In this process (the default).
    Memory,
    /// One Redis server: `redis://HOST:PORT[/DB]` or `rediss://` (TLS).
    Redis(String),
    /// A Redis Cluster, given by some of its nodes (`redis://` or `rediss://` URLs).
    Cluster(Vec<String>),
}

/// A `store` value that is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {given:?}: {why} (expected memory, redis://HOST:PORT[/DB], rediss://..., or redis-cluster://H1:P1,H2:P2,...)")]
pub struct StoreSpecError {
    given: String,
    why: String,
}

impl std::str::FromStr for StoreSpec {
    type Err = StoreSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: String| StoreSpecError {
            given: s.to_owned(),
            why,
        };
        let check = |url: &str| {
            redis::Client::open(url)
                .map(drop)
                .map_err(|e| err(format!("{url}: {e}")))
        };
        if s == "memory" {
            return Ok(StoreSpec::Memory);
        }
        for (prefix, scheme) in [
            ("redis-cluster://", "redis"),
            ("rediss-cluster://", "rediss"),
        ] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let nodes: Vec<String> = rest
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| format!("{scheme}://{n}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(err("no cluster nodes given".into()));
                }
                for n in &nodes {
                    check(n)?;
                }
                return Ok(StoreSpec::Cluster(nodes));
            }
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            check(s)?;
            return Ok(StoreSpec::Redis(s.to_owned()));
        }
        Err(err("unknown kind of store".into()))
    }
}

/// The announce script's entry points: one announce, and a batch of them.
static ANNOUNCE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(concat!(
        include_str!("redis_announce.lua"),
        include_str!("redis_announce_one.lua")
    ))
});
static ANNOUNCE_BATCH: std::sync::LazyLock<Arc<Script>> = std::sync::LazyLock::new(|| {
    Arc::new(Script::new(concat!(
        include_str!("redis_announce.lua"),
        include_str!("redis_announce_batch.lua")
    )))
});
static REAP: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("redis_reap.lua")));
static SCRAPE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("redis_scrape.lua")));
static SWARM: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("redis_swarm.lua")));

/// Swarms one reap script call removes at most, so no call blocks Redis for long.
const REAP_BATCH: usize = 256;
/// Bucket calls in flight at once when a cluster's 16384 buckets are summed or reaped.
const BUCKET_CONCURRENCY: usize = 256;

enum Conn {
    Single(ConnectionManager),
    /// Connected on first use, rebuilt while calls keep failing (see [`ClusterConn`]).
    Cluster(Arc<ClusterConn>),
}

/// A connection handle for one call; both kinds are cheap clones of a multiplexed link.
#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(c) => c.req_packed_commands(cmd, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// Swarm state in Redis.
pub struct RedisStore {
    conn: Conn,
    limits: StoreLimits,
    /// Bucket tags: one empty tag (single server) or one `{tag}` per cluster slot.
    buckets: Arc<Vec<String>>,
    /// Torrents at the last stats read; a cluster can only enforce `max_torrents`
    /// approximately, from this (a single server checks its one bucket exactly).
    torrents_seen: AtomicU64,
    labels: Arc<Labels>,
    /// A single server's announces go out in batches; a cluster's go one by one, each
    /// to its swarm's node.
    batcher: Option<Batcher<ConnectionManager>>,
    /// Which peers this instance kept lately: those try the re-announce fast path.
    recent: Recent,
    /// Announces served by each path, when the tracker counts them.
    paths: Option<PathCounters>,
}

/// The announce paths, as `kpbt_tracker_redis_announce_paths_total{path}` names them.
pub const ANNOUNCE_PATHS: [&str; 3] = ["pipeline", "script", "pipeline_then_script"];

/// Counters of [`ANNOUNCE_PATHS`], in that order.
struct PathCounters {
    pipeline: IntCounter,
    script: IntCounter,
    handed_over: IntCounter,
}

impl RedisStore {
    /// Prepares the connection; nothing is sent until the first call.
    pub fn open(
        spec: &StoreSpec,
        limits: StoreLimits,
        timeout: Duration,
    ) -> Result<Self, StoreSpecError> {
        let bad = |why: String| StoreSpecError {
            given: format!("{spec:?}"),
            why,
        };
        let (conn, buckets) = match spec {
            StoreSpec::Memory => return Err(bad("not a Redis store".into())),
            StoreSpec::Redis(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| bad(e.to_string()))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    // Reconnect attempts are made by the manager on later calls too; a
                    // short series here keeps a call within its deadline.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let m = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| bad(e.to_string()))?;
                (Conn::Single(m), vec![String::new()])
            }
            StoreSpec::Cluster(nodes) => {
                // Each attempt (connect, or one node's reply) is bounded by the store
                // timeout, and so is a whole call including the client's retries (its
                // overall timeout defaults to the response timeout): a call that meets a
                // dead node fails within the timeout, and recovery is ClusterConn's job.
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (
                    Conn::Cluster(Arc::new(ClusterConn::new(client, timeout))),
                    slot_tags(),
                )
            }
        };
        let batcher = match &conn {
            Conn::Single(m) => Some(Batcher::new(m.clone(), ANNOUNCE_BATCH.clone())),
            Conn::Cluster(_) => None,
        };
        Ok(RedisStore {
            conn,
            limits,
            buckets: Arc::new(buckets),
            torrents_seen: AtomicU64::new(0),
            labels: Arc::new(Labels::empty()),
            batcher,
            recent: Recent::new(),
            paths: None,
        })
    }

    /// Counts announces by path in `counters` (label `path`) from now on.
    pub fn set_path_counters(&mut self, counters: &IntCounterVec) {
        let [pipeline, script, handed_over] =
            ANNOUNCE_PATHS.map(|p| counters.with_label_values(&[p]));
        self.paths = Some(PathCounters {
            pipeline,
            script,
            handed_over,
        });
    }

    /// Groups peers by `labels` from now on (set before the first call).
    pub fn set_labels(&mut self, labels: Arc<Labels>) {
        self.labels = labels;
    }

    pub fn kind(&self) -> &'static str {
        match self.conn {
            Conn::Single(_) => "redis",
            Conn::Cluster(_) => "redis-cluster",
        }
    }

    async fn handle(&self) -> Result<Handle, RemoteError> {
        match &self.conn {
            Conn::Single(m) => Ok(Handle::Single(m.clone())),
            Conn::Cluster(c) => Ok(Handle::Cluster(c.get().await?)),
        }
    }

    /// Told by the seam how each call ended (including calls it gave up on at their
    /// deadline, which this store never sees end): a cluster connection whose calls
    /// keep failing is rebuilt.
    pub fn after_call(&self, outcome: CallOutcome<'_>) {
        if let Conn::Cluster(c) = &self.conn {
            c.after_call(outcome);
        }
    }

    fn bucket_of(&self, hex: &str) -> &str {
        if self.buckets.len() == 1 {
            &self.buckets[0]
        } else {
            &self.buckets[usize::from(key_slot(hex.as_bytes()))]
        }
    }

    pub async fn announce(
        &self,
        req: &AnnounceRequest,
        peer: SocketAddr,
        now: Secs,
    ) -> Result<Result<AnnounceOutcome, AnnounceError>, RemoteError> {
        let ip = peer.ip().to_canonical();
        // The compact address, IP bytes then port; its first len - 2 bytes are the IP.
        let mut addr = [0u8; 18];
        let addr = match ip {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                &mut addr[..6]
            }
            IpAddr::V6(v6) => {
                addr[..16].copy_from_slice(&v6.octets());
                &mut addr[..18]
            }
        };
        let n = addr.len();
        addr[n - 2..].copy_from_slice(&peer.port().to_be_bytes());
        let addr = &*addr;
        let mut hex = [0u8; 40];
        hex::encode_to_slice(req.info_hash.0, &mut hex).expect("40 hex digits for 20 bytes");
        let hex = std::str::from_utf8(&hex).expect("hex digits");
        let bucket = self.bucket_of(hex);
        let event = match req.event {
            AnnounceEvent::None => 0,
            AnnounceEvent::Started => 1,
            AnnounceEvent::Completed => 2,
            AnnounceEvent::Stopped => 3,
        };
        let seeder = req.left == 0;
        let max_torrents = if self.buckets.len() == 1 {
            self.limits.max_torrents as u64
        } else if self.torrents_seen.load(Ordering::Relaxed) < self.limits.max_torrents as u64 {
            i64::MAX as u64
        } else {
            0
        };
        let numwant = if req.event == AnnounceEvent::Stopped {
            0
        } else {
            self.limits.numwant(req.numwant)
        };
        let id = self.labels.lookup(ip);
        let label = if id.is_none() {
            ""
        } else {
            self.labels.name(id)
        };
        // Most replies (compact, every UDP one) carry no ids: the script then skips
        // reading them and sends addresses only.
        let ids = wants_peer_ids(req);
        let wanted = match Wanted::of(req) {
            Wanted::Everyone => 0,
            Wanted::Leechers => 1,
            Wanted::LeechersThenSeeders => 2,
        };
        let cutoff = now.saturating_sub(self.limits.peer_timeout_secs);
        // Most announces are a known peer's periodic re-announce: plain commands serve
        // those, and say when the script is needed after all. Tried for the peers this
        // instance kept lately, so a newcomer does not pay for both.
        let tried = req.event == AnnounceEvent::None
            && label.is_empty()
            && !ids
            && self.recent.seen(&req.info_hash, addr);
        if tried {
            let fast = Reannounce {
                hex,
                bucket,
                addr,
                peer_id: &req.peer_id.0,
                now,
                cutoff,
                seeder,
                want: numwant as usize,
            };
            let mut conn = self.handle().await?;
            let verdict = match fast.pipeline().query_async::<Vec<Value>>(&mut conn).await {
                Ok(replies) => fast.verdict(replies).map_err(RemoteError::Reply)?,
                // The swarm's slot moved or is moving (a failover, a resharding). The
                // cluster client follows a redirect for one command but not inside a
                // transaction: the script's call follows it (a MOVED also refreshes the
                // client's slot map).
                Err(e) if refused_by_topology(&e) => Verdict::NeedsScript,
                Err(e) => return Err(e.into()),
            };
            if let Verdict::Served {
                complete,
                incomplete,
                peers,
            } = verdict
            {
                let peers = peers
                    .iter()
                    .map(|a| {
                        compact_peer(a).ok_or_else(|| {
                            RemoteError::Reply(format!("peer address of {} bytes", a.len()))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if let Some(c) = &self.paths {
                    c.pipeline.inc();
                }
                return Ok(Ok(AnnounceOutcome {
                    complete,
                    incomplete,
                    peers,
                    counted_completion: false,
                }));
            }
        }
        // Keys and arguments written once into one buffer (ScriptInvocation would
        // allocate a vector per key and argument, then copy them).
        let mut call = AnnounceCall::new(&Shared {
            bucket,
            now,
            cutoff,
            max_peers_per_torrent: self.limits.max_peers_per_torrent as u64,
            max_peers_per_ip: self.limits.max_peers_per_ip as u64,
            max_torrents,
        });
        for kind in [b"}s", b"}l", b"}p"] {
            call.key(&[b"{", hex.as_bytes(), kind]);
        }
        if !label.is_empty() {
            call.key(&[b"{", hex.as_bytes(), b"}s:", label.as_bytes()]);
            call.key(&[b"{", hex.as_bytes(), b"}l:", label.as_bytes()]);
        }
        call.arg(addr);
        call.arg(&addr[..addr.len() - 2]);
        call.arg(&req.peer_id.0[..]);
        // Loopback means the same host (tests, benchmarks, an unconfigured proxy): no
        // per-IP cap, as in the memory store.
        let flags = [
            event,
            u8::from(seeder),
            wanted,
            u8::from(ids),
            u8::from(!ip.is_loopback()),
        ];
        call.arg(&flags.map(|f| b'0' + f));
        // Peers wanted plus one: the script samples that many of each side, as the
        // announcer may be among them (and it is handed on as the string it came as).
        call.num(u64::from(numwant) + 1);
        call.arg(hex.as_bytes());
        call.arg(label.as_bytes());
        let reply: Vec<Value> = match &self.batcher {
            Some(b) => match b.announce(call).await? {
                Value::Array(items) => items,
                other => return Err(RemoteError::Reply(format!("announce reply: {other:?}"))),
            },
            None => {
                let mut conn = self.handle().await?;
                eval(&ANNOUNCE, &call.command(&ANNOUNCE), &mut conn).await?
            }
        };
        if let Some(c) = &self.paths {
            if tried { &c.handed_over } else { &c.script }.inc();
        }
        let int = |i: usize| match reply.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            other => Err(RemoteError::Reply(format!("announce field {i}: {other:?}"))),
        };
        let code = int(0)?;
        if code == 0 && req.event != AnnounceEvent::Stopped {
            self.recent.kept(&req.info_hash, addr);
        } else {
            self.recent.gone(&req.info_hash, addr);
        }
        match code {
            0 => {}
            1 => return Ok(Err(AnnounceError::TooManyTorrents)),
            2 => return Ok(Err(AnnounceError::SwarmFull)),
            3 => return Ok(Err(AnnounceError::TooManyFromAddress)),
            n => return Err(RemoteError::Reply(format!("announce code {n}"))),
        }
        let count = |i| int(i).map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
        let rest = reply.get(4..).unwrap_or_default();
        let peers = if ids {
            peers_with_ids(rest)?
        } else {
            peers_joined(rest)?
        };
        Ok(Ok(AnnounceOutcome {
            complete: count(1)?,
            incomplete: count(2)?,
            peers,
            counted_completion: int(3)? == 1,
        }))
    }

    pub async fn scrape(
        &self,
        hashes: &[InfoHash],
    ) -> Result<Vec<(InfoHash, ScrapeStats)>, RemoteError> {
        let conn = self.handle().await?;
        // Concurrent calls share the multiplexed connection, so they go out pipelined;
        // in a cluster each goes to its own slot's node.
        let calls = hashes.iter().map(|h| {
            let mut conn = conn.clone();
            async move {
                let (complete, incomplete, downloaded): (u32, u32, u32) =
                    on_swarm(&SCRAPE, h).invoke_async(&mut conn).await?;
                Ok::<_, RemoteError>((
                    *h,
                    ScrapeStats {
                        complete,
                        downloaded,
                        incomplete,
                    },
                ))
            }
        });
        futures_util::future::try_join_all(calls).await
    }

    /// One swarm's figures; `None` when it has no peers.
    pub async fn swarm(&self, hash: &InfoHash) -> Result<Option<SwarmInfo>, RemoteError> {
        let mut conn = self.handle().await?;
        let mut script = on_swarm(&SWARM, hash);
        for name in self.labels.names() {
            script.arg(name);
        }
        let v: Vec<i64> = script.invoke_async(&mut conn).await?;
        let n = |i: usize| {
            v.get(i)
                .map(|&n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
                .ok_or_else(|| RemoteError::Reply(format!("swarm field {i} missing")))
        };
        let (seeders, leechers) = (n(0)?, n(1)?);
        if seeders + leechers == 0 {
            return Ok(None);
        }
        let labelled = (0..self.labels.len())
            .map(|i| n(4 + i))
            .collect::<Result<Vec<_>, _>>()?;
        let none = (seeders + leechers).saturating_sub(labelled.iter().sum());
        let last = n(3)?;
        Ok(Some(SwarmInfo {
            seeders,
            leechers,
            completed: n(2)?,
            last_completed: (last > 0).then_some(last),
            per_label: std::iter::once(none).chain(labelled).collect(),
        }))
    }

    /// Peers per label over every bucket, indexed by label id (0: none, the rest of the
    /// peers).
    pub async fn label_peers(&self) -> Result<Vec<u64>, RemoteError> {
        let conn = self.handle().await?;
        let buckets = self.buckets.clone();
        let fields: Arc<Vec<String>> = Arc::new(
            ["s", "l"]
                .into_iter()
                .map(str::to_owned)
                .chain(self.labels.names().iter().map(|n| format!("n:{n}")))
                .collect(),
        );
        let width = fields.len();
        let sums = stream::iter(0..buckets.len())
            .map(|i| {
                let mut conn = conn.clone();
                let key = format!("kpbt:st{}", buckets[i]);
                let fields = fields.clone();
                async move {
                    let v: Vec<Option<i64>> = redis::cmd("HMGET")
                        .arg(key)
                        .arg(&fields[..])
                        .query_async(&mut conn)
                        .await?;
                    Ok::<_, RemoteError>(v)
                }
            })
            .buffer_unordered(BUCKET_CONCURRENCY)
            .try_fold(vec![0i64; width], |mut acc, v| async move {
                for (a, n) in acc.iter_mut().zip(v) {
                    *a += n.unwrap_or(0);
                }
                Ok(acc)
            })
            .await?;
        let labelled: Vec<u64> = sums[2..].iter().map(|&n| n.max(0) as u64).collect();
        let all = (sums[0] + sums[1]).max(0) as u64;
        let none = all.saturating_sub(labelled.iter().sum());
        Ok(std::iter::once(none).chain(labelled).collect())
    }

    pub async fn stats(&self) -> Result<StoreStats, RemoteError> {
        let conn = self.handle().await?;
        let buckets = self.buckets.clone();
        let totals = stream::iter(0..buckets.len())
            .map(|i| {
                let mut conn = conn.clone();
                let key = format!("kpbt:st{}", buckets[i]);
                async move {
                    let v: (Option<i64>, Option<i64>, Option<i64>) = redis::cmd("HMGET")
                        .arg(key)
                        .arg("t")
                        .arg("s")
                        .arg("l")
                        .query_async(&mut conn)
                        .await?;
                    Ok::<_, RemoteError>(v)
                }
            })
            .buffer_unordered(BUCKET_CONCURRENCY)
            .try_fold([0i64; 3], |mut acc, (t, s, l)| async move {
                acc[0] += t.unwrap_or(0);
                acc[1] += s.unwrap_or(0);
                acc[2] += l.unwrap_or(0);
                Ok(acc)
            })
            .await?;
        let [t, s, l] = totals.map(|n| n.max(0) as u64);
        self.torrents_seen.store(t, Ordering::Relaxed);
        Ok(StoreStats {
            torrents: t,
            seeders: s,
            leechers: l,
        })
    }

    pub async fn reap(&self, now: Secs) -> Result<ReapReport, RemoteError> {
        let conn = self.handle().await?;
        let cutoff = now.saturating_sub(self.limits.peer_timeout_secs);
        let buckets = self.buckets.clone();
        let report = stream::iter(0..buckets.len())
            .map(|i| {
                let mut conn = conn.clone();
                let tag = buckets[i].clone();
                async move {
                    let mut report = ReapReport::default();
                    loop {
                        let (peers, swarms, seen): (u64, u64, u64) = REAP
                            .key(format!("kpbt:ix{tag}"))
                            .key(format!("kpbt:st{tag}"))
                            .arg(cutoff)
                            .arg(REAP_BATCH)
                            .invoke_async(&mut conn)
                            .await?;
                        report.peers_removed += peers;
                        report.torrents_removed += swarms;
                        if seen < REAP_BATCH as u64 {
                            return Ok::<_, RemoteError>(report);
                        }
                    }
                }
            })
            .buffer_unordered(BUCKET_CONCURRENCY)
            .try_fold(ReapReport::default(), |mut acc, r| async move {
                acc.peers_removed += r.peers_removed;
                acc.torrents_removed += r.torrents_removed;
                Ok(acc)
            })
            .await?;
        Ok(report)
    }

    pub async fn ping(&self) -> Result<(), RemoteError> {
        let mut conn = self.handle().await?;
        // In a cluster PING goes to every master, so one down master is unhealthy.
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// Peers of an announce reply with ids: address, then id (and label) for each.
fn peers_with_ids(rest: &[Value]) -> Result<Vec<ReplyPeer>, RemoteError> {
    let mut peers = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        let [Value::BulkString(a), id] = pair else {
            return Err(RemoteError::Reply("announce peer entry".into()));
        };
        let addr = parse_addr(a)
            .ok_or_else(|| RemoteError::Reply(format!("peer address of {} bytes", a.len())))?;
        // The peer id, then the peer's label name (when it has one).
        let mut peer_id = [0u8; 20];
        if let Value::BulkString(id) = id {
            if let Some(id) = id.get(..20) {
                peer_id.copy_from_slice(id);
            }
        }
        peers.push(ReplyPeer {
            addr,
            peer_id: PeerId(peer_id),
        });
    }
    Ok(peers)
}

/// Peers of an announce reply without ids: their addresses joined, then, when some are
/// IPv6, each address's length (one byte: 6 or 18); both absent when there are none.
fn peers_joined(rest: &[Value]) -> Result<Vec<ReplyPeer>, RemoteError> {
    fn bytes(v: Option<&Value>) -> Result<Option<&[u8]>, RemoteError> {
        match v {
            None => Ok(None),
            Some(Value::BulkString(b)) => Ok(Some(b)),
            Some(other) => Err(RemoteError::Reply(format!("announce peer list: {other:?}"))),
        }
    }
    let Some(joined) = bytes(rest.first())? else {
        return Ok(Vec::new());
    };
    let bad = || RemoteError::Reply(format!("peer list of {} bytes", joined.len()));
    let peer = compact_peer;
    match bytes(rest.get(1))? {
        // IPv4 only.
        None if joined.len() % 6 == 0 => joined
            .chunks_exact(6)
            .map(|a| peer(a).ok_or_else(bad))
            .collect(),
        None => Err(bad()),
        Some(lens) => {
            let mut peers = Vec::with_capacity(lens.len());
            let mut rest = joined;
            for &n in lens {
                let (a, tail) = rest.split_at_checked(usize::from(n)).ok_or_else(bad)?;
                peers.push(peer(a).ok_or_else(bad)?);
                rest = tail;
            }
            if rest.is_empty() {
                Ok(peers)
            } else {
                Err(bad())
            }
        }
    }
}

/// A peer of a reply without ids, from its compact address.
fn compact_peer(a: &[u8]) -> Option<ReplyPeer> {
    parse_addr(a).map(|addr| ReplyPeer {
        addr,
        peer_id: PeerId([0; 20]),
    })
}

/// `script` called with a swarm's three keys (`{H}s`, `{H}l`, `{H}p`).
fn on_swarm<'a>(script: &'a Script, hash: &InfoHash) -> redis::ScriptInvocation<'a> {
    let hex = hex::encode(hash.0);
    let mut call = script.key(format!("{{{hex}}}s"));
    call.key(format!("{{{hex}}}l")).key(format!("{{{hex}}}p"));
    call
}

fn parse_addr(a: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = a.split_at_checked(a.len().checked_sub(2)?)?;
    let port = u16::from_be_bytes([port[0], port[1]]);
    let ip = match ip.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_and_bad_ones_are_refused() {
        assert_eq!("memory".parse::<StoreSpec>(), Ok(StoreSpec::Memory));
        assert_eq!(
            "redis://10.0.0.5:6379/2".parse::<StoreSpec>(),
            Ok(StoreSpec::Redis("redis://10.0.0.5:6379/2".into()))
        );
        assert_eq!(
            "redis-cluster://a:7000, b:7001".parse::<StoreSpec>(),
            Ok(StoreSpec::Cluster(vec![
                "redis://a:7000".into(),
                "redis://b:7001".into()
            ]))
        );
        for bad in ["", "mem", "redis-cluster://", "http://x:1", "redis://"] {
            let e = bad.parse::<StoreSpec>().unwrap_err().to_string();
            assert!(e.contains("expected memory"), "{bad}: {e}");
        }
    }

    #[test]
    fn peer_addresses_round_trip_through_their_compact_form() {
        for a in ["10.1.2.3:6881", "[2001:db8::7]:51413"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut b = match a.ip() {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            b.extend_from_slice(&a.port().to_be_bytes());
            assert_eq!(parse_addr(&b), Some(a));
        }
        assert_eq!(parse_addr(b"abc"), None);
        assert_eq!(parse_addr(b""), None);
    }
}
