//! Prometheus metrics: one private registry with every label handle created up front, so
//! the request path only does atomic increments (no label hashing, no allocation).

use kpbt_proto::announce::{AnnounceEvent, QueryError};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::labels::Labels;
use crate::store::{Op, StoreMetrics, StoreStats};

/// HTTP endpoints timed by the request-duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Announce,
    Scrape,
}

/// Which front end a request came through (the `protocol` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Udp,
}

impl Protocol {
    const ALL: [Protocol; 2] = [Protocol::Http, Protocol::Udp];

    fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Udp => "udp",
        }
    }
}

/// Failure reasons only the UDP front end produces (malformed datagrams that still get
/// an error reply, and the UDP-only refusals).
pub const UDP_FAILURE_LABELS: [&str; 5] = [
    "udp_bad_action",
    "udp_short_announce",
    "udp_bad_options",
    "udp_bad_path",
    "bad_connection_id",
];

/// Announce outcomes as labelled in `kpbt_tracker_announces_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failure,
}

/// Failure reasons that are not query-parse errors. Together with
/// [`QueryError::LABELS`] these are the only `reason` label values.
pub const OTHER_FAILURE_LABELS: [&str; 12] = [
    "not_allowlisted",
    "torrent_limit",
    "swarm_full",
    "address_limit",
    "bad_client_address",
    "passkey_missing",
    "passkey_unknown",
    "passkey_revoked",
    "passkey_unexpected",
    "rate_limited",
    "headers_too_large",
    "store_unavailable",
];

pub struct Metrics {
    registry: Registry,
    /// Indexed by [protocol][event][outcome].
    announces: [[[IntCounter; 2]; 4]; 2],
    /// Indexed by protocol.
    scrapes: [IntCounter; 2],
    /// UDP connect requests answered with a connection id.
    pub udp_connects: IntCounter,
    /// UDP datagrams dropped without a reply (not BEP 15, or no transaction to answer).
    pub udp_dropped: IntCounter,
    failures: Vec<(&'static str, IntCounter)>,
    durations: [Histogram; 2],
    pub torrents: IntGauge,
    pub seeders: IntGauge,
    pub leechers: IntGauge,
    pub peers_reaped: IntCounter,
    pub completed: IntCounter,
    pub allowlist_rejections: IntCounter,
    pub passkey_rejections: IntCounter,
    pub rate_limited: IntCounter,
    pub suspicious_addresses: IntCounter,
    /// Peers per label, indexed by label id (0: "none"); empty without labels.
    label_peers: Vec<IntGauge>,
    /// Peers handed to labelled announcers: [other label, same label].
    peers_returned: [IntCounter; 2],
    /// Per watched torrent (`readiness::Watched`, bounded): seeders a deploy expects,
    /// and seeders now.
    readiness_expected: IntGaugeVec,
    readiness_seeders: IntGaugeVec,
    store: StoreMetrics,
}

fn event_index(e: AnnounceEvent) -> usize {
    match e {
        AnnounceEvent::None => 0,
        AnnounceEvent::Started => 1,
        AnnounceEvent::Completed => 2,
        AnnounceEvent::Stopped => 3,
    }
}

fn event_label(e: AnnounceEvent) -> &'static str {
    match e {
        AnnounceEvent::None => "none",
        other => other.as_str(),
    }
}

