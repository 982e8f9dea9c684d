//! The announce loop: HTTP(S) and UDP (BEP 15, via [`crate::tracker_udp`]) announces over
//! BEP 12 tiers (working tracker moved to the
//! front of its tier), started/completed/stopped events, re-announce on the tracker's
//! interval (earlier, within `min interval`, when short of peers), exponential back-off
//! while trackers are down, and failure/warning reasons surfaced to the user.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest};
use kpbt_proto::redact;
use kpbt_proto::tracker_reply::{
    decode_announce_reply, AnnounceReply, TrackerReplyError, MAX_REPLY_BYTES,
};
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::shared::Shared;
use crate::tracker_udp::{Retry, UdpClient, UdpTrackerError};

pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a session delays a torrent's first announce (spreads a restart of
/// many torrents over this window).
const FIRST_ANNOUNCE_JITTER: Duration = Duration::from_secs(5);
/// Re-announces come up to this share of the interval late.
const JITTER_SHARE: f64 = 0.05;
const STOPPED_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_BACKOFF: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// Below this many connected peers we re-announce as early as the tracker allows.
const WANT_PEERS: usize = 10;
const NUMWANT: u32 = 80;

/// Why one announce failed. Every variant names the tracker by its redacted URL
/// ([`kpbt_proto::redact::tracker_url`]): passkeys never reach a log line.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// Connecting, sending or reading failed; `cause` is the innermost reason
    /// ("connection refused", "timed out").
    #[error("{tracker}: {cause}")]
    Unreachable { tracker: String, cause: String },
    #[error("{tracker}: HTTP status {status}")]
    Status {
        tracker: String,
        status: reqwest::StatusCode,
    },
    /// The tracker answered with a `failure reason`.
    #[error("{tracker}: tracker refused: {reason}")]
    Refused { tracker: String, reason: String },
    #[error("{tracker}: {detail}")]
    BadReply { tracker: String, detail: String },
    #[error("{tracker}: reply larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge { tracker: String },
    #[error("no HTTP(S) or UDP tracker in the torrent")]
    NoTrackers,
}

impl AnnounceError {
    /// A refusal that asking again will not change (an unknown or revoked passkey, a
    /// torrent the tracker does not carry): retrying at the normal pace only floods the
    /// tracker's log, so the announcer backs off to its longest delay and says what to do.
    pub fn is_permanent(&self) -> bool {
        let AnnounceError::Refused { reason, .. } = self else {
            return false;
        };
        let r = reason.to_ascii_lowercase();
        [
            "passkey",
            "unregistered",
            "not registered",
            "not authorized",
            "unauthorized",
            "banned",
            "not allowed",
            "allowlist",
            "whitelist",
        ]
        .iter()
        .any(|w| r.contains(w))
    }
}

/// The innermost cause of a reqwest error, which is what a user can act on: reqwest's
/// own text is "error sending request for url (...)", with the whole announce query.
fn cause_of(e: reqwest::Error) -> String {
    request_error_cause(e, REQUEST_TIMEOUT)
}

/// [`cause_of`] for any request to a tracker that gives up after `timeout` (the
/// `wait-ready` polls use it too).
pub fn request_error_cause(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    crate::http_error::cause(e, "tracker")
}

pub(crate) struct Announcer {
    pub shared: Arc<Shared>,
    pub tiers: Vec<Vec<String>>,
    pub port: u16,
    /// The session's HTTP client (connection reuse across torrents).
    pub http: reqwest::Client,
    /// Spread announces: the first one by up to `FIRST_ANNOUNCE_JITTER`, every later one
    /// by up to `JITTER_SHARE` of its interval, so many torrents do not move in lockstep.
    pub jitter: bool,
    pub peers_tx: mpsc::UnboundedSender<Vec<SocketAddr>>,
    pub complete: watch::Receiver<bool>,
    pub shutdown: watch::Receiver<bool>,
}

