//! The dashboards proven against a real Prometheus (Debian's `prometheus` + `promtool`):
//! an in-process kpbt tracker, a leecher and a seeder (library clients with
//! `metrics_listen`) are scraped every second while the leecher downloads; then every
//! PromQL expression of every panel in dashboards/*.json must evaluate, without error and
//! with a non-empty result, through `/api/v1/query`. Both /metrics outputs must also
//! pass `promtool check metrics`.
//!
//! Missing tools fail the test with an apt hint, unless KPBT_SKIP_INTEROP=1 (SKIPPED).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use kpbt_client::create::{build, plan, CreateOptions};
use kpbt_client::{Config, TorrentHandle};
use kpbt_proto::metainfo::Metainfo;
use kpbt_testkit::{free_port, http_get, wait_for_tcp, ChildGuard};
use kpbt_tracker::background::BackgroundTracker;
use serde_json::Value;

/// What `$__rate_interval` becomes: 30 scrapes at the 1 s interval used here.
const RATE_WINDOW: &str = "30s";
const PAYLOAD_LEN: u64 = 12 * 1024 * 1024;
const PIECE_LEN: u32 = 256 * 1024;
const DEADLINE: Duration = Duration::from_secs(120);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// (where, expr) for every target of every panel of every dashboards/*.json.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("JSON");
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        for p in board["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                out.push((
                    format!("{file} / {} / {}", p["title"], t["refId"]),
                    expr.replace("$__rate_interval", RATE_WINDOW),
                ));
            }
        }
    }
    out
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus's HTTP API.
struct Prom {
    addr: SocketAddr,
    _child: ChildGuard,
}