impl Metrics {
    /// Every metric, with a `label` series per configured label (and "none") in
    /// `kpbt_tracker_peers_per_label`.
    pub fn new(labels: &Labels) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        // The usual build/process series, so dashboards can show version, restarts and
        // resource use without a node exporter.
        let build_info = IntGaugeVec::new(
            Opts::new(
                "kpbt_tracker_build_info",
                "Always 1; the version label names the running build",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        let start_time = Gauge::new(
            "kpbt_tracker_start_time_seconds",
            "When the tracker started, in seconds since the Unix epoch",
        )?;
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        registry.register(Box::new(start_time))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let announces_vec = IntCounterVec::new(
            Opts::new(
                "kpbt_tracker_announces_total",
                "Announce requests by front end, event and outcome",
            ),
            &["protocol", "event", "outcome"],
        )?;
        registry.register(Box::new(announces_vec.clone()))?;
        let announces = Protocol::ALL.map(|p| {
            AnnounceEvent::ALL.map(|e| {
                ["ok", "failure"]
                    .map(|o| announces_vec.with_label_values(&[p.label(), event_label(e), o]))
            })
        });
        let scrapes_vec = IntCounterVec::new(
            Opts::new("kpbt_tracker_scrapes_total", "Scrape requests by front end"),
            &["protocol"],
        )?;
        registry.register(Box::new(scrapes_vec.clone()))?;
        let scrapes = Protocol::ALL.map(|p| scrapes_vec.with_label_values(&[p.label()]));
        let failures_vec = IntCounterVec::new(
            Opts::new(
                "kpbt_tracker_failures_total",
                "Requests answered with a failure reason, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(failures_vec.clone()))?;
        let failures = QueryError::LABELS
            .iter()
            .chain(OTHER_FAILURE_LABELS.iter())
            .chain(UDP_FAILURE_LABELS.iter())
            .map(|&l| (l, failures_vec.with_label_values(&[l])))
            .collect();
        let durations_vec = HistogramVec::new(
            HistogramOpts::new(
                "kpbt_tracker_request_duration_seconds",
                "Time spent handling tracker requests, by endpoint",
            )
            .buckets(vec![
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
                0.25,
            ]),
            &["endpoint"],
        )?;
        registry.register(Box::new(durations_vec.clone()))?;
        let durations = ["announce", "scrape"].map(|e| durations_vec.with_label_values(&[e]));

        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "kpbt_tracker_store_duration_seconds",
                "Round-trip time of swarm-store calls, by operation",
            )
            .buckets(vec![
                0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                0.1, 0.5, 2.0,
            ]),
            &["op"],
        )?;
        registry.register(Box::new(store_latency.clone()))?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "kpbt_tracker_store_errors_total",
                "Swarm-store calls that failed or timed out, by operation",
            ),
            &["op"],
        )?;
        registry.register(Box::new(store_errors.clone()))?;
        let redis_paths = IntCounterVec::new(
            Opts::new(
                "kpbt_tracker_redis_announce_paths_total",
                "Announces the Redis store served, by path: pipeline (a known peer's \
                 re-announce, without the script), script, or pipeline_then_script (the \
                 pipeline found it could not serve the announce)",
            ),
            &["path"],
        )?;
        registry.register(Box::new(redis_paths.clone()))?;
        for path in crate::store::REDIS_ANNOUNCE_PATHS {
            redis_paths.with_label_values(&[path]);
        }
        // Create every label up front so the series exist (at 0) before the first error.
        for op in Op::ALL {
            store_errors.with_label_values(&[op.label()]);
            store_latency.with_label_values(&[op.label()]);
        }

