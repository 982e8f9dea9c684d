//! Web seeds (BEP 19) and `--origin` URLs: the per-torrent task fetching pieces over HTTP.
//!
//! It fetches whole pieces with range requests when peers cannot supply them, feeds them
//! to the shared hash/write pipeline, and backs off or drops URLs that fail.
//!
//! Policy, peers first:
//! - **start**: when the torrent has peers to find (trackers, `--peer`), the origin
//!   waits for them to connect and say what they have: until the first tick with a peer
//!   connected, at most [`STARTUP_GRACE`];
//! - **fill**: while peers deliver at least `min_rate`, the origin only fetches pieces
//!   no connected peer has (availability 0), with half the connections;
//! - **take over**: with no peer connected, or peers delivering less than `min_rate`
//!   (measured over [`RATE_WINDOW`], after [`MIN_RATE_HISTORY`] of it), it fetches any
//!   missing piece (those no peer has first, then pieces peers started and nobody is
//!   requesting any more) with every connection.
//!
//! Pieces are reserved in the picker (`Picker::reserve_for_origin`) so peers never
//! fetch them at the same time, and where runs start spreads a fleet of leechers over
//! the torrent (see `picker::origin`); a run of adjacent pieces is one request per file
//! it touches, sized to take about [`RUN_TIME`] at the rate the origin has been giving
//! each request (at most [`MAX_REQUEST_BYTES`]): on a slow or shared origin, runs are
//! short, so the pieces a leecher is fetching are soon announced to the others. A reserved piece the origin does not deliver goes
//! back to the peers. Responses are untrusted (see `http::check_response`); a URL that
//! errors or times out is backed off exponentially, and after [`MAX_BAD_PIECES`] pieces
//! that fail their SHA-1 check it is dropped for the session with a warning.

mod http;

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpbt_proto::redact;
use reqwest::header::{self, HeaderMap};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::picker::OriginScope;
use crate::shared::Shared;
use http::{Assembler, FetchError, RangeRequest};

/// Default `--origin-connections`: concurrent requests to the origin per torrent.
pub const DEFAULT_ORIGIN_CONNECTIONS: usize = 4;
/// Default `--origin-min-rate`: below this many bytes/s from peers, the origin takes
/// over (1 MiB/s: a swarm on a LAN delivers far more once it has data; a swarm that
/// cannot is better helped than waited for).
pub const DEFAULT_ORIGIN_MIN_RATE: u64 = 1024 * 1024;
/// Largest run of adjacent pieces fetched by one request (at least one piece).
const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;
/// A run's size before any request has shown the origin's rate.
const FIRST_REQUEST_BYTES: u64 = 1024 * 1024;
/// About how long a run should take at the rate one request gets.
const RUN_TIME: Duration = Duration::from_secs(1);
/// How long the origin waits at the start for peers (when there are any to find).
const STARTUP_GRACE: Duration = Duration::from_secs(2);
/// Peers' delivery rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Peers get this long to show their rate before a slow swarm counts as slow.
const MIN_RATE_HISTORY: Duration = Duration::from_secs(3);
/// How long a completed torrent waits for its last runs' hash checks to be booked.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How often the rate is sampled and backed-off URLs are looked at again.
const TICK: Duration = Duration::from_millis(500);
/// Time allowed for a response's status and headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Time allowed between two pieces of a body.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// A whole request may take `REQUEST_BASE` plus its length at this rate, so a server
/// that trickles bytes cannot hold a reservation for ever.
const REQUEST_BASE: Duration = Duration::from_secs(30);
const MIN_TRANSFER_RATE: f64 = 64.0 * 1024.0;
/// Back-off after the first failure of a URL; doubled per consecutive failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(120);
/// Pieces failing their hash check after which a URL is dropped for the session.
pub const MAX_BAD_PIECES: u32 = 3;