impl Prom {
    /// Starts Prometheus scraping every `(job, [targets])` once a second.
    fn start(dir: &Path, jobs: &[(&str, &[SocketAddr])]) -> Prom {
        let scrape: String = jobs
            .iter()
            .map(|(job, addrs)| {
                let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
                format!(
                    "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                    list.join(", ")
                )
            })
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape}"
            ),
        )
        .expect("write prometheus.yml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(kpbt_testkit::find_binary("prometheus").expect("checked"));
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut child = ChildGuard::spawn("prometheus", cmd, &dir.join("logs")).expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http_get(addr, "/-/ready", HTTP_TIMEOUT), Ok((200, _))) {
            assert!(child.is_running(), "prometheus exited at startup");
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 60s; see {}",
                dir.join("logs").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prom {
            addr,
            _child: child,
        }
    }

    /// Evaluates `expr` now: Ok(result vector) or Err(Prometheus's error).
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (status, body) = http_get(
            self.addr,
            &format!("/api/v1/query?query={}", encode(expr)),
            HTTP_TIMEOUT,
        )
        .map_err(|e| format!("HTTP: {e}"))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body:?}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match &v["data"]["result"] {
            Value::Array(a) => Ok(a.clone()),
            // Scalars and strings count as data.
            other => Ok(vec![other.clone()]),
        }
    }

    /// First sample value of `expr`, if any.
    fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        r.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls until `expr` has a value satisfying `ok` (or panics at the deadline).
    fn wait_for(&self, what: &str, expr: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.value(expr);
            if let Some(v) = v.filter(|v| ok(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{expr}` still {v:?} after {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The tracker on its own thread (stopped when the returned guard drops).
fn start_tracker() -> BackgroundTracker {
    // Every peer here is on loopback: one rack/zone label for all of them, so the
    // per-label panels have data (each peer is given the other, of its own label).
    let labels =
        kpbt_tracker::labels::LabelsConfig(vec![("loopback".into(), vec!["127.0.0.0/8".into()])]);
    let config = kpbt_tracker::Config {
        announce_interval_secs: 5,
        reap_interval_secs: 1,
        labels,
        ..Default::default()
    };
    let tracker = BackgroundTracker::start_on_loopback(config).expect("tracker starts");
    wait_for_tcp(tracker.addr(), Duration::from_secs(30)).expect("tracker accepts");
    tracker
}

fn make_torrent(dir: &Path, tracker: SocketAddr) -> Metainfo {
    let data = dir.join("payload.bin");
    kpbt_testkit::write_random_file(&data, PAYLOAD_LEN, 7).expect("payload");
    let p = plan(CreateOptions {
        path: data,
        trackers: vec![vec![format!("http://{tracker}/announce")]],
        piece_length: Some(PIECE_LEN),
        private: true,
        comment: None,
        web_seeds: Vec::new(),
    })
    .expect("plan");
    let (bytes, _) = build(&p, 2, &AtomicU64::new(0)).expect("hash");
    Metainfo::from_bytes(&bytes).expect("valid torrent")
}

fn start_client(
    rt: &tokio::runtime::Runtime,
    meta: &Metainfo,
    dir: &Path,
    metrics: SocketAddr,
) -> TorrentHandle {
    let mut cfg = Config::new(dir);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.metrics_listen = Some(metrics);
    rt.block_on(kpbt_client::start(meta.clone(), cfg))
        .expect("client starts")
}

/// `promtool check metrics` on what `addr` serves at /metrics: no problems allowed.
fn promtool_check(what: &str, addr: SocketAddr) {
    let (status, body) = http_get(addr, "/metrics", HTTP_TIMEOUT).expect("GET /metrics");
    assert_eq!(status, 200, "{what} /metrics");
    assert!(!body.is_empty(), "{what} /metrics is empty");
    let mut child = Command::new(kpbt_testkit::find_binary("promtool").expect("checked"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&body)
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics on {what} ({}): {report}",
        out.status
    );
    eprintln!("promtool check metrics: {what} clean");
}

#[test]
fn every_dashboard_query_has_data_in_a_real_prometheus() {
    if !kpbt_testkit::require_binaries(&[("prometheus", "prometheus"), ("promtool", "prometheus")])
    {
        return;
    }
    let exprs = dashboard_exprs();
    assert!(
        exprs.len() >= 15,
        "only {} dashboard expressions",
        exprs.len()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::create_dir_all(&leech_dir).unwrap();

    let tracker_guard = start_tracker();
    let tracker = tracker_guard.addr();
    let meta = make_torrent(&seed_dir, tracker);
    let name = meta.info.name.clone();
    // A deploy waiting for both peers to hold the torrent (the readiness panel).
    let ready_path = format!("/swarms/{}?expect=2", meta.info_hash.to_hex());
    let (status, _) = http_get(tracker, &ready_path, HTTP_TIMEOUT).expect("GET /swarms");
    assert_eq!(status, 425, "nobody has the torrent yet");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = |_| -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().unwrap() };
    let (seed_metrics, leech_metrics) = (port(()), port(()));
    let prom = Prom::start(
        tmp.path(),
        &[
            ("kpbt-tracker", &[tracker]),
            ("kpbt-client", &[seed_metrics, leech_metrics]),
        ],
    );

    // The leecher first, with nothing: Prometheus records it at zero before any data
    // moves, so the transfer itself shows up in the scraped series.
    let leecher = start_client(&rt, &meta, &leech_dir, leech_metrics);
    let leech = format!("instance=\"{leech_metrics}\"");
    prom.wait_for(
        "leecher scraped before the transfer",
        &format!("kpbt_client_pieces_have{{{leech}}}"),
        |v| v == 0.0,
    );
    let seeder = start_client(&rt, &meta, &seed_dir, seed_metrics);
    let seed = format!("instance=\"{seed_metrics}\"");
    let pieces = f64::from(meta.info.piece_count());

    // Real behaviour, as Prometheus saw it.
    prom.wait_for(
        "leecher completes",
        &format!("kpbt_client_pieces_have{{{leech}}}"),
        |v| v == pieces,
    );
    assert!(leecher.is_complete(), "library agrees the leecher is done");
    let down = prom.wait_for(
        "leecher's verified bytes",
        &format!("kpbt_client_downloaded_bytes_total{{{leech}}}"),
        |v| v == PAYLOAD_LEN as f64,
    );
    prom.wait_for(
        "seeder's uploaded bytes",
        &format!("kpbt_client_uploaded_bytes_total{{{seed}}}"),
        |v| v >= PAYLOAD_LEN as f64,
    );
    prom.wait_for(
        "pieces verified by the leecher",
        &format!("kpbt_client_pieces_verified_total{{{leech}}}"),
        |v| v == pieces,
    );
    prom.wait_for(
        "download seen as an increase",
        &format!("increase(kpbt_client_downloaded_bytes_total{{{leech}}}[2m])"),
        |v| v > 0.0,
    );
    // The rates come from rate() of the byte counters (the client exports no rate
    // gauges): the transfer shows up in the leecher's download rate as the dashboard
    // asks it. (The leecher, scraped at zero first; the seeder may be first scraped
    // after the fast loopback transfer, its upload counter then never moves.)
    prom.wait_for(
        "leecher's download rate from its counter",
        &format!(
            "max_over_time(sum by (instance, torrent) (rate(kpbt_client_downloaded_bytes_total{{{leech}}}[{RATE_WINDOW}]))[5m:1s])"
        ),
        |v| v > 0.0,
    );
    prom.wait_for(
        "leecher's data moved",
        &format!("sum by (instance, torrent) (increase(kpbt_client_downloaded_bytes_total{{{leech}}}[1h]))"),
        |v| v >= PAYLOAD_LEN as f64,
    );
    prom.wait_for(
        "torrent label",
        &format!("count(kpbt_client_peers{{torrent=\"{name}\"}})"),
        |v| v == 2.0,
    );
    prom.wait_for("tracker completed", "kpbt_tracker_completed_total", |v| {
        v >= 1.0
    });
    prom.wait_for("two seeders on the tracker", "kpbt_tracker_seeders", |v| {
        v == 2.0
    });
    prom.wait_for(
        "same-label peers handed out",
        "sum(kpbt_tracker_peers_returned_total{same_label=\"true\"})",
        |v| v >= 1.0,
    );
    prom.wait_for(
        "peers per label",
        "kpbt_tracker_peers_per_label{label=\"loopback\"}",
        |v| v == 2.0,
    );
    prom.wait_for(
        "deploy readiness: both expected peers seed",
        &format!(
            "kpbt_tracker_readiness_seeders{{info_hash=\"{}\"}} - kpbt_tracker_readiness_expected_seeders",
            meta.info_hash.to_hex()
        ),
        |v| v == 0.0,
    );
    prom.wait_for(
        "no hash failures",
        "sum(kpbt_client_hash_failures_total)",
        |v| v == 0.0,
    );
    eprintln!("leecher downloaded {down} bytes, seen by Prometheus");

    // Every panel expression: valid PromQL with data (polled: rate() needs two samples).
    let deadline = Instant::now() + DEADLINE;
    let mut pending = exprs.clone();
    while !pending.is_empty() {
        pending.retain(|(where_, expr)| match prom.query(expr) {
            Err(e) => panic!("{where_}: `{expr}` is invalid: {e}"),
            Ok(r) => r.is_empty(),
        });
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data after {DEADLINE:?} for: {pending:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for (where_, expr) in &exprs {
        eprintln!("ok  {where_}: {expr}");
    }
    eprintln!("{} dashboard expressions evaluated with data", exprs.len());

    promtool_check("tracker", tracker);
    promtool_check("seeder", seed_metrics);
    promtool_check("leecher", leech_metrics);

    for h in [leecher, seeder] {
        rt.block_on(h.shutdown()).expect("clean shutdown");
    }
}
