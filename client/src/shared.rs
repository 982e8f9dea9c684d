//! A torrent's piece state, `Shared` (behind one short mutex, used directly by peer
//! tasks so a block costs no channel round trip), the hashing/writing pipeline off the
//! async threads with bounded concurrency (pieces from peers and whole pieces from the
//! origin alike), and smart banning of peers that send bad data.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kpbt_proto::{InfoHash, PeerId};
use sha1::{Digest, Sha1};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::direct_io::PieceBuffer;
use crate::messages::{Event, PeerCmd, PeerEntry};
use crate::picker::{Arrival, Block, OriginScope, PeerKey, Picker, BLOCK_LEN};
use crate::ratelimit::StackedLimit;
use crate::services::Services;
use crate::storage::Storage;

/// Pieces of one torrent being hashed/written at once (and the session's pool bounds
/// all torrents together); a peer that completes a piece waits for a slot, which stops
/// it reading from its socket: that is the backpressure bounding memory.
const HASH_SLOTS: usize = 4;
/// Default cap on simultaneous incoming connections from one IP. Generous, because a
/// private swarm may sit behind one NAT or run several peers on one host, but it stops
/// one address from taking every connection slot.
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 16;
/// Recycled piece buffers kept for reuse.
const SPARE_BUFFERS: usize = 2 * HASH_SLOTS;

struct PieceBuf {
    /// Page-aligned so the verified piece can be written with O_DIRECT.
    data: PieceBuffer,
    /// Who sent each block, for attributing a hash failure.
    senders: Vec<Option<IpAddr>>,
}

/// A failed attempt at a piece: each block's hash and sender. When the piece later
/// verifies, senders whose block differed from the good data are banned ("smart ban").
type FailedAttempt = Vec<(u32, IpAddr, [u8; 20])>;

pub(crate) struct State {
    pub picker: Picker,
    buffers: HashMap<u32, PieceBuf>,
    /// Piece buffers returned after hashing, reused so steady-state downloading
    /// allocates (and page-faults in) no new memory.
    spare: Vec<PieceBuffer>,
    pub peers: HashMap<PeerKey, PeerEntry>,
    pub banned: HashSet<IpAddr>,
    failed: HashMap<u32, Vec<FailedAttempt>>,
}

/// Everything peer tasks and the torrent task share.
pub(crate) struct Shared {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    /// BEP 27: peers come from the trackers only (no PEX).
    pub private: bool,
    pub storage: Arc<Storage>,
    pub piece_count: u32,
    pub total_len: u64,
    state: Mutex<State>,
    hash_slots: Arc<Semaphore>,
    /// The session's hashing pool, shared by every torrent.
    hash_pool: Arc<Semaphore>,
    /// Serialises resume saves of this torrent (the periodic and the final one).
    pub resume_lock: Mutex<()>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Verified payload bytes this session.
    pub downloaded: AtomicU64,
    /// The part of `downloaded` that came from peers / from the origin (web seeds).
    pub peer_bytes: AtomicU64,
    pub origin_bytes: AtomicU64,
    /// Raw block bytes received (including duplicates and failed pieces).
    pub received: AtomicU64,
    pub uploaded: AtomicU64,
    pub verified_bytes: AtomicU64,
    pub max_peers: usize,
    /// Connections accepted from one IP at once (`Config::max_connections_per_ip`).
    pub max_connections_per_ip: AtomicUsize,
    pub next_key: AtomicU64,
    pub peer_count: AtomicUsize,
    pub status: Mutex<Option<String>>,
    /// Why the torrent task stopped on its own (a disk error), for the session API.
    failure: Mutex<Option<String>>,
    /// Downloaded pieces that passed / failed their hash check this session (metrics).
    pub pieces_verified: AtomicU64,
    pub hash_failures: AtomicU64,
    /// Piece payload limits: the host's (`--upload-limit`, `--download-limit`) and
    /// this torrent's own on top.
    pub upload_limit: StackedLimit,
    pub download_limit: StackedLimit,
    /// The info dictionary as in the .torrent, served to magnet clients (BEP 9).
    pub metadata: Arc<[u8]>,
}

/// A piece whose last block just arrived: to be hashed and written.
pub(crate) struct CompletedPiece {
    piece: u32,
    buf: PieceBuf,
    had_failures: bool,
}

