//! Bencoded announce, scrape and failure replies, written by hand with keys in sorted order.

use std::net::SocketAddr;

use super::AnnounceRequest;
use crate::compact;
use crate::types::{InfoHash, PeerId};

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
            // One growth for the whole list (plus peers6, usually absent) at most.
            out.reserve(v4 * compact::V4_RECORD + v6 * compact::V6_RECORD + 16);
            for p in peers {
                if let SocketAddr::V4(a) = p.addr {
                    compact::encode_v4(a, out);
                }
            }
            if v6 > 0 {
                out.extend_from_slice(b"6:peers6");
                put_int(out, (v6 * 18) as u64);
                out.push(b':');
                for p in peers {
                    if let SocketAddr::V6(a) = p.addr {
                        compact::encode_v6(a, out);
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

/// Per-torrent figures in a scrape reply. The one definition shared by the tracker (encoding,
/// here) and the client ([`crate::tracker_reply`] re-exports it for decoding).
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
