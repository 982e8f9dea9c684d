//! Tracker configuration: the TOML file format, its defaults and validation.
//!
//! Precedence is defaults < config file < environment (`KPBT_TRACKER_*`) < flags; the
//! binary does the last two through clap and overlays them on what this module loads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything the tracker can be told. Every field has a default, so an empty file is valid;
/// unknown keys are rejected so that a typo does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on (HTTP). Several may be given, e.g. an IPv4 and an IPv6 one.
    pub listen: Vec<SocketAddr>,
    /// `interval` sent to clients, in seconds. 1800 (30 min) is what opentracker and most
    /// public trackers send; private swarms that want faster peer discovery can lower it.
    pub announce_interval_secs: u32,
    /// `min interval` sent to clients, in seconds (clients must not re-announce sooner).
    /// Unset means half the announce interval.
    pub min_interval_secs: Option<u32>,
    /// A peer not heard from for this long is dropped. Unset means two intervals plus five
    /// minutes of slack, so one lost announce does not drop a live peer.
    pub peer_timeout_secs: Option<u32>,
    /// How often the reaper drops timed-out peers and refreshes the gauges, in seconds.
    pub reap_interval_secs: u32,
    /// Peers returned when the client sends no `numwant`.
    pub numwant_default: u32,
    /// Upper bound on peers returned, whatever the client asks for.
    pub numwant_max: u32,
    /// Most torrents tracked at once; announces for new torrents beyond it fail.
    pub max_torrents: usize,
    /// Most peers per torrent; new peers beyond it fail (existing ones keep announcing).
    pub max_peers_per_torrent: usize,
    /// Use the client's `ip` parameter instead of the connection address. Off by default
    /// because it lets any client point a swarm at an arbitrary host.
    pub honor_ip_param: bool,
    /// Take the client address from this header (e.g. `X-Forwarded-For`, last entry)
    /// instead of the TCP peer. Only set this behind a reverse proxy you control.
    pub real_ip_header: Option<String>,
    /// File of allowed info hashes (40 hex digits a line, `#` comments). When set, only
    /// these torrents are tracked. Reloaded when it changes and on SIGHUP.
    pub allowlist: Option<PathBuf>,
    /// How often the allowlist and passkey files are checked for changes, in seconds.
    pub allowlist_poll_secs: u32,
    /// Require a passkey in the URL (`/announce/<key>`, `/scrape/<key>`); plain `/announce`
    /// is then refused. Needs `passkey_file`.
    pub passkeys: bool,
    /// Key file managed by `kpbt-tracker keys add|list|revoke` (TOML). Reloaded when it
    /// changes and on SIGHUP, like the allowlist.
    pub passkey_file: Option<PathBuf>,
    /// Requests per minute each client (IPv4 address or IPv6 /64) may make on average;
    /// 0 (the default) turns rate limiting off. Behind a proxy, set `real_ip_header`
    /// first or every client shares one budget.
    pub rate_limit_per_min: u32,
    /// Requests a client may make in a burst after being idle.
    pub rate_limit_burst: u32,
    /// Most clients the rate limiter tracks at once (bounds its memory, ~64 bytes each);
    /// when all are active, new clients are refused until some go idle.
    pub rate_limit_max_clients: usize,
    /// Most peers one IP address may hold in one swarm, so one host announcing many ports
    /// cannot fill it. Loopback addresses are exempt (tests, benchmarks, same-host setups).
    pub max_peers_per_ip_per_torrent: usize,
    /// A client must send a complete request head within this many milliseconds of
    /// connecting (or of its previous request), else it gets 408 and is disconnected.
    pub client_request_timeout_ms: u64,
    /// After the response, how long a client gets to close before we drop it, in ms.
    pub client_disconnect_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this many seconds (0: no keep-alive).
    pub keep_alive_secs: u64,
    /// Most concurrent connections per worker thread; beyond it, new ones wait in the
    /// listen backlog.
    pub max_connections_per_worker: usize,
    /// Longest accepted announce/scrape query string, in bytes.
    pub max_query_len: usize,
    /// Largest total size of request headers accepted, in bytes (names, values and
    /// separators); bigger requests get a failure reason (announce/scrape) or 431. actix
    /// itself refuses request heads it cannot buffer (about 32 KiB arriving piecewise)
    /// with a bare 431 before any handler runs.
    pub max_header_bytes: usize,
    /// Most info hashes in one scrape.
    pub max_scrape_hashes: usize,
    /// HTTP worker threads; 0 means one per CPU.
    pub workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 6969))],
            announce_interval_secs: 1800,
            min_interval_secs: None,
            peer_timeout_secs: None,
            reap_interval_secs: 60,
            numwant_default: 50,
            numwant_max: 200,
            max_torrents: 1_000_000,
            max_peers_per_torrent: 100_000,
            honor_ip_param: false,
            real_ip_header: None,
            allowlist: None,
            allowlist_poll_secs: 5,
            passkeys: false,
            passkey_file: None,
            rate_limit_per_min: 0,
            rate_limit_burst: 30,
            rate_limit_max_clients: 100_000,
            max_peers_per_ip_per_torrent: 8,
            client_request_timeout_ms: 5_000,
            client_disconnect_timeout_ms: 1_000,
            keep_alive_secs: 15,
            max_connections_per_worker: 25_000,
            max_query_len: kpbt_proto::announce::DEFAULT_MAX_QUERY_LEN,
            max_header_bytes: 8192,
            max_scrape_hashes: 64,
            workers: 0,
        }
    }
}

