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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::types::{InfoHash, PeerId};

/// Default cap on the length of an announce query string; real clients send < 600 bytes.
pub const DEFAULT_MAX_QUERY_LEN: usize = 4096;

/// Longest `key`/`trackerid` value accepted; real clients send 8 or so characters.
const MAX_TEXT_PARAM: usize = 128;

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

// ---------------------------------------------------------------------------------------
// Percent decoding
// ---------------------------------------------------------------------------------------

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Iterates the decoded bytes of one value; `Err(())` on a malformed `%` escape.
struct Decoded<'a> {
    rest: &'a [u8],
}

impl Iterator for Decoded<'_> {
    type Item = Result<u8, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&b, rest) = self.rest.split_first()?;
        if b != b'%' {
            self.rest = rest;
            return Some(Ok(b));
        }
        match rest {
            [h, l, tail @ ..] => match (hex_val(*h), hex_val(*l)) {
                (Some(h), Some(l)) => {
                    self.rest = tail;
                    Some(Ok(h << 4 | l))
                }
                _ => {
                    self.rest = &[];
                    Some(Err(()))
                }
            },
            _ => {
                self.rest = &[];
                Some(Err(()))
            }
        }
    }
}

fn decoded(v: &[u8]) -> Decoded<'_> {
    Decoded { rest: v }
}

fn decode_id(field: &'static str, v: &[u8]) -> Result<[u8; 20], QueryError> {
    let mut out = [0u8; 20];
    let mut n = 0usize;
    for b in decoded(v) {
        let b = b.map_err(|()| QueryError::BadPercentEncoding(field))?;
        if let Some(slot) = out.get_mut(n) {
            *slot = b;
        }
        n += 1;
    }
    if n != 20 {
        return Err(QueryError::BadLength { field, len: n });
    }
    Ok(out)
}

fn decode_u64(field: &'static str, v: &[u8]) -> Result<u64, QueryError> {
    let mut acc: u64 = 0;
    let mut any = false;
    for b in decoded(v) {
        let b = b.map_err(|()| QueryError::BadPercentEncoding(field))?;
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(QueryError::BadNumber(field)),
        };
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(d))
            .ok_or(QueryError::OutOfRange(field))?;
        any = true;
    }
    if !any {
        return Err(QueryError::BadNumber(field));
    }
    Ok(acc)
}

/// Like [`decode_u64`] but saturating: a huge `numwant` just means "as many as allowed".
fn decode_saturating_u32(field: &'static str, v: &[u8]) -> Result<u32, QueryError> {
    match decode_u64(field, v) {
        Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Err(QueryError::OutOfRange(_)) => Ok(u32::MAX),
        Err(e) => Err(e),
    }
}

fn decode_bytes(field: &'static str, v: &[u8], max: usize) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::with_capacity(v.len().min(max));
    for b in decoded(v) {
        let b = b.map_err(|()| QueryError::BadPercentEncoding(field))?;
        if out.len() == max {
            return Err(QueryError::ValueTooLong { field, max });
        }
        out.push(b);
    }
    Ok(out)
}

fn decode_text(field: &'static str, v: &[u8], max: usize) -> Result<String, QueryError> {
    String::from_utf8(decode_bytes(field, v, max)?).map_err(|_| QueryError::BadUtf8(field))
}

/// The `key` parameter. aria2 (and others) send binary keys; a key is an opaque token the
/// tracker only compares, so non-UTF-8 bytes are replaced rather than refusing the
/// announce. The length cap applies to the *resulting* string, so whatever is accepted
/// re-encodes (`to_query_string`) to a query that parses back to the same value.
fn decode_key(v: &[u8]) -> Result<String, QueryError> {
    let too_long = QueryError::ValueTooLong {
        field: "key",
        max: MAX_TEXT_PARAM,
    };
    let raw = decode_bytes("key", v, MAX_TEXT_PARAM)?;
    let key = String::from_utf8(raw)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    if key.len() > MAX_TEXT_PARAM {
        return Err(too_long);
    }
    Ok(key)
}

