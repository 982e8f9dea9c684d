//! Turning a magnet link into a .torrent: peers from the link's `x.pe` and trackers,
//! a few connections at once asking each for the info dictionary over `ut_metadata`
//! (BEP 9); the first copy whose SHA-1 matches the info hash wins. Peers that send
//! oversized, inconsistent or wrong metadata are dropped.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest};
use kpbt_proto::extension::{ExtendedHandshake, MetadataMessage, HANDSHAKE_ID};
use kpbt_proto::magnet::Magnet;
use kpbt_proto::metadata::{torrent_from_info, MetadataAssembly, MetadataError};
use kpbt_proto::wire::{self, Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::PeerId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::peer_ext::{self, UT_METADATA_ID};
use crate::tracker::announce_tiers;
use crate::tracker_udp::{Retry, UdpClient};

/// Peers asked at once.
const PARALLEL_PEERS: usize = 4;
/// One peer gets this long to deliver the whole dictionary.
const PER_PEER_LIMIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Trackers are asked again this often while no peer delivered.
const REANNOUNCE: Duration = Duration::from_secs(20);
/// Frames larger than this end the connection (a bitfield of 8 M pieces fits).
const MAX_FRAME: u32 = 1024 * 1024 + 16;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no peer delivered the metadata within {0} s (peers tried: {1}); check that a seeder is up and reachable, or pass one with x.pe / --peer")]
    TimedOut(u64, usize),
    #[error("no peer delivered the metadata (peers tried: {0}) and there is no tracker to ask for more; pass a peer that has the torrent with x.pe / --peer")]
    NoPeers(usize),
    #[error("cannot resolve x.pe peer {0}")]
    Resolve(String),
}

/// Where to look for the metadata.
pub struct FetchConfig {
    pub peer_id: PeerId,
    /// Our listen port, for the trackers.
    pub port: u16,
    /// Peers to ask besides those of the link.
    pub peers: Vec<SocketAddr>,
    pub use_trackers: bool,
    pub http: reqwest::Client,
    pub timeout: Duration,
}

/// Fetches and verifies the info dictionary; returns the .torrent built around it
/// (with the link's trackers).
pub async fn fetch(magnet: &Magnet, cfg: FetchConfig) -> Result<Vec<u8>, FetchError> {
    let mut queue: VecDeque<SocketAddr> = cfg.peers.iter().copied().collect();
    queue.extend(resolve_peers(magnet).await?);
    let mut tiers: Vec<Vec<String>> = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
    tiers = crate::tracker::usable_tiers(&tiers);
    let mut udp = UdpClient::new(Retry::DEFAULT);
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut tasks: JoinSet<(SocketAddr, Result<Vec<u8>, String>)> = JoinSet::new();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let mut next_announce = tokio::time::Instant::now();
    loop {
        if cfg.use_trackers && !tiers.is_empty() && tokio::time::Instant::now() >= next_announce {
            next_announce = tokio::time::Instant::now() + REANNOUNCE;
            let req = AnnounceRequest {
                info_hash: magnet.info_hash,
                peer_id: cfg.peer_id,
                port: cfg.port,
                uploaded: 0,
                downloaded: 0,
                // Size unknown until the metadata arrives: not 0, or trackers take us
                // for a seeder and hand out no seeders.
                left: 1,
                event: AnnounceEvent::Started,
                compact: true,
                no_peer_id: true,
                numwant: Some(50),
                ip: None,
                key: None,
                tracker_id: None,
            };
            match announce_tiers(&cfg.http, &mut udp, &mut tiers, &req).await {
                Ok(r) => queue.extend(r.peers),
                Err(e) => warn!(
                    "announce to {e}; asking again in {} s",
                    REANNOUNCE.as_secs()
                ),
            }
        }
        while tasks.len() < PARALLEL_PEERS {
            let Some(addr) = queue.pop_front() else { break };
            if !seen.insert(addr) {
                continue;
            }
            let (ih, id) = (magnet.info_hash, cfg.peer_id);
            tasks.spawn(async move {
                let r = tokio::time::timeout(PER_PEER_LIMIT, from_peer(addr, ih, id))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                (addr, r)
            });
        }
        let wake = next_announce.min(deadline);
        tokio::select! {
            Some(done) = tasks.join_next() => match done {
                Ok((addr, Ok(info))) => {
                    info!(%addr, bytes = info.len(), "metadata received and verified");
                    return Ok(torrent_from_info(&info, &magnet.trackers, &magnet.web_seeds));
                }
                Ok((addr, Err(e))) => debug!(%addr, "no metadata from this peer: {e}"),
                Err(e) => debug!("metadata task failed: {e}"),
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FetchError::TimedOut(cfg.timeout.as_secs(), seen.len()));
        }
        if tasks.is_empty() && queue.is_empty() && (!cfg.use_trackers || tiers.is_empty()) {
            // Nobody left to ask and no tracker to ask for more.
            return Err(FetchError::NoPeers(seen.len()));
        }
    }
}

