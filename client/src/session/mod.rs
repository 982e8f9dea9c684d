//! Many torrents in one process (the `serve` host agent): the session owns the shared
//! services and every torrent's lifecycle (add, check, queue, run, pause, resume,
//! recheck, remove), the download queue and the state dir that brings it all back
//! after a restart.

mod entry;
pub mod state_dir;
pub mod view;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::{InfoHash, PeerId};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::engine::{self, ClientError, Config, TorrentHandle};
use crate::progress::ProgressMode;
use crate::services::Services;
use crate::storage::WriteMode;
use entry::{Entry, Run};
use state_dir::{SavedState, StateDir};
pub use view::{
    FileView, PeerView, TorrentDetail, TorrentSample, TorrentState, TorrentView, Totals,
};

/// Torrents whose data is hashed at once while checking (each check is itself
/// parallel); the rest wait in `checking`.
const PARALLEL_CHECKS: usize = 4;
/// How long shutdown waits for every torrent's `stopped` announce and final save.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);
/// How often the per-torrent transfer rates are sampled.
const RATE_SAMPLE: Duration = Duration::from_secs(1);

/// How one session runs (`kpbt-client serve`).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub state_dir: PathBuf,
    /// Where to accept peers for every torrent; port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// When `listen`'s port is taken, try the next eight, then any free port.
    pub listen_fallback: bool,
    /// Host-wide caps on piece payload, bytes/s.
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    /// Torrents downloading at once; the rest wait in `queued` (seeding ones don't count).
    pub max_active_downloads: usize,
    /// Peer connections per torrent.
    pub max_peers: usize,
    pub peer_id: Option<PeerId>,
    /// Off in tests that give peers by hand.
    pub use_trackers: bool,
    pub write_mode: WriteMode,
    /// How every torrent uses its web seeds and origins (`Config::origin_min_rate`,
    /// `Config::origin_connections`); `origin_connections` also bounds the requests of
    /// all torrents together.
    pub origin_min_rate: u64,
    pub origin_connections: usize,
}

impl SessionConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> SessionConfig {
        SessionConfig {
            state_dir: state_dir.into(),
            listen: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            listen_fallback: false,
            upload_limit: None,
            download_limit: None,
            max_active_downloads: 4,
            max_peers: 50,
            peer_id: None,
            use_trackers: true,
            write_mode: WriteMode::Direct,
            origin_min_rate: crate::webseed::DEFAULT_ORIGIN_MIN_RATE,
            origin_connections: crate::webseed::DEFAULT_ORIGIN_CONNECTIONS,
        }
    }
}

