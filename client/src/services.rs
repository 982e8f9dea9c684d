//! The services a session shares among all its torrents: one peer id, one peer
//! listener (routes by info hash), one HTTP client for trackers and one for web seeds,
//! host-wide rate limits and one pool of hashing slots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kpbt_proto::PeerId;
use tokio::sync::Semaphore;

use crate::listener::Router;
use crate::ratelimit::RateLimiter;
use crate::tracker::REQUEST_TIMEOUT;

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
    /// Spread each torrent's announces by a few percent of the interval (a session
    /// with many torrents must not hit the tracker in lockstep).
    pub announce_jitter: bool,
}

impl Services {
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
        })
    }
}
