//! kpbt-tracker: an HTTP and UDP BitTorrent tracker for private swarms (BEP 3, 7, 15, 23,
//! 41, 48).
//!
//! [`start`] runs the server on listeners the caller bound (tests bind port 0), plus the
//! background reaper and file poller; [`run`] is the binary's entry point, which also
//! binds the configured addresses and handles SIGINT/SIGTERM (graceful stop) and SIGHUP
//! (reload the allowlist and passkey file).
//!
//! Modules: [`config`] (settings), [`state`] ([`AppState`], what the handlers share),
//! [`store`] (the swarm-store seam; [`store::memory`] in-process, [`store::redis`] shared
//! in Redis), [`http`] (handlers), [`clientaddr`] (who a request comes from),
//! [`metrics`] (Prometheus), [`reload`] (watched files), [`allowlist`] (torrent filter),
//! [`passkeys`] (per-user access keys), [`ratelimit`] (per-client request budget),
//! [`background`] (a tracker on its own thread, for embedding and tests), [`probe`] (the
//! `health` subcommand's HTTP check), [`udp`] (the BEP 15 front end on its own threads,
//! over the same state as [`http`]).
//!
//! Imports run one way: `http`, `udp` → `state` → `store`, `config`, ...; `config` →
//! `store` (for [`StoreLimits`]); the store knows nothing of the config or the front ends.

pub mod allowlist;
pub mod background;
pub mod clientaddr;
pub mod config;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod passkeys;
mod peers;
pub mod probe;
pub mod ratelimit;
pub mod readiness;
pub mod reload;
pub mod state;
pub mod store;
pub mod udp;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

pub use allowlist::Allowlist;
pub use config::Config;
pub use metrics::Metrics;
pub use passkeys::Passkeys;
pub use ratelimit::RateLimiter;
pub use state::{AppState, StartError};
pub use store::{Clock, MemoryStore, ReapReport, StoreLimits, SwarmStore};

/// A started tracker. Await [`Tracker::wait`] to run it to completion.
pub struct Tracker {
    state: web::Data<AppState>,
    server: Server,
    local_addrs: Vec<SocketAddr>,
    udp: udp::UdpServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tracker {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A shared handle on the state, usable after the tracker moved into its runtime.
    pub fn shared_state(&self) -> std::sync::Arc<AppState> {
        self.state.clone().into_inner()
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The UDP sockets' addresses.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        self.udp.local_addrs()
    }

    /// Stops the server via `handle.stop(graceful)`.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the server stops, then stops the background tasks.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let result = self.server.await;
        self.udp.stop();
        for t in &self.tasks {
            t.abort();
        }
        result
    }
}

/// Starts serving on `listeners` (already bound, so connections queue from now on). Must be
/// called inside an actix runtime (`actix_web::rt::System`). Does not install signal
/// handlers; see [`run`].
pub fn start(config: Config, listeners: Vec<TcpListener>) -> Result<Tracker, StartError> {
    start_with_udp(config, listeners, Vec::new())
}

/// [`start`], plus UDP tracker sockets (already bound), each served by `workers` threads.
pub fn start_with_udp(
    config: Config,
    listeners: Vec<TcpListener>,
    udp_sockets: Vec<UdpSocket>,
) -> Result<Tracker, StartError> {
    let state = web::Data::new(AppState::new(config)?);
    for w in state.startup_warnings() {
        tracing::warn!("{w}");
    }
    tracing::info!("swarm store: {}", state.store.kind());
    let workers = match state.config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let udp = udp::UdpServer::start(state.clone().into_inner(), udp_sockets, workers)?;
    let data = state.clone();
    let c = &state.config;
    let keep_alive = match c.keep_alive_secs {
        0 => actix_web::http::KeepAlive::Disabled,
        s => Duration::from_secs(s).into(),
    };
    let mut server =
        HttpServer::new(move || App::new().app_data(data.clone()).configure(http::routes))
            .disable_signals()
            .workers(workers)
            .backlog(4096)
            // Slow clients: a request head must arrive in time, idle connections close.
            .client_request_timeout(Duration::from_millis(c.client_request_timeout_ms))
            .client_disconnect_timeout(Duration::from_millis(c.client_disconnect_timeout_ms))
            .keep_alive(keep_alive)
            .max_connections(c.max_connections_per_worker);
    let mut local_addrs = Vec::new();
    for l in listeners {
        defer_accept(&l);
        local_addrs.push(l.local_addr()?);
        server = server.listen(l)?;
    }
    let server = server.run();
    let tasks = vec![
        tokio::spawn(reaper(state.clone())),
        tokio::spawn(file_poller(state.clone())),
    ];
    Ok(Tracker {
        state,
        server,
        local_addrs,
        udp,
        tasks,
    })
}

/// Asks the kernel to complete `accept` only once the request has arrived
/// (TCP_DEFER_ACCEPT), so a new connection costs the worker one wake-up, not two. Best
/// effort: without it the tracker works the same, a little slower.
fn defer_accept(l: &TcpListener) {
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = 1;
    // SAFETY: a valid open socket fd and a pointer to a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("TCP_DEFER_ACCEPT: {}", std::io::Error::last_os_error());
    }
}

async fn reaper(state: web::Data<AppState>) {
    let period = Duration::from_secs(u64::from(state.config.reap_interval_secs));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; nothing to reap yet
    loop {
        tick.tick().await;
        if let Some(l) = &state.limiter {
            l.sweep(std::time::Instant::now());
        }
        // A failing store is counted and logged by the seam; the next tick retries.
        if let Ok(r) = state.reap(state.clock.now()).await {
            tracing::debug!(
                peers = r.peers_removed,
                torrents = r.torrents_removed,
                "reaped"
            );
        }
    }
}

async fn file_poller(state: web::Data<AppState>) {
    if state.watched_files().is_empty() {
        return;
    }
    let period = Duration::from_secs(u64::from(state.config.allowlist_poll_secs));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reload::reload_all(&state.watched_files(), false);
    }
}

/// The binary's entry point: binds `config.listen`, serves until SIGINT/SIGTERM, reloads
/// the allowlist and passkey file on SIGHUP. Must be called inside an actix runtime.
pub async fn run(config: Config) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut listeners = Vec::new();
    for &addr in &config.listen {
        let l = TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        listeners.push(l);
    }
    let mut udp_sockets = Vec::new();
    for &addr in &config.udp_listen {
        let s = UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        udp_sockets.push(s);
    }
    let tracker = start_with_udp(config, listeners, udp_sockets)?;
    // Handlers first: the "listening" line tells scripts they may signal us now, and an
    // early SIGHUP must not hit the default action (terminate).
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    for a in tracker.local_addrs() {
        tracing::info!("kpbt-tracker listening on http://{a}");
    }
    for a in tracker.udp_addrs() {
        tracing::info!("kpbt-tracker listening on udp://{a}");
    }
    let handle = tracker.handle();
    let state = tracker.state.clone();
    let signals = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading watched files");
                    reload::reload_all(&state.watched_files(), true);
                }
            }
        }
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
    let result = tracker.wait().await;
    signals.abort();
    tracing::info!("stopped");
    Ok(result?)
}
