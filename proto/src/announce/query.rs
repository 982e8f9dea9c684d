//! Announce/scrape query parsing (raw, binary-safe percent decoding) and client-side query building.

use std::net::IpAddr;

use super::{AnnounceEvent, AnnounceRequest, QueryError, DEFAULT_MAX_QUERY_LEN, MAX_TEXT_PARAM};
use crate::types::{InfoHash, PeerId};

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

/// The percent-decoded bytes of `v` (at most `v.len()` of them); `None` on a malformed
/// escape.
pub(crate) fn percent_decode(v: &[u8]) -> Option<Vec<u8>> {
    decoded(v).collect::<Result<Vec<u8>, ()>>().ok()
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
