//! Tracker configuration: the TOML file format, its defaults and validation.
//!
//! Precedence is defaults < config file < environment (`KPBT_TRACKER_*`) < flags; the
//! binary does the last two through clap and overlays them on what this module loads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::labels::LabelsConfig;

/// Everything the tracker can be told. Every field has a default, so an empty file is valid;
/// unknown keys are rejected so that a typo does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on (HTTP). Several may be given, e.g. an IPv4 and an IPv6 one.
    /// In TOML one address (`"host:port"`) or an array of them; a host name is resolved
    /// once, when the config is loaded, to the first address it resolves to.
    #[serde(deserialize_with = "one_or_many_addrs")]
    pub listen: Vec<SocketAddr>,
    /// UDP tracker (BEP 15) addresses; none by default. Each socket gets `workers`
    /// threads, which serve the same swarms, limits and passkeys as HTTP.
    #[serde(deserialize_with = "one_or_many_addrs")]
    pub udp_listen: Vec<SocketAddr>,
    /// Key for UDP connection ids, 32 hex digits. Unset means a random key per process;
    /// set the same key on several instances behind one address so that each accepts the
    /// ids the others hand out. A secret: anyone with it can forge connection ids.
    pub udp_connection_key: Option<String>,
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
    /// Use the client's `ip` parameter instead of the connection address, for requests
    /// from `trusted_proxies` only. Off by default because it lets a client point a swarm
    /// at an arbitrary host.
    pub honor_ip_param: bool,
    /// Take the client address from this header (e.g. `X-Forwarded-For`, last entry)
    /// instead of the TCP peer, for requests from `trusted_proxies` only.
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
    /// The tracker's URL as users reach it (scheme, host, port, optional path prefix),
    /// e.g. `http://tracker.example:6969`; `keys add` prints `<public_url>/announce/<key>`
    /// so the operator has the exact URL to hand out.
    pub public_url: Option<String>,
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
    /// Most info hashes in one scrape. The default is what fits one UDP datagram
    /// (BEP 15), so both front ends have the same limit.
    pub max_scrape_hashes: usize,
    /// HTTP worker threads, and threads per UDP socket; 0 means one per CPU.
    pub workers: usize,
    /// Where swarm state lives: `memory` (this process; the default), `redis://HOST:PORT[/DB]`
    /// (`rediss://` for TLS) to share it between tracker instances, or
    /// `redis-cluster://H1:P1,H2:P2,...` for a Redis Cluster.
    pub store: String,
    /// A store call that takes longer than this fails: the announce gets a failure reason
    /// saying the tracker's storage is unavailable, and `/health` reports unhealthy.
    pub store_timeout_ms: u64,
    /// Networks (CIDRs, e.g. `10.0.0.0/8`, `::1/128`) of reverse proxies whose
    /// `real_ip_header` (and, with `honor_ip_param`, `ip=`) is believed. From any other
    /// address both are ignored and the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Rack/zone labels: a table of label name → networks (CIDRs), e.g.
    /// `rack-a = ["10.1.0.0/16"]` under `[labels]`. A peer has the first label, in the
    /// order written, whose networks contain its address; replies list peers of the
    /// announcer's own label first, then the rest. Unlabelled announcers get peers as if
    /// no labels were set. Names: letters, digits, `-`, `_`, `.`; `none` is reserved.
    #[serde(skip_serializing_if = "LabelsConfig::is_empty")]
    pub labels: LabelsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 6969))],
            udp_listen: Vec::new(),
            udp_connection_key: None,
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
            public_url: None,
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
            max_scrape_hashes: kpbt_proto::udp::MAX_SCRAPE_HASHES,
            workers: 0,
            store: "memory".to_owned(),
            store_timeout_ms: 1000,
            trusted_proxies: Vec::new(),
            labels: LabelsConfig::default(),
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

    /// The configured UDP connection-id key, if any and well-formed.
    pub fn connection_id_key(&self) -> Option<kpbt_proto::udp::ConnectionIdKey> {
        kpbt_proto::udp::ConnectionIdKey::from_hex(self.udp_connection_key.as_deref()?)
    }

    /// The sizing rules the swarm store enforces.
    pub fn store_limits(&self) -> crate::store::StoreLimits {
        crate::store::StoreLimits {
            max_torrents: self.max_torrents,
            max_peers_per_torrent: self.max_peers_per_torrent,
            max_peers_per_ip: self.max_peers_per_ip_per_torrent,
            numwant_default: self.numwant_default,
            numwant_max: self.numwant_max,
            peer_timeout_secs: self.peer_timeout(),
        }
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

    /// The config as TOML (for `--print-config`): every key, in declaration order, so the
    /// output is a complete sample config. Unset optional keys are printed commented out,
    /// with the value in effect or an example, and parse back as unset.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        let mut unset: Vec<(&str, &str)> = Vec::new();
        // Every `Option` field must be listed here, or it would be missing from the
        // output when unset (the test `print_shows_every_field` catches that).
        macro_rules! example {
            ($($field:ident = $value:expr, $why:literal;)*) => {$(
                if shown.$field.is_none() {
                    shown.$field = Some($value);
                    unset.push((stringify!($field), $why));
                }
            )*};
        }
        example! {
            min_interval_secs = self.min_interval(), "unset: half of announce_interval_secs";
            peer_timeout_secs = self.peer_timeout(),
                "unset: 2 x announce_interval_secs + 300";
            real_ip_header = "X-Forwarded-For".into(), "unset: the TCP peer address is used";
            allowlist = "/etc/kpbt/allowlist.txt".into(), "unset: every torrent is tracked";
            passkey_file = "/etc/kpbt/passkeys.toml".into(), "unset: no key file";
            public_url = "http://tracker.example:6969".into(),
                "unset: `keys add` prints the /announce/<key> path only";
            udp_connection_key = "00112233445566778899aabbccddeeff".into(),
                "unset: a random key per process";
        }
        // Serializing a plain struct of strings, numbers and paths cannot fail, except for
        // non-UTF-8 paths, which we report in the output rather than refuse to print.
        let text = match toml::to_string_pretty(&shown) {
            Ok(t) => t,
            Err(e) => return format!("# cannot render config: {e}\n"),
        };
        let mut out = String::from(
            "# kpbt-tracker config: every key with the value in effect. Commented-out keys\n\
             # are unset; the value shown is what applies, or an example.\n\n",
        );
        // Keys inside a table (`[labels]`, last) are the table's own: never "unset" ones.
        let mut in_table = false;
        for line in text.lines() {
            in_table |= line.starts_with('[');
            let key = line.split(" = ").next().unwrap_or("");
            match unset.iter().find(|(k, _)| *k == key && !in_table) {
                Some((_, why)) => {
                    out.push_str(&format!("# {line}  # {why}\n"));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        if self.labels.is_empty() {
            out.push_str(
                "\n# [labels]  # unset: no rack/zone labels, peers are picked from the whole swarm\n\
                 # rack-a = [\"10.1.0.0/16\"]\n\
                 # zone-eu = [\"10.2.0.0/16\", \"fd00::/8\"]\n",
            );
        }
        out
    }

    /// The announce URL for `key`: `<public_url>/announce/<key>`, or the bare path when
    /// `public_url` is unset.
    pub fn announce_url(&self, key: &str) -> String {
        let base = self.public_url.as_deref().unwrap_or("");
        format!("{}/announce/{key}", base.trim_end_matches('/'))
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
        if self.udp_connection_key.is_some() && self.connection_id_key().is_none() {
            return bad("udp_connection_key must be 32 hex digits");
        }
        if let Some(h) = &self.real_ip_header {
            if actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return bad("real_ip_header is not a valid header name");
            }
        }
        if let Some(u) = &self.public_url {
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"));
            let host = rest.map(|r| r.split('/').next().unwrap_or(""));
            if host.is_none_or(str::is_empty) || u.contains(['?', '#', ' ']) {
                return Err(ConfigError::Invalid(format!(
                    "public_url {u:?} must be an http:// or https:// URL with a host and no \
                     query, e.g. \"http://tracker.example:6969\""
                )));
            }
        }
        if (self.real_ip_header.is_some() || self.honor_ip_param) && self.trusted_proxies.is_empty()
        {
            return bad(
                "real_ip_header and honor_ip_param need trusted_proxies: the proxy \
                 networks (CIDRs) allowed to name the client address",
            );
        }
        for c in &self.trusted_proxies {
            if let Err(e) = c.parse::<crate::clientaddr::Cidr>() {
                return Err(ConfigError::Invalid(format!("trusted_proxies: {e}")));
            }
        }
        if let Err(e) = self.store.parse::<crate::store::StoreSpec>() {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        if self.store_timeout_ms == 0 {
            return bad("store_timeout_ms must be positive");
        }
        self.labels.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

/// Resolves a listen address: `ip:port`, `[ipv6]:port` or `host:port` (a host name is
/// looked up now; the first address it resolves to is used). The error names the address.
pub fn resolve_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "listen address {s:?} has no port; write it as host:port, e.g. \"{s}:6969\""
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "listen address {s:?} is not host:port (e.g. \"0.0.0.0:6969\", \"[::]:6969\", \
             \"localhost:6969\")"
        ));
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("listen address {s:?}: the host name has no addresses")),
        Err(e) => Err(format!("cannot resolve listen address {s:?}: {e}")),
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`, each resolved by [`resolve_listen`].
fn one_or_many_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let list = match OneOrMany::deserialize(d).map_err(|_| {
        serde::de::Error::custom("listen must be an address string or an array of them")
    })? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    list.iter()
        .map(|s| resolve_listen(s).map_err(serde::de::Error::custom))
        .collect()
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
        full.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        full.store = "redis-cluster://r1:7000,r2:7000".into();
        full.allowlist = Some("/etc/kpbt/allow.txt".into());
        full.passkeys = true;
        full.passkey_file = Some("/etc/kpbt/passkeys.toml".into());
        full.rate_limit_per_min = 120;
        full.peer_timeout_secs = Some(400);
        full.min_interval_secs = Some(60);
        full.udp_listen = vec!["[::1]:6969".parse().unwrap()];
        full.udp_connection_key = Some("00112233445566778899aabbccddeeff".into());
        full.labels = LabelsConfig(vec![
            ("rack-a".into(), vec!["10.1.0.0/16".into()]),
            ("allowlist".into(), vec!["10.9.0.0/16".into()]),
            (
                "zone-eu".into(),
                vec!["10.2.0.0/16".into(), "fd00::/8".into()],
            ),
        ]);
        full.labels.validate().unwrap();
        let back: Config = toml::from_str(&full.to_toml()).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn labels_table_keeps_its_order_and_is_validated() {
        let c: Config = toml::from_str(
            "numwant_max = 10\nnumwant_default = 5\n\n[labels]\nzone-eu = [\"10.2.0.0/16\", \"fd00::/8\"]\nrack-a = [\"10.1.0.0/16\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        let names: Vec<&str> = c.labels.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["zone-eu", "rack-a"]);
        let table = c.labels.compile().unwrap();
        assert_eq!(
            table.name(table.lookup("fd00::9".parse().unwrap())),
            "zone-eu"
        );
        for (text, want) in [
            ("[labels]\nnone = [\"10.0.0.0/8\"]\n", "reserved"),
            (
                "[labels]\nrack-a = [\"10.0.0.0/40\"]\n",
                "not an IP network",
            ),
            ("[labels]\nrack-a = []\n", "no networks"),
        ] {
            let c: Config = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
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
        c.real_ip_header = Some("X-Real-IP".into());
        assert!(
            c.validate().is_err(),
            "a real-IP header needs trusted proxies"
        );
        c.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());
        c.trusted_proxies = vec!["10.0.0.0/8".into()];
        c.validate().unwrap();
        c.store = "mysql://x".into();
        assert!(c.validate().is_err());
        c.store = "redis://127.0.0.1:6379/1".into();
        c.validate().unwrap();
        c.real_ip_header = None;
        c.listen = Config::default().listen;
        c.passkeys = true;
        assert!(c.validate().is_err());
        c.passkey_file = Some("/k.toml".into());
        c.validate().unwrap();
        c.max_peers_per_ip_per_torrent = 0;
        assert!(c.validate().is_err());
        c.max_peers_per_ip_per_torrent = 1;
        c.udp_connection_key = Some("not hex".into());
        assert!(c.validate().is_err());
        c.udp_connection_key = Some("00112233445566778899AABBCCDDEEFF".into());
        c.validate().unwrap();
        c.listen.clear();
        assert!(c.validate().is_err());
    }

    /// Every field `Config` has, from serde's own list (the "expected one of" of an
    /// unknown-field error), so a new field cannot be forgotten here.
    fn all_fields() -> Vec<String> {
        let err = toml::from_str::<Config>("no_such_key = 1")
            .unwrap_err()
            .to_string();
        let list = err.split("expected one of").nth(1).expect("field list");
        let fields: Vec<String> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        assert!(fields.len() >= 28, "{fields:?}");
        fields
    }

    /// The top-level keys printed, in order, and whether each is commented out; stops
    /// at the first table (`[labels]`, the one table, printed last).
    fn printed_keys(text: &str) -> Vec<(String, bool)> {
        text.lines()
            .take_while(|l| !l.trim_start_matches("# ").starts_with('['))
            .filter_map(|l| {
                let (commented, l) = match l.strip_prefix("# ") {
                    Some(rest) => (true, rest),
                    None => (false, l),
                };
                let key = l.split(" = ").next()?;
                (l.contains(" = ") && !key.contains(' ')).then(|| (key.to_owned(), commented))
            })
            .collect()
    }

    #[test]
    fn print_shows_every_field_and_parses_back() {
        let fields = all_fields();
        let d = Config::default();
        let text = d.to_toml();
        let keys = printed_keys(&text);
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        // Every field but the `labels` table, which comes last, commented out when empty.
        assert_eq!(fields.last().map(String::as_str), Some("labels"));
        assert_eq!(
            names,
            fields[..fields.len() - 1],
            "printed keys, in order:\n{text}"
        );
        assert!(text.contains("\n# [labels]  # unset"), "{text}");
        // Unset optional keys are commented out, with the value in effect.
        assert!(
            text.contains("\n# min_interval_secs = 900  # unset"),
            "{text}"
        );
        assert!(
            text.contains("\n# allowlist = \"/etc/kpbt/allowlist.txt\""),
            "{text}"
        );
        assert!(text.contains("\nannounce_interval_secs = 1800\n"), "{text}");
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, d);
        // Everything set: nothing commented, same keys, round trip.
        let full = Config {
            public_url: Some("https://t.example/tracker".into()),
            real_ip_header: Some("X-Real-IP".into()),
            allowlist: Some("/a".into()),
            passkey_file: Some("/k".into()),
            min_interval_secs: Some(60),
            peer_timeout_secs: Some(4000),
            udp_connection_key: Some("ffeeddccbbaa99887766554433221100".into()),
            ..Config::default()
        };
        let full = Config {
            labels: LabelsConfig(vec![("rack-a".into(), vec!["10.1.0.0/16".into()])]),
            ..full
        };
        let text = full.to_toml();
        let keys = printed_keys(&text);
        assert!(keys.iter().all(|(_, commented)| !commented), "{text}");
        assert_eq!(keys.len(), fields.len() - 1);
        assert!(text.contains("\n[labels]\nrack-a = "), "{text}");
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), full);
    }

    #[test]
    fn listen_takes_one_address_or_many_and_host_names() {
        let one: Config = toml::from_str("listen = \"127.0.0.1:7000\"").unwrap();
        assert_eq!(one.listen, [SocketAddr::from(([127, 0, 0, 1], 7000))]);
        let many: Config = toml::from_str("listen = [\"127.0.0.1:7000\", \"[::1]:7001\"]").unwrap();
        assert_eq!(many.listen.len(), 2);
        assert_eq!(many.listen[1], "[::1]:7001".parse().unwrap());
        let named: Config = toml::from_str("listen = \"localhost:7002\"").unwrap();
        assert!(named.listen[0].ip().is_loopback() && named.listen[0].port() == 7002);
        for (text, want) in [
            (
                "listen = \"no-such-host.invalid:7000\"",
                "cannot resolve listen address \"no-such-host.invalid:7000\"",
            ),
            ("listen = \"127.0.0.1\"", "has no port"),
            ("listen = \"127.0.0.1:http\"", "is not host:port"),
            ("listen = 5", "an address string or an array"),
        ] {
            let err = toml::from_str::<Config>(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(resolve_listen(":7000")
            .unwrap_err()
            .contains("not host:port"));
    }

    #[test]
    fn public_url_is_checked_and_builds_the_announce_url() {
        let mut c = Config::default();
        assert_eq!(c.announce_url("K"), "/announce/K");
        for good in [
            "http://tracker:6969",
            "https://t.example/x/",
            "http://[::1]:6969",
        ] {
            c.public_url = Some(good.into());
            c.validate().unwrap();
        }
        assert_eq!(c.announce_url("K"), "http://[::1]:6969/announce/K");
        c.public_url = Some("https://t.example/x/".into());
        assert_eq!(c.announce_url("K"), "https://t.example/x/announce/K");
        for bad in [
            "tracker:6969",
            "http://",
            "udp://t:1",
            "http://t/announce?x=1",
        ] {
            c.public_url = Some(bad.into());
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }
}
