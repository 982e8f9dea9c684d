//! One torrent's life: check its data (`prepare`), run it on a session's services
//! (`launch`: the torrent, tracker, resume, progress and web seed tasks), wait for
//! completion, shut it down cleanly. `start`/`download` run one torrent on services of its own
//! (the one-shot `download` and `seed` commands).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::PeerId;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::listener::Router;
use crate::picker::Picker;
use crate::progress::{self, ProgressMode};
use crate::resume;
use crate::services::Services;
use crate::shared::Shared;
use crate::storage::{FileSpec, Layout, Storage, StorageError, WriteMode};
use crate::torrent::TorrentTask;
use crate::tracker::Announcer;
use crate::webseed::{OriginOptions, WebSeedStatus, WebSeedTask, WebSeedView};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source} (pick another --port, or 0 for any free port)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `seed` found missing, short or corrupt data (and wrote nothing).
    #[error(transparent)]
    SeedData(#[from] crate::seed_check::SeedCheckError),
    #[error("internal task failed: {0}")]
    Task(String),
}

/// How to run one torrent.
#[derive(Clone, Debug)]
pub struct Config {
    /// Files go to `output_dir/NAME` (single file) or `output_dir/NAME/...`.
    pub output_dir: PathBuf,
    /// Where to accept peers; port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// When `listen`'s port is taken, try the next eight ports, then any free port (the
    /// CLI's default, so two clients on one host both start); off, a taken port fails.
    pub listen_fallback: bool,
    /// Peers to dial besides those from trackers (useful without a tracker).
    pub peers: Vec<SocketAddr>,
    pub use_trackers: bool,
    pub max_peers: usize,
    /// Incoming connections accepted from one IP address at once.
    pub max_connections_per_ip: usize,
    /// Regular unchoke slots (one optimistic slot comes on top).
    pub upload_slots: usize,
    pub progress: ProgressMode,
    pub peer_id: Option<PeerId>,
    /// Serve Prometheus metrics at `GET /metrics` on this address (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Piece payload bytes/s sent to all peers together (`--upload-limit`); None = unlimited.
    pub upload_limit: Option<u64>,
    /// Piece payload bytes/s received from all peers together (`--download-limit`).
    pub download_limit: Option<u64>,
    /// Keep `DIR/.NAME.kpbt-resume` so restarts skip re-hashing verified pieces.
    pub resume: bool,
    /// How verified pieces are written (`--buffered-writes` picks `Buffered`).
    pub write_mode: WriteMode,
    /// Serve what is in `output_dir` and never write (`seed`): files are opened
    /// read-only, and missing, short or corrupt data is an error instead of a download.
    pub seed_only: bool,
    /// Keeps running (seeding) once complete; only the progress output reads it
    /// ("complete in X (rate), now seeding"). `download` sets it from `seed_after`.
    pub seed_after_complete: bool,
    /// Where the resume file lives [default: `DIR/.NAME.kpbt-resume`]; a session keeps
    /// it in its state dir.
    pub resume_path: Option<PathBuf>,
    /// Hash every piece even where the resume file vouches for it (recheck).
    pub ignore_resume: bool,
    /// Take every piece as verified without hashing: only for data the caller hashed
    /// itself a moment ago (`publish` right after making the torrent).
    pub trust_existing_data: bool,
    /// This torrent's own limits on top of the host's (`upload_limit`/`download_limit`).
    pub torrent_upload_limit: Option<u64>,
    pub torrent_download_limit: Option<u64>,
    /// HTTP(S) URLs serving the torrent's data (`--origin`), used like the torrent's own
    /// web seeds (BEP 19 rules): for torrents made without a `url-list`.
    pub origins: Vec<String>,
    /// Below this many bytes/s from peers the origin takes over (`--origin-min-rate`);
    /// 0: the origin only fetches pieces no connected peer has.
    pub origin_min_rate: u64,
    /// Concurrent requests to web seeds/origins for this torrent (`--origin-connections`).
    pub origin_connections: usize,
}

