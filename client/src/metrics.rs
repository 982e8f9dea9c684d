//! Prometheus metrics for one running torrent (`--metrics-listen ADDR`): a private
//! registry sampled from the torrent's shared counters once a second, served as the
//! text exposition format at `GET /metrics` by a minimal HTTP/1.x responder on tokio,
//! next to `GET /health` (200 `ok` while the client runs; the compose healthchecks).
//!
//! Every metric carries one label, `torrent` (the torrent's name): one torrent per
//! process, so the label set is bounded. Rates are not exported: they are `rate()` of
//! the byte counters, as Prometheus conventions ask.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Encoder, IntCounter, IntGauge, Opts, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::shared::Shared;

/// How often the shared counters are copied into the registry.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Largest request head accepted; scrapers send a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// A connection that has not sent its request head by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Every metric handle, labelled with the torrent name up front.
pub(crate) struct ClientMetrics {
    registry: Registry,
    downloaded: IntCounter,
    uploaded: IntCounter,
    peer_bytes: IntCounter,
    origin_bytes: IntCounter,
    peers: IntGauge,
    pieces: IntGauge,
    pieces_have: IntGauge,
    pieces_verified: IntCounter,
    hash_failures: IntCounter,
    peers_banned: IntCounter,
}

impl ClientMetrics {
    pub(crate) fn new(torrent: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("torrent", torrent);
        macro_rules! reg {
            ($kind:ty, $name:literal, $help:literal) => {{
                let m = <$kind>::with_opts(opts($name, $help))?;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        Ok(ClientMetrics {
            downloaded: reg!(
                IntCounter,
                "kpbt_client_downloaded_bytes_total",
                "Verified payload bytes downloaded this session"
            ),
            uploaded: reg!(
                IntCounter,
                "kpbt_client_uploaded_bytes_total",
                "Payload bytes sent to peers this session"
            ),
            peer_bytes: reg!(
                IntCounter,
                "kpbt_client_peer_bytes_total",
                "Verified payload bytes that came from peers this session"
            ),
            origin_bytes: reg!(
                IntCounter,
                "kpbt_client_origin_bytes_total",
                "Verified payload bytes that came from web seeds and origins this session"
            ),
            peers: reg!(IntGauge, "kpbt_client_peers", "Open peer connections"),
            pieces: reg!(IntGauge, "kpbt_client_pieces", "Pieces in the torrent"),
            pieces_have: reg!(
                IntGauge,
                "kpbt_client_pieces_have",
                "Pieces verified and on disk"
            ),
            pieces_verified: reg!(
                IntCounter,
                "kpbt_client_pieces_verified_total",
                "Downloaded pieces that passed their SHA-1 check this session"
            ),
            hash_failures: reg!(
                IntCounter,
                "kpbt_client_hash_failures_total",
                "Downloaded pieces that failed their SHA-1 check this session"
            ),
            peers_banned: reg!(
                IntCounter,
                "kpbt_client_peers_banned_total",
                "Peer addresses banned for sending corrupt data"
            ),
            registry,
        })
    }

    /// Copies the torrent's counters and gauges into the registry.
    fn sample(&self, shared: &Shared) {
        let (have, banned) = {
            let st = shared.lock();
            (st.picker.have_count(), st.banned.len() as u64)
        };
        let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        catch_up(&self.downloaded, shared.downloaded.load(Ordering::Relaxed));
        catch_up(&self.uploaded, shared.uploaded.load(Ordering::Relaxed));
        catch_up(&self.peer_bytes, shared.peer_bytes.load(Ordering::Relaxed));
        catch_up(
            &self.origin_bytes,
            shared.origin_bytes.load(Ordering::Relaxed),
        );
        catch_up(
            &self.pieces_verified,
            shared.pieces_verified.load(Ordering::Relaxed),
        );
        catch_up(
            &self.hash_failures,
            shared.hash_failures.load(Ordering::Relaxed),
        );
        catch_up(&self.peers_banned, banned);
        self.peers
            .set(shared.peer_count.load(Ordering::Relaxed) as i64);
        self.pieces.set(i64::from(shared.piece_count));
        self.pieces_have.set(i64::from(have));
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            warn!("encoding metrics: {e}");
        }
        out
    }
}

/// Binds the metrics listener (so a bad address fails `start`, not later).
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` on `listener` and samples `shared` every second until `shutdown`.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    torrent: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let metrics = match ClientMetrics::new(&torrent) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            warn!("cannot set up metrics: {e}");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving Prometheus metrics at /metrics");
    }
    metrics.sample(&shared);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // (The watch::Ref must not live across the other branches' awaits.)
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            _ = tick.tick() => metrics.sample(&shared),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let metrics = metrics.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = respond(stream, &metrics, &shared).await {
                            debug!(%peer, "metrics request: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("accepting a metrics connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// What `GET /` says, and the body of a 404: the endpoints there are.
const INDEX: &[u8] =
    b"kpbt-client\n/metrics  Prometheus metrics\n/health   ok (200) while the client runs\n";

/// Answers one request: `GET`/`HEAD` of `/metrics` (the exposition), `/health` (`ok`)
/// or `/` (the endpoint list); other methods get 405, other paths 404.
async fn respond(
    mut stream: TcpStream,
    metrics: &ClientMetrics,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if buf.len() > MAX_REQUEST {
                return Ok(false);
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head timed out"))??;
    if !head {
        return Ok(());
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            metrics.sample(shared);
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
        ("GET" | "HEAD", "/health") => ("200 OK", "text/plain; charset=utf-8", b"ok\n".to_vec()),
        ("GET" | "HEAD", "/") => ("200 OK", "text/plain; charset=utf-8", INDEX.to_vec()),
        (_, "/metrics" | "/health" | "/") => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n".to_vec(),
        ),
        _ => ("404 Not Found", "text/plain; charset=utf-8", INDEX.to_vec()),
    };
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(&body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{build, plan, CreateOptions};
    use crate::engine::{start, ClientError, Config};
    use kpbt_proto::metainfo::Metainfo;
    use std::sync::atomic::AtomicU64;

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
        let (status, body) = kpbt_testkit::http_get(addr, path, Duration::from_secs(5))?;
        Ok((status, String::from_utf8(body).expect("UTF-8 exposition")))
    }

    /// Sends `request` as is and returns the whole reply.
    fn raw(addr: SocketAddr, request: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_seeder_serves_its_state_and_stops_serving_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("p.bin");
        std::fs::write(&data, kpbt_testkit::random_bytes(5 * 16384 + 7, 3)).unwrap();
        let p = plan(CreateOptions {
            path: data,
            trackers: Vec::new(),
            piece_length: Some(16384),
            private: false,
            comment: None,
            web_seeds: Vec::new(),
        })
        .unwrap();
        let (bytes, _) = build(&p, 1, &AtomicU64::new(0)).unwrap();
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", kpbt_testkit::free_port())
            .parse()
            .unwrap();
        let mut cfg = Config::new(dir.path());
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.use_trackers = false;
        cfg.metrics_listen = Some(addr);
        let h = start(meta.clone(), cfg.clone()).await.unwrap();

        let (status, text) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("kpbt_client_pieces{torrent=\"p.bin\"} 6\n"),
            "{text}"
        );
        assert!(
            text.contains("kpbt_client_pieces_have{torrent=\"p.bin\"} 6\n"),
            "{text}"
        );
        assert!(text.contains("kpbt_client_downloaded_bytes_total{torrent=\"p.bin\"} 0\n"));
        assert!(text.contains("kpbt_client_origin_bytes_total{torrent=\"p.bin\"} 0\n"));
        assert!(text.contains("kpbt_client_peer_bytes_total{torrent=\"p.bin\"} 0\n"));
        // The rates are rate() of the byte counters, not gauges of their own.
        assert!(!text.contains("_rate"), "{text}");
        let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/health"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains("/metrics") && body.contains("/health"),
            "{body}"
        );
        let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/nope"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 404);
        assert!(
            body.contains("/metrics") && body.contains("/health"),
            "{body}"
        );
        let reply = tokio::task::spawn_blocking(move || raw(addr, "POST /health HTTP/1.1\r\n\r\n"))
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
        assert!(reply.contains("\r\nAllow: GET, HEAD\r\n"), "{reply}");
        let reply = tokio::task::spawn_blocking(move || raw(addr, "HEAD /health HTTP/1.1\r\n\r\n"))
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("\r\nContent-Length: 3\r\n") && reply.ends_with("\r\n\r\n"),
            "{reply}"
        );

        // A second client cannot take the same metrics address: start fails, naming it.
        let other = tempfile::tempdir().unwrap();
        let mut cfg2 = cfg.clone();
        cfg2.output_dir = other.path().to_path_buf();
        match start(meta, cfg2).await {
            Err(ClientError::MetricsBind { addr: a, .. }) => assert_eq!(a, addr),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("second client bound the same metrics address"),
        }

        h.shutdown().await.unwrap();
        let after = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
            .await
            .unwrap();
        assert!(after.is_err(), "metrics still served after shutdown");
    }

    #[test]
    fn every_metric_is_exposed_with_the_torrent_label() {
        let m = ClientMetrics::new("demo \"x\"").unwrap();
        m.downloaded.inc_by(5);
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "kpbt_client_downloaded_bytes_total",
            "kpbt_client_uploaded_bytes_total",
            "kpbt_client_peer_bytes_total",
            "kpbt_client_origin_bytes_total",
            "kpbt_client_peers",
            "kpbt_client_pieces",
            "kpbt_client_pieces_have",
            "kpbt_client_pieces_verified_total",
            "kpbt_client_hash_failures_total",
            "kpbt_client_peers_banned_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing in:\n{text}"
            );
        }
        assert_eq!(text.matches("# TYPE ").count(), 10, "{text}");
        assert!(
            text.contains("kpbt_client_downloaded_bytes_total{torrent=\"demo \\\"x\\\"\"} 5"),
            "{text}"
        );
    }
}
