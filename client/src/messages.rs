//! The messages between a torrent's task, its piece state and its peer tasks: commands
//! to one connection, events for the torrent task, and the counters a connection
//! publishes.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kpbt_proto::PeerId;
use tokio::sync::mpsc;

use crate::picker::Block;
use crate::storage::StorageError;

/// Commands from the torrent task (and other peers' tasks) to one connection.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    Have(u32),
    Choke,
    Unchoke,
    /// Another peer delivered this block first (endgame).
    Cancel(Block),
    Disconnect(&'static str),
}

/// Counters the torrent task reads for the choker and progress display.
#[derive(Default, Debug)]
pub(crate) struct PeerStats {
    pub downloaded: AtomicU64,
    pub uploaded: AtomicU64,
    pub(crate) interested: AtomicBool,
    /// We let it download (we are not choking it).
    pub(crate) unchoked_by_us: AtomicBool,
    /// It lets us download.
    pub(crate) unchoking_us: AtomicBool,
    pub(crate) am_interested: AtomicBool,
}

impl PeerStats {
    pub fn peer_interested(&self) -> bool {
        self.interested.load(Ordering::Relaxed)
    }

    /// (we choke it, it chokes us, we are interested) for the session API's peer list.
    pub fn flags(&self) -> (bool, bool, bool) {
        (
            !self.unchoked_by_us.load(Ordering::Relaxed),
            !self.unchoking_us.load(Ordering::Relaxed),
            self.am_interested.load(Ordering::Relaxed),
        )
    }
}

/// A connected peer as the piece state knows it.
pub(crate) struct PeerEntry {
    pub addr: SocketAddr,
    /// Where the peer accepts connections, when known (we dialed it): what PEX tells
    /// other peers.
    pub listen_addr: Option<SocketAddr>,
    pub peer_id: PeerId,
    pub cmd: mpsc::UnboundedSender<PeerCmd>,
    pub stats: Arc<PeerStats>,
}

/// What the hashing pipeline and peers tell the torrent task.
pub(crate) enum Event {
    PieceChecked {
        piece: u32,
        ok: bool,
        senders: Vec<Option<IpAddr>>,
        block_hashes: Option<Vec<[u8; 20]>>,
    },
    StorageFailed(StorageError),
    /// A peer's interest in us changed: re-run the choker now rather than in 10 s.
    Interest,
    /// Peer addresses learned from a peer (PEX), to dial.
    Peers(Vec<SocketAddr>),
}