        // Label values come from the config only (plus "none"), so the series are bounded.
        let label_peers = if labels.is_empty() {
            Vec::new()
        } else {
            let v = IntGaugeVec::new(
                Opts::new(
                    "kpbt_tracker_peers_per_label",
                    "Live peers by rack/zone label (the first configured label whose networks \
                     hold the peer's address; \"none\" for the rest)",
                ),
                &["label"],
            )?;
            registry.register(Box::new(v.clone()))?;
            labels
                .names_with_none()
                .map(|n| v.with_label_values(&[n]))
                .collect()
        };
        let returned = IntCounterVec::new(
            Opts::new(
                "kpbt_tracker_peers_returned_total",
                "Peers listed in replies to announcers that have a label, by whether the peer \
                 has the announcer's label",
            ),
            &["same_label"],
        )?;
        registry.register(Box::new(returned.clone()))?;
        let peers_returned = ["false", "true"].map(|v| returned.with_label_values(&[v]));
        let readiness = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let v = IntGaugeVec::new(Opts::new(name, help), &["info_hash"])?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let readiness_expected = readiness(
            "kpbt_tracker_readiness_expected_seeders",
            "Seeders a deploy waits for (the N of its latest GET /swarms/HASH?expect=N), for \
             the torrents asked about in the last hour (at most 16)",
        )?;
        let readiness_seeders = readiness(
            "kpbt_tracker_readiness_seeders",
            "Seeders now of each torrent in kpbt_tracker_readiness_expected_seeders",
        )?;

        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Metrics {
            udp_connects: counter(
                "kpbt_tracker_udp_connects_total",
                "UDP connect requests answered with a connection id",
            )?,
            udp_dropped: counter(
                "kpbt_tracker_udp_dropped_total",
                "UDP datagrams dropped without a reply (malformed, or rate-limited connects)",
            )?,
            torrents: gauge("kpbt_tracker_torrents", "Torrents with at least one peer")?,
            seeders: gauge("kpbt_tracker_seeders", "Seeding peers")?,
            leechers: gauge("kpbt_tracker_leechers", "Leeching peers")?,
            peers_reaped: counter(
                "kpbt_tracker_peers_reaped_total",
                "Peers dropped after the peer timeout",
            )?,
            completed: counter(
                "kpbt_tracker_completed_total",
                "Completed downloads (announces with event=completed)",
            )?,
            allowlist_rejections: counter(
                "kpbt_tracker_allowlist_rejections_total",
                "Announces refused because the torrent is not in the allowlist",
            )?,
            passkey_rejections: counter(
                "kpbt_tracker_passkey_rejections_total",
                "Announces, scrapes and /swarms requests refused for a missing, unknown or revoked \
                 passkey",
            )?,
            rate_limited: counter(
                "kpbt_tracker_rate_limited_total",
                "Requests refused by the per-client rate limit (any endpoint)",
            )?,
            suspicious_addresses: counter(
                "kpbt_tracker_suspicious_client_addresses_total",
                "Announces from loopback (while listening elsewhere) or a Docker bridge gateway: \
                 usually a proxy or published port hiding the real peer address",
            )?,
            label_peers,
            peers_returned,
            readiness_expected,
            readiness_seeders,
            store: StoreMetrics {
                latency: store_latency,
                errors: store_errors,
                redis_paths,
            },
            registry,
            announces,
            scrapes,
            failures,
            durations,
        })
    }

    /// Counts an HTTP announce.
    pub fn announce(&self, event: AnnounceEvent, outcome: Outcome) {
        self.announce_via(Protocol::Http, event, outcome);
    }

    pub fn announce_via(&self, protocol: Protocol, event: AnnounceEvent, outcome: Outcome) {
        self.announces[protocol as usize][event_index(event)][outcome as usize].inc();
    }

    pub fn scrape_via(&self, protocol: Protocol) {
        self.scrapes[protocol as usize].inc();
    }

    /// Total scrapes so far, all front ends.
    pub fn scrapes_total(&self) -> u64 {
        self.scrapes.iter().map(IntCounter::get).sum()
    }

    /// Counts a failure; `reason` must be one of the fixed labels (others are ignored).
    pub fn failure(&self, reason: &'static str) {
        if let Some((_, c)) = self.failures.iter().find(|(l, _)| *l == reason) {
            c.inc();
        }
    }

    pub fn observe(&self, endpoint: Endpoint, seconds: f64) {
        self.durations[endpoint as usize].observe(seconds);
    }

    /// Total announces so far, all events and outcomes.
    pub fn announces_total(&self) -> u64 {
        self.announces
            .iter()
            .flatten()
            .flatten()
            .map(IntCounter::get)
            .sum()
    }

    /// Handles the swarm store reports its timings and errors to.
    pub fn store_metrics(&self) -> StoreMetrics {
        self.store.clone()
    }

    /// Sets the peers-per-label gauges from counts indexed by label id (0: none).
    pub fn set_label_gauges(&self, per_label: &[u64]) {
        for (g, &n) in self.label_peers.iter().zip(per_label) {
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Replaces the readiness series with `rows`: (info hash, expected, seeders now).
    pub fn set_readiness(&self, rows: &[(kpbt_proto::InfoHash, u32, u32)]) {
        self.readiness_expected.reset();
        self.readiness_seeders.reset();
        for (hash, expected, seeders) in rows {
            let hex = hash.to_hex();
            self.readiness_expected
                .with_label_values(&[hex.as_str()])
                .set(i64::from(*expected));
            self.readiness_seeders
                .with_label_values(&[hex.as_str()])
                .set(i64::from(*seeders));
        }
    }

    /// Counts the peers of one reply to a labelled announcer.
    pub fn peers_returned(&self, same_label: u64, other: u64) {
        if same_label > 0 {
            self.peers_returned[1].inc_by(same_label);
        }
        if other > 0 {
            self.peers_returned[0].inc_by(other);
        }
    }

    pub fn set_store_gauges(&self, s: StoreStats) {
        self.torrents.set(s.torrents as i64);
        self.seeders.set(s.seeders as i64);
        self.leechers.set(s.leechers as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec only fails on metric families that violate the format,
        // which our fixed, registered metrics cannot.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }
}