/// How one web seed is doing, for `TorrentHandle::web_seeds` and the session API.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WebSeedView {
    /// The URL as given, with credentials and query values redacted.
    pub url: String,
    pub state: WebSeedState,
    /// Verified payload bytes it delivered.
    pub downloaded: u64,
    /// Failed requests (errors, timeouts, bad responses).
    pub errors: u64,
    /// Pieces from it that failed their SHA-1 check.
    pub bad_pieces: u32,
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WebSeedState {
    /// Usable now (or busy).
    Ready,
    /// Failed recently; tried again after a back-off.
    BackingOff,
    /// Sent bad data too often: not used again this session.
    Dropped,
}

/// The live view of a torrent's web seeds, written by the task.
pub(crate) type WebSeedStatus = Arc<Mutex<Vec<WebSeedView>>>;

/// How the origin is used (`Config::origin_min_rate`, `Config::origin_connections`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OriginOptions {
    pub min_rate: u64,
    pub connections: usize,
}

/// The torrent's web seeds followed by the extra `origins`, duplicates removed.
/// (Both are checked already: the torrent's when parsed, origins when given.)
pub(crate) fn seed_urls(from_torrent: &[String], origins: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for u in from_torrent.iter().chain(origins) {
        if kpbt_proto::metainfo::is_web_seed_url(u) && !urls.contains(u) {
            urls.push(u.clone());
        }
    }
    urls
}

/// What the task needs to name files at a web seed.
struct Target {
    name: String,
    multi_file: bool,
}

/// One URL's state in the task.
struct Seed {
    url: Arc<str>,
    view: WebSeedView,
    busy: usize,
    /// Consecutive failures (errors or bad data), for the back-off.
    failures: u32,
    retry_at: Option<Instant>,
}

impl Seed {
    fn usable(&self, now: Instant) -> bool {
        self.view.state != WebSeedState::Dropped && self.retry_at.is_none_or(|t| t <= now)
    }
}

/// What one run of pieces came to.
struct Outcome {
    error: Option<FetchError>,
    verified: u64,
    bad: Vec<u32>,
    /// Time from the request to the last piece handed on.
    took: Duration,
}

/// The payload rate one request gets from the origin (a moving average over runs), and
/// from it how many pieces the next run takes.
struct RunSizer {
    rate: Option<f64>,
    piece_len: u64,
}

impl RunSizer {
    fn record(&mut self, bytes: u64, took: Duration) {
        // Runs too short to time say little (a cached or tiny piece).
        if bytes == 0 || took < Duration::from_millis(20) {
            return;
        }
        let r = bytes as f64 / took.as_secs_f64();
        self.rate = Some(self.rate.map_or(r, |old| 0.7 * old + 0.3 * r));
    }

    fn pieces(&self) -> u32 {
        let bytes = self
            .rate
            .map_or(FIRST_REQUEST_BYTES, |r| (r * RUN_TIME.as_secs_f64()) as u64);
        let most = MAX_REQUEST_BYTES / self.piece_len;
        (bytes / self.piece_len)
            .clamp(1, most.max(1))
            .min(u64::from(u32::MAX)) as u32
    }
}

/// The web seed task of one torrent.
pub(crate) struct WebSeedTask {
    pub shared: Arc<Shared>,
    pub http: reqwest::Client,
    pub urls: Vec<String>,
    pub name: String,
    pub multi_file: bool,
    pub options: OriginOptions,
    /// The torrent has trackers or `--peer`s: give peers [`STARTUP_GRACE`] first.
    pub expect_peers: bool,
    /// The session's origin requests shared by all its torrents (`Services::origin_slots`):
    /// a run starts only with one of them.
    pub session_slots: Option<Arc<tokio::sync::Semaphore>>,
    pub status: WebSeedStatus,
    pub complete: watch::Receiver<bool>,
    pub shutdown: watch::Receiver<bool>,
}

