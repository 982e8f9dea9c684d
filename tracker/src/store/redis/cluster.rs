//! The Redis Cluster side of the store: a cluster connection that rebuilds itself when
//! calls keep failing, and the key slots that place swarms and buckets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};

use super::error::{CallOutcome, RemoteError};

/// A Redis Cluster connection that heals itself.
///
/// The redis crate's cluster client (1.8) does not get over a master that vanishes by
/// itself, in two ways:
/// - It refreshes its slot map only when a node answers MOVED or READONLY, or a
///   link reports itself dropped. A master that stops answering without a TCP reset (a
///   hung process, a dead host, a partition) does neither: calls to it time out, a
///   timed-out call is retried against the same node, and after its replica has taken
///   over the client still sends those slots to the dead node, until the kernel gives up
///   on the TCP connection many minutes later.
/// - When a link does drop (a killed container), the client starts a slot refresh and
///   reconnects to the dead node; the refresh can then stall for good (its
///   "slot refresh complete" never comes) and every call waits behind it, so every
///   slot fails, not only the dead master's.
///
/// So when calls keep failing (for one store timeout or more) the whole cluster
/// connection is built anew from the seed nodes: fresh links, and a slot map from the
/// first node that answers `CLUSTER SLOTS`. The new connection replaces the old one only
/// once it is up, calls meanwhile go on over the old one. A rebuild runs in a task of its
/// own, never under a request's deadline, one at a time, at most one per store timeout
/// after the previous one ends, and its own time is bounded.
pub(super) struct ClusterConn {
    client: ClusterClient,
    /// Where rebuilds, and with them the connection's driver tasks, run: the runtime the
    /// store was opened in, which lives as long as the tracker (a UDP thread's runtime
    /// only runs while that thread waits on a call). `None`: the caller's.
    runtime: Option<tokio::runtime::Handle>,
    link: tokio::sync::watch::Sender<Link>,
    rebuilding: AtomicBool,
    failures: Mutex<Failures>,
    timeout: Duration,
}

#[derive(Default)]
struct Link {
    conn: Option<ClusterConnection>,
    /// Connection attempts finished so far.
    attempts: u64,
    /// Why the latest attempt failed.
    error: Option<RedisError>,
}

/// A run of failing calls, to decide when to rebuild the connection.
#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    /// The first and the latest failure of the current run; `None` while calls succeed.
    first: Option<Instant>,
    last: Option<Instant>,
    /// When the latest rebuild ended.
    rebuilt: Option<Instant>,
    /// Rebuilds started in the current run (only the first is logged as a warning).
    rebuilds: u32,
}

impl Failures {
    /// Records a failure at `now`; returns whether a rebuild is due: failures have gone
    /// on for `persist`, and the last rebuild ended `gap` ago or more.
    fn failed(&mut self, now: Instant, persist: Duration, gap: Duration) -> bool {
        let first = *self.first.get_or_insert(now);
        self.last = Some(now);
        now.saturating_duration_since(first) >= persist
            && self
                .rebuilt
                .is_none_or(|t| now.saturating_duration_since(t) >= gap)
    }

    /// Records a success at `now`. Some calls succeed while others fail (one master of
    /// several down), so only a success with no failure for `quiet` ends the run.
    fn succeeded(&mut self, now: Instant, quiet: Duration) {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) >= quiet)
        {
            self.first = None;
            self.last = None;
            self.rebuilds = 0;
        }
    }
}

/// Clears the rebuild flag however the rebuild task ends, even if it never runs.
struct Rebuilding(Arc<ClusterConn>);

impl Drop for Rebuilding {
    fn drop(&mut self) {
        self.0.rebuilding.store(false, Ordering::Release);
    }
}

impl ClusterConn {
    pub fn new(client: ClusterClient, timeout: Duration) -> Self {
        ClusterConn {
            client,
            runtime: tokio::runtime::Handle::try_current().ok(),
            link: tokio::sync::watch::Sender::new(Link::default()),
            rebuilding: AtomicBool::new(false),
            failures: Mutex::new(Failures::default()),
            timeout,
        }
    }

    /// The current connection. Before the first one is up (or while every attempt
    /// fails), starts an attempt unless one is running and waits for its end; the
    /// caller's deadline bounds the wait, not the attempt.
    pub async fn get(self: &Arc<Self>) -> Result<ClusterConnection, RedisError> {
        let mut rx = self.link.subscribe();
        let seen = {
            let link = rx.borrow_and_update();
            if let Some(c) = &link.conn {
                return Ok(c.clone());
            }
            link.attempts
        };
        self.rebuild();
        loop {
            if rx.changed().await.is_err() {
                return Err(timed_out("redis cluster connection closed"));
            }
            let link = rx.borrow_and_update();
            if let Some(c) = &link.conn {
                return Ok(c.clone());
            }
            if link.attempts > seen {
                return Err(link
                    .error
                    .clone()
                    .unwrap_or_else(|| timed_out("redis cluster not connected")));
            }
        }
    }

