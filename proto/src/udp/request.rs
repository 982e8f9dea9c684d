//! Client → tracker datagrams: connect, announce (with raw BEP 41 options) and scrape.

use std::net::Ipv4Addr;

use super::{
    array20, be_u32, be_u64, Action, ConnectionId, TransactionId, ANNOUNCE_LEN, CONNECT_LEN,
    HEADER_LEN, MAX_DATAGRAM, MAX_SCRAPE_HASHES, PROTOCOL_ID,
};
use crate::announce::AnnounceEvent;
use crate::types::{InfoHash, PeerId};

/// A decoded request datagram. Borrows from the datagram; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Connect { transaction_id: TransactionId },
    Announce(AnnounceRequest<'a>),
    Scrape(ScrapeRequest<'a>),
}

impl Request<'_> {
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Request::Connect { transaction_id } => *transaction_id,
            Request::Announce(a) => a.transaction_id,
            Request::Scrape(s) => s.transaction_id,
        }
    }
}

/// A BEP 15 announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest<'a> {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    /// The IPv4 address the client claims; `None` when the field is 0 ("use the source").
    pub ip: Option<Ipv4Addr>,
    pub key: u32,
    /// Peers wanted; `None` for the BEP's -1 (or any negative value): the tracker's default.
    pub num_want: Option<u32>,
    /// 1..=65535 (0 is refused at parse time).
    pub port: u16,
    /// The BEP 41 option bytes after the fixed fields; see [`super::url_data`].
    pub options: &'a [u8],
}

/// A BEP 15 scrape: up to [`MAX_SCRAPE_HASHES`] info hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest<'a> {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    /// A multiple of 20 bytes.
    hashes: &'a [u8],
}

impl<'a> ScrapeRequest<'a> {
    /// Fails if `hashes` is not a whole number of hashes or holds too many.
    pub fn new(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        hashes: &'a [u8],
    ) -> Option<Self> {
        (hashes.len().is_multiple_of(20) && hashes.len() / 20 <= MAX_SCRAPE_HASHES).then_some(
            Self {
                connection_id,
                transaction_id,
                hashes,
            },
        )
    }

    pub fn len(&self) -> usize {
        self.hashes.len() / 20
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn info_hashes(&self) -> impl ExactSizeIterator<Item = InfoHash> + 'a {
        self.hashes
            .chunks_exact(20)
            .map(|c| InfoHash(array20(c, 0)))
    }
}

/// Why a datagram is not a request we answer normally.
///
/// Errors that carry a transaction id deserve an error reply (the sender speaks BEP 15
/// and made a mistake); the others are dropped silently, because the datagram may not be
/// BEP 15 at all, and answering garbage from a possibly spoofed source helps nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("datagram of {0} bytes is too short for a request")]
    TooShort(usize),
    #[error("datagram of {0} bytes is larger than any request")]
    TooLong(usize),
    #[error("connect request without the protocol id")]
    BadProtocolId,
    #[error("unknown action {action}")]
    UnknownAction {
        action: u32,
        transaction_id: TransactionId,
    },
    #[error("announce is {len} bytes, shorter than the {ANNOUNCE_LEN} BEP 15 requires")]
    ShortAnnounce {
        len: usize,
        transaction_id: TransactionId,
    },
    #[error("unknown event {event}")]
    UnknownEvent {
        event: u32,
        transaction_id: TransactionId,
    },
    #[error("port must be 1..=65535, got 0")]
    ZeroPort { transaction_id: TransactionId },
    #[error("scrape data is not a whole number of 20-byte info hashes")]
    PartialHash { transaction_id: TransactionId },
    #[error("too many info hashes in one scrape (at most {MAX_SCRAPE_HASHES})")]
    TooManyHashes { transaction_id: TransactionId },
}

impl RequestError {
    /// The transaction to answer with an error reply, or `None`: drop the datagram.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        match *self {
            RequestError::TooShort(_) | RequestError::TooLong(_) | RequestError::BadProtocolId => {
                None
            }
            RequestError::UnknownAction { transaction_id, .. }
            | RequestError::ShortAnnounce { transaction_id, .. }
            | RequestError::UnknownEvent { transaction_id, .. }
            | RequestError::ZeroPort { transaction_id }
            | RequestError::PartialHash { transaction_id }
            | RequestError::TooManyHashes { transaction_id } => Some(transaction_id),
        }
    }

    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RequestError::TooShort(_) => "udp_too_short",
            RequestError::TooLong(_) => "udp_too_long",
            RequestError::BadProtocolId => "udp_bad_protocol_id",
            RequestError::UnknownAction { .. } => "udp_bad_action",
            RequestError::ShortAnnounce { .. } => "udp_short_announce",
            RequestError::UnknownEvent { .. } => "bad_event",
            RequestError::ZeroPort { .. } => "bad_port",
            RequestError::PartialHash { .. } => "bad_length",
            RequestError::TooManyHashes { .. } => "too_many_hashes",
        }
    }

    /// Every value [`RequestError::label`] can return that is UDP-specific (the others
    /// are shared with HTTP query errors), for pre-registering metric labels.
    pub const UDP_LABELS: [&'static str; 5] = [
        "udp_too_short",
        "udp_too_long",
        "udp_bad_protocol_id",
        "udp_bad_action",
        "udp_short_announce",
    ];
}