impl Shared {
    pub(crate) fn new(
        info_hash: InfoHash,
        services: &Services,
        storage: Arc<Storage>,
        picker: Picker,
        max_peers: usize,
        events: mpsc::UnboundedSender<Event>,
    ) -> Shared {
        let layout = storage.layout();
        let piece_count = layout.piece_count();
        let total_len = layout.total_len;
        let verified_bytes: u64 = picker
            .have_set()
            .iter_set()
            .map(|p| layout.piece_size(p) as u64)
            .sum();
        Shared {
            info_hash,
            our_id: services.peer_id,
            private: false,
            piece_count,
            total_len,
            storage,
            state: Mutex::new(State {
                picker,
                buffers: HashMap::new(),
                spare: Vec::new(),
                peers: HashMap::new(),
                banned: HashSet::new(),
                failed: HashMap::new(),
            }),
            hash_slots: Arc::new(Semaphore::new(HASH_SLOTS)),
            hash_pool: services.hash_pool.clone(),
            resume_lock: Mutex::new(()),
            events,
            downloaded: AtomicU64::new(0),
            peer_bytes: AtomicU64::new(0),
            origin_bytes: AtomicU64::new(0),
            received: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            verified_bytes: AtomicU64::new(verified_bytes),
            max_peers,
            max_connections_per_ip: AtomicUsize::new(DEFAULT_MAX_CONNECTIONS_PER_IP),
            next_key: AtomicU64::new(1),
            peer_count: AtomicUsize::new(0),
            status: Mutex::new(None),
            failure: Mutex::new(None),
            pieces_verified: AtomicU64::new(0),
            hash_failures: AtomicU64::new(0),
            upload_limit: StackedLimit::new(services.upload_limit.clone()),
            download_limit: StackedLimit::new(services.download_limit.clone()),
            metadata: Arc::from(&[][..]),
        }
    }

    /// Waits until no piece is being hashed/written. Called once peers are gone, so
    /// the final resume save sees every write that will ever happen.
    pub(crate) async fn wait_writes_done(&self) {
        let _ = self.hash_slots.acquire_many(HASH_SLOTS as u32).await;
    }

