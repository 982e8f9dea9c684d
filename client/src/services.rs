//! The services a session shares among all its torrents: one peer id, one peer
//! listener (routes by info hash), one HTTP client for trackers and one for web seeds,
//! host-wide rate limits, one pool of hashing slots and one of origin requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kpbt_proto::PeerId;
use tokio::sync::Semaphore;

use crate::listener::Router;
use crate::ratelimit::RateLimiter;
use crate::tracker::REQUEST_TIMEOUT;

/// Memory for a one-shot torrent's in-flight piece buffers.
const ONE_TORRENT_PIECE_MEMORY: u64 = 24 * 1024 * 1024;
/// Memory for in-flight piece buffers of a whole session, shared by its active
/// downloads (4 by default: 24 MiB each, as a one-shot torrent gets).
const SESSION_PIECE_MEMORY: u64 = 96 * 1024 * 1024;
/// A torrent of a session never gets less than this share.
const MIN_PIECE_MEMORY_PER_TORRENT: u64 = 8 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Services {
    pub peer_id: PeerId,
    /// Where the listener accepts peers (its port is what trackers are told).
    pub listen_addr: SocketAddr,
    pub router: Router,
    pub http: reqwest::Client,
    /// For web seeds and origins: no overall timeout (a range may be megabytes; the
    /// web seed task times headers and body gaps itself).
    pub origin_http: reqwest::Client,
    pub upload_limit: Arc<RateLimiter>,
    pub download_limit: Arc<RateLimiter>,
    /// Pieces hashed/written at once across every torrent (blocking threads).
    pub hash_pool: Arc<Semaphore>,
    /// Memory for one downloading torrent's in-flight piece buffers (bounds how many
    /// pieces it downloads at once): the session's budget shared by its active downloads.
    pub piece_memory_per_torrent: u64,
    /// Spread each torrent's announces by a few percent of the interval (a session
    /// with many torrents must not hit the tracker in lockstep).
    pub announce_jitter: bool,
    /// Requests to web seeds and origins in flight across a session's torrents (its
    /// `origin_connections`): a host with many torrents on one origin must not open
    /// that many times more. None for a one-shot torrent, bounded by its own limit.
    pub origin_slots: Option<Arc<Semaphore>>,
}

impl Services {
    /// Shares the piece memory budget among `active_downloads` torrents.
    pub(crate) fn share_piece_memory(&mut self, active_downloads: usize) {
        self.piece_memory_per_torrent = (SESSION_PIECE_MEMORY / active_downloads.max(1) as u64)
            .max(MIN_PIECE_MEMORY_PER_TORRENT);
    }

    pub(crate) fn new(
        peer_id: PeerId,
        listen_addr: SocketAddr,
        upload_limit: Option<u64>,
        download_limit: Option<u64>,
    ) -> Result<Services, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("kpbt/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let origin_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kpbt/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Services {
            peer_id,
            listen_addr,
            router: Router::default(),
            http,
            origin_http,
            upload_limit: Arc::new(RateLimiter::new(upload_limit)),
            download_limit: Arc::new(RateLimiter::new(download_limit)),
            hash_pool: Arc::new(Semaphore::new(2 * cores)),
            announce_jitter: false,
            piece_memory_per_torrent: ONE_TORRENT_PIECE_MEMORY,
            origin_slots: None,
        })
    }
}