/// The BEP 15 event code.
pub fn event_code(e: AnnounceEvent) -> u32 {
    match e {
        AnnounceEvent::None => 0,
        AnnounceEvent::Completed => 1,
        AnnounceEvent::Started => 2,
        AnnounceEvent::Stopped => 3,
    }
}

fn event_from_code(c: u32) -> Option<AnnounceEvent> {
    Some(match c {
        0 => AnnounceEvent::None,
        1 => AnnounceEvent::Completed,
        2 => AnnounceEvent::Started,
        3 => AnnounceEvent::Stopped,
        _ => return None,
    })
}

/// Decodes one request datagram.
pub fn parse_request(d: &[u8]) -> Result<Request<'_>, RequestError> {
    if d.len() < HEADER_LEN {
        return Err(RequestError::TooShort(d.len()));
    }
    if d.len() > MAX_DATAGRAM {
        return Err(RequestError::TooLong(d.len()));
    }
    let connection_id = ConnectionId(be_u64(d, 0));
    let action = be_u32(d, 8);
    let transaction_id = TransactionId(be_u32(d, 12));
    match Action::from_code(action) {
        Some(Action::Connect) => {
            // Trailing bytes are allowed: BEP 15 says not to assume packet sizes.
            if connection_id.0 != PROTOCOL_ID {
                return Err(RequestError::BadProtocolId);
            }
            Ok(Request::Connect { transaction_id })
        }
        Some(Action::Announce) => parse_announce(d, connection_id, transaction_id),
        Some(Action::Scrape) => {
            let hashes = &d[HEADER_LEN..];
            if !hashes.len().is_multiple_of(20) {
                return Err(RequestError::PartialHash { transaction_id });
            }
            ScrapeRequest::new(connection_id, transaction_id, hashes)
                .map(Request::Scrape)
                .ok_or(RequestError::TooManyHashes { transaction_id })
        }
        Some(Action::Error) | None => Err(RequestError::UnknownAction {
            action,
            transaction_id,
        }),
    }
}

fn parse_announce(
    d: &[u8],
    connection_id: ConnectionId,
    transaction_id: TransactionId,
) -> Result<Request<'_>, RequestError> {
    if d.len() < ANNOUNCE_LEN {
        return Err(RequestError::ShortAnnounce {
            len: d.len(),
            transaction_id,
        });
    }
    let event_raw = be_u32(d, 80);
    let event = event_from_code(event_raw).ok_or(RequestError::UnknownEvent {
        event: event_raw,
        transaction_id,
    })?;
    let ip = match be_u32(d, 84) {
        0 => None,
        v => Some(Ipv4Addr::from(v)),
    };
    let num_want = i32::from_be_bytes(be_u32(d, 92).to_be_bytes());
    let port = u16::from_be_bytes([d[96], d[97]]);
    if port == 0 {
        return Err(RequestError::ZeroPort { transaction_id });
    }
    Ok(Request::Announce(AnnounceRequest {
        connection_id,
        transaction_id,
        info_hash: InfoHash(array20(d, 16)),
        peer_id: PeerId(array20(d, 36)),
        downloaded: be_u64(d, 56),
        left: be_u64(d, 64),
        uploaded: be_u64(d, 72),
        event,
        ip,
        key: be_u32(d, 88),
        num_want: u32::try_from(num_want).ok(),
        port,
        options: &d[ANNOUNCE_LEN..],
    }))
}

/// The 16-byte connect request.
pub fn encode_connect_request(transaction_id: TransactionId) -> [u8; CONNECT_LEN] {
    let mut out = [0u8; CONNECT_LEN];
    out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&Action::Connect.code().to_be_bytes());
    out[12..].copy_from_slice(&transaction_id.0.to_be_bytes());
    out
}

fn header(out: &mut Vec<u8>, id: ConnectionId, action: Action, tid: TransactionId) {
    out.extend_from_slice(&id.0.to_be_bytes());
    out.extend_from_slice(&action.code().to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
}

/// Appends an announce datagram; `options` (e.g. from [`super::encode_url_data`]) goes
/// after the fixed fields as is.
pub fn encode_announce_request(out: &mut Vec<u8>, a: &AnnounceRequest<'_>) {
    header(out, a.connection_id, Action::Announce, a.transaction_id);
    out.extend_from_slice(&a.info_hash.0);
    out.extend_from_slice(&a.peer_id.0);
    out.extend_from_slice(&a.downloaded.to_be_bytes());
    out.extend_from_slice(&a.left.to_be_bytes());
    out.extend_from_slice(&a.uploaded.to_be_bytes());
    out.extend_from_slice(&event_code(a.event).to_be_bytes());
    out.extend_from_slice(&a.ip.map_or(0, u32::from).to_be_bytes());
    out.extend_from_slice(&a.key.to_be_bytes());
    // -1 asks for the tracker's default; wants beyond i32::MAX are capped (no tracker
    // returns that many anyway).
    let num_want = a.num_want.map_or(-1, |n| n.min(i32::MAX as u32) as i32);
    out.extend_from_slice(&num_want.to_be_bytes());
    out.extend_from_slice(&a.port.to_be_bytes());
    out.extend_from_slice(a.options);
}

/// Appends a scrape datagram.
pub fn encode_scrape_request(out: &mut Vec<u8>, s: &ScrapeRequest<'_>) {
    header(out, s.connection_id, Action::Scrape, s.transaction_id);
    out.extend_from_slice(s.hashes);
}
