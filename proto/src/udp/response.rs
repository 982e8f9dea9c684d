//! Tracker → client datagrams: connect, announce, scrape and error responses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    be_u32, be_u64, Action, ConnectionId, PeerFamily, TransactionId, CONNECT_LEN, MAX_DATAGRAM,
    MAX_ERROR_MESSAGE,
};
use crate::announce::ScrapeStats;

/// Most peers that fit one announce reply under [`MAX_DATAGRAM`] in the given family;
/// trackers must not send more, and it bounds what a client decodes.
pub fn max_reply_peers(family: PeerFamily) -> usize {
    (MAX_DATAGRAM - 20) / family.peer_len()
}

/// A decoded response datagram (client side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: TransactionId,
        connection_id: ConnectionId,
    },
    Announce(AnnounceResponse),
    Scrape {
        transaction_id: TransactionId,
        /// In request order.
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: TransactionId,
        message: String,
    },
}

impl Response {
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
            Response::Announce(a) => a.transaction_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    pub transaction_id: TransactionId,
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    /// Peers with port 0 are dropped while decoding: nobody can connect to them.
    pub peers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response of {0} bytes is too short")]
    TooShort(usize),
    #[error("response of {0} bytes is larger than any response")]
    TooLong(usize),
    #[error("unknown action {0} in response")]
    UnknownAction(u32),
    #[error("announce response peers are not a whole number of {0}-byte entries")]
    PartialPeer(usize),
    #[error("scrape response is not a whole number of 12-byte entries")]
    PartialScrape,
}

/// Decodes a response. `family` is the address family the request went out over, which
/// decides the peer format (BEP 15 gives the reply no marker of its own).
pub fn parse_response(d: &[u8], family: PeerFamily) -> Result<Response, ResponseError> {
    if d.len() < 8 {
        return Err(ResponseError::TooShort(d.len()));
    }
    if d.len() > MAX_DATAGRAM {
        return Err(ResponseError::TooLong(d.len()));
    }
    let action = be_u32(d, 0);
    let transaction_id = TransactionId(be_u32(d, 4));
    match Action::from_code(action) {
        Some(Action::Connect) => {
            if d.len() < CONNECT_LEN {
                return Err(ResponseError::TooShort(d.len()));
            }
            Ok(Response::Connect {
                transaction_id,
                connection_id: ConnectionId(be_u64(d, 8)),
            })
        }
        Some(Action::Announce) => {
            if d.len() < 20 {
                return Err(ResponseError::TooShort(d.len()));
            }
            let body = &d[20..];
            let len = family.peer_len();
            if !body.len().is_multiple_of(len) {
                return Err(ResponseError::PartialPeer(len));
            }
            let peers = body
                .chunks_exact(len)
                .map(|c| decode_peer(c, family))
                .filter(|p| p.port() != 0)
                .collect();
            Ok(Response::Announce(AnnounceResponse {
                transaction_id,
                interval: be_u32(d, 8),
                leechers: be_u32(d, 12),
                seeders: be_u32(d, 16),
                peers,
            }))
        }
        Some(Action::Scrape) => {
            let body = &d[8..];
            if !body.len().is_multiple_of(12) {
                return Err(ResponseError::PartialScrape);
            }
            let stats = body
                .chunks_exact(12)
                .map(|c| ScrapeStats {
                    complete: be_u32(c, 0),
                    downloaded: be_u32(c, 4),
                    incomplete: be_u32(c, 8),
                })
                .collect();
            Ok(Response::Scrape {
                transaction_id,
                stats,
            })
        }
        Some(Action::Error) => Ok(Response::Error {
            transaction_id,
            message: String::from_utf8_lossy(&d[8..d.len().min(8 + MAX_ERROR_MESSAGE)])
                .into_owned(),
        }),
        None => Err(ResponseError::UnknownAction(action)),
    }
}

fn decode_peer(c: &[u8], family: PeerFamily) -> SocketAddr {
    match family {
        PeerFamily::V4 => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            u16::from_be_bytes([c[4], c[5]]),
        ),
        PeerFamily::V6 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&c[..16]);
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([c[16], c[17]]),
            )
        }
    }
}

fn header(out: &mut Vec<u8>, action: Action, tid: TransactionId) {
    out.extend_from_slice(&action.code().to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
}

/// Appends a connect response.
pub fn encode_connect_response(out: &mut Vec<u8>, tid: TransactionId, id: ConnectionId) {
    header(out, Action::Connect, tid);
    out.extend_from_slice(&id.0.to_be_bytes());
}

/// The fixed part of an announce response; peers follow via [`push_peer`].
pub fn encode_announce_header(
    out: &mut Vec<u8>,
    tid: TransactionId,
    interval: u32,
    leechers: u32,
    seeders: u32,
) {
    header(out, Action::Announce, tid);
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
}

/// Appends `peer` if it is of `family` (IPv4-mapped IPv6 counts as IPv4) and returns
/// whether it did. A reply holds one family only: a 6-byte entry cannot carry an IPv6
/// address, and BEP 15 gives the client no way to tell mixed entries apart.
pub fn push_peer(out: &mut Vec<u8>, family: PeerFamily, peer: SocketAddr) -> bool {
    match (family, peer.ip().to_canonical()) {
        (PeerFamily::V4, IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
        (PeerFamily::V6, IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
        _ => return false,
    }
    out.extend_from_slice(&peer.port().to_be_bytes());
    true
}

/// Appends a whole announce response (peers not of `family` are left out).
pub fn encode_announce_response(out: &mut Vec<u8>, r: &AnnounceResponse, family: PeerFamily) {
    encode_announce_header(out, r.transaction_id, r.interval, r.leechers, r.seeders);
    for &p in r.peers.iter().take(max_reply_peers(family)) {
        push_peer(out, family, p);
    }
}

/// Appends a scrape response header; one [`push_scrape_stats`] per requested hash follows.
pub fn encode_scrape_header(out: &mut Vec<u8>, tid: TransactionId) {
    header(out, Action::Scrape, tid);
}

pub fn push_scrape_stats(out: &mut Vec<u8>, s: &ScrapeStats) {
    out.extend_from_slice(&s.complete.to_be_bytes());
    out.extend_from_slice(&s.downloaded.to_be_bytes());
    out.extend_from_slice(&s.incomplete.to_be_bytes());
}

/// Appends an error response; `message` is cut to [`MAX_ERROR_MESSAGE`] bytes (on a
/// character boundary).
pub fn encode_error_response(out: &mut Vec<u8>, tid: TransactionId, message: &str) {
    header(out, Action::Error, tid);
    let mut end = message.len().min(MAX_ERROR_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&message.as_bytes()[..end]);
}