    /// Locks the piece state. Poisoning is ignored: the state has no invariants that a
    /// panicking holder could half-break in a way worse than stopping the client.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.lock().picker.is_complete()
    }

    pub(crate) fn left(&self) -> u64 {
        self.total_len
            .saturating_sub(self.verified_bytes.load(Ordering::Relaxed))
    }

    pub(crate) fn set_failure(&self, why: String) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_status(&self, s: Option<String>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Stores a block that `peer` sent in answer to our request. `Err` means the peer
    /// misbehaved (wrong length) and must be dropped.
    pub(crate) fn on_block(
        &self,
        peer: PeerKey,
        ip: IpAddr,
        b: Block,
        data: &[u8],
    ) -> Result<Option<CompletedPiece>, &'static str> {
        let mut st = self.lock();
        if data.len() as u32 != st.picker.block_len(b) {
            return Err("piece message with a length other than requested");
        }
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let Arrival::New {
            piece_complete,
            cancel,
        } = st.picker.block_received(peer, b)
        else {
            return Ok(None);
        };
        for k in cancel {
            if let Some(e) = st.peers.get(&k) {
                let _ = e.cmd.send(PeerCmd::Cancel(b));
            }
        }
        let size = st.picker.piece_size(b.piece) as usize;
        let blocks = st.picker.blocks_in(b.piece) as usize;
        let st = &mut *st;
        let buf = st.buffers.entry(b.piece).or_insert_with(|| {
            // Every byte is overwritten by a received block before the piece is hashed,
            // so a recycled buffer needs no zeroing.
            let mut data = st.spare.pop().unwrap_or_default();
            data.reset(size);
            PieceBuf {
                data,
                senders: vec![None; blocks],
            }
        });
        let begin = b.begin() as usize;
        buf.data.as_mut_slice()[begin..begin + data.len()].copy_from_slice(data);
        buf.senders[b.block as usize] = Some(ip);
        if !piece_complete {
            return Ok(None);
        }
        let buf = st.buffers.remove(&b.piece).expect("just inserted");
        let had_failures = st.failed.contains_key(&b.piece);
        Ok(Some(CompletedPiece {
            piece: b.piece,
            buf,
            had_failures,
        }))
    }

    /// Hashes and writes a completed piece on a blocking thread; waits for a free slot
    /// first (backpressure).
    pub(crate) async fn submit(self: &Arc<Self>, done: CompletedPiece) {
        let _ = self.check_in_background(done).await;
    }

    /// Reserves a run of pieces for the origin ([`Picker::reserve_for_origin`]); the
    /// blocks peers had delivered of a stalled piece are let go with its buffer.
    pub(crate) fn reserve_for_origin(
        &self,
        after: Option<u32>,
        max: u32,
        scope: OriginScope,
    ) -> Option<std::ops::Range<u32>> {
        let mut st = self.lock();
        let run = st.picker.reserve_for_origin(after, max, scope)?;
        for p in run.clone() {
            if let Some(buf) = st.buffers.remove(&p) {
                if st.spare.len() < SPARE_BUFFERS {
                    st.spare.push(buf.data);
                }
            }
        }
        Some(run)
    }

    /// A buffer for a whole piece of `size` bytes from the origin (recycled when one is
    /// spare). Its bytes are stale: the caller overwrites all of them.
    pub(crate) fn origin_buffer(&self, size: usize) -> PieceBuffer {
        let mut data = self.lock().spare.pop().unwrap_or_default();
        data.reset(size);
        data
    }

    /// Hands a whole piece fetched from the origin to the same hash/write pipeline as a
    /// peer's, with no peer as its sender (so no one can be banned for it, while bad
    /// blocks peers sent earlier are still caught by smart ban). The piece must be
    /// reserved with [`Picker::reserve_for_origin`]; `None` when it is not (any more).
    /// Waits for a hashing slot; the handle yields whether the piece verified.
    pub(crate) async fn submit_origin(
        self: &Arc<Self>,
        piece: u32,
        data: PieceBuffer,
    ) -> Option<JoinHandle<Option<bool>>> {
        let (blocks, had_failures) = {
            let mut st = self.lock();
            if !st.picker.origin_fetched(piece) {
                return None;
            }
            (
                st.picker.blocks_in(piece) as usize,
                st.failed.contains_key(&piece),
            )
        };
        let done = CompletedPiece {
            piece,
            buf: PieceBuf {
                data,
                senders: vec![None; blocks],
            },
            had_failures,
        };
        self.check_in_background(done).await
    }

    /// Waits for a hashing slot, then hashes and writes `done` on a blocking thread and
    /// tells the torrent task (`Event::PieceChecked`). The handle yields whether it
    /// verified (`None`: storage failed, or no slot because the torrent is stopping).
    async fn check_in_background(
        self: &Arc<Self>,
        done: CompletedPiece,
    ) -> Option<JoinHandle<Option<bool>>> {
        let permit = self.hash_slots.clone().acquire_owned().await.ok()?;
        let pool_permit = self.hash_pool.clone().acquire_owned().await.ok()?;
        let shared = self.clone();
        Some(tokio::task::spawn_blocking(move || {
            let CompletedPiece {
                piece,
                buf,
                had_failures,
            } = done;
            let ok = shared.storage.hash_ok(piece, buf.data.as_slice());
            if ok {
                if let Err(e) = shared.storage.write_piece(piece, buf.data.as_slice()) {
                    let _ = shared.events.send(Event::StorageFailed(e));
                    return None;
                }
            }
            let block_hashes = (!ok || had_failures).then(|| {
                buf.data
                    .as_slice()
                    .chunks(BLOCK_LEN as usize)
                    .map(|c| Sha1::digest(c).into())
                    .collect()
            });
            let _ = shared.events.send(Event::PieceChecked {
                piece,
                ok,
                senders: buf.senders,
                block_hashes,
            });
            let mut st = shared.lock();
            if st.spare.len() < SPARE_BUFFERS {
                st.spare.push(buf.data);
            }
            drop(st);
            drop(pool_permit);
            drop(permit);
            Some(ok)
        }))
    }

    /// Bans `ip` for the session and disconnects every peer at it.
    fn ban(st: &mut State, ip: IpAddr) {
        if st.banned.insert(ip) {
            warn!(%ip, "banning peer: it sent data that failed the piece hash");
        }
        for e in st.peers.values() {
            if e.addr.ip() == ip {
                let _ = e.cmd.send(PeerCmd::Disconnect("banned: sent corrupt data"));
            }
        }
    }

    /// Applies a hash check's result. A piece with no sender at all came whole from the
    /// origin (`submit_origin`): counted apart, and nobody is banned when it fails (the
    /// web seed task backs the URL off itself).
    pub(crate) fn on_checked(
        &self,
        piece: u32,
        ok: bool,
        senders: Vec<Option<IpAddr>>,
        hashes: Option<Vec<[u8; 20]>>,
    ) {
        let from_origin = senders.iter().all(Option::is_none);
        let mut st = self.lock();
        if ok {
            st.picker.piece_verified(piece);
            let size = st.picker.piece_size(piece) as u64;
            self.verified_bytes.fetch_add(size, Ordering::Relaxed);
            self.downloaded.fetch_add(size, Ordering::Relaxed);
            let source = if from_origin {
                &self.origin_bytes
            } else {
                &self.peer_bytes
            };
            source.fetch_add(size, Ordering::Relaxed);
            self.pieces_verified.fetch_add(1, Ordering::Relaxed);
            if let (Some(attempts), Some(good)) = (st.failed.remove(&piece), hashes) {
                for attempt in attempts {
                    for (block, ip, h) in attempt {
                        if good.get(block as usize) != Some(&h) {
                            Self::ban(&mut st, ip);
                        }
                    }
                }
            }
            for e in st.peers.values() {
                let _ = e.cmd.send(PeerCmd::Have(piece));
            }
        } else {
            st.picker.piece_failed(piece);
            self.hash_failures.fetch_add(1, Ordering::Relaxed);
            let hashes = hashes.unwrap_or_default();
            let ips: HashSet<IpAddr> = senders.iter().flatten().copied().collect();
            if from_origin {
                debug!(piece, "piece from the origin failed its hash check");
                return;
            }
            warn!(piece, senders = ?ips, "piece failed its hash check; fetching it again");
            if ips.len() == 1 {
                // One sender for the whole piece: it is certainly the culprit.
                Self::ban(&mut st, *ips.iter().next().expect("len 1"));
            } else {
                let attempt: FailedAttempt = senders
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| Some((i as u32, (*s)?, *hashes.get(i)?)))
                    .collect();
                st.failed.entry(piece).or_default().push(attempt);
            }
        }
    }
}
