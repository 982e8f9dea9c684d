//! The extension protocol as this client speaks it on one connection (BEP 10): the
//! handshake we send, what the peer advertised, serving our info dictionary to magnet
//! clients in 16 KiB pieces (BEP 9), and peer exchange (BEP 11, never for private
//! torrents). Unknown extension messages are ignored; a malformed handshake, metadata or
//! PEX message ends the connection.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kpbt_proto::extension::{
    metadata_piece_count, ExtendedHandshake, MetadataMessage, PexMessage, HANDSHAKE_ID,
    METADATA_PIECE_LEN,
};
use kpbt_proto::wire::Message;
// tokio's clock, so PEX pacing can be tested with paused time.
use tokio::time::Instant;

/// The id under which we want to receive `ut_pex` messages.
pub(crate) const UT_PEX_ID: u8 = 1;
/// The id under which we want to receive `ut_metadata` messages.
pub(crate) const UT_METADATA_ID: u8 = 2;
/// BEP 11: at most one PEX message a minute each way.
pub(crate) const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// PEX messages from one peer closer together than this are ignored (a flood).
const PEX_MIN_GAP: Duration = Duration::from_secs(45);
/// Peers we put in one PEX message (added and dropped each), as BEP 11 suggests.
const PEX_MAX_PER_MESSAGE: usize = 50;
/// Requests we queue per peer, as advertised in `reqq` (the peer task's own bound).
const REQUEST_QUEUE: u32 = 2048;
/// Metadata pieces served per connection before requests are rejected: a magnet client
/// needs each piece once; a few retries are fine, a loop is not.
const SERVE_BUDGET_FACTOR: u32 = 4;

/// Our extension handshake: `ut_metadata`, with the size of the info dictionary when
/// we have it (a magnet download asking for it has not), and `ut_pex` when `pex`.
pub(crate) fn our_handshake(metadata_len: Option<usize>, pex: bool) -> Message {
    let mut extensions = vec![("ut_metadata".into(), UT_METADATA_ID)];
    if pex {
        extensions.push(("ut_pex".into(), UT_PEX_ID));
    }
    let hs = ExtendedHandshake {
        extensions,
        client: Some(concat!("kpbt/", env!("CARGO_PKG_VERSION")).into()),
        request_queue: Some(REQUEST_QUEUE),
        metadata_size: metadata_len.and_then(|n| u32::try_from(n).ok()),
        ..ExtendedHandshake::default()
    };
    Message::Extended {
        id: HANDSHAKE_ID,
        payload: Bytes::from(hs.encode()),
    }
}

/// What one peer negotiated over the extension protocol.
#[derive(Default)]
pub(crate) struct PeerExtensions {
    /// The id the peer wants `ut_metadata` under, once its handshake arrived.
    their_ut_metadata: Option<u8>,
    served: u32,
    /// PEX is on for this torrent (off for private ones: BEP 27).
    pex_enabled: bool,
    /// The id the peer wants `ut_pex` under.
    their_ut_pex: Option<u8>,
    /// What our PEX messages told this peer so far (its view of our peers).
    pex_told: HashSet<SocketAddr>,
    next_pex_out: Option<Instant>,
    last_pex_in: Option<Instant>,
    /// Peers learned from this peer's PEX, for the torrent task to dial.
    pub(crate) learned: Vec<SocketAddr>,
}

impl PeerExtensions {
    pub(crate) fn new(pex_enabled: bool) -> PeerExtensions {
        PeerExtensions {
            pex_enabled,
            ..PeerExtensions::default()
        }
    }

    /// When PEX was negotiated and a message is due: the message telling the peer
    /// which of `connected` (our peers' listen addresses, without its own) are new to
    /// it and which are gone.
    /// Whether a PEX message would be sent now (so callers skip gathering peers).
    pub(crate) fn pex_wanted(&self, now: Instant) -> bool {
        self.their_ut_pex.is_some() && self.next_pex_out.is_none_or(|t| now >= t)
    }

