//! The UDP tracker protocol (BEP 15, with BEP 41 URL data): datagram parsing and encoding
//! for both sides, and stateless connection ids.
//!
//! Every exchange is one datagram each way. A client first sends a *connect* and receives
//! a connection id, then sends *announce* or *scrape* datagrams carrying that id; the id
//! proves to the tracker that the client can receive at its source address, so replies
//! cannot be aimed at a spoofed victim. All integers are big-endian.
//!
//! Parsers take hostile bytes and never panic or allocate: a request borrows from the
//! datagram (BEP 41 options and scrape hashes stay slices), and the caller supplies reused
//! buffers for anything it wants copied out. Encoders append to a caller's `Vec<u8>`.
//!
//! Layout: this file holds the shared types and constants; `request.rs` the client →
//! tracker datagrams, `response.rs` the tracker → client ones, `options.rs` BEP 41, and
//! `connection_id.rs` the keyed-MAC connection ids.

use std::fmt;

mod connection_id;
mod options;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use connection_id::*;
pub use options::*;
pub use request::*;
pub use response::*;

/// The magic constant a connect request starts with ("protocol_id" in BEP 15).
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Most info hashes one scrape datagram may carry: BEP 15 sizes scrapes to fit a
/// 1500-byte MTU, 16 header bytes plus 74 × 20.
pub const MAX_SCRAPE_HASHES: usize = 74;

/// Largest datagram either side needs to accept. Scrapes top out at 1496 bytes and
/// announces at 98 plus their options; anything bigger is not BEP 15.
pub const MAX_DATAGRAM: usize = 2048;

/// Longest message put in an error reply; the rest is cut so replies stay small.
pub const MAX_ERROR_MESSAGE: usize = 200;

/// Size of a connect request (and of a connect response).
pub const CONNECT_LEN: usize = 16;
/// Size of an announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// Size of a request header: connection id, action, transaction id.
pub const HEADER_LEN: usize = 16;

/// The `action` field: which kind of datagram this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Connect,
    Announce,
    Scrape,
    Error,
}

impl Action {
    pub fn code(self) -> u32 {
        match self {
            Action::Connect => 0,
            Action::Announce => 1,
            Action::Scrape => 2,
            Action::Error => 3,
        }
    }

    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Action::Connect),
            1 => Some(Action::Announce),
            2 => Some(Action::Scrape),
            3 => Some(Action::Error),
            _ => None,
        }
    }
}

/// The id a tracker hands out in a connect response and expects back in announces and
/// scrapes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({:016x})", self.0)
    }
}

/// Chosen by the client per request and echoed by the tracker, so the client can match a
/// reply to its request (and ignore stray or forged ones).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TransactionId(pub u32);

/// Which peer format an announce reply uses: BEP 15 sends 6-byte IPv4 peers to clients
/// that asked over IPv4 and 18-byte IPv6 peers to clients that asked over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerFamily {
    V4,
    V6,
}

impl PeerFamily {
    /// The family of the address a datagram came from (IPv4-mapped IPv6 counts as IPv4,
    /// since such a client reached a dual-stack socket over IPv4).
    pub fn of(ip: std::net::IpAddr) -> Self {
        match ip.to_canonical() {
            std::net::IpAddr::V4(_) => PeerFamily::V4,
            std::net::IpAddr::V6(_) => PeerFamily::V6,
        }
    }

    /// Bytes per peer in an announce reply.
    pub fn peer_len(self) -> usize {
        match self {
            PeerFamily::V4 => 6,
            PeerFamily::V6 => 18,
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn array20(b: &[u8], at: usize) -> [u8; 20] {
    let mut a = [0u8; 20];
    a.copy_from_slice(&b[at..at + 20]);
    a
}