/// Keeps only trackers we can speak to: HTTP(S) and UDP (BEP 15).
pub fn usable_tiers(tiers: &[Vec<String>]) -> Vec<Vec<String>> {
    tiers
        .iter()
        .map(|t| {
            t.iter()
                .filter(|u| {
                    let ok = u.starts_with("http://")
                        || u.starts_with("https://")
                        || u.starts_with("udp://");
                    if !ok {
                        warn!(
                            "skipping tracker {}: only HTTP(S) and UDP trackers are supported",
                            redact::tracker_url(u)
                        );
                    }
                    ok
                })
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

impl Announcer {
    pub(crate) async fn run(mut self) {
        self.tiers = usable_tiers(&self.tiers);
        // BEP 12: shuffle each tier once, then keep the order, promoting what works.
        {
            let mut rng = rand::thread_rng();
            for t in &mut self.tiers {
                t.shuffle(&mut rng);
            }
        }
        if self.tiers.is_empty() {
            return;
        }
        let client = self.http.clone();
        if self.jitter {
            let delay = FIRST_ANNOUNCE_JITTER.mul_f64(rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => return,
            }
        }
        let key = format!("{:08x}", rand::random::<u32>());
        let mut udp = UdpClient::new(Retry::DEFAULT);
        let mut tracker_id: Option<Vec<u8>> = None;
        // `completed` is sent once, only if we finish during this session.
        let mut completed_pending = false;
        let mut completed_watch = !*self.complete.borrow();
        let mut backoff = MIN_BACKOFF;
        let mut announced = false;
        loop {
            let event = if !announced {
                AnnounceEvent::Started
            } else if completed_pending {
                AnnounceEvent::Completed
            } else {
                AnnounceEvent::None
            };
            let req = self.request(event, &key, tracker_id.clone());
            let wait = match self.announce_tiers(&client, &mut udp, &req).await {
                Ok(reply) => {
                    announced = true;
                    backoff = MIN_BACKOFF;
                    if reply.tracker_id.is_some() {
                        tracker_id = reply.tracker_id.clone();
                    }
                    if let Some(w) = &reply.warning {
                        warn!("tracker warning: {w}");
                        self.shared
                            .set_status(Some(format!("tracker warning: {w}")));
                    } else {
                        self.shared.set_status(None);
                    }
                    info!(
                        peers = reply.peers.len(),
                        interval = reply.interval,
                        ?event,
                        "announced"
                    );
                    if event == AnnounceEvent::Completed {
                        completed_pending = false;
                    }
                    if !reply.peers.is_empty() {
                        let _ = self.peers_tx.send(reply.peers.clone());
                    }
                    if completed_pending {
                        Duration::ZERO
                    } else if self.jitter {
                        let w = self.next_wait(&reply);
                        w + w.mul_f64(JITTER_SHARE * rand::random::<f64>())
                    } else {
                        self.next_wait(&reply)
                    }
                }
                Err(e) => {
                    let w = if e.is_permanent() {
                        // Asking again soon will not change the answer: wait long, and
                        // tell the user what would.
                        backoff = MAX_BACKOFF;
                        warn!(
                            "announce to {e}; this will not fix itself: check the passkey or \
                             announce URL in the .torrent (ask the tracker's operator for a \
                             current one); asking again in {}",
                            crate::units::format_duration(MAX_BACKOFF)
                        );
                        MAX_BACKOFF
                    } else {
                        let w = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        warn!(
                            "announce to {e}; {} in {}",
                            if announced {
                                "retrying"
                            } else {
                                "trying again"
                            },
                            crate::units::format_duration(w)
                        );
                        w
                    };
                    self.shared.set_status(Some(format!("tracker: {e}")));
                    w
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = self.complete.wait_for(|c| *c), if completed_watch => {
                    completed_watch = false;
                    completed_pending = r.is_ok();
                }
                _ = self.shutdown.changed() => break,
            }
        }
        // Finished just before the stop (the two signals race in the select above): the
        // tracker still gets `completed` first, or its download count misses us.
        let finished_unreported = completed_pending || (completed_watch && *self.complete.borrow());
        if announced {
            if finished_unreported {
                self.final_announce(
                    (&client, &mut udp),
                    AnnounceEvent::Completed,
                    &key,
                    tracker_id.clone(),
                )
                .await;
            }
            self.final_announce(
                (&client, &mut udp),
                AnnounceEvent::Stopped,
                &key,
                tracker_id,
            )
            .await;
        }
    }

    /// One announce on the way out, bounded by `STOPPED_TIMEOUT` so a dead tracker
    /// cannot hold up shutdown; failures only matter to the debug log.
    async fn final_announce(
        &mut self,
        (client, udp): (&reqwest::Client, &mut UdpClient),
        event: AnnounceEvent,
        key: &str,
        tracker_id: Option<Vec<u8>>,
    ) {
        let req = self.request(event, key, tracker_id);
        match tokio::time::timeout(STOPPED_TIMEOUT, self.announce_tiers(client, udp, &req)).await {
            Ok(Ok(_)) => debug!(?event, "final announce sent"),
            Ok(Err(e)) => debug!(?event, "final announce failed: {e}"),
            Err(_) => debug!(?event, "final announce timed out"),
        }
    }

    /// How long until the next regular announce.
    fn next_wait(&self, reply: &AnnounceReply) -> Duration {
        let interval = Duration::from_secs(reply.interval.max(1) as u64);
        let peers = self.shared.peer_count.load(Ordering::Relaxed);
        // A seeder with no peers asks early too: leechers that cannot dial it (behind
        // NAT, or transmission, which never dials loopback) are reached only if it dials.
        if peers == 0 || (peers < WANT_PEERS && !*self.complete.borrow()) {
            // Short of peers: ask again as soon as the tracker permits (but not hammer it).
            let min = Duration::from_secs(reply.min_interval.unwrap_or(60).max(30) as u64);
            interval.min(min.max(Duration::from_secs(30)))
        } else {
            interval
        }
    }

    fn request(
        &self,
        event: AnnounceEvent,
        key: &str,
        tracker_id: Option<Vec<u8>>,
    ) -> AnnounceRequest {
        let s = &self.shared;
        AnnounceRequest {
            info_hash: s.info_hash,
            peer_id: s.our_id,
            port: self.port,
            uploaded: s.uploaded.load(Ordering::Relaxed),
            downloaded: s.downloaded.load(Ordering::Relaxed),
            left: s.left(),
            event,
            compact: true,
            no_peer_id: true,
            numwant: Some(if event == AnnounceEvent::Stopped {
                0
            } else {
                NUMWANT
            }),
            ip: None,
            key: Some(key.to_string()),
            tracker_id,
        }
    }

    /// Tries each tier in order and each tracker in the tier in order; the first that
    /// answers is moved to the front of its tier (BEP 12).
    async fn announce_tiers(
        &mut self,
        client: &reqwest::Client,
        udp: &mut UdpClient,
        req: &AnnounceRequest,
    ) -> Result<AnnounceReply, AnnounceError> {
        announce_tiers(client, udp, &mut self.tiers, req).await
    }
}

/// Tries each tier in order and each tracker in the tier in order; the first that
/// answers is moved to the front of its tier (BEP 12). A failure is logged here only
/// when another tracker follows; the caller reports the last one with what it does next.
pub async fn announce_tiers(
    client: &reqwest::Client,
    udp: &mut UdpClient,
    tiers: &mut [Vec<String>],
    req: &AnnounceRequest,
) -> Result<AnnounceReply, AnnounceError> {
    let mut last = AnnounceError::NoTrackers;
    let order: Vec<(usize, usize)> = tiers
        .iter()
        .enumerate()
        .flat_map(|(t, tier)| (0..tier.len()).map(move |i| (t, i)))
        .collect();
    for (n, &(t, i)) in order.iter().enumerate() {
        let url = &tiers[t][i];
        let result = if url.starts_with("udp://") {
            udp.announce(url, req).await.map_err(|e| udp_error(url, e))
        } else {
            announce_once(client, url, req).await
        };
        match result {
            Ok(r) => {
                let u = tiers[t].remove(i);
                tiers[t].insert(0, u);
                return Ok(r);
            }
            Err(e) => {
                if let Some(&(nt, ni)) = order.get(n + 1) {
                    warn!(
                        "announce to {e}; trying {} next",
                        redact::tracker_url(&tiers[nt][ni])
                    );
                }
                last = e;
            }
        }
    }
    Err(last)
}

/// A UDP tracker's failure in the same terms as an HTTP one (so a refusal about the
/// passkey backs off the same way), naming the tracker by its redacted URL.
fn udp_error(url: &str, e: UdpTrackerError) -> AnnounceError {
    let tracker = redact::tracker_url(url);
    match e {
        UdpTrackerError::Refused(reason) => AnnounceError::Refused { tracker, reason },
        e @ (UdpTrackerError::Io(_)
        | UdpTrackerError::Timeout(_)
        | UdpTrackerError::Resolve(_)
        | UdpTrackerError::NoAddress) => AnnounceError::Unreachable {
            tracker,
            cause: e.to_string(),
        },
        e @ (UdpTrackerError::BadUrl | UdpTrackerError::Reply(_) | UdpTrackerError::WrongKind) => {
            AnnounceError::BadReply {
                tracker,
                detail: e.to_string(),
            }
        }
    }
}

/// One HTTP announce to `url`.
pub async fn announce_once(
    client: &reqwest::Client,
    url: &str,
    req: &AnnounceRequest,
) -> Result<AnnounceReply, AnnounceError> {
    let tracker = || redact::tracker_url(url);
    let unreachable = |source: reqwest::Error| AnnounceError::Unreachable {
        tracker: tracker(),
        cause: cause_of(source),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}{}", req.to_query_string());
    let mut resp = client.get(&full).send().await.map_err(unreachable)?;
    let status = resp.status();
    // Read with a cap so a hostile tracker can't make us buffer without bound.
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY_BYTES {
            return Err(AnnounceError::TooLarge { tracker: tracker() });
        }
    }
    match decode_announce_reply(&body) {
        Ok(r) => Ok(r),
        // A tracker may send a bencoded failure with a non-200 status: prefer its reason.
        Err(TrackerReplyError::Failure(reason)) => Err(AnnounceError::Refused {
            tracker: tracker(),
            reason,
        }),
        Err(_) if !status.is_success() => Err(AnnounceError::Status {
            tracker: tracker(),
            status,
        }),
        Err(e) => Err(AnnounceError::BadReply {
            tracker: tracker(),
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpbt_proto::{InfoHash, PeerId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot-per-connection HTTP server answering every request with `body`.
    /// Returns its announce URL and a receiver of the request lines it saw.
    async fn fake_tracker(body: &'static [u8]) -> (String, mpsc::UnboundedReceiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/announce", l.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send(line);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
            }
        });
        (url, rx)
    }

    fn request(event: AnnounceEvent) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 10,
            event,
            compact: true,
            no_peer_id: true,
            numwant: Some(5),
            ip: None,
            key: None,
            tracker_id: None,
        }
    }

    #[tokio::test]
    async fn compact_reply_and_query_string() {
        let (url, mut seen) =
            fake_tracker(b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e").await;
        let c = reqwest::Client::new();
        let r = announce_once(&c, &url, &request(AnnounceEvent::Started))
            .await
            .unwrap();
        assert_eq!(r.interval, 900);
        assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let line = seen.recv().await.unwrap();
        assert!(line.starts_with("GET /announce?"), "{line}");
        assert!(
            line.contains("event=started") && line.contains("compact=1"),
            "{line}"
        );
    }

    #[tokio::test]
    async fn failure_reason_is_reported() {
        let (url, _seen) = fake_tracker(b"d14:failure reason12:not allowed!e").await;
        let c = reqwest::Client::new();
        let e = announce_once(&c, &url, &request(AnnounceEvent::None))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not allowed!"), "{e}");
    }

    #[tokio::test]
    async fn url_with_query_gets_ampersand() {
        let (url, mut seen) = fake_tracker(b"d8:intervali60e5:peers0:e").await;
        let c = reqwest::Client::new();
        announce_once(
            &c,
            &format!("{url}?passkey=abc"),
            &request(AnnounceEvent::None),
        )
        .await
        .unwrap();
        let line = seen.recv().await.unwrap();
        assert!(line.contains("?passkey=abc&info_hash="), "{line}");
    }

    #[tokio::test]
    async fn tiers_fall_back_in_order_and_promote_the_working_tracker() {
        // Port 1 on loopback refuses connections: a tracker that is down.
        let dead = "http://127.0.0.1:1/announce".to_string();
        let (good, mut seen) = fake_tracker(b"d8:intervali60e5:peers0:e").await;
        let (later_tier, mut later_seen) = fake_tracker(b"d8:intervali60e5:peers0:e").await;
        let mut tiers = vec![vec![dead.clone(), good.clone()], vec![later_tier]];
        let c = reqwest::Client::new();
        announce_tiers(&c, &mut udp(), &mut tiers, &request(AnnounceEvent::None))
            .await
            .unwrap();
        assert_eq!(
            tiers[0],
            vec![good, dead],
            "working tracker moved to the front"
        );
        assert!(seen.recv().await.is_some());
        assert!(later_seen.try_recv().is_err(), "second tier not contacted");
    }

    #[tokio::test]
    async fn malformed_and_oversized_replies_fall_through_to_a_good_tracker() {
        let (bad_compact, _a) = fake_tracker(b"d8:intervali60e5:peers5:abcdee").await;
        let (not_bencode, _b) = fake_tracker(b"<html>502 Bad Gateway</html>").await;
        let huge: &'static [u8] = Box::leak(vec![b'x'; MAX_REPLY_BYTES + 10].into_boxed_slice());
        let (oversized, _c) = fake_tracker(huge).await;
        let (good, _d) = fake_tracker(b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e").await;
        let c = reqwest::Client::new();
        for url in [&bad_compact, &not_bencode, &oversized] {
            let e = announce_once(&c, url, &request(AnnounceEvent::None))
                .await
                .unwrap_err();
            assert!(
                e.to_string().contains(url.as_str()),
                "error names the tracker: {e}"
            );
            assert!(
                !e.to_string().contains("info_hash"),
                "error carries no announce query: {e}"
            );
        }
        let mut tiers = vec![vec![bad_compact, not_bencode, oversized, good.clone()]];
        let reply = announce_tiers(&c, &mut udp(), &mut tiers, &request(AnnounceEvent::None))
            .await
            .unwrap();
        assert_eq!(reply.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(
            tiers[0][0], good,
            "the tracker that answered is tried first next time"
        );
    }

    #[tokio::test]
    async fn errors_name_the_cause_and_never_the_passkey() {
        let c = reqwest::Client::new();
        let dead = "http://127.0.0.1:1/announce/0123456789abcdef0123456789abcdef";
        let e = announce_once(&c, dead, &request(AnnounceEvent::Started))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("connection refused"), "{text}");
        assert!(
            text.starts_with("http://127.0.0.1:1/announce/<redacted>"),
            "{text}"
        );
        assert!(
            !text.contains("0123456789abcdef") && !text.contains("info_hash"),
            "{text}"
        );
        assert!(!e.is_permanent(), "a dead tracker may come back");

        let (keyed, _seen) = fake_tracker(b"d14:failure reason15:unknown passkeye").await;
        let e = announce_once(
            &c,
            &format!("{keyed}?passkey=s3cr3t"),
            &request(AnnounceEvent::None),
        )
        .await
        .unwrap_err();
        assert!(e.is_permanent(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("unknown passkey") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn only_refusals_about_access_are_permanent() {
        let refused = |reason: &str| AnnounceError::Refused {
            tracker: "t".into(),
            reason: reason.into(),
        };
        assert!(refused("passkey revoked").is_permanent());
        assert!(refused("torrent not allowed on this tracker").is_permanent());
        assert!(!refused("tracker is full: too many torrents").is_permanent());
        assert!(!refused("rate limited: slow down").is_permanent());
    }

    fn udp() -> UdpClient {
        UdpClient::new(Retry::DEFAULT)
    }

    #[test]
    fn unknown_schemes_are_skipped_and_empty_tiers_dropped() {
        let tiers = vec![
            vec!["wss://x:1".to_string()],
            vec!["udp://y:1".into(), "ftp://q".into(), "https://z/a".into()],
        ];
        assert_eq!(
            usable_tiers(&tiers),
            vec![vec!["udp://y:1".to_string(), "https://z/a".to_string()]]
        );
    }
}