/// Splits a raw query into `(key, raw value)` pairs; empty segments are skipped.
fn pairs(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    raw.split(|&b| b == b'&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| match seg.iter().position(|&b| b == b'=') {
            Some(i) => (&seg[..i], &seg[i + 1..]),
            None => (seg, &b""[..]),
        })
}

// ---------------------------------------------------------------------------------------
// Announce / scrape parsing
// ---------------------------------------------------------------------------------------

/// Parses an announce query with the [`DEFAULT_MAX_QUERY_LEN`] cap.
pub fn parse_announce_query(raw_query: &[u8]) -> Result<AnnounceRequest, QueryError> {
    parse_announce_query_limited(raw_query, DEFAULT_MAX_QUERY_LEN)
}

/// Parses an announce query (the bytes after `?`), refusing queries over `max_len` bytes.
pub fn parse_announce_query_limited(
    raw_query: &[u8],
    max_len: usize,
) -> Result<AnnounceRequest, QueryError> {
    if raw_query.len() > max_len {
        return Err(QueryError::TooLong {
            len: raw_query.len(),
            max: max_len,
        });
    }
    // Raw values, first occurrence wins; decoding happens afterwards so that a bad
    // duplicate later in the query cannot change the outcome.
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut uploaded = None;
    let mut downloaded = None;
    let mut left = None;
    let mut event = None;
    let mut compact = None;
    let mut no_peer_id = None;
    let mut numwant = None;
    let mut ip = None;
    let mut key = None;
    let mut tracker_id = None;
    for (k, v) in pairs(raw_query) {
        let slot = match k {
            b"info_hash" => &mut info_hash,
            b"peer_id" => &mut peer_id,
            b"port" => &mut port,
            b"uploaded" => &mut uploaded,
            b"downloaded" => &mut downloaded,
            b"left" => &mut left,
            b"event" => &mut event,
            b"compact" => &mut compact,
            b"no_peer_id" => &mut no_peer_id,
            b"numwant" => &mut numwant,
            b"ip" => &mut ip,
            b"key" => &mut key,
            b"trackerid" => &mut tracker_id,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }

    let info_hash = InfoHash(decode_id(
        "info_hash",
        info_hash.ok_or(QueryError::Missing("info_hash"))?,
    )?);
    let peer_id = PeerId(decode_id(
        "peer_id",
        peer_id.ok_or(QueryError::Missing("peer_id"))?,
    )?);
    let port_raw = decode_u64("port", port.ok_or(QueryError::Missing("port"))?)?;
    let port = match u16::try_from(port_raw) {
        Ok(p) if p != 0 => p,
        _ => return Err(QueryError::BadPort(port_raw)),
    };
    // Missing byte counters default to 0: some clients omit them on `stopped`.
    let num = |field, v: Option<&[u8]>| v.map_or(Ok(0), |v| decode_u64(field, v));
    let uploaded = num("uploaded", uploaded)?;
    let downloaded = num("downloaded", downloaded)?;
    let left = num("left", left)?;
    let event = match event {
        None => AnnounceEvent::None,
        Some(v) => {
            let bytes = decode_bytes("event", v, 32)
                .map_err(|_| QueryError::UnknownEvent(String::from("<too long>")))?;
            AnnounceEvent::parse_bytes(&bytes).ok_or_else(|| {
                QueryError::UnknownEvent(String::from_utf8_lossy(&bytes).into_owned())
            })?
        }
    };
    let flag = |field, v: Option<&[u8]>| -> Result<Option<bool>, QueryError> {
        v.map(|v| decode_u64(field, v).map(|n| n != 0)).transpose()
    };
    let compact = flag("compact", compact)?.unwrap_or(true);
    let no_peer_id = flag("no_peer_id", no_peer_id)?.unwrap_or(false);
    let numwant = numwant
        .map(|v| decode_saturating_u32("numwant", v))
        .transpose()?;
    let ip = match ip {
        None => None,
        Some(v) => decode_text("ip", v, 64)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok()),
    };
    // aria2 (and others) send a binary `key`; it is an opaque token the tracker only
    // compares, so non-UTF-8 bytes are kept lossily rather than refusing the announce.
    let key = key.map(decode_key).transpose()?;
    let tracker_id = tracker_id
        .map(|v| decode_bytes("trackerid", v, MAX_TEXT_PARAM))
        .transpose()?;

    Ok(AnnounceRequest {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event,
        compact,
        no_peer_id,
        numwant,
        ip,
        key,
        tracker_id,
    })
}