/// Why a configuration could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// The effective `min interval`.
    pub fn min_interval(&self) -> u32 {
        self.min_interval_secs
            .unwrap_or(self.announce_interval_secs / 2)
    }

    /// The rate limit, if on.
    pub fn rate_limit(&self) -> Option<crate::ratelimit::RateLimit> {
        (self.rate_limit_per_min > 0).then(|| crate::ratelimit::RateLimit {
            per_sec: f64::from(self.rate_limit_per_min) / 60.0,
            burst: self.rate_limit_burst,
            max_clients: self.rate_limit_max_clients,
        })
    }

    /// The effective peer timeout.
    pub fn peer_timeout(&self) -> u32 {
        self.peer_timeout_secs.unwrap_or(
            self.announce_interval_secs
                .saturating_mul(2)
                .saturating_add(300),
        )
    }

    /// Reads and validates a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        Ok(cfg)
    }

    /// The config as TOML (for `--print-config`).
    pub fn to_toml(&self) -> String {
        // Serializing a plain struct of strings, numbers and paths cannot fail, except for
        // non-UTF-8 paths, which we show lossily rather than refuse to print.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Checks relations between fields that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.listen.is_empty() {
            return bad("listen must name at least one address");
        }
        if self.announce_interval_secs == 0 || self.reap_interval_secs == 0 {
            return bad("announce_interval_secs and reap_interval_secs must be positive");
        }
        if self.min_interval() > self.announce_interval_secs {
            return bad("min_interval_secs must not exceed announce_interval_secs");
        }
        if self.peer_timeout() < self.announce_interval_secs {
            return bad("peer_timeout_secs must be at least announce_interval_secs");
        }
        if self.numwant_default > self.numwant_max {
            return bad("numwant_default must not exceed numwant_max");
        }
        if self.max_torrents == 0 || self.max_peers_per_torrent == 0 {
            return bad("max_torrents and max_peers_per_torrent must be positive");
        }
        if self.max_peers_per_torrent > u32::MAX as usize {
            return bad("max_peers_per_torrent must fit in 32 bits");
        }
        if self.max_scrape_hashes == 0 || self.max_query_len == 0 || self.max_header_bytes == 0 {
            return bad("max_scrape_hashes, max_query_len and max_header_bytes must be positive");
        }
        if self.allowlist_poll_secs == 0 {
            return bad("allowlist_poll_secs must be positive");
        }
        if self.passkeys && self.passkey_file.is_none() {
            return bad("passkeys = true needs passkey_file");
        }
        if self.rate_limit_per_min > 0
            && (self.rate_limit_burst == 0 || self.rate_limit_max_clients == 0)
        {
            return bad("rate_limit_burst and rate_limit_max_clients must be positive");
        }
        if self.max_peers_per_ip_per_torrent == 0 {
            return bad("max_peers_per_ip_per_torrent must be positive");
        }
        if self.client_request_timeout_ms == 0 || self.max_connections_per_worker == 0 {
            return bad(
                "client_request_timeout_ms and max_connections_per_worker must be positive",
            );
        }
        if let Some(h) = &self.real_ip_header {
            if actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return bad("real_ip_header is not a valid header name");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml_and_validates() {
        let d = Config::default();
        d.validate().unwrap();
        let text = d.to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, d);
        let mut full = d.clone();
        full.real_ip_header = Some("X-Forwarded-For".into());
        full.allowlist = Some("/etc/kpbt/allow.txt".into());
        full.passkeys = true;
        full.passkey_file = Some("/etc/kpbt/passkeys.toml".into());
        full.rate_limit_per_min = 120;
        full.peer_timeout_secs = Some(400);
        full.min_interval_secs = Some(60);
        let back: Config = toml::from_str(&full.to_toml()).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn empty_file_is_defaults_and_unknown_keys_are_rejected() {
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        let partial: Config = toml::from_str("numwant_max = 10\nnumwant_default = 5").unwrap();
        assert_eq!(partial.numwant_max, 10);
        assert_eq!(partial.announce_interval_secs, 1800);
        assert_eq!(
            (partial.min_interval(), partial.peer_timeout()),
            (900, 3900)
        );
        let err = toml::from_str::<Config>("numwant_maxx = 10").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn validation_catches_inconsistent_values() {
        let mut c = Config {
            numwant_default: 300,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        c.numwant_default = 10;
        c.real_ip_header = Some("bad header".into());
        assert!(c.validate().is_err());
        c.real_ip_header = None;
        c.listen = Config::default().listen;
        c.passkeys = true;
        assert!(c.validate().is_err());
        c.passkey_file = Some("/k.toml".into());
        c.validate().unwrap();
        c.max_peers_per_ip_per_torrent = 0;
        assert!(c.validate().is_err());
        c.max_peers_per_ip_per_torrent = 1;
        c.listen.clear();
        assert!(c.validate().is_err());
    }
}
