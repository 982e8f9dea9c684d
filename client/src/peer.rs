//! One peer connection: handshake, the message loop (download pipeline, uploads served
//! from disk off the async threads, keep-alives, timeouts) and cleanup. Everything the
//! remote sends is untrusted: frames are size-bounded and protocol violations end the
//! connection instead of panicking or allocating without bound.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kpbt_proto::wire::{self, Bitfield, BlockRequest, Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::PeerId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
// tokio's clock, so keep-alive and timeout logic can be tested with paused time.
use tokio::time::Instant;
use tracing::{debug, trace};

use crate::listener::{Incoming, HANDSHAKE_TIMEOUT};
use crate::messages::{Event, PeerCmd, PeerEntry, PeerStats};
use crate::peer_ext::{self, PeerExtensions};
use crate::picker::{Block, PeerKey, BLOCK_LEN};
use crate::shared::Shared;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_AFTER: Duration = Duration::from_secs(90);
/// A peer that sends nothing (not even a keep-alive) for this long is dropped.
const SILENCE_LIMIT: Duration = Duration::from_secs(180);
/// A peer that sits on our requests this long without sending data is "snubbed": its
/// requests are handed to other peers.
const SNUB_AFTER: Duration = Duration::from_secs(60);
/// Small floor (and start): requests queued at a slow (e.g. upload-limited) seeder are
/// committed long before they are served, so a deep queue there makes leechers fetch
/// the same pieces from it instead of from each other. Fast peers grow it within 1 s.
const MIN_PIPELINE: usize = 16;
const MAX_PIPELINE: usize = 512;
/// Queued upload requests per peer; beyond this, requests are dropped (a sane peer
/// never pipelines this deep without the extension protocol).
const MAX_UPLOAD_QUEUE: usize = 2048;
/// Blocks read from disk per batch for one peer.
const UPLOAD_BATCH: usize = 16;
/// Don't read more from disk while this much is waiting to be written to the socket.
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Late answers to cancelled requests are expected; more than this many unsolicited
/// blocks beyond those means a misbehaving peer.
const MAX_UNSOLICITED: u32 = 64;
/// Allowed-fast pieces kept per peer (libtorrent offers 5 by default, BEP 6 suggests 10).
const MAX_ALLOWED_FAST: usize = 32;
const READ_CHUNK: usize = 256 * 1024;

pub(crate) async fn run_outgoing(shared: Arc<Shared>, addr: SocketAddr) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return debug!(%addr, "connect failed: {e}"),
        Err(_) => return debug!(%addr, "connect timed out"),
    };
    run(shared, stream, addr, None).await
}

/// A connection the session's listener accepted and routed here by its handshake.
pub(crate) async fn run_incoming(shared: Arc<Shared>, incoming: Incoming) {
    let Incoming {
        stream,
        addr,
        handshake,
    } = incoming;
    run(shared, stream, addr, Some(handshake)).await
}

/// Exchanges handshakes (`theirs` is already read for incoming connections); returns
/// the peer's id and whether it speaks BEP 10 and BEP 6 (the Fast extension).
async fn handshake(
    shared: &Shared,
    stream: &mut TcpStream,
    theirs: Option<Handshake>,
) -> Result<(PeerId, bool, bool), String> {
    let ours = Handshake::new(shared.info_hash, shared.our_id)
        .with_extension_protocol()
        .with_fast()
        .encode();
    let outgoing = theirs.is_none();
    if outgoing {
        stream.write_all(&ours).await.map_err(|e| e.to_string())?;
    }
    let theirs = match theirs {
        Some(t) => t,
        None => {
            let mut buf = [0u8; HANDSHAKE_LEN];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            Handshake::decode(&buf).map_err(|e| e.to_string())?
        }
    };
    if theirs.info_hash != shared.info_hash {
        return Err(format!("wrong info hash {}", theirs.info_hash));
    }
    if !outgoing {
        stream.write_all(&ours).await.map_err(|e| e.to_string())?;
    }
    Ok((
        theirs.peer_id,
        theirs.supports_extensions(),
        theirs.supports_fast(),
    ))
}