impl Config {
    pub fn new(output_dir: impl Into<PathBuf>) -> Config {
        Config {
            output_dir: output_dir.into(),
            listen: SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
            listen_fallback: false,
            peers: Vec::new(),
            use_trackers: true,
            max_peers: 50,
            max_connections_per_ip: crate::shared::DEFAULT_MAX_CONNECTIONS_PER_IP,
            upload_slots: 4,
            progress: ProgressMode::Quiet,
            peer_id: None,
            metrics_listen: None,
            upload_limit: None,
            download_limit: None,
            resume: true,
            write_mode: WriteMode::Direct,
            seed_only: false,
            seed_after_complete: true,
            resume_path: None,
            ignore_resume: false,
            trust_existing_data: false,
            torrent_upload_limit: None,
            torrent_download_limit: None,
            origins: Vec::new(),
            origin_min_rate: crate::webseed::DEFAULT_ORIGIN_MIN_RATE,
            origin_connections: crate::webseed::DEFAULT_ORIGIN_CONNECTIONS,
        }
    }
}

/// What a finished (or stopped) torrent achieved.
#[derive(Clone, Debug)]
pub struct Summary {
    pub complete: bool,
    pub pieces_verified: u32,
    pub piece_count: u32,
    /// Verified payload bytes downloaded this session.
    pub downloaded: u64,
    /// The part of `downloaded` that came from peers / from web seeds and origins.
    pub peer_bytes: u64,
    pub origin_bytes: u64,
    pub uploaded: u64,
    pub elapsed: Duration,
    pub banned: Vec<IpAddr>,
    /// How each web seed/origin did (after `shutdown`: final).
    pub web_seeds: Vec<WebSeedView>,
}

/// A running torrent.
pub struct TorrentHandle {
    pub(crate) shared: Arc<Shared>,
    listen_addr: SocketAddr,
    complete: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    main: Option<JoinHandle<Result<(), StorageError>>>,
    helpers: Vec<JoinHandle<()>>,
    started: Instant,
    resume_path: Option<PathBuf>,
    router: Router,
    web_seeds: WebSeedStatus,
}

fn layout_of(meta: &Metainfo) -> Layout {
    let info = &meta.info;
    Layout {
        piece_len: info.piece_length,
        total_len: info.total_length,
        files: info
            .files
            .iter()
            .map(|f| FileSpec {
                components: f.path.clone(),
                length: f.length,
                offset: f.offset,
            })
            .collect(),
        hashes: info.piece_hashes.clone(),
    }
}

/// A torrent whose data has been opened and checked, ready to `launch`.
pub(crate) struct Prepared {
    meta: Metainfo,
    cfg: Config,
    storage: Storage,
    verified: Vec<bool>,
    started: Instant,
}

impl Prepared {
    pub(crate) fn is_complete(&self) -> bool {
        self.verified.iter().all(|v| *v)
    }

    pub(crate) fn piece_count(&self) -> u32 {
        self.verified.len() as u32
    }

    pub(crate) fn verified_count(&self) -> u32 {
        self.verified.iter().filter(|v| **v).count() as u32
    }
}

/// Where `cfg` keeps the torrent's resume file, if it keeps one.
fn resume_file(meta: &Metainfo, cfg: &Config) -> Option<PathBuf> {
    cfg.resume.then(|| {
        cfg.resume_path
            .clone()
            .unwrap_or_else(|| resume::resume_path(&cfg.output_dir, &meta.info.name))
    })
}

