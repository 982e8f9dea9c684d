//! The one peer listener of a session: accepts connections, reads the BitTorrent
//! handshake and hands the connection to the torrent its info hash names; connections
//! for unknown torrents are closed right after the handshake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpbt_proto::wire::{Handshake, HANDSHAKE_LEN};
use kpbt_proto::InfoHash;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, warn};

/// A connection whose handshake has not arrived by then is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections waiting for their handshake at once; beyond this, new connections are
/// closed at once, so a flood of silent connections costs bounded memory.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// Handshaken connections queued for one torrent; its task drains them promptly, so a
/// full queue means the torrent is overwhelmed and the newcomer is dropped.
pub(crate) const INCOMING_QUEUE: usize = 64;

/// A connection whose handshake named one of our torrents.
pub(crate) struct Incoming {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub handshake: Handshake,
}

/// Which torrent task receives connections for which info hash.
#[derive(Clone, Default)]
pub(crate) struct Router {
    routes: Arc<Mutex<HashMap<InfoHash, mpsc::Sender<Incoming>>>>,
}

impl Router {
    /// Routes `info_hash` to a new queue and returns its receiving end; replaces an
    /// earlier registration (a torrent that is restarted).
    pub(crate) fn register(&self, info_hash: InfoHash) -> mpsc::Receiver<Incoming> {
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        self.lock().insert(info_hash, tx);
        rx
    }

    pub(crate) fn unregister(&self, info_hash: InfoHash) {
        self.lock().remove(&info_hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, mpsc::Sender<Incoming>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn route(&self, incoming: Incoming) {
        let ih = incoming.handshake.info_hash;
        let Some(tx) = self.lock().get(&ih).cloned() else {
            return debug!(addr = %incoming.addr, %ih, "dropping connection: no such torrent here");
        };
        if let Err(e) = tx.try_send(incoming) {
            debug!(%ih, "dropping connection: torrent busy or stopped ({e})");
        }
    }
}

/// Accepts until `shutdown`, reading each handshake on its own task (bounded).
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "accepting peers");
    }
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        tokio::select! {
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            acc = listener.accept() => match acc {
                Ok((stream, addr)) => {
                    let Ok(permit) = pending.clone().try_acquire_owned() else {
                        debug!(%addr, "dropping connection: too many handshakes in progress");
                        continue;
                    };
                    let router = router.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        // An IPv4 peer on the dual-stack socket shows as ::ffff:a.b.c.d;
                        // bans and per-IP limits want the plain IPv4 address.
                        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake(stream)).await {
                            Ok(Ok((stream, handshake))) => router.route(Incoming { stream, addr, handshake }),
                            Ok(Err(e)) => debug!(%addr, "handshake failed: {e}"),
                            Err(_) => debug!(%addr, "handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn read_handshake(mut stream: TcpStream) -> Result<(TcpStream, Handshake), String> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let hs = Handshake::decode(&buf).map_err(|e| e.to_string())?;
    Ok((stream, hs))
}