async fn run(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    addr: SocketAddr,
    theirs: Option<Handshake>,
) {
    let _ = stream.set_nodelay(true);
    let outgoing = theirs.is_none();
    let (peer_id, extensions, fast) = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&shared, &mut stream, theirs),
    )
    .await
    {
        Ok(Ok(theirs)) => theirs,
        Ok(Err(e)) => return debug!(%addr, "handshake failed: {e}"),
        Err(_) => return debug!(%addr, "handshake timed out"),
    };
    let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(PeerStats::default());
    // Register and snapshot our bitfield under one lock so no Have is missed in between.
    let have_bytes = {
        let mut st = shared.lock();
        let reason = if peer_id == shared.our_id {
            Some("connected to ourselves")
        } else if st.banned.contains(&addr.ip()) {
            Some("banned")
        } else if st.peers.values().any(|e| e.peer_id == peer_id) {
            Some("duplicate connection")
        } else if st.peers.len() >= shared.max_peers + 5 {
            Some("too many connections")
        } else {
            None
        };
        if let Some(r) = reason {
            return debug!(%addr, "dropping connection: {r}");
        }
        st.peers.insert(
            key,
            PeerEntry {
                addr,
                listen_addr: outgoing.then_some(addr),
                peer_id,
                cmd: cmd_tx,
                stats: stats.clone(),
            },
        );
        let have = st.picker.have_count();
        if fast && have == shared.piece_count {
            Some(Message::HaveAll)
        } else if have == 0 {
            fast.then_some(Message::HaveNone)
        } else {
            Some(Message::Bitfield(Bytes::copy_from_slice(
                st.picker.have_set().as_bytes(),
            )))
        }
    };
    shared.peer_count.fetch_add(1, Ordering::Relaxed);
    debug!(%addr, %peer_id, outgoing, "peer connected");
    let mut conn = Conn::new(shared.clone(), key, addr, stats, fast);
    if extensions {
        // BEP 10: the extension handshake goes right after the BitTorrent one.
        peer_ext::our_handshake(Some(shared.metadata.len()), !shared.private)
            .encode(&mut conn.wbuf);
    }
    // A bitfield, or with the Fast extension have-all / have-none.
    if let Some(m) = have_bytes {
        m.encode(&mut conn.wbuf);
    }
    let reason = conn.run(stream, cmd_rx).await;
    debug!(%addr, "peer disconnected: {reason}");
    conn.cleanup();
    shared.peer_count.fetch_sub(1, Ordering::Relaxed);
}

/// Blocks read from disk for one peer: `None` data means the read failed.
type UploadBatch = Vec<(BlockRequest, Option<Vec<u8>>)>;

struct Conn {
    shared: Arc<Shared>,
    key: PeerKey,
    addr: SocketAddr,
    ip: IpAddr,
    /// Both sides set the Fast extension bit (BEP 6).
    fast: bool,
    stats: Arc<PeerStats>,
    bitfield: Bitfield,
    outstanding: HashSet<Block>,
    cancelled: VecDeque<Block>,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    /// Pieces the peer lets us request while it chokes us (BEP 6 allowed-fast), at most
    /// [`MAX_ALLOWED_FAST`].
    allowed_fast: Vec<u32>,
    peer_interested: bool,
    got_message: bool,
    unsolicited: u32,
    uploads: VecDeque<BlockRequest>,
    upload_read: Option<JoinHandle<UploadBatch>>,
    wbuf: BytesMut,
    pipeline: usize,
    last_recv: Instant,
    last_send: Instant,
    last_block: Instant,
    window_bytes: u64,
    window_start: Instant,
    extensions: PeerExtensions,
}