    pub fn after_call(self: &Arc<Self>, outcome: CallOutcome<'_>) {
        let now = Instant::now();
        let suspect = match outcome {
            CallOutcome::Ok => {
                if let Ok(mut f) = self.failures.lock() {
                    f.succeeded(now, self.timeout);
                }
                return;
            }
            CallOutcome::TimedOut => true,
            // Script errors and bad replies say nothing about the links or the topology;
            // timeouts, I/O errors, CLUSTERDOWN, TRYAGAIN, MOVED... do.
            CallOutcome::Failed(RemoteError::Redis(e)) => {
                !matches!(e.retry_method(), RetryMethod::NoRetry)
            }
            CallOutcome::Failed(RemoteError::Reply(_)) => false,
        };
        if !suspect {
            return;
        }
        let due = self.failures.lock().map_or(None, |mut f| {
            f.failed(now, self.timeout, self.timeout).then(|| {
                f.rebuilds += 1;
                (
                    f.rebuilds,
                    now.saturating_duration_since(f.first.unwrap_or(now)),
                )
            })
        });
        if let Some((n, failing)) = due {
            if !self.rebuilding.load(Ordering::Acquire) {
                if n == 1 {
                    tracing::warn!(
                        "redis cluster calls failing for {} ms: reconnecting from the seed nodes",
                        failing.as_millis()
                    );
                } else {
                    tracing::debug!("redis cluster still failing: reconnect #{n}");
                }
            }
            self.rebuild();
        }
    }

    /// Starts building a new connection from the seed nodes unless a build is running.
    fn rebuild(self: &Arc<Self>) {
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        // Moved into the task: dropped when it ends, or with it if it never runs.
        let guard = Rebuilding(Arc::clone(self));
        // Connecting to the seeds, then CLUSTER SLOTS from one node after another, then
        // links to every node: each step is bounded by the timeout; this bounds the sum.
        let limit = self.timeout * 8;
        let task = async move {
            let this = &guard.0;
            let started = Instant::now();
            let result = match tokio::time::timeout(limit, this.client.get_async_connection()).await
            {
                Ok(r) => r,
                Err(_) => Err(timed_out("redis cluster connection not up in time")),
            };
            let mut replaced = false;
            let mut why = None;
            this.link.send_modify(|link| {
                link.attempts += 1;
                match result {
                    Ok(c) => {
                        replaced = link.conn.replace(c).is_some();
                        link.error = None;
                    }
                    Err(e) => {
                        why = Some(e.to_string());
                        link.error = Some(e);
                    }
                }
            });
            if let Ok(mut f) = this.failures.lock() {
                f.rebuilt = Some(Instant::now());
            }
            let ms = started.elapsed().as_millis();
            match why {
                None if replaced => {
                    tracing::info!("redis cluster: reconnected from the seed nodes in {ms} ms")
                }
                None => tracing::debug!("redis cluster: connected in {ms} ms"),
                Some(why) => {
                    tracing::debug!("redis cluster: connecting failed after {ms} ms: {why}")
                }
            }
        };
        let runtime = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        match runtime {
            Some(rt) => drop(rt.spawn(task)),
            // No runtime to run it on: the guard clears the flag right away.
            None => drop(task),
        }
    }
}

/// Whether a transaction failed for a reason a single command's call gets over: the
/// slot moved or is moving (MOVED, ASK, TRYAGAIN), the node is a replica now (READONLY),
/// the cluster is reconfiguring (CLUSTERDOWN, MASTERDOWN). The cluster client redirects
/// and retries single commands but not a transaction, and a refused transaction applied
/// nothing, so its work can be handed to the script.
pub(super) fn refused_by_topology(e: &RedisError) -> bool {
    let moving = |k: Option<ServerErrorKind>| {
        matches!(
            k,
            Some(
                ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
    };
    match e.kind() {
        // Refused while queueing: each command's error is kept.
        ErrorKind::Server(ServerErrorKind::ExecAbort) => e
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| moving(e.kind()))),
        ErrorKind::Server(k) => moving(Some(k)),
        // EXEC itself answered with an error (the slot moved after the commands were
        // queued): the client reads that as a reply of the wrong shape.
        ErrorKind::UnexpectedReturnType => true,
        _ => false,
    }
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

/// Redis Cluster's key slot of a hash tag's contents (CRC16/XMODEM mod 16384).
pub fn key_slot(tag: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// For every cluster slot, a short `{tag}` whose keys land in that slot: the buckets.
pub(super) fn slot_tags() -> Vec<String> {
    let mut tags = vec![String::new(); 16384];
    let mut missing = tags.len();
    let mut n = 0u32;
    // About 16384 * ln(16384) ≈ 160k tries fill every slot; decimal strings are short.
    while missing > 0 {
        let s = n.to_string();
        let slot = usize::from(key_slot(s.as_bytes()));
        if tags[slot].is_empty() {
            tags[slot] = format!("{{{s}}}");
            missing -= 1;
        }
        n += 1;
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slot_matches_redis_reference_values() {
        // From the Redis Cluster specification: CRC16("123456789") = 0x31C3.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
    }
    #[test]
    fn every_slot_gets_a_bucket_tag_in_that_slot() {
        let tags = slot_tags();
        for (slot, tag) in tags.iter().enumerate() {
            let inner = tag.trim_start_matches('{').trim_end_matches('}');
            assert_eq!(usize::from(key_slot(inner.as_bytes())), slot, "{tag}");
        }
    }
    #[test]
    fn cluster_rebuilds_only_after_failures_persist_and_not_too_often() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let second = Duration::from_secs(1);
        let mut f = Failures::default();
        // A first failure, and more within the persistence window: no rebuild yet.
        assert!(!f.failed(ms(0), second, second));
        assert!(!f.failed(ms(900), second, second));
        // A success among the failures (another master answers) does not end the run.
        f.succeeded(ms(950), second);
        assert!(f.failed(ms(1000), second, second));
        // A rebuild ended at 1.5 s: the next one no sooner than a gap later.
        f.rebuilt = Some(ms(1500));
        assert!(!f.failed(ms(2000), second, second));
        assert!(f.failed(ms(2500), second, second));
        // Quiet for a while: the run is over, a new failure starts a new window.
        f.succeeded(ms(4000), second);
        assert_eq!(f.first, None);
        assert!(!f.failed(ms(4100), second, second));
        assert!(f.failed(ms(5100), second, second));
    }
}
