//! The sans-IO side of web seeds: file URLs (BEP 19), the byte-range requests for a run
//! of pieces, checking an untrusted HTTP response's status and headers, and cutting the
//! bodies back into pieces.

use std::fmt;
use std::ops::Range;

use crate::direct_io::PieceBuffer;
use crate::storage::Layout;

/// One HTTP request of a run: bytes `first..=last` of the torrent's file `file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RangeRequest {
    pub file: usize,
    pub first: u64,
    pub last: u64,
}

impl RangeRequest {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Range` header value.
    pub fn header(&self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }
}

/// Why a web seed request failed. Every one backs the URL off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// Connecting or sending failed (DNS, refused, TLS, reset).
    Connect(String),
    /// No response, or no body bytes, within the time allowed.
    Timeout(&'static str),
    /// A status other than 206 (or 200 for a whole-file request).
    Status(u16),
    /// The response does not answer the request we sent (range, length, encoding).
    BadResponse(String),
    /// The body broke off or ran past what was asked for.
    Body(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(e) => write!(f, "request failed: {e}"),
            FetchError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            FetchError::Status(s) => write!(f, "HTTP status {s} (want 206 Partial Content)"),
            FetchError::BadResponse(e) => write!(f, "bad response: {e}"),
            FetchError::Body(e) => write!(f, "bad body: {e}"),
        }
    }
}

/// Escapes one path component for a URL: everything but RFC 3986 unreserved bytes
/// (`A-Za-z0-9-._~`) becomes `%XX`, so names with spaces, `#`, `?`, `%` or non-ASCII
/// letters reach the server as the file's name.
pub(crate) fn escape_component(c: &str) -> String {
    let mut out = String::with_capacity(c.len());
    for b in c.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of one file at web seed `base` (BEP 19): a base ending in `/` gets the
/// torrent's name and, for a multi-file torrent, the file's path appended, each
/// component escaped; a single-file torrent's base without `/` is the file itself; a
/// multi-file base without `/` gets `/NAME/PATH` (as libtorrent does). A query string
/// (a presigned URL's signature) stays at the end; a fragment is dropped.
/// `path` is the file's components below the torrent's name (empty for single-file).
pub(crate) fn file_url(base: &str, name: &str, multi_file: bool, path: &[String]) -> String {
    let base = base.split('#').next().unwrap_or(base);
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let mut url = head.to_owned();
    if multi_file || head.ends_with('/') {
        if !url.ends_with('/') {
            url.push('/');
        }
        url.push_str(&escape_component(name));
        if multi_file {
            for c in path {
                url.push('/');
                url.push_str(&escape_component(c));
            }
        }
    }
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// The requests that fetch `pieces` (consecutive) in torrent order: one per file the
/// run touches, so a piece spanning files becomes several requests and adjacent pieces
/// in one file one larger request. Zero-length files are skipped.
pub(crate) fn plan_requests(layout: &Layout, pieces: Range<u32>) -> Vec<RangeRequest> {
    if pieces.is_empty() {
        return Vec::new();
    }
    let start = layout.piece_offset(pieces.start);
    let end = layout.piece_offset(pieces.end - 1) + u64::from(layout.piece_size(pieces.end - 1));
    layout
        .slices(start, end - start)
        .into_iter()
        .map(|s| RangeRequest {
            file: s.file,
            first: s.file_offset,
            last: s.file_offset + s.len - 1,
        })
        .collect()
}

/// A parsed `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

/// Parses a `Content-Range` value strictly: the `bytes` unit, decimal digits only (no
/// signs, spaces inside numbers or overflow), `first <= last < total`. Anything else,
/// including the `bytes */TOTAL` form of a 416, is `None`.
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let value = value.trim();
    let (unit, rest) = value.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (span, total) = rest.trim_start().split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (first, last) = (number(first)?, number(last)?);
    let total = match total {
        "*" => None,
        t => Some(number(t)?),
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// What a response to `req` (on a file of `file_len` bytes) must look like before its
/// body is read: 206 with a `Content-Range` naming exactly the bytes asked for (and the
/// file's length, when it says one), or 200 only when the request was for the whole
/// file (a server that ignores `Range`); a `Content-Length`, if any, equal to what is
/// expected; no content encoding. Returns the body length to expect.
pub(crate) fn check_response(
    req: &RangeRequest,
    file_len: u64,
    status: u16,
    content_range: Option<&str>,
    content_length: Option<u64>,
    content_encoding: Option<&str>,
) -> Result<u64, FetchError> {
    let expect = req.len();
    match status {
        206 => {
            let raw = content_range.ok_or_else(|| {
                FetchError::BadResponse("206 without a Content-Range header".into())
            })?;
            let cr = parse_content_range(raw).ok_or_else(|| {
                FetchError::BadResponse(format!("unusable Content-Range {:?}", clip(raw)))
            })?;
            if (cr.first, cr.last) != (req.first, req.last) {
                return Err(FetchError::BadResponse(format!(
                    "asked for bytes {}-{}, got {}-{}",
                    req.first, req.last, cr.first, cr.last
                )));
            }
            if cr.total.is_some_and(|t| t != file_len) {
                return Err(FetchError::BadResponse(format!(
                    "the file is {} bytes there, the torrent says {file_len}",
                    cr.total.unwrap_or_default()
                )));
            }
        }
        200 if req.first == 0 && req.last + 1 == file_len => {}
        200 => {
            return Err(FetchError::BadResponse(
                "the server ignored the Range header (200 instead of 206)".into(),
            ))
        }
        s => return Err(FetchError::Status(s)),
    }
    if let Some(n) = content_length.filter(|n| *n != expect) {
        return Err(FetchError::BadResponse(format!(
            "Content-Length {n}, expected {expect}"
        )));
    }
    if let Some(enc) = content_encoding.filter(|e| !e.trim().eq_ignore_ascii_case("identity")) {
        return Err(FetchError::BadResponse(format!(
            "Content-Encoding {:?}: the bytes would not be the file's",
            clip(enc)
        )));
    }
    Ok(expect)
}

/// At most 64 characters of an untrusted header, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Cuts the bytes of a run of pieces, arriving in torrent order across requests, back
/// into whole pieces.
pub(crate) struct Assembler {
    next: u32,
    end: u32,
    sizes: Vec<u32>,
    current: Option<(PieceBuffer, usize)>,
}

impl Assembler {
    /// For `pieces`, whose sizes are `sizes` (one per piece).
    pub fn new(pieces: Range<u32>, sizes: Vec<u32>) -> Assembler {
        debug_assert_eq!(sizes.len(), pieces.len());
        Assembler {
            next: pieces.start,
            end: pieces.end,
            sizes,
            current: None,
        }
    }

    /// The piece being filled (or next to be), if any is left.
    pub fn next_piece(&self) -> Option<u32> {
        (self.next < self.end).then_some(self.next)
    }

    /// Adds `bytes`, taking a fresh buffer from `new_buf(size)` for each piece, and
    /// appends every piece they complete to `done`. `Err` when there are more bytes
    /// than the run holds.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        new_buf: &mut impl FnMut(usize) -> PieceBuffer,
        done: &mut Vec<(u32, PieceBuffer)>,
    ) -> Result<(), FetchError> {
        let first = self.end - self.sizes.len() as u32;
        while !bytes.is_empty() {
            let Some(piece) = self.next_piece() else {
                return Err(FetchError::Body(
                    "more bytes than the pieces asked for".into(),
                ));
            };
            let size = self.sizes[(piece - first) as usize] as usize;
            let (buf, filled) = self.current.get_or_insert_with(|| (new_buf(size), 0));
            let take = bytes.len().min(size - *filled);
            buf.as_mut_slice()[*filled..*filled + take].copy_from_slice(&bytes[..take]);
            *filled += take;
            bytes = &bytes[take..];
            if *filled == size {
                let (buf, _) = self.current.take().expect("just filled");
                done.push((piece, buf));
                self.next += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
