//! Tracker-side HTTP announce and scrape: raw query-string parsing (BEP 3, 7, 23, 48) and bencoded reply encoding.
//!
//! Queries are parsed from the *raw* bytes after `?` because `info_hash` and `peer_id` are
//! binary: a generic form decoder would turn `+` into a space or reject non-UTF-8 bytes.
//! Here `+` is never a space (this is a URL query, not a form body), and every value is
//! percent-decoded by hand without heap allocation for the fixed-size and numeric fields.
//!
//! Repeated keys: for announces the *first* occurrence wins (later ones are ignored, so
//! the result does not depend on anything but the query bytes); for scrapes every
//! `info_hash` counts. Unknown keys are ignored.
//!
//! Replies are written by hand into a `Vec<u8>` with dictionary keys in sorted order.
//!
//! Layout: this file holds the request types and errors; query parsing and
//! query building live in `query.rs`, reply encoding in `reply.rs`.

use std::fmt;
use std::net::IpAddr;

use crate::types::{InfoHash, PeerId};

mod query;
mod reply;
#[cfg(test)]
mod tests;

pub use query::*;
pub use reply::*;

/// Default cap on the length of an announce query string; real clients send < 600 bytes.
pub const DEFAULT_MAX_QUERY_LEN: usize = 4096;

/// Longest `key`/`trackerid` value accepted; real clients send 8 or so characters.
pub(crate) const MAX_TEXT_PARAM: usize = 128;

/// The `event` parameter of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular re-announce (no `event`, or an empty one).
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

impl AnnounceEvent {
    pub const ALL: [AnnounceEvent; 4] = [
        AnnounceEvent::None,
        AnnounceEvent::Started,
        AnnounceEvent::Completed,
        AnnounceEvent::Stopped,
    ];

    /// The wire spelling; `None` is the empty string.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::None => "",
            AnnounceEvent::Started => "started",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Stopped => "stopped",
        }
    }

    /// Parses the wire spelling; the empty string is `None`, anything unknown is `Option::None`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::parse_bytes(s.as_bytes())
    }

    fn parse_bytes(s: &[u8]) -> Option<Self> {
        match s {
            b"" => Some(AnnounceEvent::None),
            b"started" => Some(AnnounceEvent::Started),
            b"completed" => Some(AnnounceEvent::Completed),
            b"stopped" => Some(AnnounceEvent::Stopped),
            _ => None,
        }
    }
}

impl fmt::Display for AnnounceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnnounceEvent::None => "none",
            other => other.as_str(),
        })
    }
}

/// A decoded `GET /announce` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// 1..=65535.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes still missing; 0 means the peer is a seeder.
    pub left: u64,
    pub event: AnnounceEvent,
    /// BEP 23 compact peer list; defaults to `true` when the client does not say.
    pub compact: bool,
    pub no_peer_id: bool,
    /// As sent; the tracker applies its own default and cap. Values over `u32::MAX` saturate.
    pub numwant: Option<u32>,
    /// The client's claimed address. Unparseable values (e.g. host names) are dropped,
    /// since trackers only honour this parameter when configured to and then need an IP.
    pub ip: Option<IpAddr>,
    /// The client's session key. Bytes that are not UTF-8 are replaced (lossy).
    pub key: Option<String>,
    pub tracker_id: Option<Vec<u8>>,
}

/// Why a query was refused. `Display` is the human text sent back as `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query string is {len} bytes, over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} must be 20 bytes, got {len}")]
    BadLength { field: &'static str, len: usize },
    #[error("bad percent-encoding in {0}")]
    BadPercentEncoding(&'static str),
    #[error("{0} must be a non-negative integer")]
    BadNumber(&'static str),
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    #[error("port must be 1..=65535, got {0}")]
    BadPort(u64),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("{0} must be UTF-8")]
    BadUtf8(&'static str),
    #[error("{field} longer than {max} bytes")]
    ValueTooLong { field: &'static str, max: usize },
    #[error("too many info_hash values (at most {max})")]
    TooManyHashes { max: usize },
}

impl QueryError {
    /// A short, fixed label for metrics (never includes request data).
    pub fn label(&self) -> &'static str {
        match self {
            QueryError::TooLong { .. } => "query_too_long",
            QueryError::Missing(_) => "missing_param",
            QueryError::BadLength { .. } => "bad_length",
            QueryError::BadPercentEncoding(_) => "bad_encoding",
            QueryError::BadNumber(_) | QueryError::OutOfRange(_) => "bad_number",
            QueryError::BadPort(_) => "bad_port",
            QueryError::UnknownEvent(_) => "bad_event",
            QueryError::BadUtf8(_) | QueryError::ValueTooLong { .. } => "bad_value",
            QueryError::TooManyHashes { .. } => "too_many_hashes",
        }
    }

    /// Every value [`QueryError::label`] can return, for pre-registering metric labels.
    pub const LABELS: [&'static str; 9] = [
        "query_too_long",
        "missing_param",
        "bad_length",
        "bad_encoding",
        "bad_number",
        "bad_port",
        "bad_event",
        "bad_value",
        "too_many_hashes",
    ];
}