/// The link's `x.pe` peers as addresses (host names resolved, a few addresses each).
pub async fn resolve_peers(magnet: &Magnet) -> Result<Vec<SocketAddr>, FetchError> {
    let mut out = Vec::new();
    for p in &magnet.peers {
        let found =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(p.as_str()))
                .await
                .map_err(|_| FetchError::Resolve(p.clone()))?
                .map_err(|_| FetchError::Resolve(p.clone()))?;
        out.extend(found.take(4));
    }
    Ok(out)
}

/// Asks one peer for the whole dictionary, one piece at a time.
async fn from_peer(
    addr: SocketAddr,
    ih: kpbt_proto::InfoHash,
    id: PeerId,
) -> Result<Vec<u8>, String> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let ours = Handshake::new(ih, id).with_extension_protocol().encode();
    stream.write_all(&ours).await.map_err(|e| e.to_string())?;
    let mut hs = [0u8; HANDSHAKE_LEN];
    stream
        .read_exact(&mut hs)
        .await
        .map_err(|e| e.to_string())?;
    let theirs = Handshake::decode(&hs).map_err(|e| e.to_string())?;
    if theirs.info_hash != ih {
        return Err("peer answered for another torrent".into());
    }
    if !theirs.supports_extensions() {
        return Err("peer does not speak the extension protocol".into());
    }
    let mut out = BytesMut::new();
    peer_ext::our_handshake(None, false).encode(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut assembly: Option<(MetadataAssembly, u8)> = None;
    loop {
        let msg = loop {
            match wire::decode_message(&mut buf, MAX_FRAME)
                .map_err(|e| format!("protocol error: {e}"))?
            {
                Some(m) => break m,
                None => {
                    if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("closed by peer".into());
                    }
                }
            }
        };
        let Message::Extended { id, payload } = msg else {
            continue; // bitfield, have, choke...: not needed for metadata
        };
        match id {
            HANDSHAKE_ID => {
                let hs = ExtendedHandshake::decode(&payload)
                    .map_err(|e| format!("malformed extension handshake: {e}"))?;
                let their_id = hs
                    .id_of("ut_metadata")
                    .ok_or("peer does not serve metadata")?;
                let size = hs.metadata_size.ok_or("peer advertises no metadata_size")?;
                let a = MetadataAssembly::new(ih, u64::from(size)).map_err(|e| e.to_string())?;
                request(&mut stream, their_id, a.next_request()).await?;
                assembly = Some((a, their_id));
            }
            UT_METADATA_ID => {
                let Some((a, their_id)) = assembly.as_mut() else {
                    return Err("metadata before the extension handshake".into());
                };
                match MetadataMessage::decode(&payload)
                    .map_err(|e| format!("malformed ut_metadata message: {e}"))?
                {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } => {
                        if let Some(info) = a
                            .on_data(piece, total_size, data)
                            .map_err(|e| e.to_string())?
                        {
                            return Ok(info);
                        }
                        let (next, their_id) = (a.next_request(), *their_id);
                        request(&mut stream, their_id, next).await?;
                    }
                    MetadataMessage::Reject { piece } => {
                        return Err(MetadataError::Rejected(piece).to_string())
                    }
                    MetadataMessage::Request { piece } => {
                        // We have nothing to serve yet.
                        let reject = MetadataMessage::Reject { piece }.encode();
                        let mut out = BytesMut::new();
                        Message::Extended {
                            id: *their_id,
                            payload: Bytes::from(reject),
                        }
                        .encode(&mut out);
                        stream.write_all(&out).await.map_err(|e| e.to_string())?;
                    }
                }
            }
            _ => {}
        }
    }
}

async fn request(stream: &mut TcpStream, their_id: u8, piece: Option<u32>) -> Result<(), String> {
    let Some(piece) = piece else { return Ok(()) };
    let mut out = BytesMut::new();
    Message::Extended {
        id: their_id,
        payload: Bytes::from(MetadataMessage::Request { piece }.encode()),
    }
    .encode(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())
}
