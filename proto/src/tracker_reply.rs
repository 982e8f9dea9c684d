//! Client-side decoding of tracker announce and scrape replies (BEP 3, 23, 7, 48).
//!
//! Replies come from the network and are untrusted: sizes are bounded, peer lists are
//! capped at [`MAX_PEERS`], and malformed entries are skipped rather than trusted.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::bencode::{self, BencodeError, Limits, Value};
use crate::compact::{self, CompactError};
use crate::types::InfoHash;

/// Largest reply body accepted.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// Most peers taken from one reply; the rest are ignored.
pub const MAX_PEERS: usize = 2000;
/// Interval used when the tracker gives none or an absurd one.
pub const DEFAULT_INTERVAL: u32 = 1800;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrackerReplyError {
    #[error("tracker refused: {0}")]
    Failure(String),
    #[error("tracker reply is {0} bytes; larger than the limit")]
    TooLarge(usize),
    #[error("tracker reply is not valid bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("tracker reply is not a dictionary")]
    NotADict,
    #[error("tracker reply has malformed peers: {0}")]
    Peers(#[from] CompactError),
    #[error("tracker reply has no peer list")]
    MissingPeers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceReply {
    pub interval: u32,
    pub min_interval: Option<u32>,
    pub complete: Option<u32>,
    pub incomplete: Option<u32>,
    pub tracker_id: Option<Vec<u8>>,
    pub warning: Option<String>,
    pub peers: Vec<SocketAddr>,
}

/// Per-torrent scrape figures; the same type the tracker encodes.
pub use crate::announce::ScrapeStats;

fn parse_root(bytes: &[u8]) -> Result<Value<'_>, TrackerReplyError> {
    if bytes.len() > MAX_REPLY_BYTES {
        return Err(TrackerReplyError::TooLarge(bytes.len()));
    }
    let limits = Limits {
        max_depth: 8,
        max_items: 100_000,
    };
    let root = bencode::decode_with(bytes, limits)?;
    let dict = root.as_dict().ok_or(TrackerReplyError::NotADict)?;
    if let Some(reason) = dict.get(b"failure reason") {
        let text = reason
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "(no reason given)".into());
        return Err(TrackerReplyError::Failure(text));
    }
    Ok(root)
}

fn count(value: Option<&Value<'_>>) -> Option<u32> {
    value
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok())
}

pub fn decode_announce_reply(bytes: &[u8]) -> Result<AnnounceReply, TrackerReplyError> {
    let root = parse_root(bytes)?;
    let interval = count(root.get(b"interval"))
        .filter(|&i| i > 0 && i <= 7 * 24 * 3600)
        .unwrap_or(DEFAULT_INTERVAL);
    let mut peers = match root.get(b"peers") {
        Some(Value::Bytes(b)) => compact::decode_peers_v4(b)?,
        Some(Value::List(list)) => list.iter().filter_map(dict_peer).collect(),
        Some(_) => return Err(TrackerReplyError::MissingPeers),
        None if root.get(b"peers6").is_some() => Vec::new(),
        None => return Err(TrackerReplyError::MissingPeers),
    };
    if let Some(v6) = root.get(b"peers6").and_then(Value::as_bytes) {
        peers.extend(compact::decode_peers_v6(v6)?);
    }
    peers.truncate(MAX_PEERS);
    Ok(AnnounceReply {
        interval,
        min_interval: count(root.get(b"min interval")),
        complete: count(root.get(b"complete")),
        incomplete: count(root.get(b"incomplete")),
        tracker_id: root
            .get(b"tracker id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
        warning: root
            .get(b"warning message")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        peers,
    })
}

/// A peer from the dictionary (non-compact) form; unusable entries are skipped.
fn dict_peer(peer: &Value<'_>) -> Option<SocketAddr> {
    let ip: IpAddr = peer.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(peer.get(b"port")?.as_int()?).ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
}

pub fn decode_scrape_reply(
    bytes: &[u8],
) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerReplyError> {
    let root = parse_root(bytes)?;
    let Some(files) = root.get(b"files").and_then(Value::as_dict) else {
        return Ok(Vec::new());
    };
    Ok(files
        .iter()
        .filter_map(|(key, stats)| {
            let hash = InfoHash::from_slice(key)?;
            Some((
                hash,
                ScrapeStats {
                    complete: count(stats.get(b"complete")).unwrap_or(0),
                    incomplete: count(stats.get(b"incomplete")).unwrap_or(0),
                    downloaded: count(stats.get(b"downloaded")).unwrap_or(0),
                },
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_reply_with_peers6() {
        let mut body =
            b"d8:completei2e10:incompletei1e8:intervali900e12:min intervali60e5:peers12:".to_vec();
        body.extend_from_slice(b"\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe2");
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe3]);
        body.extend_from_slice(b"15:warning message4:slowe");
        let reply = decode_announce_reply(&body).unwrap();
        assert_eq!(reply.interval, 900);
        assert_eq!(reply.min_interval, Some(60));
        assert_eq!(reply.complete, Some(2));
        assert_eq!(reply.incomplete, Some(1));
        assert_eq!(reply.warning.as_deref(), Some("slow"));
        let want: Vec<SocketAddr> = ["127.0.0.1:6881", "10.0.0.2:6882", "[::1]:6883"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(reply.peers, want);
    }

    #[test]
    fn dictionary_peers_skip_bad_entries() {
        let body = b"d8:intervali30e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip7:garbage4:porti1eed2:ip3:::14:porti70000eed2:ip3:::14:porti7eeee";
        let reply = decode_announce_reply(body).unwrap();
        assert_eq!(
            reply.peers,
            vec![
                "127.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "[::1]:7".parse().unwrap()
            ]
        );
    }

    #[test]
    fn failure_reason_and_bad_replies() {
        assert_eq!(
            decode_announce_reply(b"d14:failure reason12:unregisterede"),
            Err(TrackerReplyError::Failure("unregistered".into()))
        );
        assert!(matches!(
            decode_announce_reply(b"d8:intervali5e5:peers5:abcdee"),
            Err(TrackerReplyError::Peers(_))
        ));
        assert_eq!(
            decode_announce_reply(b"d8:intervali5ee"),
            Err(TrackerReplyError::MissingPeers)
        );
        assert!(decode_announce_reply(b"<html>").is_err());
        assert_eq!(
            decode_announce_reply(b"le"),
            Err(TrackerReplyError::NotADict)
        );
        // Absurd interval falls back to the default rather than hammering or stalling.
        let reply = decode_announce_reply(b"d8:intervali0e5:peers0:e").unwrap();
        assert_eq!(reply.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn huge_peer_lists_are_capped() {
        let mut body = format!("d8:intervali5e5:peers{}:", 6 * 5000).into_bytes();
        for i in 0..5000u32 {
            body.extend_from_slice(&i.to_be_bytes());
            body.extend_from_slice(&[0x1a, 0xe1]);
        }
        body.push(b'e');
        assert_eq!(decode_announce_reply(&body).unwrap().peers.len(), MAX_PEERS);
    }

    #[test]
    fn scrape_reply() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend_from_slice(&[0xab; 20]);
        body.extend_from_slice(
            b"d8:completei5e10:downloadedi9e10:incompletei3ee3:badd8:completei1eeee",
        );
        let stats = decode_scrape_reply(&body).unwrap();
        assert_eq!(
            stats,
            vec![(
                InfoHash([0xab; 20]),
                ScrapeStats {
                    complete: 5,
                    incomplete: 3,
                    downloaded: 9
                }
            )]
        );
    }
}