/// Parses a scrape query (BEP 48): one or more `info_hash` values, at most `max_hashes`.
///
/// No `info_hash` at all is an error: a private tracker does not offer full scrapes.
/// Duplicates are kept here; [`encode_scrape_reply`] collapses them.
pub fn parse_scrape_query(raw: &[u8], max_hashes: usize) -> Result<Vec<InfoHash>, QueryError> {
    let mut out = Vec::new();
    for (k, v) in pairs(raw) {
        if k != b"info_hash" {
            continue;
        }
        if out.len() == max_hashes {
            return Err(QueryError::TooManyHashes { max: max_hashes });
        }
        out.push(InfoHash(decode_id("info_hash", v)?));
    }
    if out.is_empty() {
        return Err(QueryError::Missing("info_hash"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Query building (client side)
// ---------------------------------------------------------------------------------------

/// Appends `bytes` percent-encoded: RFC 3986 unreserved characters stay, the rest is `%XX`.
pub fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

impl AnnounceRequest {
    /// The query string (without `?`) a client sends for this announce.
    pub fn to_query_string(&self) -> String {
        use std::fmt::Write;
        let mut q = String::with_capacity(200);
        q.push_str("info_hash=");
        percent_encode_into(&mut q, &self.info_hash.0);
        q.push_str("&peer_id=");
        percent_encode_into(&mut q, &self.peer_id.0);
        // Writing into a String cannot fail.
        let _ = write!(
            q,
            "&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact)
        );
        if self.no_peer_id {
            q.push_str("&no_peer_id=1");
        }
        if self.event != AnnounceEvent::None {
            q.push_str("&event=");
            q.push_str(self.event.as_str());
        }
        if let Some(n) = self.numwant {
            let _ = write!(q, "&numwant={n}");
        }
        if let Some(ip) = self.ip {
            q.push_str("&ip=");
            percent_encode_into(&mut q, ip.to_string().as_bytes());
        }
        if let Some(key) = &self.key {
            q.push_str("&key=");
            percent_encode_into(&mut q, key.as_bytes());
        }
        if let Some(id) = &self.tracker_id {
            q.push_str("&trackerid=");
            percent_encode_into(&mut q, id);
        }
        q
    }
}

// ---------------------------------------------------------------------------------------
// Reply encoding
// ---------------------------------------------------------------------------------------

fn put_int(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `i<n>e`
fn put_bint(out: &mut Vec<u8>, n: u64) {
    out.push(b'i');
    put_int(out, n);
    out.push(b'e');
}

/// `<len>:<bytes>`
fn put_bstr(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, s.len() as u64);
    out.push(b':');
    out.extend_from_slice(s);
}

/// Appends the 6-byte compact form (BEP 23) of an IPv4 peer.
pub fn encode_compact_v4(out: &mut Vec<u8>, ip: Ipv4Addr, port: u16) {
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&port.to_be_bytes());
}

/// Appends the 18-byte compact form (BEP 7) of an IPv6 peer.
pub fn encode_compact_v6(out: &mut Vec<u8>, ip: Ipv6Addr, port: u16) {
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&port.to_be_bytes());
}

/// One peer handed out in an announce reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPeer {
    pub addr: SocketAddr,
    pub peer_id: PeerId,
}

/// How the `peers` value is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerListFormat {
    /// BEP 23 `peers` string of 6-byte entries plus BEP 7 `peers6` of 18-byte entries.
    Compact,
    /// BEP 3 list of dictionaries (`ip`, `peer id` unless `no_peer_id`, `port`).
    Dict { with_peer_id: bool },
}

impl PeerListFormat {
    pub fn for_request(req: &AnnounceRequest) -> Self {
        if req.compact {
            PeerListFormat::Compact
        } else {
            PeerListFormat::Dict {
                with_peer_id: !req.no_peer_id,
            }
        }
    }
}