/// Opens storage and hashes existing data the resume file does not vouch for (on a
/// blocking thread). `seed_only` opens read-only and fails on anything incomplete.
pub(crate) async fn prepare(meta: Metainfo, cfg: Config) -> Result<Prepared, ClientError> {
    let started = Instant::now();
    let layout = layout_of(&meta);
    let dir = cfg.output_dir.clone();
    // The resume file may vouch for data when seeding, but a seeder never writes one:
    // `seed` leaves the folder exactly as it found it.
    let resume_file = resume_file(&meta, &cfg).filter(|_| !cfg.ignore_resume);
    let info_hash = meta.info_hash;
    let write_mode = cfg.write_mode;
    let seed_only = cfg.seed_only;
    let trust_all = cfg.trust_existing_data;
    let name = meta.info.name.clone();
    let (storage, verified) = tokio::task::spawn_blocking(move || -> Result<_, ClientError> {
        let storage = if seed_only {
            let paths = crate::seed_check::inspect(&dir, &name, &layout)?;
            Storage::open_read_only(layout, paths)?
        } else {
            Storage::open_with(&dir, layout, write_mode)?
        };
        if trust_all {
            // The caller hashed this very data a moment ago (`publish`): no second pass.
            let n = storage.layout().piece_count() as usize;
            return Ok((storage, vec![true; n]));
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let trusted = resume_file
            .and_then(|p| resume::trusted_pieces(&storage, info_hash, &p))
            .unwrap_or_default();
        if !trusted.is_empty() {
            info!(
                trusted = trusted.iter().filter(|t| **t).count(),
                "resume file accepted; not re-hashing those pieces"
            );
        }
        let verified = storage.verify_untrusted(threads, &AtomicBool::new(false), &trusted)?;
        if seed_only && verified.iter().any(|ok| !ok) {
            return Err(
                crate::seed_check::corrupt(&dir, &name, storage.layout(), &verified).into(),
            );
        }
        Ok((storage, verified))
    })
    .await
    .map_err(|e| ClientError::Task(e.to_string()))??;
    Ok(Prepared {
        meta,
        cfg,
        storage,
        verified,
        started,
    })
}

/// Starts peers, trackers and the helper tasks of a prepared torrent on `services`.
pub(crate) fn launch(services: &Services, prepared: Prepared) -> TorrentHandle {
    let Prepared {
        meta,
        cfg,
        storage,
        verified,
        started,
    } = prepared;
    let layout = storage.layout();
    let piece_len = layout.piece_len;
    let piece_count = layout.piece_count();
    let total_len = layout.total_len;
    // `seed` leaves its folder as it found it, so its resume file (in that folder by
    // default) is never written; a session keeps resume files in its own state dir,
    // where a seed-only torrent's is written too, so restarts skip re-hashing.
    let resume_path =
        resume_file(&meta, &cfg).filter(|_| !cfg.seed_only || cfg.resume_path.is_some());
    let max_active = (services.piece_memory_per_torrent / piece_len as u64).clamp(4, 4096) as usize;
    let mut picker = Picker::new(
        piece_count,
        piece_len,
        total_len,
        max_active,
        rand::random(),
    );
    for (i, ok) in verified.iter().enumerate() {
        if *ok {
            picker.set_have(i as u32);
        }
    }
    if picker.have_count() > 0 {
        info!(
            have = picker.have_count(),
            of = piece_count,
            "existing data verified"
        );
    }
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut shared = Shared::new(
        meta.info_hash,
        services,
        Arc::new(storage),
        picker,
        cfg.max_peers,
        events_tx,
    );
    shared.metadata = Arc::from(meta.info_bytes.as_slice());
    shared.private = meta.info.private;
    let shared = Arc::new(shared);
    shared
        .max_connections_per_ip
        .store(cfg.max_connections_per_ip.max(1), Ordering::Relaxed);
    shared
        .upload_limit
        .torrent
        .set_rate(cfg.torrent_upload_limit);
    shared
        .download_limit
        .torrent
        .set_rate(cfg.torrent_download_limit);
    let (complete_tx, complete_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (peers_tx, peers_rx) = mpsc::unbounded_channel();
    let incoming = services.router.register(meta.info_hash);
    let task = TorrentTask {
        shared: shared.clone(),
        incoming,
        listen_addr: services.listen_addr,
        events: events_rx,
        new_peers: peers_rx,
        initial_peers: cfg.peers.clone(),
        complete_tx,
        shutdown: shutdown_rx.clone(),
        upload_slots: cfg.upload_slots,
    };
    let main = tokio::spawn(task.run());
    let mut helpers = Vec::new();
    if cfg.use_trackers && !meta.trackers.is_empty() {
        let a = Announcer {
            shared: shared.clone(),
            tiers: meta.trackers.clone(),
            port: services.listen_addr.port(),
            http: services.http.clone(),
            jitter: services.announce_jitter,
            peers_tx,
            complete: complete_rx.clone(),
            shutdown: shutdown_rx.clone(),
        };
        helpers.push(tokio::spawn(a.run()));
    }
    if let Some(p) = &resume_path {
        helpers.push(tokio::spawn(resume::run_saver(
            shared.clone(),
            p.clone(),
            complete_rx.clone(),
            shutdown_rx.clone(),
        )));
    }
    let web_seeds = WebSeedStatus::default();
    let urls = crate::webseed::seed_urls(&meta.web_seeds, &cfg.origins);
    if !urls.is_empty() && !cfg.seed_only && !shared.is_complete() {
        let task = WebSeedTask {
            shared: shared.clone(),
            http: services.origin_http.clone(),
            urls,
            name: meta.info.name.clone(),
            multi_file: meta.info.multi_file,
            options: OriginOptions {
                min_rate: cfg.origin_min_rate,
                connections: cfg.origin_connections.max(1),
            },
            expect_peers: !cfg.peers.is_empty() || (cfg.use_trackers && !meta.trackers.is_empty()),
            session_slots: services.origin_slots.clone(),
            status: web_seeds.clone(),
            complete: complete_rx.clone(),
            shutdown: shutdown_rx.clone(),
        };
        helpers.push(tokio::spawn(task.run()));
    }
    if cfg.progress != ProgressMode::Quiet {
        helpers.push(tokio::spawn(progress::run(
            shared.clone(),
            cfg.progress,
            meta.info.name.clone(),
            cfg.seed_after_complete,
            complete_rx.clone(),
            shutdown_rx,
        )));
    }
    info!(listen_addr = %services.listen_addr, info_hash = %meta.info_hash, "torrent started");
    TorrentHandle {
        shared,
        listen_addr: services.listen_addr,
        complete: complete_rx,
        shutdown: shutdown_tx,
        main: Some(main),
        helpers,
        started,
        resume_path,
        router: services.router.clone(),
        web_seeds,
    }
}

/// Runs one torrent on services of its own: checks the data, binds the peer listener
/// (and the metrics listener), and starts downloading/seeding in the background.
pub async fn start(meta: Metainfo, cfg: Config) -> Result<TorrentHandle, ClientError> {
    let prepared = prepare(meta, cfg.clone()).await?;
    let listener = bind_peer_listener(cfg.listen, cfg.listen_fallback).await?;
    let listen_addr = listener.local_addr().map_err(|source| ClientError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(
            crate::metrics::bind(addr)
                .await
                .map_err(|source| ClientError::MetricsBind { addr, source })?,
        ),
        None => None,
    };
    let our_id = cfg
        .peer_id
        .unwrap_or_else(|| PeerId::generate(rand::random()));
    let services = Services::new(our_id, listen_addr, cfg.upload_limit, cfg.download_limit)
        .map_err(|e| ClientError::Task(format!("cannot build an HTTP client: {e}")))?;
    let name = prepared.meta.info.name.clone();
    let mut handle = launch(&services, prepared);
    let shutdown = handle.shutdown.subscribe();
    handle.helpers.push(tokio::spawn(crate::listener::run(
        listener,
        services.router.clone(),
        shutdown.clone(),
    )));
    if let Some(l) = metrics_listener {
        handle.helpers.push(tokio::spawn(crate::metrics::run(
            l,
            handle.shared.clone(),
            name,
            shutdown,
        )));
    }
    Ok(handle)
}

/// The port `start` would bind for `addr` (with `fallback` as there), found by binding
/// it and letting go: for announcing before the torrent starts (a magnet link's
/// metadata fetch), so trackers hear the port the download then uses.
pub async fn pick_listen_port(addr: SocketAddr, fallback: bool) -> Result<u16, ClientError> {
    let l = bind_peer_listener(addr, fallback).await?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| ClientError::Bind { addr, source })
}

/// Binds the peer listener; with `fallback`, a taken port moves on to the next eight and
/// then to any free port, saying which port was taken and which one is used. `[::]`
/// (the default) takes IPv6 and IPv4 on one socket; on a host without IPv6 it falls
/// back to `0.0.0.0`.
pub(crate) async fn bind_peer_listener(
    addr: SocketAddr,
    fallback: bool,
) -> Result<TcpListener, ClientError> {
    if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) {
        match bind_on(addr, fallback).await {
            Err(ClientError::Bind { source, .. })
                if source.kind() != std::io::ErrorKind::AddrInUse =>
            {
                tracing::debug!("no IPv6 here ({source}); accepting peers on IPv4 only");
                let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
                return bind_on(v4, fallback).await;
            }
            other => return other,
        }
    }
    bind_on(addr, fallback).await
}