/// Peers' block bytes over the last [`RATE_WINDOW`].
struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn sample(&mut self, now: Instant, received: u64) {
        self.samples.push_back((now, received));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Bytes/s, once the samples span [`MIN_RATE_HISTORY`].
    fn rate(&self) -> Option<f64> {
        let (a, b) = (self.samples.front()?, self.samples.back()?);
        let span = b.0.duration_since(a.0);
        (span >= MIN_RATE_HISTORY).then(|| b.1.saturating_sub(a.1) as f64 / span.as_secs_f64())
    }
}

impl WebSeedTask {
    pub(crate) async fn run(mut self) {
        let target = Arc::new(Target {
            name: std::mem::take(&mut self.name),
            multi_file: self.multi_file,
        });
        let mut seeds: Vec<Seed> = self
            .urls
            .iter()
            .map(|u| Seed {
                url: Arc::from(u.as_str()),
                view: WebSeedView {
                    url: redact::web_url(u),
                    state: WebSeedState::Ready,
                    downloaded: 0,
                    errors: 0,
                    bad_pieces: 0,
                    last_error: None,
                },
                busy: 0,
                failures: 0,
                retry_at: None,
            })
            .collect();
        self.publish(&seeds);
        let mut sizer = RunSizer {
            rate: None,
            piece_len: u64::from(self.shared.storage.layout().piece_len.max(1)),
        };
        // Where this torrent's last run ended: the next one continues there if it can,
        // unless that piece failed its check from a web seed before (then the next run
        // starts in the longest gap, so a bad piece is not fetched again and again
        // while good ones wait).
        let mut after: Option<u32> = None;
        let mut failed: std::collections::HashSet<u32> = std::collections::HashSet::new();
        let mut jobs: JoinSet<Outcome> = JoinSet::new();
        let mut job_seed: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut rate = RateWindow {
            samples: VecDeque::new(),
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace_until = Instant::now()
            + if self.expect_peers {
                STARTUP_GRACE
            } else {
                Duration::ZERO
            };
        info!(
            web_seeds = seeds.len(),
            "fetching from web seeds when peers cannot supply"
        );
        loop {
            if *self.complete.borrow() || *self.shutdown.borrow() {
                break;
            }
            if seeds.iter().all(|s| s.view.state == WebSeedState::Dropped) {
                warn!("no usable web seed left; downloading from peers only");
                break;
            }
            let takeover = self.taking_over(&rate);
            let limit = if takeover {
                self.options.connections
            } else {
                self.options.connections.div_ceil(2)
            }
            .max(1);
            while jobs.len() < limit && Instant::now() >= grace_until {
                let now = Instant::now();
                let Some(i) = (0..seeds.len())
                    .filter(|&i| seeds[i].usable(now))
                    .min_by_key(|&i| seeds[i].busy)
                else {
                    break;
                };
                // A slot of the session's first (freed slots are looked for again at the
                // next tick or when a run of this torrent ends).
                let slot = match &self.session_slots {
                    Some(s) => match s.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                    None => None,
                };
                let next = after.filter(|p| !failed.contains(p));
                let Some(run) = self.reserve(next, sizer.pieces(), takeover) else {
                    break;
                };
                after = Some(run.end);
                debug!(url = %seeds[i].view.url, pieces = ?run, takeover, "fetching from web seed");
                seeds[i].busy += 1;
                let fut = fetch_run(
                    self.shared.clone(),
                    self.http.clone(),
                    seeds[i].url.clone(),
                    target.clone(),
                    run,
                );
                let fut = async move {
                    let outcome = fut.await;
                    drop(slot);
                    outcome
                };
                job_seed.insert(jobs.spawn(fut).id(), i);
            }
            tokio::select! {
                Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                    let (id, outcome) = match done {
                        Ok((id, o)) => (id, o),
                        Err(e) => (e.id(), Outcome {
                            error: Some(FetchError::Connect(format!("internal task failed: {e}"))),
                            verified: 0,
                            bad: Vec::new(),
                            took: Duration::ZERO,
                        }),
                    };
                    if outcome.error.is_none() {
                        sizer.record(outcome.verified, outcome.took);
                    }
                    failed.extend(outcome.bad.iter().copied());
                    if let Some(i) = job_seed.remove(&id) {
                        settle(&mut seeds[i], outcome);
                        self.publish(&seeds);
                    }
                }
                _ = tick.tick() => {
                    rate.sample(Instant::now(), self.shared.received.load(Ordering::Relaxed));
                    let now = Instant::now();
                    // Connected peers have sent what they have by now (their bitfield
                    // follows the handshake): no need to wait out the whole grace.
                    if now < grace_until && self.shared.peer_count.load(Ordering::Relaxed) > 0 {
                        grace_until = now;
                    }
                    let mut changed = false;
                    for s in &mut seeds {
                        if s.view.state == WebSeedState::BackingOff && s.usable(now) {
                            s.view.state = WebSeedState::Ready;
                            changed = true;
                        }
                    }
                    if changed {
                        self.publish(&seeds);
                    }
                }
                // A closed channel means the torrent is gone: stop too.
                r = self.complete.changed() => if r.is_err() { break },
                r = self.shutdown.changed() => if r.is_err() { break },
            }
        }
        let all_dropped = seeds.iter().all(|s| s.view.state == WebSeedState::Dropped);
        if *self.complete.borrow() || (all_dropped && !*self.shutdown.borrow()) {
            // Complete (maybe stopping right after): the runs left only wait for their
            // last hash checks. Every URL dropped for bad data: the runs still under way
            // are let finish, as every piece they bring is checked anyway (aborting
            // them would throw away good pieces of an origin with one bad one). Book
            // them, within a bound.
            let drain = async {
                while let Some(Ok((id, outcome))) = jobs.join_next_with_id().await {
                    if let Some(i) = job_seed.remove(&id) {
                        settle(&mut seeds[i], outcome);
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
            self.publish(&seeds);
        }
        // Stopping: dropping the jobs releases whatever they had reserved.
        jobs.shutdown().await;
    }

    /// No peers, or peers slower than `min_rate` over the window.
    fn taking_over(&self, rate: &RateWindow) -> bool {
        if self.shared.peer_count.load(Ordering::Relaxed) == 0 {
            return true;
        }
        self.options.min_rate > 0
            && rate
                .rate()
                .is_some_and(|r| r < self.options.min_rate as f64)
    }

    /// The next run for the origin: pieces no peer has first; taking over, any missing
    /// one, then pieces peers started and abandoned.
    fn reserve(&self, after: Option<u32>, max: u32, takeover: bool) -> Option<Range<u32>> {
        let scopes: &[OriginScope] = if takeover {
            &[
                OriginScope::Unavailable,
                OriginScope::Missing,
                OriginScope::Stalled,
            ]
        } else {
            &[OriginScope::Unavailable]
        };
        scopes
            .iter()
            .find_map(|&scope| self.shared.reserve_for_origin(after, max, scope))
    }

    fn publish(&self, seeds: &[Seed]) {
        let views = seeds.iter().map(|s| s.view.clone()).collect();
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = views;
    }
}

/// Books a finished run against its URL: bytes, errors, bad pieces, back-off, drop.
/// Runs that were already under way when the URL began backing off do not back it off
/// further (four failing at once are one failure, not four), and runs that end after it
/// was dropped (the task lets them finish) leave it dropped.
fn settle(seed: &mut Seed, outcome: Outcome) {
    seed.busy = seed.busy.saturating_sub(1);
    seed.view.downloaded += outcome.verified;
    seed.view.errors += u64::from(outcome.error.is_some());
    seed.view.bad_pieces = seed
        .view
        .bad_pieces
        .saturating_add(outcome.bad.len() as u32);
    if seed.view.state == WebSeedState::Dropped {
        return;
    }
    let mut problem = None;
    if !outcome.bad.is_empty() {
        let text = format!(
            "pieces {:?} from it failed their SHA-1 check (corrupt or different data)",
            outcome.bad
        );
        if seed.view.bad_pieces >= MAX_BAD_PIECES {
            warn!(
                "web seed {} dropped for this session: {} pieces from it failed their SHA-1 check; check that it serves this torrent's files",
                seed.view.url,
                seed.view.bad_pieces
            );
            seed.view.state = WebSeedState::Dropped;
            seed.view.last_error = Some(text);
            return;
        }
        problem = Some(text);
    }
    if let Some(e) = outcome.error {
        problem = Some(problem.map_or_else(|| e.to_string(), |p| format!("{p}; {e}")));
    }
    let now = Instant::now();
    match problem {
        None => {
            seed.failures = 0;
            seed.retry_at = None;
            seed.view.state = WebSeedState::Ready;
        }
        Some(p) if seed.retry_at.is_some_and(|t| t > now) => {
            debug!(url = %seed.view.url, "web seed (already backing off): {p}");
            seed.view.last_error = Some(p);
        }
        Some(p) => {
            seed.failures = seed.failures.saturating_add(1);
            let backoff = BACKOFF_FIRST
                .saturating_mul(1 << (seed.failures - 1).min(16))
                .min(BACKOFF_MAX);
            warn!(
                "web seed {}: {p}; trying it again in {} s",
                seed.view.url,
                backoff.as_secs()
            );
            seed.retry_at = Some(now + backoff);
            seed.view.state = WebSeedState::BackingOff;
            seed.view.last_error = Some(p);
        }
    }
}

/// Pieces of a run still reserved for the origin; dropping this hands them back to
/// the peers (an error, a timeout, the task aborted).
struct Reserved {
    shared: Arc<Shared>,
    next: u32,
    end: u32,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.next < self.end {
            let mut st = self.shared.lock();
            for p in self.next..self.end {
                st.picker.origin_release(p);
            }
        }
    }
}

/// Fetches `run` from the web seed at `base`, hands every complete piece to the hash
/// pipeline, and reports how it went once every piece sent was checked.
async fn fetch_run(
    shared: Arc<Shared>,
    http: reqwest::Client,
    base: Arc<str>,
    target: Arc<Target>,
    run: Range<u32>,
) -> Outcome {
    let mut reserved = Reserved {
        shared: shared.clone(),
        next: run.start,
        end: run.end,
    };
    let mut checks = Vec::new();
    let started = Instant::now();
    let error = transfer(
        &shared,
        &http,
        &base,
        &target,
        run,
        &mut reserved,
        &mut checks,
    )
    .await
    .err();
    drop(reserved);
    let mut outcome = Outcome {
        error,
        verified: 0,
        bad: Vec::new(),
        took: started.elapsed(),
    };
    for (piece, check) in checks {
        match check.await {
            Ok(Some(true)) => {
                outcome.verified += u64::from(shared.storage.layout().piece_size(piece))
            }
            Ok(Some(false)) => outcome.bad.push(piece),
            _ => {} // storage failed: the torrent stops on its own
        }
    }
    outcome
}

async fn transfer(
    shared: &Arc<Shared>,
    http: &reqwest::Client,
    base: &str,
    target: &Target,
    run: Range<u32>,
    reserved: &mut Reserved,
    checks: &mut Vec<(u32, JoinHandle<Option<bool>>)>,
) -> Result<(), FetchError> {
    let layout = shared.storage.layout();
    let sizes = run.clone().map(|p| layout.piece_size(p)).collect();
    let mut assembler = Assembler::new(run.clone(), sizes);
    let mut done = Vec::new();
    for req in http::plan_requests(layout, run) {
        let file = &layout.files[req.file];
        let path = file.components.get(1..).unwrap_or_default();
        let url = http::file_url(base, &target.name, target.multi_file, path);
        let mut resp = send(http, &url, &req, file.length).await?;
        let deadline = Instant::now()
            + REQUEST_BASE
            + Duration::from_secs_f64(req.len() as f64 / MIN_TRANSFER_RATE);
        let expect = req.len();
        let mut got = 0u64;
        loop {
            let wait = (Instant::now() + IDLE_TIMEOUT).min(deadline);
            let chunk = tokio::time::timeout_at(wait, resp.chunk())
                .await
                .map_err(|_| FetchError::Timeout("the body"))?
                .map_err(|e| FetchError::Body(cause_of(e)))?;
            let Some(chunk) = chunk else { break };
            got += chunk.len() as u64;
            if got > expect {
                return Err(FetchError::Body(format!(
                    "more than the {expect} bytes asked for"
                )));
            }
            shared.download_limit.acquire(chunk.len() as u64).await;
            assembler.push(&chunk, &mut |n| shared.origin_buffer(n), &mut done)?;
            for (piece, buf) in done.drain(..) {
                reserved.next = piece + 1;
                if let Some(check) = shared.submit_origin(piece, buf).await {
                    checks.push((piece, check));
                }
            }
        }
        if got < expect {
            return Err(FetchError::Body(format!(
                "ended after {got} of {expect} bytes"
            )));
        }
    }
    Ok(())
}

/// Sends one range request and checks the response's head.
async fn send(
    http: &reqwest::Client,
    url: &str,
    req: &RangeRequest,
    file_len: u64,
) -> Result<reqwest::Response, FetchError> {
    let resp = tokio::time::timeout(
        HEADER_TIMEOUT,
        http.get(url).header(header::RANGE, req.header()).send(),
    )
    .await
    .map_err(|_| FetchError::Timeout("a response"))?
    .map_err(|e| FetchError::Connect(cause_of(e)))?;
    let h = resp.headers();
    http::check_response(
        req,
        file_len,
        resp.status().as_u16(),
        text(h, header::CONTENT_RANGE),
        text(h, header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
        text(h, header::CONTENT_ENCODING),
    )
    .map_err(|e| match e {
        // Name the file: with a folder URL it is the part the user did not type.
        FetchError::Status(s) => {
            FetchError::BadResponse(format!("HTTP status {s} for {}", redact::web_url(url)))
        }
        other => other,
    })?;
    Ok(resp)
}

fn text(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The innermost cause of a reqwest error (reqwest's own text names the whole URL).
fn cause_of(e: reqwest::Error) -> String {
    crate::http_error::cause(e, "web server")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Seed {
        Seed {
            url: Arc::from("http://o/"),
            view: WebSeedView {
                url: "http://o/".into(),
                state: WebSeedState::Ready,
                downloaded: 0,
                errors: 0,
                bad_pieces: 0,
                last_error: None,
            },
            busy: 1,
            failures: 0,
            retry_at: None,
        }
    }

    fn outcome(error: Option<FetchError>, verified: u64, bad: Vec<u32>) -> Outcome {
        Outcome {
            error,
            verified,
            bad,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn runs_take_about_a_second_at_the_origin_s_rate_within_bounds() {
        let piece = 256 * 1024;
        let mut s = RunSizer {
            rate: None,
            piece_len: piece,
        };
        assert_eq!(s.pieces(), 4, "1 MiB before any rate is known");
        s.record(1024 * 1024, Duration::from_secs(2)); // 512 KiB/s
        assert_eq!(s.pieces(), 2);
        for _ in 0..20 {
            s.record(400 << 20, Duration::from_secs(1));
        }
        assert_eq!(s.pieces(), 16, "a fast origin: capped at 4 MiB");
        s.record(0, Duration::from_secs(1));
        s.record(1 << 20, Duration::from_millis(1));
        assert_eq!(s.pieces(), 16, "empty or untimeable runs change nothing");
        let big = RunSizer {
            rate: Some(1.0),
            piece_len: 16 << 20,
        };
        assert_eq!(big.pieces(), 1, "never less than one piece");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_bad_data_drops_the_url() {
        let mut s = seed();
        settle(&mut s, outcome(None, 100, vec![]));
        assert_eq!(
            (s.view.downloaded, s.view.state),
            (100, WebSeedState::Ready)
        );
        let t0 = Instant::now();
        let fail = |e: FetchError| outcome(Some(e), 0, vec![]);
        settle(&mut s, fail(FetchError::Status(503)));
        assert_eq!(s.view.state, WebSeedState::BackingOff);
        assert_eq!(s.retry_at, Some(t0 + BACKOFF_FIRST));
        assert!(!s.usable(t0));
        assert!(s.usable(t0 + BACKOFF_FIRST));
        // A run that was under way fails too: counted, but no longer back-off.
        settle(&mut s, fail(FetchError::Status(503)));
        assert_eq!(s.retry_at, Some(t0 + BACKOFF_FIRST));
        tokio::time::advance(BACKOFF_FIRST).await;
        settle(&mut s, fail(FetchError::Timeout("the body")));
        assert_eq!(s.retry_at, Some(t0 + 3 * BACKOFF_FIRST), "doubled");
        for _ in 0..20 {
            let at = s.retry_at.unwrap();
            tokio::time::advance(at - Instant::now()).await;
            settle(&mut s, fail(FetchError::Status(500)));
        }
        assert_eq!(s.retry_at.unwrap() - Instant::now(), BACKOFF_MAX, "capped");
        assert_eq!(s.view.errors, 23);
        assert!(s.view.last_error.as_deref().unwrap().contains("500"));
        // A good run resets the back-off.
        settle(&mut s, outcome(None, 10, vec![]));
        assert_eq!((s.failures, s.retry_at), (0, None));
        assert_eq!(s.view.state, WebSeedState::Ready);
        // Bad data: backed off, then dropped at the third bad piece (even while
        // backing off: bad pieces always count).
        settle(&mut s, outcome(None, 0, vec![7]));
        assert_eq!(s.view.state, WebSeedState::BackingOff);
        settle(&mut s, outcome(None, 0, vec![8, 9]));
        assert_eq!(s.view.state, WebSeedState::Dropped);
        assert_eq!(s.view.bad_pieces, 3);
        assert!(!s.usable(t0 + BACKOFF_MAX * 10));
        assert!(s.view.last_error.as_deref().unwrap().contains("SHA-1"));
        // Runs under way when it was dropped still end: their bytes and errors count,
        // the URL stays dropped with the reason it was dropped for.
        s.busy = 3;
        settle(&mut s, outcome(None, 50, vec![]));
        settle(&mut s, fail(FetchError::Status(500)));
        settle(&mut s, outcome(None, 0, vec![11]));
        assert_eq!(s.view.state, WebSeedState::Dropped);
        assert_eq!((s.view.downloaded, s.view.errors), (160, 24));
        assert_eq!((s.view.bad_pieces, s.busy), (4, 0));
        assert!(s.view.last_error.as_deref().unwrap().contains("SHA-1"));
    }

    #[test]
    fn seed_urls_keep_order_and_drop_duplicates_and_junk() {
        let t = vec!["http://a/".to_string(), "ftp://x/".into()];
        let o = vec!["http://a/".to_string(), "https://b/f".into()];
        assert_eq!(seed_urls(&t, &o), ["http://a/", "https://b/f"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_needs_some_history() {
        let mut w = RateWindow {
            samples: VecDeque::new(),
        };
        let t0 = Instant::now();
        w.sample(t0, 0);
        w.sample(t0 + Duration::from_secs(2), 2_000_000);
        assert_eq!(w.rate(), None);
        w.sample(t0 + Duration::from_secs(4), 4_000_000);
        assert_eq!(w.rate(), Some(1_000_000.0));
        for s in 5..60 {
            w.sample(t0 + Duration::from_secs(s), 4_000_000);
        }
        assert_eq!(w.rate(), Some(0.0), "old bytes leave the window");
        assert!(w.samples.len() <= 8);
    }
}
