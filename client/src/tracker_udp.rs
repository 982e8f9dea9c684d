//! BEP 15 client side: announce and scrape over `udp://` trackers, with BEP 41 URL data
//! (so `udp://host:port/announce/<passkey>` reaches the tracker), connection-id reuse for
//! the minute BEP 15 allows, and the BEP's 15·2^n s retransmission, bounded by
//! [`Retry::tries`] so a dead tracker cannot stall an announce round for long.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use kpbt_proto::announce::{AnnounceRequest, ScrapeStats};
use kpbt_proto::tracker_reply::{AnnounceReply, DEFAULT_INTERVAL};
use kpbt_proto::udp::{
    self, ConnectionId, PeerFamily, Response, ResponseError, ScrapeRequest, TransactionId,
};
use kpbt_proto::InfoHash;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How long we reuse a connection id (BEP 15: one minute; trackers accept it for two).
pub const CONNECTION_ID_REUSE: Duration = Duration::from_secs(60);

/// Retransmission: wait `first_timeout · 2^n` after the n-th send (n from 0), at most
/// `tries` sends per exchange (connect, announce and scrape are one exchange each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub first_timeout: Duration,
    pub tries: u32,
}

impl Retry {
    /// BEP 15's 15 s, then 30 s: a tracker that never answers costs 45 s, not the BEP's
    /// hour of retrying, before the next tracker in the announce list is tried.
    pub const DEFAULT: Retry = Retry {
        first_timeout: Duration::from_secs(15),
        tries: 2,
    };

    /// How long to wait for an answer after send number `n` (0-based). The BEP caps n at 8.
    pub fn timeout(&self, n: u32) -> Duration {
        self.first_timeout * 2u32.pow(n.min(8))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UdpTrackerError {
    #[error("not a udp://host:port URL")]
    BadUrl,
    #[error("resolving the tracker: {0}")]
    Resolve(io::Error),
    #[error("the tracker's host name has no address")]
    NoAddress,
    #[error("UDP: {0}")]
    Io(#[from] io::Error),
    #[error("no answer after {0} tries")]
    Timeout(u32),
    #[error("tracker refused: {0}")]
    Refused(String),
    #[error("malformed reply: {0}")]
    Reply(#[from] ResponseError),
    #[error("reply of the wrong kind")]
    WrongKind,
}

/// A `udp://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, sent as BEP 41 URL data (empty: nothing sent).
    pub path_and_query: String,
}

impl UdpUrl {
    pub fn parse(url: &str) -> Result<Self, UdpTrackerError> {
        let rest = url.strip_prefix("udp://").ok_or(UdpTrackerError::BadUrl)?;
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, port) = v6.split_once("]:").ok_or(UdpTrackerError::BadUrl)?;
                (host, port)
            }
            None => authority.rsplit_once(':').ok_or(UdpTrackerError::BadUrl)?,
        };
        let port: u16 = port.parse().map_err(|_| UdpTrackerError::BadUrl)?;
        if host.is_empty() || port == 0 {
            return Err(UdpTrackerError::BadUrl);
        }
        Ok(UdpUrl {
            host: host.to_owned(),
            port,
            path_and_query: path.to_owned(),
        })
    }
}

/// UDP tracker state of one torrent's announcer: cached connection ids and the key.
pub struct UdpClient {
    ids: HashMap<SocketAddr, (ConnectionId, Instant)>,
    key: u32,
    retry: Retry,
}

/// One exchange's socket, connected to the tracker so only its datagrams reach us.
struct Conn {
    socket: UdpSocket,
    addr: SocketAddr,
    family: PeerFamily,
    url: UdpUrl,
}

impl UdpClient {
    pub fn new(retry: Retry) -> Self {
        UdpClient {
            ids: HashMap::new(),
            key: rand::random(),
            retry,
        }
    }

    async fn open(&self, url: &str) -> Result<Conn, UdpTrackerError> {
        let url = UdpUrl::parse(url)?;
        let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(UdpTrackerError::Resolve)?
            .next()
            .ok_or(UdpTrackerError::NoAddress)?;
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(addr).await?;
        Ok(Conn {
            socket,
            addr,
            family: PeerFamily::of(addr.ip()),
            url,
        })
    }