/// How `Session::add` takes a torrent.
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    /// The folder that holds (or will hold) the torrent's NAME; absolute.
    pub dir: PathBuf,
    pub paused: bool,
    /// Peers to dial besides the trackers'.
    pub peers: Vec<SocketAddr>,
    /// Serve complete data read-only and never write (as `seed`): incomplete data is
    /// an error, not a download.
    pub seed_only: bool,
    /// The caller hashed this data itself a moment ago (`publish`): every piece is
    /// taken as verified without hashing, for instant seeding.
    pub verified: bool,
    /// HTTP(S) URLs serving the data (web seed rules, BEP 19), besides the torrent's own
    /// `url-list`; checked here, kept in the state dir.
    pub origins: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("torrent {0} is already in the session")]
    Exists(InfoHash),
    #[error("no torrent {0} in this session")]
    NotFound(InfoHash),
    #[error("not a usable torrent: {0}")]
    BadTorrent(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("torrent {0} is {1}: {2}")]
    WrongState(InfoHash, TorrentState, &'static str),
    #[error("cannot write the session's state dir: {0}")]
    StateDir(#[from] std::io::Error),
}

struct Inner {
    cfg: SessionConfig,
    services: Services,
    state: StateDir,
    torrents: Mutex<HashMap<InfoHash, Entry>>,
    /// Torrents whose add is being written to the state dir: taken under the
    /// `torrents` lock (always that lock first), so a second add of the same torrent
    /// is refused while the list and other adds need not wait for the fsyncs.
    adding: Mutex<HashSet<InfoHash>>,
    next_seq: AtomicU64,
    checks: Arc<Semaphore>,
    /// Bytes (downloaded, uploaded) of torrent runs that have ended, so the session's
    /// totals only ever grow.
    retired: (AtomicU64, AtomicU64),
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running session; clones share it.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Session {
    /// Opens the state dir, binds the peer listener and brings back every torrent
    /// saved there (each in its saved state; damaged ones in `error`).
    pub async fn start(cfg: SessionConfig) -> Result<Session, ClientError> {
        let state = StateDir::open(&cfg.state_dir).map_err(|e| {
            ClientError::Task(format!(
                "cannot use state dir {}: {e}",
                cfg.state_dir.display()
            ))
        })?;
        let listener = engine::bind_peer_listener(cfg.listen, cfg.listen_fallback).await?;
        let listen_addr = listener.local_addr().map_err(|source| ClientError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let peer_id = cfg
            .peer_id
            .unwrap_or_else(|| PeerId::generate(rand::random()));
        let mut services =
            Services::new(peer_id, listen_addr, cfg.upload_limit, cfg.download_limit)
                .map_err(|e| ClientError::Task(format!("cannot build an HTTP client: {e}")))?;
        services.announce_jitter = true;
        services.share_piece_memory(cfg.max_active_downloads);
        services.origin_slots = Some(Arc::new(tokio::sync::Semaphore::new(
            cfg.origin_connections.max(1),
        )));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            cfg,
            services,
            state,
            torrents: Mutex::new(HashMap::new()),
            adding: Mutex::new(HashSet::new()),
            next_seq: AtomicU64::new(1),
            checks: Arc::new(Semaphore::new(PARALLEL_CHECKS)),
            retired: (AtomicU64::new(0), AtomicU64::new(0)),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        let session = Session { inner };
        let router = session.inner.services.router.clone();
        session.spawn(crate::listener::run(listener, router, shutdown_rx));
        session.spawn(sample_rates(Arc::downgrade(&session.inner)));
        session.load_saved();
        Ok(session)
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(fut);
        lock(&self.inner.tasks).push(h);
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.services.listen_addr
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.services.peer_id
    }

    /// Whether torrents announce to their trackers (off in tests that give peers).
    pub fn uses_trackers(&self) -> bool {
        self.inner.cfg.use_trackers
    }

    fn torrents(&self) -> MutexGuard<'_, HashMap<InfoHash, Entry>> {
        lock(&self.inner.torrents)
    }

    fn load_saved(&self) {
        let (loaded, skipped) = match self.inner.state.load_all() {
            Ok(x) => x,
            Err(e) => {
                warn!("cannot read the state dir: {e}; starting with no torrents");
                return;
            }
        };
        for p in skipped {
            warn!(
                "ignoring {} in the state dir: not a torrent's folder",
                p.display()
            );
        }
        let mut to_check = Vec::new();
        {
            let mut map = self.torrents();
            for l in loaded {
                let meta = l.torrent.and_then(|b| {
                    Metainfo::from_bytes(&b)
                        .map_err(|e| format!("saved .torrent is unusable: {e}"))
                        .and_then(|m| {
                            if m.info_hash == l.info_hash {
                                Ok(m)
                            } else {
                                Err(format!(
                                    "saved .torrent is for another info hash, {}",
                                    m.info_hash
                                ))
                            }
                        })
                });
                let (run, meta) = match (&meta, &l.state) {
                    (Ok(_), Ok(_)) => (Run::Idle, meta.ok()),
                    (Err(e), _) | (_, Err(e)) => {
                        warn!(info_hash = %l.info_hash, "torrent not started: {e}");
                        (Run::Error(e.clone()), meta.ok())
                    }
                };
                let saved = l.state.unwrap_or(SavedState {
                    dir: PathBuf::new(),
                    paused: true,
                    seq: 0,
                    added: 0,
                    peers: Vec::new(),
                    seed_only: false,
                    upload_limit: None,
                    download_limit: None,
                    origins: Vec::new(),
                });
                self.inner
                    .next_seq
                    .fetch_max(saved.seq + 1, Ordering::Relaxed);
                if matches!(run, Run::Idle) && !saved.paused {
                    to_check.push(l.info_hash);
                }
                map.insert(
                    l.info_hash,
                    Entry {
                        meta: meta.map(Arc::new),
                        saved,
                        run,
                        generation: 0,
                        rates: (0, 0),
                        last_counts: (0, 0),
                    },
                );
            }
            info!(torrents = map.len(), "session state loaded");
        }
        for ih in to_check {
            self.start_check(ih, false);
        }
    }

    /// Adds a torrent from its .torrent bytes; its data goes to (or is found in)
    /// `dir/NAME`. Checked and started in the background.
    pub fn add(&self, torrent: &[u8], opts: AddOptions) -> Result<TorrentView, SessionError> {
        let AddOptions {
            dir,
            paused,
            peers,
            seed_only,
            verified: trust_data,
            origins,
        } = opts;
        for url in &origins {
            crate::create::check_web_seed_url(url)
                .map_err(|e| SessionError::BadRequest(format!("origin: {e}")))?;
        }
        let dir = dir.as_path();
        let meta =
            Metainfo::from_bytes(torrent).map_err(|e| SessionError::BadTorrent(e.to_string()))?;
        for f in &meta.info.files {
            for c in &f.path {
                crate::storage::check_component(c)
                    .map_err(|e| SessionError::BadTorrent(e.to_string()))?;
            }
        }
        if !dir.is_absolute() {
            return Err(SessionError::BadRequest(format!(
                "dir {} must be an absolute path (the session does not share your working directory)",
                dir.display()
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(SessionError::BadRequest(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let ih = meta.info_hash;
        let saved = SavedState {
            dir: dir.to_path_buf(),
            paused,
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            added: now_secs(),
            peers,
            seed_only,
            upload_limit: None,
            download_limit: None,
            origins,
        };
        {
            let map = self.torrents();
            if map.contains_key(&ih) || !lock(&self.inner.adding).insert(ih) {
                return Err(SessionError::Exists(ih));
            }
        }
        let written = self.inner.state.add(ih, torrent, &saved);
        {
            let mut map = self.torrents();
            lock(&self.inner.adding).remove(&ih);
            written?;
            map.insert(
                ih,
                Entry {
                    meta: Some(Arc::new(meta)),
                    saved,
                    run: Run::Idle,
                    generation: 0,
                    rates: (0, 0),
                    last_counts: (0, 0),
                },
            );
        }
        info!(info_hash = %ih, dir = %dir.display(), paused, "torrent added");
        if !paused {
            self.start_check_with(ih, false, trust_data);
        }
        self.view(ih)
    }

    fn torrent_config(&self, ih: InfoHash, saved: &SavedState) -> Config {
        let cfg = &self.inner.cfg;
        let mut c = Config::new(saved.dir.clone());
        c.peers = saved.peers.clone();
        c.use_trackers = cfg.use_trackers;
        c.max_peers = cfg.max_peers;
        c.progress = ProgressMode::Quiet;
        c.write_mode = cfg.write_mode;
        c.resume_path = Some(self.inner.state.resume_path(ih));
        c.seed_only = saved.seed_only;
        c.torrent_upload_limit = saved.upload_limit;
        c.torrent_download_limit = saved.download_limit;
        c.origins = saved.origins.clone();
        c.origin_min_rate = cfg.origin_min_rate;
        c.origin_connections = cfg.origin_connections;
        c
    }

    /// Sets the torrent's own rate limits (None: only the host's apply); kept across
    /// restarts, applied at once to a running torrent.
    pub fn set_limits(
        &self,
        ih: InfoHash,
        upload: Option<u64>,
        download: Option<u64>,
    ) -> Result<TorrentView, SessionError> {
        {
            let mut map = self.torrents();
            let e = map.get_mut(&ih).ok_or(SessionError::NotFound(ih))?;
            e.saved.upload_limit = upload.filter(|r| *r > 0);
            e.saved.download_limit = download.filter(|r| *r > 0);
            self.inner.state.save_state(ih, &e.saved)?;
            if let Run::Running(h) = &e.run {
                h.shared.upload_limit.torrent.set_rate(e.saved.upload_limit);
                h.shared
                    .download_limit
                    .torrent
                    .set_rate(e.saved.download_limit);
            }
        }
        self.view(ih)
    }

    fn start_check(&self, ih: InfoHash, ignore_resume: bool) {
        self.start_check_with(ih, ignore_resume, false)
    }

    /// Puts the torrent in `checking` and opens/hashes its data on a background task.
    fn start_check_with(&self, ih: InfoHash, ignore_resume: bool, trust_data: bool) {
        let (meta, mut cfg, generation) = {
            let mut map = self.torrents();
            let Some(e) = map.get_mut(&ih) else { return };
            let Some(meta) = e.meta.clone() else { return };
            e.generation += 1;
            e.run = Run::Checking;
            (meta, self.torrent_config(ih, &e.saved), e.generation)
        };
        cfg.ignore_resume = ignore_resume;
        cfg.trust_existing_data = trust_data;
        let weak = Arc::downgrade(&self.inner);
        let checks = self.inner.checks.clone();
        tokio::spawn(async move {
            let Ok(_permit) = checks.acquire_owned().await else {
                return;
            };
            let result = engine::prepare((*meta).clone(), cfg).await;
            let Some(inner) = weak.upgrade() else { return };
            let session = Session { inner };
            {
                let mut map = session.torrents();
                let Some(e) = map.get_mut(&ih) else { return };
                if e.generation != generation {
                    return; // paused, rechecked or removed meanwhile
                }
                e.run = match result {
                    Ok(p) => Run::Queued(Box::new(p)),
                    Err(err) => {
                        warn!(info_hash = %ih, "torrent cannot start: {err}");
                        Run::Error(err.to_string())
                    }
                };
            }
            session.schedule();
        });
    }

    /// Starts queued torrents: complete ones at once (seeding does not take a slot),
    /// incomplete ones oldest first while fewer than `max_active_downloads` download.
    fn schedule(&self) {
        if *self.inner.shutdown.borrow() {
            return;
        }
        let mut started = Vec::new();
        {
            let mut map = self.torrents();
            let mut active = map
                .values()
                // A torrent stopped by a disk error no longer holds a slot.
                .filter(|e| {
                    matches!(&e.run, Run::Running(h) if !h.is_complete() && h.shared.failure().is_none())
                })
                .count();
            let mut queued: Vec<(u64, InfoHash)> = map
                .iter()
                .filter(|(_, e)| matches!(e.run, Run::Queued(_)))
                .map(|(ih, e)| (e.saved.seq, *ih))
                .collect();
            queued.sort();
            for (_, ih) in queued {
                let e = map.get_mut(&ih).expect("listed above");
                let Run::Queued(p) = &e.run else { continue };
                let complete = p.is_complete();
                if !complete && active >= self.inner.cfg.max_active_downloads {
                    continue;
                }
                let Run::Queued(p) = std::mem::replace(&mut e.run, Run::Idle) else {
                    unreachable!("matched above")
                };
                let handle = engine::launch(&self.inner.services, *p);
                if !complete {
                    active += 1;
                    started.push((handle.completion(), e.generation));
                }
                e.run = Run::Running(handle);
            }
        }
        // When a download completes, its slot goes to the next queued torrent.
        for (mut complete, _) in started {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                if complete.wait_for(|c| *c).await.is_ok() {
                    if let Some(inner) = weak.upgrade() {
                        Session { inner }.schedule();
                    }
                }
            });
        }
    }

    /// Takes the torrent's running parts out (to be shut down by the caller, outside
    /// the lock) and leaves it idle; its byte counts move to the session's totals.
    fn stop_locked(&self, e: &mut Entry) -> Option<TorrentHandle> {
        e.generation += 1;
        match std::mem::replace(&mut e.run, Run::Idle) {
            Run::Running(h) => {
                let (d, u) = h.counters();
                self.inner.retired.0.fetch_add(d, Ordering::Relaxed);
                self.inner.retired.1.fetch_add(u, Ordering::Relaxed);
                Some(h)
            }
            _ => None,
        }
    }

    pub async fn pause(&self, ih: InfoHash) -> Result<TorrentView, SessionError> {
        // Saving syncs the state file: on a blocking thread, not an async one.
        let session = self.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let mut map = session.torrents();
            let e = map.get_mut(&ih).ok_or(SessionError::NotFound(ih))?;
            refuse_if_broken(ih, e)?;
            e.saved.paused = true;
            session.inner.state.save_state(ih, &e.saved)?;
            Ok::<_, SessionError>(session.stop_locked(e))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        if let Some(h) = handle {
            if let Err(err) = h.shutdown().await {
                warn!(info_hash = %ih, "stopping the torrent: {err}");
            }
        }
        self.schedule();
        self.view(ih)
    }

    pub fn resume(&self, ih: InfoHash) -> Result<TorrentView, SessionError> {
        {
            let mut map = self.torrents();
            let e = map.get_mut(&ih).ok_or(SessionError::NotFound(ih))?;
            refuse_if_broken(ih, e)?;
            if !e.saved.paused {
                drop(map);
                return self.view(ih);
            }
            e.saved.paused = false;
            self.inner.state.save_state(ih, &e.saved)?;
        }
        self.start_check(ih, false);
        self.view(ih)
    }

    /// Stops the torrent and hashes all its data again (the resume file is ignored).
    pub async fn recheck(&self, ih: InfoHash) -> Result<TorrentView, SessionError> {
        let handle = {
            let mut map = self.torrents();
            let e = map.get_mut(&ih).ok_or(SessionError::NotFound(ih))?;
            if e.saved.paused {
                return Err(SessionError::WrongState(
                    ih,
                    TorrentState::Paused,
                    "resume it first",
                ));
            }
            refuse_if_broken(ih, e)?;
            self.stop_locked(e)
        };
        if let Some(h) = handle {
            let _ = h.shutdown().await;
        }
        self.start_check(ih, true);
        self.view(ih)
    }

    /// Removes the torrent from the session; with `delete_data`, also its files,
    /// only ever inside its own `dir/NAME`.
    pub async fn remove(&self, ih: InfoHash, delete_data: bool) -> Result<(), SessionError> {
        let mut entry = self
            .torrents()
            .remove(&ih)
            .ok_or(SessionError::NotFound(ih))?;
        if let Some(h) = self.stop_locked(&mut entry) {
            let _ = h.shutdown().await;
        }
        self.inner.state.remove(ih)?;
        if let (true, Some(meta)) = (delete_data, &entry.meta) {
            let (dir, meta) = (entry.saved.dir.clone(), meta.clone());
            let removed = tokio::task::spawn_blocking(move || delete_torrent_data(&dir, &meta))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            info!(info_hash = %ih, files = removed, "torrent removed with its data");
        } else {
            info!(info_hash = %ih, "torrent removed");
        }
        self.schedule();
        Ok(())
    }

    pub fn list(&self) -> Vec<TorrentView> {
        let map = self.torrents();
        let mut v: Vec<(u64, TorrentView)> = map
            .iter()
            .map(|(ih, e)| (e.saved.seq, view::summary(*ih, e)))
            .collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, t)| t).collect()
    }

    pub fn view(&self, ih: InfoHash) -> Result<TorrentView, SessionError> {
        let map = self.torrents();
        let e = map.get(&ih).ok_or(SessionError::NotFound(ih))?;
        Ok(view::summary(ih, e))
    }

    pub fn detail(&self, ih: InfoHash) -> Result<TorrentDetail, SessionError> {
        let map = self.torrents();
        let e = map.get(&ih).ok_or(SessionError::NotFound(ih))?;
        Ok(view::detail(ih, e))
    }

    /// What a file read needs: the running torrent's shared state and the file's span.
    pub(crate) fn file_source(
        &self,
        ih: InfoHash,
        index: usize,
    ) -> Result<(Arc<crate::shared::Shared>, u64, u64, String), SessionError> {
        let map = self.torrents();
        let e = map.get(&ih).ok_or(SessionError::NotFound(ih))?;
        let Run::Running(h) = &e.run else {
            return Err(SessionError::WrongState(
                ih,
                view::state_of(e),
                "files are served while it runs",
            ));
        };
        let meta = e.meta.as_ref().expect("running torrents have metadata");
        let f = meta.info.files.get(index).ok_or_else(|| {
            SessionError::BadRequest(format!(
                "no file {index}: the torrent has {} files",
                meta.info.files.len()
            ))
        })?;
        let name = f.path.last().cloned().unwrap_or_default();
        Ok((h.shared.clone(), f.offset, f.length, name))
    }

    /// Figures of the first `limit` running torrents (oldest first), for the bounded
    /// per-torrent metric series.
    pub fn samples(&self, limit: usize) -> Vec<view::TorrentSample> {
        let map = self.torrents();
        let mut running: Vec<(u64, InfoHash)> = map
            .iter()
            .filter(|(_, e)| matches!(e.run, Run::Running(_)))
            .map(|(ih, e)| (e.saved.seq, *ih))
            .collect();
        running.sort();
        running
            .into_iter()
            .take(limit)
            .filter_map(|(_, ih)| view::sample(ih, &map[&ih]))
            .collect()
    }

    /// Session-wide totals for `/metrics` and `/health`.
    pub fn totals(&self) -> view::Totals {
        let mut t = view::totals(self.torrents().values());
        t.downloaded += self.inner.retired.0.load(Ordering::Relaxed);
        t.uploaded += self.inner.retired.1.load(Ordering::Relaxed);
        t
    }

    /// Stops every torrent in parallel (each sends `stopped` and saves its resume
    /// data, within `SHUTDOWN_LIMIT` in all), then the listener.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let handles: Vec<TorrentHandle> = {
            let mut map = self.torrents();
            map.values_mut()
                .filter_map(|e| self.stop_locked(e))
                .collect()
        };
        let n = handles.len();
        let mut set = tokio::task::JoinSet::new();
        for h in handles {
            set.spawn(h.shutdown());
        }
        if tokio::time::timeout(SHUTDOWN_LIMIT, async {
            while set.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!(
                "{} torrents did not stop within {} s",
                set.len(),
                SHUTDOWN_LIMIT.as_secs()
            );
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.tasks));
        for t in tasks {
            t.abort();
        }
        info!(torrents = n, "session stopped");
    }
}

/// A torrent whose saved state could not be loaded can only be removed.
fn refuse_if_broken(ih: InfoHash, e: &Entry) -> Result<(), SessionError> {
    if matches!(e.run, Run::Error(_)) || e.meta.is_none() {
        return Err(SessionError::WrongState(
            ih,
            TorrentState::Error,
            "remove it and add it again",
        ));
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Samples every running torrent's byte counters once a second into its rates.
async fn sample_rates(weak: Weak<Inner>) {
    let mut tick = tokio::time::interval(RATE_SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let mut map = lock(&inner.torrents);
        for e in map.values_mut() {
            if let Run::Running(h) = &e.run {
                let now = h.counters();
                let secs = RATE_SAMPLE.as_secs_f64();
                e.rates = (
                    (now.0.saturating_sub(e.last_counts.0) as f64 / secs) as u64,
                    (now.1.saturating_sub(e.last_counts.1) as f64 / secs) as u64,
                );
                e.last_counts = now;
            } else {
                e.rates = (0, 0);
                e.last_counts = (0, 0);
            }
        }
    }
}

/// Deletes the torrent's files under `dir` (never following a symlink out of it),
/// then the folders of a multi-file torrent that are left empty.
fn delete_torrent_data(dir: &Path, meta: &Metainfo) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut parents = Vec::new();
    for f in &meta.info.files {
        let Ok(path) = crate::storage::safe_join(dir, &f.path, false) else {
            continue; // a path through a symlink or a file: not ours to delete
        };
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut p = path.parent().map(Path::to_path_buf);
        while let Some(d) = p {
            if d == dir || !d.starts_with(dir) {
                break;
            }
            parents.push(d.clone());
            p = d.parent().map(Path::to_path_buf);
        }
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    parents.dedup();
    for d in parents {
        let _ = std::fs::remove_dir(&d); // only succeeds when empty
    }
    Ok(removed)
}