/// Everything in a successful announce reply except the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceReply<'a> {
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub interval: u32,
    pub min_interval: Option<u32>,
    pub tracker_id: Option<&'a [u8]>,
    pub warning: Option<&'a str>,
}

/// Appends a complete bencoded announce reply to `out`.
pub fn encode_announce_reply(
    out: &mut Vec<u8>,
    reply: &AnnounceReply<'_>,
    peers: &[ReplyPeer],
    format: PeerListFormat,
) {
    out.push(b'd');
    out.extend_from_slice(b"8:complete");
    put_bint(out, u64::from(reply.complete));
    out.extend_from_slice(b"10:incomplete");
    put_bint(out, u64::from(reply.incomplete));
    out.extend_from_slice(b"8:interval");
    put_bint(out, u64::from(reply.interval));
    if let Some(min) = reply.min_interval {
        out.extend_from_slice(b"12:min interval");
        put_bint(out, u64::from(min));
    }
    out.extend_from_slice(b"5:peers");
    match format {
        PeerListFormat::Compact => {
            let v4 = peers.iter().filter(|p| p.addr.is_ipv4()).count();
            let v6 = peers.len() - v4;
            put_int(out, (v4 * 6) as u64);
            out.push(b':');
            for p in peers {
                if let SocketAddr::V4(a) = p.addr {
                    encode_compact_v4(out, *a.ip(), a.port());
                }
            }
            if v6 > 0 {
                out.extend_from_slice(b"6:peers6");
                put_int(out, (v6 * 18) as u64);
                out.push(b':');
                for p in peers {
                    if let SocketAddr::V6(a) = p.addr {
                        encode_compact_v6(out, *a.ip(), a.port());
                    }
                }
            }
        }
        PeerListFormat::Dict { with_peer_id } => {
            out.push(b'l');
            for p in peers {
                out.push(b'd');
                out.extend_from_slice(b"2:ip");
                put_bstr(out, p.addr.ip().to_string().as_bytes());
                if with_peer_id {
                    out.extend_from_slice(b"7:peer id");
                    put_bstr(out, &p.peer_id.0);
                }
                out.extend_from_slice(b"4:port");
                put_bint(out, u64::from(p.addr.port()));
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    if let Some(id) = reply.tracker_id {
        out.extend_from_slice(b"10:tracker id");
        put_bstr(out, id);
    }
    if let Some(w) = reply.warning {
        out.extend_from_slice(b"15:warning message");
        put_bstr(out, w.as_bytes());
    }
    out.push(b'e');
}

/// Per-torrent figures in a scrape reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed events seen.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Appends a scrape reply `d5:filesd<hash>d...e...ee`; entries are sorted and de-duplicated
/// here (bencode needs sorted, unique keys), so callers may pass them in request order.
pub fn encode_scrape_reply(out: &mut Vec<u8>, entries: &[(InfoHash, ScrapeStats)]) {
    let mut sorted: Vec<&(InfoHash, ScrapeStats)> = entries.iter().collect();
    sorted.sort_unstable_by_key(|e| e.0);
    sorted.dedup_by(|a, b| a.0 == b.0);
    out.extend_from_slice(b"d5:filesd");
    for (hash, s) in sorted {
        put_bstr(out, &hash.0);
        out.extend_from_slice(b"d8:complete");
        put_bint(out, u64::from(s.complete));
        out.extend_from_slice(b"10:downloaded");
        put_bint(out, u64::from(s.downloaded));
        out.extend_from_slice(b"10:incomplete");
        put_bint(out, u64::from(s.incomplete));
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

/// Appends `d14:failure reason<len>:<reason>e`.
pub fn encode_failure(out: &mut Vec<u8>, reason: &str) {
    out.extend_from_slice(b"d14:failure reason");
    put_bstr(out, reason.as_bytes());
    out.push(b'e');
}

// Property and differential (serde_bencode) tests of this module live in
// tracker/tests/proto_announce.rs; these are the byte-fixture unit tests.
#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
    const IH_BYTES: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x12, 0x34, 0x56, 0x78, 0x9a,
    ];
    const PID: &str = "-KP0100-ab+cd%20ef%00%FFgh";

    fn q(rest: &str) -> String {
        format!("info_hash={IH}&peer_id={PID}&port=6881{rest}")
    }

    fn parse(s: &str) -> Result<AnnounceRequest, QueryError> {
        parse_announce_query(s.as_bytes())
    }

    #[test]
    fn parses_a_typical_query_with_binary_ids() {
        let r = parse(&q("&uploaded=1&downloaded=2&left=3&event=started&numwant=80&key=abc&trackerid=x%00y&ip=10.1.2.3&no_peer_id=1")).unwrap();
        assert_eq!(r.info_hash.0, IH_BYTES);
        // `+` stays a literal plus in binary fields; %00 and %FF are raw bytes.
        assert_eq!(&r.peer_id.0, b"-KP0100-ab+cd ef\x00\xffgh");
        assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 1, 2, 3));
        assert_eq!(r.event, AnnounceEvent::Started);
        assert!(r.compact, "compact defaults to true");
        assert!(r.no_peer_id);
        assert_eq!(r.numwant, Some(80));
        assert_eq!(r.key.as_deref(), Some("abc"));
        assert_eq!(r.tracker_id.as_deref(), Some(&b"x\x00y"[..]));
        assert_eq!(r.ip, Some("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn defaults_and_flags() {
        let r = parse(&q("&compact=0")).unwrap();
        assert!(!r.compact);
        assert_eq!((r.uploaded, r.downloaded, r.left), (0, 0, 0));
        assert_eq!(r.event, AnnounceEvent::None);
        assert_eq!(parse(&q("&event=")).unwrap().event, AnnounceEvent::None);
        assert_eq!(parse(&q("&ip=not-an-ip")).unwrap().ip, None);
        assert_eq!(
            parse(&q("&ip=%3A%3A1")).unwrap().ip,
            Some("::1".parse().unwrap())
        );
    }

    #[test]
    fn binary_key_is_accepted() {
        // What aria2 1.36 sends.
        let r = parse(&q("&key=%13%0D7%1B%2C%1D%B6%B3")).unwrap();
        assert_eq!(
            r.key.as_deref(),
            Some("\u{13}\r7\u{1b},\u{1d}\u{fffd}\u{fffd}")
        );
    }

    #[test]
    fn lossy_key_still_round_trips() {
        // 100 invalid bytes become 300 bytes of U+FFFD: over the cap, refused outright
        // rather than accepted and then failing to re-parse.
        assert!(parse(&q(&format!("&key={}", "%FF".repeat(100)))).is_err());
        let r = parse(&q(&format!("&key={}", "%FF".repeat(42)))).unwrap();
        assert_eq!(parse(&r.to_query_string()).unwrap(), r);
    }

    #[test]
    fn first_occurrence_wins_for_repeated_keys() {
        let r = parse(&q("&port=7000&left=5&left=junk")).unwrap();
        assert_eq!(r.port, 6881);
        assert_eq!(r.left, 5);
    }

    #[test]
    fn missing_and_wrong_length_ids() {
        let e = parse_announce_query(b"peer_id=aaaaaaaaaaaaaaaaaaaa&port=1").unwrap_err();
        assert_eq!(e.to_string(), "missing info_hash");
        let e = parse(&format!("info_hash={}&port=1", "a".repeat(20))).unwrap_err();
        assert_eq!(e.to_string(), "missing peer_id");
        let e = parse(&format!(
            "info_hash={}&peer_id={PID}&port=1",
            "a".repeat(19)
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "info_hash must be 20 bytes, got 19");
        let e = parse(&format!(
            "info_hash={IH}&peer_id={}&port=1",
            "%41".repeat(21)
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "peer_id must be 20 bytes, got 21");
        let e = parse(&format!("info_hash={IH}&peer_id={PID}")).unwrap_err();
        assert_eq!(e, QueryError::Missing("port"));
    }

    #[test]
    fn bad_percent_encoding() {
        for bad in ["%G1", "%1", "%"] {
            let s = format!("info_hash={}{bad}&peer_id={PID}&port=1", "a".repeat(19));
            assert_eq!(
                parse(&s).unwrap_err(),
                QueryError::BadPercentEncoding("info_hash"),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&q("&left=1%2")).unwrap_err().to_string(),
            "bad percent-encoding in left"
        );
    }

    #[test]
    fn ports_and_numbers() {
        let with_port = |p: &str| parse(&format!("info_hash={IH}&peer_id={PID}&port={p}"));
        assert_eq!(
            with_port("0").unwrap_err().to_string(),
            "port must be 1..=65535, got 0"
        );
        assert_eq!(with_port("65536").unwrap_err(), QueryError::BadPort(65536));
        assert_eq!(with_port("65535").unwrap().port, 65535);
        assert_eq!(
            with_port("%36%35").unwrap().port,
            65,
            "digits may be escaped"
        );
        assert_eq!(with_port("").unwrap_err(), QueryError::BadNumber("port"));
        assert_eq!(
            with_port("99999999999999999999999").unwrap_err(),
            QueryError::OutOfRange("port")
        );
        assert_eq!(
            parse(&q("&left=-1")).unwrap_err().to_string(),
            "left must be a non-negative integer"
        );
        assert_eq!(
            parse(&q("&uploaded=+1")).unwrap_err(),
            QueryError::BadNumber("uploaded")
        );
        assert_eq!(
            parse(&q("&uploaded=18446744073709551615"))
                .unwrap()
                .uploaded,
            u64::MAX
        );
        assert_eq!(
            parse(&q("&downloaded=18446744073709551616"))
                .unwrap_err()
                .to_string(),
            "downloaded is out of range"
        );
        assert_eq!(
            parse(&q("&numwant=99999999999999999999999"))
                .unwrap()
                .numwant,
            Some(u32::MAX)
        );
        assert_eq!(
            parse(&q("&numwant=-5")).unwrap_err(),
            QueryError::BadNumber("numwant")
        );
    }

    #[test]
    fn unknown_event_and_long_query() {
        assert_eq!(
            parse(&q("&event=paused")).unwrap_err().to_string(),
            "unknown event \"paused\""
        );
        assert_eq!(
            parse(&q("&event=STARTED")).unwrap_err().label(),
            "bad_event"
        );
        let long = q(&format!("&pad={}", "x".repeat(5000)));
        let e = parse(&long).unwrap_err();
        assert!(matches!(e, QueryError::TooLong { max: 4096, .. }), "{e}");
        assert!(parse_announce_query_limited(long.as_bytes(), 8192).is_ok());
        assert!(parse(&q(&format!("&key={}", "k".repeat(200)))).is_err());
    }

    #[test]
    fn every_error_label_is_registered() {
        let errs = [
            parse_announce_query(&[b'a'; 5000]).unwrap_err(),
            parse("").unwrap_err(),
            parse(&format!("info_hash={IH}&peer_id={PID}&port=0")).unwrap_err(),
            parse(&q("&event=x")).unwrap_err(),
            parse_scrape_query(format!("info_hash={IH}&info_hash={IH}").as_bytes(), 1).unwrap_err(),
        ];
        for e in errs {
            assert!(QueryError::LABELS.contains(&e.label()), "{e:?}");
        }
    }

    #[test]
    fn query_string_encodes_binary_and_round_trips() {
        let r = parse(&q(
            "&uploaded=10&left=0&event=completed&compact=0&numwant=5&key=a%20b",
        ))
        .unwrap();
        let s = r.to_query_string();
        assert!(s.starts_with("info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&peer_id=-KP0100-ab%2Bcd%20ef%00%FFgh&port=6881"), "{s}");
        assert_eq!(parse(&s).unwrap(), r);
    }

    #[test]
    fn scrape_takes_several_hashes() {
        let other = "b".repeat(20);
        let hs = parse_scrape_query(
            format!("info_hash={IH}&x=1&info_hash={other}").as_bytes(),
            10,
        )
        .unwrap();
        assert_eq!(hs, vec![InfoHash(IH_BYTES), InfoHash([b'b'; 20])]);
        assert_eq!(
            parse_scrape_query(b"", 10).unwrap_err(),
            QueryError::Missing("info_hash")
        );
        assert_eq!(
            parse_scrape_query(b"info_hash=abc", 10)
                .unwrap_err()
                .to_string(),
            "info_hash must be 20 bytes, got 3"
        );
        let three = format!("info_hash={IH}&info_hash={IH}&info_hash={IH}");
        assert_eq!(
            parse_scrape_query(three.as_bytes(), 2).unwrap_err(),
            QueryError::TooManyHashes { max: 2 }
        );
    }

    fn peer(addr: &str, id: u8) -> ReplyPeer {
        ReplyPeer {
            addr: addr.parse().unwrap(),
            peer_id: PeerId([id; 20]),
        }
    }

    #[test]
    fn compact_reply_fixture() {
        let mut out = Vec::new();
        let reply = AnnounceReply {
            complete: 1,
            incomplete: 2,
            interval: 1800,
            min_interval: Some(900),
            tracker_id: None,
            warning: None,
        };
        encode_announce_reply(
            &mut out,
            &reply,
            &[
                peer("10.0.0.1:6881", 1),
                peer("[::1]:258", 2),
                peer("1.2.3.4:65535", 3),
            ],
            PeerListFormat::Compact,
        );
        let mut want =
            b"d8:completei1e10:incompletei2e8:intervali1800e12:min intervali900e5:peers12:"
                .to_vec();
        want.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, 1, 2, 3, 4, 0xff, 0xff]);
        want.extend_from_slice(b"6:peers618:");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2]);
        want.push(b'e');
        assert_eq!(out, want);
    }

    #[test]
    fn dict_reply_fixture_with_and_without_peer_id() {
        let reply = AnnounceReply {
            complete: 0,
            incomplete: 0,
            interval: 60,
            min_interval: None,
            tracker_id: Some(b"tid"),
            warning: Some("hi"),
        };
        let peers = [peer("10.0.0.1:80", b'x')];
        let mut out = Vec::new();
        encode_announce_reply(
            &mut out,
            &reply,
            &peers,
            PeerListFormat::Dict { with_peer_id: true },
        );
        assert_eq!(out, b"d8:completei0e10:incompletei0e8:intervali60e5:peersld2:ip8:10.0.0.17:peer id20:xxxxxxxxxxxxxxxxxxxx4:porti80eee10:tracker id3:tid15:warning message2:hie".to_vec());
        out.clear();
        encode_announce_reply(&mut out, &reply, &[], PeerListFormat::Compact);
        assert_eq!(out, b"d8:completei0e10:incompletei0e8:intervali60e5:peers0:10:tracker id3:tid15:warning message2:hie".to_vec());
        out.clear();
        encode_announce_reply(
            &mut out,
            &reply,
            &peers,
            PeerListFormat::Dict {
                with_peer_id: false,
            },
        );
        assert!(out
            .windows(30)
            .any(|w| w == b"5:peersld2:ip8:10.0.0.14:porti"));
    }

    #[test]
    fn scrape_and_failure_fixtures() {
        let s = ScrapeStats {
            complete: 3,
            downloaded: 7,
            incomplete: 1,
        };
        let mut out = Vec::new();
        encode_scrape_reply(
            &mut out,
            &[
                (InfoHash([b'b'; 20]), s),
                (InfoHash([b'a'; 20]), ScrapeStats::default()),
                (InfoHash([b'b'; 20]), s),
            ],
        );
        let want = format!(
            "d5:filesd20:{}d8:completei0e10:downloadedi0e10:incompletei0ee20:{}d8:completei3e10:downloadedi7e10:incompletei1eeee",
            "a".repeat(20), "b".repeat(20)
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        encode_failure(&mut out, "missing info_hash");
        assert_eq!(out, b"d14:failure reason17:missing info_hashe");
    }

    #[test]
    fn event_spellings() {
        for e in AnnounceEvent::ALL {
            assert_eq!(AnnounceEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(AnnounceEvent::parse("bogus"), None);
    }
}