async fn bind_on(addr: SocketAddr, fallback: bool) -> Result<TcpListener, ClientError> {
    let bind_error = |source| ClientError::Bind { addr, source };
    let first = match TcpListener::bind(addr).await {
        Ok(l) => return Ok(l),
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => e,
        Err(e) => return Err(bind_error(e)),
    };
    let next = (1..=8).filter_map(|d| addr.port().checked_add(d));
    for port in next.chain([0]) {
        let candidate = SocketAddr::new(addr.ip(), port);
        if let Ok(l) = TcpListener::bind(candidate).await {
            let got = l.local_addr().map_err(bind_error)?;
            warn!(
                "port {} is taken (another client on this host?); accepting peers on port {} instead",
                addr.port(),
                got.port()
            );
            return Ok(l);
        }
    }
    Err(bind_error(first))
}

impl TorrentHandle {
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Becomes true when every piece is verified.
    pub fn completion(&self) -> watch::Receiver<bool> {
        self.complete.clone()
    }

    /// (verified bytes downloaded, bytes uploaded) this run.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.shared.downloaded.load(Ordering::Relaxed),
            self.shared.uploaded.load(Ordering::Relaxed),
        )
    }

    pub fn info_hash(&self) -> kpbt_proto::InfoHash {
        self.shared.info_hash
    }

    /// The addresses of the peers connected now.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.shared.lock().peers.values().map(|e| e.addr).collect()
    }

    /// Verified payload bytes this run from peers and from web seeds/origins.
    pub fn bytes_by_source(&self) -> (u64, u64) {
        (
            self.shared.peer_bytes.load(Ordering::Relaxed),
            self.shared.origin_bytes.load(Ordering::Relaxed),
        )
    }

    /// How each web seed/origin is doing (empty when the torrent has none, or was
    /// complete at the start).
    pub fn web_seeds(&self) -> Vec<WebSeedView> {
        self.web_seeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when every piece is verified (on disk).
    pub fn is_complete(&self) -> bool {
        self.shared.is_complete()
    }

    /// Waits until every piece is verified. Fails if the torrent stopped on an error
    /// (e.g. the disk is full) before that.
    pub async fn wait_complete(&mut self) -> Result<(), ClientError> {
        let Some(main) = self.main.as_mut() else {
            return Err(ClientError::Task("torrent already stopped".into()));
        };
        tokio::select! {
            r = self.complete.wait_for(|c| *c) => {
                r.map_err(|_| ClientError::Task("torrent task ended".into()))?;
                Ok(())
            }
            r = main => {
                self.main = None;
                match r {
                    Ok(Ok(())) => Err(ClientError::Task("torrent stopped before completing".into())),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(ClientError::Task(e.to_string())),
                }
            }
        }
    }

    pub fn summary(&self) -> Summary {
        let st = self.shared.lock();
        let mut banned: Vec<IpAddr> = st.banned.iter().copied().collect();
        banned.sort();
        Summary {
            complete: st.picker.is_complete(),
            pieces_verified: st.picker.have_count(),
            piece_count: self.shared.piece_count,
            downloaded: self.shared.downloaded.load(Ordering::Relaxed),
            peer_bytes: self.shared.peer_bytes.load(Ordering::Relaxed),
            origin_bytes: self.shared.origin_bytes.load(Ordering::Relaxed),
            uploaded: self.shared.uploaded.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
            banned,
            web_seeds: self.web_seeds(),
        }
    }

    /// Stops peers, sends the `stopped` announce (bounded wait) and returns the summary.
    pub async fn shutdown(mut self) -> Result<Summary, ClientError> {
        self.router.unregister(self.shared.info_hash);
        let _ = self.shutdown.send(true);
        let mut result = Ok(());
        if let Some(main) = self.main.take() {
            result = match main.await {
                Ok(r) => r.map_err(ClientError::from),
                Err(e) => Err(ClientError::Task(e.to_string())),
            };
        }
        if let Some(p) = self.resume_path.take() {
            // Peers are gone; once in-flight writes finish, sync and record everything.
            self.shared.wait_writes_done().await;
            let s = self.shared.clone();
            match tokio::task::spawn_blocking(move || resume::save_shared(&s, &p)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("cannot save resume data: {e}"),
                Err(e) => warn!("resume save task failed: {e}"),
            }
        }
        for h in self.helpers.drain(..) {
            let _ = h.await;
        }
        result.map(|()| self.summary())
    }
}

/// Downloads the torrent; with `seed_after`, keeps seeding until `stop` resolves.
/// Returns when complete (or when `stop` resolves first, with `complete == false`).
pub async fn download(
    meta: Metainfo,
    mut cfg: Config,
    seed_after: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary, ClientError> {
    cfg.seed_after_complete = seed_after;
    let mut h = start(meta, cfg).await?;
    tokio::pin!(stop);
    tokio::select! {
        r = h.wait_complete() => {
            r?;
            if seed_after {
                info!("download complete; seeding until stopped");
                stop.await;
            }
        }
        _ = &mut stop => {}
    }
    h.shutdown().await
}