impl Conn {
    fn new(
        shared: Arc<Shared>,
        key: PeerKey,
        addr: SocketAddr,
        stats: Arc<PeerStats>,
        fast: bool,
    ) -> Conn {
        let n = shared.piece_count;
        let now = Instant::now();
        let pex = !shared.private;
        Conn {
            shared,
            key,
            addr,
            ip: addr.ip(),
            fast,
            stats,
            bitfield: Bitfield::new(n),
            outstanding: HashSet::new(),
            cancelled: VecDeque::new(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            allowed_fast: Vec::new(),
            peer_interested: false,
            got_message: false,
            unsolicited: 0,
            uploads: VecDeque::new(),
            upload_read: None,
            wbuf: BytesMut::with_capacity(64 * 1024),
            pipeline: 32,
            last_recv: now,
            last_send: now,
            last_block: now,
            window_bytes: 0,
            window_start: now,
            extensions: PeerExtensions::new(pex),
        }
    }

    async fn run(
        &mut self,
        stream: TcpStream,
        mut cmds: mpsc::UnboundedReceiver<PeerCmd>,
    ) -> String {
        let (mut rd, mut wr) = stream.into_split();
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let max_frame = wire::max_frame_for(self.shared.piece_count);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.fill_requests();
            self.start_upload_read();
            tokio::select! {
                r = rd.read_buf(&mut rbuf) => {
                    match r {
                        Ok(0) => return "closed by peer".into(),
                        Ok(_) => {}
                        Err(e) => return format!("read error: {e}"),
                    }
                    self.last_recv = Instant::now();
                    loop {
                        match wire::decode_message(&mut rbuf, max_frame) {
                            Ok(Some(m)) => {
                                if let Err(e) = self.on_message(m).await {
                                    return e;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return format!("protocol error: {e}"),
                        }
                    }
                    // Keep room for a large read: fewer syscalls per byte. Block data split
                    // off this buffer was already copied and dropped, so `reserve` can
                    // usually reclaim the same allocation instead of growing.
                    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                        rbuf.reserve(READ_CHUNK);
                    }
                }
                r = wr.write_buf(&mut self.wbuf), if !self.wbuf.is_empty() => {
                    if let Err(e) = r {
                        return format!("write error: {e}");
                    }
                    self.last_send = Instant::now();
                }
                cmd = cmds.recv() => match cmd {
                    Some(c) => if let Err(e) = self.on_cmd(c) { return e },
                    None => return "torrent stopped".into(),
                },
                res = async { self.upload_read.as_mut().expect("guarded").await }, if self.upload_read.is_some() => {
                    self.upload_read = None;
                    let blocks = res.unwrap_or_default();
                    for (r, data) in blocks {
                        let Some(data) = data else { return "disk read failed".into() };
                        if self.am_choking {
                            if self.fast {
                                Message::Reject(r).encode(&mut self.wbuf);
                            }
                            continue;
                        }
                        wire::encode_piece_header(r.index, r.begin, r.length, &mut self.wbuf);
                        self.wbuf.extend_from_slice(&data);
                        self.stats.uploaded.fetch_add(data.len() as u64, Ordering::Relaxed);
                        self.shared.uploaded.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                }
                _ = tick.tick() => if let Err(e) = self.on_tick() { return e },
            }
        }
    }

    fn on_tick(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if now - self.last_recv > SILENCE_LIMIT {
            return Err("peer silent for too long".into());
        }
        // Once a minute per connection, not every tick: the list takes the state lock.
        if !self.shared.private && self.extensions.pex_wanted(now) {
            let connected: Vec<SocketAddr> = {
                let st = self.shared.lock();
                st.peers
                    .values()
                    .filter_map(|e| e.listen_addr)
                    .filter(|a| *a != self.addr)
                    .collect()
            };
            if let Some(m) = self.extensions.pex_due(now, &connected) {
                m.encode(&mut self.wbuf);
            }
        }
        if now - self.last_send > KEEPALIVE_AFTER && self.wbuf.is_empty() {
            Message::KeepAlive.encode(&mut self.wbuf);
        }
        // Pipeline depth follows the measured rate: about half a second of data in
        // flight, so fast peers never idle and slow ones don't hoard blocks.
        let secs = (now - self.window_start).as_secs_f64();
        if secs >= 1.0 {
            let rate = self.window_bytes as f64 / secs;
            self.pipeline =
                ((rate * 0.5 / BLOCK_LEN as f64) as usize).clamp(MIN_PIPELINE, MAX_PIPELINE);
            self.window_bytes = 0;
            self.window_start = now;
        }
        if !self.outstanding.is_empty() && now - self.last_block > SNUB_AFTER {
            debug!(ip = %self.ip, n = self.outstanding.len(), "peer snubbed us; re-assigning its requests");
            let mut st = self.shared.lock();
            for b in self.outstanding.drain() {
                st.picker.cancel_request(self.key, b);
            }
            self.last_block = now;
        }
        if !self.am_interested {
            self.update_interest();
        }
        Ok(())
    }

    fn on_cmd(&mut self, c: PeerCmd) -> Result<(), String> {
        match c {
            PeerCmd::Have(p) => {
                if !self.bitfield.get(p) {
                    Message::Have(p).encode(&mut self.wbuf);
                }
                if self.am_interested && self.outstanding.is_empty() {
                    self.update_interest();
                }
            }
            PeerCmd::Choke => {
                if !self.am_choking {
                    self.am_choking = true;
                    self.stats.unchoked_by_us.store(false, Ordering::Relaxed);
                    Message::Choke.encode(&mut self.wbuf);
                    // BEP 6: pending requests of a choked peer are rejected, not dropped.
                    for r in self.uploads.drain(..) {
                        if self.fast {
                            Message::Reject(r).encode(&mut self.wbuf);
                        }
                    }
                }
            }
            PeerCmd::Unchoke => {
                if self.am_choking {
                    self.am_choking = false;
                    self.stats.unchoked_by_us.store(true, Ordering::Relaxed);
                    Message::Unchoke.encode(&mut self.wbuf);
                }
            }
            PeerCmd::Cancel(b) => {
                // The cancel may be stale: if the piece failed its hash and we asked for
                // this block again since, the picker lists us as a requester once more.
                let length = {
                    let st = self.shared.lock();
                    if st.picker.is_requester(self.key, b) {
                        return Ok(());
                    }
                    st.picker.block_len(b)
                };
                if self.outstanding.remove(&b) {
                    Message::Cancel(BlockRequest {
                        index: b.piece,
                        begin: b.begin(),
                        length,
                    })
                    .encode(&mut self.wbuf);
                    if self.cancelled.len() >= 1024 {
                        self.cancelled.pop_front();
                    }
                    self.cancelled.push_back(b);
                }
            }
            PeerCmd::Disconnect(why) => return Err(why.into()),
        }
        Ok(())
    }

    async fn on_message(&mut self, m: Message) -> Result<(), String> {
        let first = !self.got_message;
        self.got_message = true;
        match m {
            Message::KeepAlive | Message::Port(_) | Message::Unknown { .. } => {}
            Message::Extended { id, payload } => {
                let metadata = self.shared.metadata.clone();
                if let Some(reply) = self.extensions.on_message(id, &payload, &metadata)? {
                    reply.encode(&mut self.wbuf);
                }
                if !self.extensions.learned.is_empty() {
                    let peers = std::mem::take(&mut self.extensions.learned);
                    let _ = self.shared.events.send(Event::Peers(peers));
                }
            }
            Message::Choke => {
                trace!(ip = %self.ip, "choked by peer");
                self.peer_choking = true;
                self.stats.unchoking_us.store(false, Ordering::Relaxed);
                // Without the fast extension, a choke discards all pending requests.
                let mut st = self.shared.lock();
                for b in self.outstanding.drain() {
                    st.picker.cancel_request(self.key, b);
                }
            }
            Message::Unchoke => {
                trace!(ip = %self.ip, "unchoked by peer");
                self.peer_choking = false;
                self.stats.unchoking_us.store(true, Ordering::Relaxed);
            }
            Message::Interested | Message::NotInterested => {
                self.peer_interested = matches!(m, Message::Interested);
                self.stats
                    .interested
                    .store(self.peer_interested, Ordering::Relaxed);
                let _ = self.shared.events.send(Event::Interest);
            }
            Message::Have(p) => {
                if p >= self.shared.piece_count {
                    return Err(format!("have for piece {p} out of range"));
                }
                if !self.bitfield.get(p) {
                    self.bitfield.set(p);
                    let mut st = self.shared.lock();
                    st.picker.inc_availability(p);
                    if !self.am_interested && st.picker.wants(p) {
                        drop(st);
                        self.set_interested(true);
                    }
                }
            }
            Message::Bitfield(bytes) => {
                // BEP 3 wants the bitfield first, but aria2 sends it later when it had
                // nothing at handshake time; accept it any time as a full replacement.
                if !first {
                    debug!(ip = %self.ip, "late bitfield accepted");
                }
                let bf = Bitfield::from_wire(&bytes, self.shared.piece_count)
                    .map_err(|e| format!("bad bitfield: {e}"))?;
                {
                    let mut st = self.shared.lock();
                    for p in self.bitfield.iter_set() {
                        st.picker.dec_availability(p);
                    }
                    for p in bf.iter_set() {
                        st.picker.inc_availability(p);
                    }
                }
                self.bitfield = bf;
                self.update_interest();
            }
            Message::HaveAll | Message::HaveNone if !self.fast => {
                return Err("have-all/have-none without the Fast extension".into())
            }
            Message::HaveAll => {
                let n = self.shared.piece_count;
                let mut bf = Bitfield::new(n);
                let mut st = self.shared.lock();
                for p in self.bitfield.iter_set() {
                    st.picker.dec_availability(p);
                }
                for p in 0..n {
                    bf.set(p);
                    st.picker.inc_availability(p);
                }
                drop(st);
                self.bitfield = bf;
                self.update_interest();
            }
            Message::HaveNone => {}
            Message::Reject(r) => {
                if !self.fast {
                    return Err("reject without the Fast extension".into());
                }
                // Our request will not be served: hand it back to the picker.
                let b = Block {
                    piece: r.index,
                    block: r.begin / BLOCK_LEN,
                };
                if self.outstanding.remove(&b) {
                    self.shared.lock().picker.cancel_request(self.key, b);
                }
            }
            Message::AllowedFast(piece) => {
                if !self.fast {
                    return Err("allowed-fast without the Fast extension".into());
                }
                // Requested while choked from now on (fill_requests); a peer cannot
                // make the list grow without bound.
                if piece < self.shared.piece_count
                    && self.allowed_fast.len() < MAX_ALLOWED_FAST
                    && !self.allowed_fast.contains(&piece)
                {
                    self.allowed_fast.push(piece);
                }
            }
            // A hint we do not act on: rarest-first already decides what to fetch.
            Message::Suggest(_) => {}
            Message::Request(r) => self.on_request(r)?,
            Message::Cancel(r) => self.uploads.retain(|q| *q != r),
            Message::Piece { index, begin, data } => self.on_piece(index, begin, data).await?,
        }
        Ok(())
    }

    fn on_request(&mut self, r: BlockRequest) -> Result<(), String> {
        {
            let st = self.shared.lock();
            if r.index >= self.shared.piece_count || !st.picker.have(r.index) {
                return Err(format!("requested piece {} that we don't have", r.index));
            }
            let size = st.picker.piece_size(r.index);
            if r.length == 0
                || r.length > BLOCK_LEN
                || r.begin as u64 + r.length as u64 > size as u64
            {
                return Err(format!("bad request {}:{}+{}", r.index, r.begin, r.length));
            }
        }
        trace!(ip = %self.ip, ?r, choking = self.am_choking, "request");
        if self.am_choking || self.uploads.len() >= MAX_UPLOAD_QUEUE {
            // Raced with our choke, or queued too deep. With the Fast extension the
            // peer is told, so it can ask elsewhere at once; otherwise silence.
            if self.fast {
                Message::Reject(r).encode(&mut self.wbuf);
            }
            return Ok(());
        }
        self.uploads.push_back(r);
        Ok(())
    }

    async fn on_piece(&mut self, index: u32, begin: u32, data: Bytes) -> Result<(), String> {
        let b = Block {
            piece: index,
            block: begin / BLOCK_LEN,
        };
        if begin & (BLOCK_LEN - 1) != 0 || !self.outstanding.remove(&b) {
            if !self.cancelled.contains(&b) {
                self.unsolicited += 1;
                trace!(index, begin, "unsolicited block");
                if self.unsolicited > MAX_UNSOLICITED {
                    return Err("too many unsolicited blocks".into());
                }
            }
            return Ok(());
        }
        let n = data.len() as u64;
        // Waiting here stops reading the socket: TCP backpressure slows the sender.
        self.shared.download_limit.acquire(n).await;
        self.last_block = Instant::now();
        self.window_bytes += n;
        self.stats.downloaded.fetch_add(n, Ordering::Relaxed);
        let done = self.shared.on_block(self.key, self.ip, b, &data)?;
        drop(data);
        if let Some(done) = done {
            self.shared.submit(done).await;
        }
        Ok(())
    }

    fn set_interested(&mut self, yes: bool) {
        if self.am_interested != yes {
            trace!(ip = %self.ip, yes, "interest change");
            self.am_interested = yes;
            self.stats.am_interested.store(yes, Ordering::Relaxed);
            if yes {
                Message::Interested.encode(&mut self.wbuf)
            } else {
                Message::NotInterested.encode(&mut self.wbuf)
            }
        }
    }

    /// Interested iff the peer has a piece we still want.
    fn update_interest(&mut self) {
        let want = {
            let st = self.shared.lock();
            self.bitfield.iter_set().any(|p| st.picker.wants(p))
        };
        self.set_interested(want);
    }

    fn fill_requests(&mut self) {
        // Choked, only the pieces the peer allows fast (BEP 6) may be requested.
        let choked = self.peer_choking;
        if !self.am_interested || (choked && self.allowed_fast.is_empty()) {
            return;
        }
        let have = self.outstanding.len();
        // Refill in batches so the picker (and its lock) runs once per few blocks.
        if have + 16 > self.pipeline && have > 0 {
            return;
        }
        let mut picked = Vec::new();
        let mut lens = Vec::new();
        {
            let mut st = self.shared.lock();
            let (bf, allowed) = (&self.bitfield, &self.allowed_fast);
            st.picker.pick(
                self.key,
                |p| bf.get(p) && (!choked || allowed.contains(&p)),
                self.pipeline - have,
                &mut picked,
            );
            lens.extend(picked.iter().map(|b| st.picker.block_len(*b)));
        }
        if picked.is_empty() && have == 0 {
            trace!(ip = %self.ip, key = self.key, state = self.shared.lock().picker.describe(), "nothing to pick");
        }
        for (b, length) in picked.iter().zip(lens) {
            self.outstanding.insert(*b);
            Message::Request(BlockRequest {
                index: b.piece,
                begin: b.begin(),
                length,
            })
            .encode(&mut self.wbuf);
        }
        if picked.is_empty() && self.outstanding.is_empty() {
            self.update_interest();
        }
    }

    fn start_upload_read(&mut self) {
        if self.upload_read.is_some()
            || self.uploads.is_empty()
            || self.am_choking
            || self.wbuf.len() > WRITE_HIGH_WATER
        {
            return;
        }
        let n = self.uploads.len().min(UPLOAD_BATCH);
        let batch: Vec<BlockRequest> = self.uploads.drain(..n).collect();
        let shared = self.shared.clone();
        // The limit is paid before reading, in this separate task, so the connection
        // keeps receiving (and downloading) while its uploads wait for allowance.
        self.upload_read = Some(tokio::spawn(async move {
            let bytes: u64 = batch.iter().map(|r| r.length as u64).sum();
            shared.upload_limit.acquire(bytes).await;
            let storage = shared.storage.clone();
            tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|r| {
                        let mut buf = vec![0u8; r.length as usize];
                        let ok = storage.read(r.index, r.begin, &mut buf).is_ok();
                        (r, ok.then_some(buf))
                    })
                    .collect()
            })
            .await
            .unwrap_or_default()
        }));
    }

    fn cleanup(&mut self) {
        if let Some(h) = self.upload_read.take() {
            h.abort();
        }
        let mut st = self.shared.lock();
        st.picker.peer_gone(self.key, self.outstanding.drain());
        for p in self.bitfield.iter_set() {
            st.picker.dec_availability(p);
        }
        st.peers.remove(&self.key);
        drop(st);
        let _ = self.shared.events.send(Event::Interest);
    }
}