    pub(crate) fn pex_due(&mut self, now: Instant, connected: &[SocketAddr]) -> Option<Message> {
        let their_id = self.their_ut_pex?;
        if self.next_pex_out.is_some_and(|t| now < t) {
            return None;
        }
        self.next_pex_out = Some(now + PEX_INTERVAL);
        let current: HashSet<SocketAddr> = connected.iter().copied().collect();
        let added: Vec<(SocketAddr, u8)> = current
            .difference(&self.pex_told)
            .take(PEX_MAX_PER_MESSAGE)
            .map(|a| (*a, 0))
            .collect();
        let dropped: Vec<SocketAddr> = self
            .pex_told
            .difference(&current)
            .take(PEX_MAX_PER_MESSAGE)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        for (a, _) in &added {
            self.pex_told.insert(*a);
        }
        for a in &dropped {
            self.pex_told.remove(a);
        }
        let payload = PexMessage { added, dropped }.encode();
        Some(Message::Extended {
            id: their_id,
            payload: Bytes::from(payload),
        })
    }

    /// Handles one `Extended` message; returns the reply to send, if any. `metadata`
    /// is our info dictionary. `Err` ends the connection.
    pub(crate) fn on_message(
        &mut self,
        id: u8,
        payload: &[u8],
        metadata: &[u8],
    ) -> Result<Option<Message>, String> {
        match id {
            HANDSHAKE_ID => {
                let hs = ExtendedHandshake::decode(payload)
                    .map_err(|e| format!("malformed extension handshake: {e}"))?;
                self.their_ut_metadata = hs.id_of("ut_metadata");
                if self.pex_enabled {
                    self.their_ut_pex = hs.id_of("ut_pex");
                }
                tracing::debug!(client = ?hs.client, ut_metadata = ?self.their_ut_metadata, "extension handshake");
                Ok(None)
            }
            UT_METADATA_ID => {
                let m = MetadataMessage::decode(payload)
                    .map_err(|e| format!("malformed ut_metadata message: {e}"))?;
                let MetadataMessage::Request { piece } = m else {
                    // We never ask for metadata yet; data or rejects are just noise.
                    return Ok(None);
                };
                let Some(their_id) = self.their_ut_metadata else {
                    return Err("ut_metadata request before the peer's extension handshake".into());
                };
                Ok(Some(Message::Extended {
                    id: their_id,
                    payload: Bytes::from(self.answer(piece, metadata).encode()),
                }))
            }
            UT_PEX_ID if self.pex_enabled => {
                let now = Instant::now();
                if self.last_pex_in.is_some_and(|t| now - t < PEX_MIN_GAP) {
                    tracing::debug!("ignoring a PEX message that came too soon after the last");
                    return Ok(None);
                }
                self.last_pex_in = Some(now);
                let m = PexMessage::decode(payload)
                    .map_err(|e| format!("malformed ut_pex message: {e}"))?;
                self.learned.extend(m.added.into_iter().map(|(a, _)| a));
                Ok(None)
            }
            // Ids we never advertised (ut_pex for a private torrent): BEP 10 says ignore.
            _ => Ok(None),
        }
    }

    fn answer<'m>(&mut self, piece: u32, metadata: &'m [u8]) -> MetadataMessage<'m> {
        let size = metadata.len() as u32;
        let budget = metadata_piece_count(size).saturating_mul(SERVE_BUDGET_FACTOR);
        let start = piece as usize * METADATA_PIECE_LEN as usize;
        if self.served >= budget || start >= metadata.len() {
            return MetadataMessage::Reject { piece };
        }
        self.served += 1;
        let end = (start + METADATA_PIECE_LEN as usize).min(metadata.len());
        MetadataMessage::Data {
            piece,
            total_size: size,
            data: &metadata[start..end],
        }
    }
}
