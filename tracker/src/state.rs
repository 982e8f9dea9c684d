//! [`AppState`]: everything the front ends share (config, the swarm store, metrics,
//! allowlist, passkeys, rate limiter, client-address resolver), built from a [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderName;

use crate::allowlist::{self, Allowlist};
use crate::clientaddr::{AddrResolver, Cidr};
use crate::config::{self, Config};
use crate::labels::{LabelId, Labels};
use crate::metrics::Metrics;
use crate::passkeys::{self, Passkeys};
use crate::ratelimit::RateLimiter;
use crate::readiness::Watched;
use crate::reload::Reload;
use crate::store::{self, Clock, ReapReport, StoreSpec, StoreStats, StoreUnavailable, SwarmStore};

/// Why the tracker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Allowlist(#[from] allowlist::AllowlistError),
    #[error(transparent)]
    Passkeys(#[from] passkeys::PasskeyError),
    #[error("setting up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Store(#[from] store::StoreSpecError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything the handlers share.
pub struct AppState {
    pub config: Config,
    pub store: SwarmStore,
    pub metrics: Metrics,
    pub allowlist: Option<Allowlist>,
    /// Present when `passkeys = true`.
    pub passkeys: Option<Passkeys>,
    /// Present when `rate_limit_per_min > 0`.
    pub limiter: Option<RateLimiter>,
    pub clock: Clock,
    pub addrs: AddrResolver,
    /// Set once the first suspicious client address has been logged.
    warned_suspicious: AtomicBool,
    /// Torrents deploy scripts wait on (`/swarms/{hash}?expect=N`), for the metrics.
    pub watched: Watched,
}

impl AppState {
    /// Builds the state; must run inside a tokio runtime when the store is Redis (its
    /// connection lives there), though nothing is sent to Redis yet.
    pub fn new(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let allowlist = config
            .allowlist
            .as_deref()
            .map(|p| Allowlist::load("allowlist", p))
            .transpose()?;
        let passkeys = match (&config.passkey_file, config.passkeys) {
            (Some(p), true) => Some(Passkeys::load("passkeys", p)?),
            _ => None,
        };
        let limiter = config
            .rate_limit()
            .map(|l| RateLimiter::new(l, std::time::Instant::now()));
        let invalid = |m: String| StartError::Config(config::ConfigError::Invalid(m));
        let header = match &config.real_ip_header {
            Some(h) => Some(
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| invalid("real_ip_header is not a valid header name".into()))?,
            ),
            None => None,
        };
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("trusted_proxies: {e}")))?;
        let addrs = AddrResolver::new(trusted, header, config.honor_ip_param, &config.listen);
        let spec: StoreSpec = config.store.parse()?;
        let labels = Arc::new(
            config
                .labels
                .compile()
                .map_err(|e| StartError::Config(config::ConfigError::Invalid(e)))?,
        );
        let metrics = Metrics::new(&labels)?;
        let mut store = SwarmStore::open_with_labels(
            &spec,
            config.store_limits(),
            labels,
            Duration::from_millis(config.store_timeout_ms),
        )?;
        store.set_metrics(metrics.store_metrics());
        Ok(AppState {
            store,
            metrics,
            allowlist,
            passkeys,
            limiter,
            clock: Clock::new(),
            addrs,
            warned_suspicious: AtomicBool::new(false),
            watched: Watched::default(),
            config,
        })
    }

    /// Start-up warnings about the setup (logged by [`crate::start`]).
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let public = self.config.listen.iter().any(|a| !a.ip().is_loopback());
        if public && self.config.trusted_proxies.is_empty() && crate::clientaddr::in_container() {
            w.push(
                "running in a container with no trusted_proxies: if clients reach this \
                 tracker through published ports, every peer may appear as the Docker \
                 bridge address (172.17.0.1); use host networking, or a proxy listed in \
                 trusted_proxies with real_ip_header. Such announces are counted in \
                 kpbt_tracker_suspicious_client_addresses_total"
                    .to_owned(),
            );
        }
        w
    }

    /// Counts (and logs once) an announce whose address is probably not the peer's own.
    pub fn note_client_addr(&self, ip: std::net::IpAddr) {
        if !self.addrs.suspicious(ip) {
            return;
        }
        self.metrics.suspicious_addresses.inc();
        if !self.warned_suspicious.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "announce from {ip}: loopback or a Docker bridge gateway while listening on \
                 {:?}; peers given this address cannot reach it. Behind a proxy or Docker \
                 port publishing, set trusted_proxies and real_ip_header (counted in \
                 kpbt_tracker_suspicious_client_addresses_total; logged once)",
                self.config.listen
            );
        }
    }

    /// One reaper pass at `now`, updating the metrics.
    pub async fn reap(&self, now: store::Secs) -> Result<ReapReport, StoreUnavailable> {
        let report = self.store.reap(now).await?;
        self.metrics.peers_reaped.inc_by(report.peers_removed);
        self.refresh_gauges().await?;
        Ok(report)
    }

    /// Reads the store's totals into the gauges, and returns them.
    pub async fn refresh_gauges(&self) -> Result<StoreStats, StoreUnavailable> {
        let s = self.store.stats().await?;
        self.metrics.set_store_gauges(s);
        if !self.labels().is_empty() {
            self.metrics
                .set_label_gauges(&self.store.label_peers().await?);
        }
        let mut rows = Vec::new();
        for (hash, expected) in self.watched.current(std::time::Instant::now()) {
            let seeders = self.store.swarm(&hash).await?.map_or(0, |i| i.seeders);
            rows.push((hash, expected, seeders));
        }
        self.metrics.set_readiness(&rows);
        Ok(s)
    }

    /// The rack/zone labels peers are grouped by.
    pub fn labels(&self) -> &Labels {
        self.store.labels()
    }

    /// A tally of the peers a reply to `ip` lists, for the same-label counter; both front
    /// ends [`PeersTally::add`] each peer they send, then [`PeersTally::finish`].
    pub fn peers_tally(&self, ip: IpAddr) -> PeersTally<'_> {
        PeersTally {
            metrics: &self.metrics,
            labels: self.store.labels(),
            own: self.store.labels().lookup(ip),
            same: 0,
            other: 0,
        }
    }

    /// Re-reads the allowlist file now. `Ok(None)` if none is configured.
    pub fn reload_allowlist(&self) -> Result<Option<usize>, allowlist::AllowlistError> {
        self.allowlist.as_ref().map(Allowlist::reload).transpose()
    }

    /// Re-reads the passkey file now. `Ok(None)` if passkeys are off.
    pub fn reload_passkeys(&self) -> Result<Option<usize>, passkeys::PasskeyError> {
        self.passkeys.as_ref().map(Passkeys::reload).transpose()
    }

    /// Every file the tracker watches (polled for changes, reloaded on SIGHUP).
    pub fn watched_files(&self) -> Vec<&dyn Reload> {
        let mut v: Vec<&dyn Reload> = Vec::new();
        if let Some(a) = &self.allowlist {
            v.push(a);
        }
        if let Some(p) = &self.passkeys {
            v.push(p);
        }
        v
    }
}

/// Counts the peers one reply lists by whether they share the announcer's label
/// (`kpbt_tracker_peers_returned_total`); nothing is counted for unlabelled announcers.
pub struct PeersTally<'a> {
    metrics: &'a Metrics,
    labels: &'a Labels,
    own: LabelId,
    same: u64,
    other: u64,
}

impl PeersTally<'_> {
    pub fn add(&mut self, peer: IpAddr) {
        if self.own.is_none() {
            return;
        }
        if self.labels.lookup(peer) == self.own {
            self.same += 1;
        } else {
            self.other += 1;
        }
    }

    pub fn finish(self) {
        self.metrics.peers_returned(self.same, self.other);
    }
}