    /// Sends `d` (whose bytes 12..16 are the transaction id `tid`) until an answer with
    /// that transaction id arrives or the tries run out. Datagrams with other ids (late
    /// answers to earlier tries, strays) are skipped.
    async fn exchange(
        &self,
        c: &Conn,
        d: &[u8],
        tid: TransactionId,
    ) -> Result<Response, UdpTrackerError> {
        let mut buf = vec![0u8; udp::MAX_DATAGRAM];
        for n in 0..self.retry.tries {
            // A closed port answers with ICMP, which a connected socket reports as an
            // error here or on recv: that tracker is down, no point waiting.
            c.socket.send(d).await?;
            let deadline = Instant::now() + self.retry.timeout(n);
            loop {
                let len = match tokio::time::timeout_at(deadline, c.socket.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(r) => r?,
                };
                match udp::parse_response(&buf[..len], c.family) {
                    Ok(r) if r.transaction_id() == tid => return Ok(r),
                    Ok(_) => continue,
                    Err(e) => {
                        // Only trust a malformed reply that names our transaction.
                        if len >= 8 && buf[4..8] == tid.0.to_be_bytes() {
                            return Err(e.into());
                        }
                    }
                }
            }
        }
        Err(UdpTrackerError::Timeout(self.retry.tries))
    }

    /// A connection id for `c`: the cached one while it is under a minute old, else a
    /// fresh one from a connect exchange.
    async fn connection_id(&mut self, c: &Conn) -> Result<ConnectionId, UdpTrackerError> {
        if let Some(&(id, got)) = self.ids.get(&c.addr) {
            if got.elapsed() < CONNECTION_ID_REUSE {
                return Ok(id);
            }
        }
        let tid = TransactionId(rand::random());
        let d = udp::encode_connect_request(tid);
        match self.exchange(c, &d, tid).await? {
            Response::Connect { connection_id, .. } => {
                self.ids.insert(c.addr, (connection_id, Instant::now()));
                Ok(connection_id)
            }
            Response::Error { message, .. } => Err(UdpTrackerError::Refused(message)),
            _ => Err(UdpTrackerError::WrongKind),
        }
    }

    /// One announce to the `udp://` tracker `url`.
    pub async fn announce(
        &mut self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceReply, UdpTrackerError> {
        let c = self.open(url).await?;
        let result = self.announce_on(&c, req).await;
        if result.is_err() {
            // The id may be what the tracker objected to: get a fresh one next time.
            self.ids.remove(&c.addr);
        }
        result
    }

    async fn announce_on(
        &mut self,
        c: &Conn,
        req: &AnnounceRequest,
    ) -> Result<AnnounceReply, UdpTrackerError> {
        let connection_id = self.connection_id(c).await?;
        let mut options = Vec::new();
        udp::encode_url_data(&mut options, c.url.path_and_query.as_bytes());
        let tid = TransactionId(rand::random());
        let a = udp::AnnounceRequest {
            connection_id,
            transaction_id: tid,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: None,
            key: self.key,
            num_want: req.numwant,
            port: req.port,
            options: &options,
        };
        let mut d = Vec::with_capacity(udp::ANNOUNCE_LEN + options.len());
        udp::encode_announce_request(&mut d, &a);
        match self.exchange(c, &d, tid).await? {
            Response::Announce(r) => Ok(AnnounceReply {
                // 0 would have us re-announce in a tight loop.
                interval: if r.interval == 0 {
                    DEFAULT_INTERVAL
                } else {
                    r.interval
                },
                min_interval: None,
                complete: Some(r.seeders),
                incomplete: Some(r.leechers),
                tracker_id: None,
                warning: None,
                peers: r.peers,
            }),
            Response::Error { message, .. } => Err(UdpTrackerError::Refused(message)),
            _ => Err(UdpTrackerError::WrongKind),
        }
    }

    /// Scrapes up to [`udp::MAX_SCRAPE_HASHES`] torrents (more are cut off); figures in
    /// request order.
    pub async fn scrape(
        &mut self,
        url: &str,
        hashes: &[InfoHash],
    ) -> Result<Vec<ScrapeStats>, UdpTrackerError> {
        let c = self.open(url).await?;
        let connection_id = self.connection_id(&c).await?;
        let raw: Vec<u8> = hashes
            .iter()
            .take(udp::MAX_SCRAPE_HASHES)
            .flat_map(|h| h.0)
            .collect();
        let tid = TransactionId(rand::random());
        let s = ScrapeRequest::new(connection_id, tid, &raw).ok_or(UdpTrackerError::BadUrl)?;
        let mut d = Vec::new();
        udp::encode_scrape_request(&mut d, &s);
        match self.exchange(&c, &d, tid).await {
            Ok(Response::Scrape { stats, .. }) if stats.len() == s.len() => Ok(stats),
            Ok(Response::Error { message, .. }) => {
                self.ids.remove(&c.addr);
                Err(UdpTrackerError::Refused(message))
            }
            Ok(_) => Err(UdpTrackerError::WrongKind),
            Err(e) => {
                self.ids.remove(&c.addr);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[path = "tracker_udp_tests.rs"]
mod tests;
