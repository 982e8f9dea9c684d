//! The extension protocol as this client speaks it on one connection (BEP 10): the
//! handshake we send, what the peer advertised, and serving our info dictionary to
//! magnet clients in 16 KiB pieces (BEP 9). Unknown extension messages are ignored; a
//! malformed handshake or metadata message ends the connection.

use bytes::Bytes;
use kpbt_proto::extension::{
    metadata_piece_count, ExtendedHandshake, MetadataMessage, HANDSHAKE_ID, METADATA_PIECE_LEN,
};
use kpbt_proto::wire::Message;

/// The id under which we want to receive `ut_metadata` messages.
pub(crate) const UT_METADATA_ID: u8 = 2;
/// Requests we queue per peer, as advertised in `reqq` (the peer task's own bound).
const REQUEST_QUEUE: u32 = 2048;
/// Metadata pieces served per connection before requests are rejected: a magnet client
/// needs each piece once; a few retries are fine, a loop is not.
const SERVE_BUDGET_FACTOR: u32 = 4;

/// Our extension handshake: `ut_metadata`, with the size of the info dictionary when
/// we have it (a magnet download asking for it has not).
pub(crate) fn our_handshake(metadata_len: Option<usize>) -> Message {
    let hs = ExtendedHandshake {
        extensions: vec![("ut_metadata".into(), UT_METADATA_ID)],
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
}

impl PeerExtensions {
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
            // Ids we never advertised: BEP 10 says ignore.
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
