//! Payloads of the extension protocol, sans-IO and bounded: the BEP 10 handshake, BEP 9
//! `ut_metadata` messages and BEP 11 `ut_pex` peer lists. They travel inside
//! [`crate::wire::Message::Extended`]; this module only turns payload bytes into values
//! and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bencode::{self, Dict, Limits, Value};
use crate::compact;

/// `Extended` message id of the extension handshake itself.
pub const HANDSHAKE_ID: u8 = 0;
/// Metadata travels in pieces of 16 KiB (the last may be shorter).
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;
/// Largest info dictionary accepted from peers (a torrent of ~400,000 pieces).
pub const MAX_METADATA_SIZE: u32 = 8 * 1024 * 1024;
/// Extension names kept from one handshake; longer `m` dictionaries are cut.
pub const MAX_EXTENSIONS: usize = 64;
/// Peers in one PEX list; a longer list is a flood and refused whole.
pub const MAX_PEX_PEERS: usize = 200;
const MAX_CLIENT_NAME: usize = 128;
/// The handshake and metadata dictionaries are small; no need for deep nesting.
const LIMITS: Limits = Limits {
    max_depth: 4,
    max_items: 512,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("extension payload is not valid bencode: {0}")]
    Bencode(String),
    #[error("extension payload is not a dictionary")]
    NotADict,
    #[error("metadata_size {0} is out of range (1..={MAX_METADATA_SIZE})")]
    MetadataSize(i64),
    #[error("ut_metadata message without a valid {0}")]
    MissingField(&'static str),
    #[error("unknown ut_metadata msg_type {0}")]
    UnknownMetadataType(i64),
    #[error("PEX list {0} is malformed")]
    BadPexList(&'static str),
    #[error("PEX list {0} has more than {MAX_PEX_PEERS} peers")]
    PexFlood(&'static str),
}

/// The BEP 10 handshake: which extensions a peer speaks, under which message ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// `m`: extension name → the id the sender wants to receive it under (0 = disabled).
    pub extensions: Vec<(String, u8)>,
    /// `v`: client name and version.
    pub client: Option<String>,
    /// `p`: the sender's listen port.
    pub listen_port: Option<u16>,
    /// `reqq`: requests the sender queues without dropping.
    pub request_queue: Option<u32>,
    /// `metadata_size` (BEP 9): length of the info dictionary, when the sender has it.
    pub metadata_size: Option<u32>,
    /// `yourip`: our address as the sender sees it.
    pub your_ip: Option<IpAddr>,
}

fn dict_of(payload: &[u8]) -> Result<(Value<'_>, usize), ExtensionError> {
    let (v, used) = bencode::decode_prefix(payload, LIMITS)
        .map_err(|e| ExtensionError::Bencode(e.to_string()))?;
    if v.as_dict().is_none() {
        return Err(ExtensionError::NotADict);
    }
    Ok((v, used))
}

fn int(d: &Dict<'_>, key: &[u8]) -> Option<i64> {
    d.get(key).and_then(Value::as_int)
}

impl ExtendedHandshake {
    /// Decodes a handshake payload. Unknown keys, and `m` entries that are not integers
    /// 0..=255, are ignored; out-of-range optional fields read as absent, except a
    /// `metadata_size` beyond the cap, which is an error (the peer cannot serve it).
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let (v, _) = dict_of(payload)?;
        let d = v.as_dict().expect("checked by dict_of");
        let mut hs = ExtendedHandshake::default();
        if let Some(m) = d.get(b"m").and_then(Value::as_dict) {
            for (name, id) in m.iter().take(MAX_EXTENSIONS) {
                let (Ok(name), Some(id)) = (
                    std::str::from_utf8(name),
                    id.as_int().and_then(|i| u8::try_from(i).ok()),
                ) else {
                    continue;
                };
                hs.extensions.push((name.to_string(), id));
            }
            // Canonical (sorted) order, as encoding writes it, whatever order was sent.
            hs.extensions.sort();
        }
        hs.client = d
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_CLIENT_NAME)]).into_owned());
        hs.listen_port = int(d, b"p")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        hs.request_queue = int(d, b"reqq").and_then(|q| u32::try_from(q).ok());
        hs.metadata_size = match int(d, b"metadata_size") {
            None => None,
            Some(n) if (1..=i64::from(MAX_METADATA_SIZE)).contains(&n) => Some(n as u32),
            Some(n) => return Err(ExtensionError::MetadataSize(n)),
        };
        hs.your_ip = match d.get(b"yourip").and_then(Value::as_bytes) {
            Some(b) if b.len() == 4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            Some(b) if b.len() == 16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(b);
                Some(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            _ => None,
        };
        Ok(hs)
    }

    pub fn encode(&self) -> Vec<u8> {
        let m: Vec<(&[u8], Value<'_>)> = self
            .extensions
            .iter()
            .map(|(n, id)| (n.as_bytes(), Value::Int(i64::from(*id))))
            .collect();
        let ip_bytes: Option<Vec<u8>> = self.your_ip.map(|ip| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        });
        let mut root: Vec<(&[u8], Value<'_>)> = vec![(b"m", Value::Dict(Dict::from_entries(m)))];
        if let Some(n) = self.metadata_size {
            root.push((b"metadata_size", Value::Int(i64::from(n))));
        }
        if let Some(p) = self.listen_port {
            root.push((b"p", Value::Int(i64::from(p))));
        }
        if let Some(q) = self.request_queue {
            root.push((b"reqq", Value::Int(i64::from(q))));
        }
        if let Some(v) = &self.client {
            root.push((b"v", Value::Bytes(v.as_bytes())));
        }
        if let Some(ip) = &ip_bytes {
            root.push((b"yourip", Value::Bytes(ip)));
        }
        bencode::to_vec(&Value::Dict(Dict::from_entries(root)))
    }

    /// The id the peer wants `name` sent under; `None` when it does not speak it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.extensions
            .iter()
            .find(|(n, id)| n == name && *id != 0)
            .map(|(_, id)| *id)
    }
}

/// A BEP 9 `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    Request {
        piece: u32,
    },
    /// `data` is the piece's bytes, which follow the dictionary in the payload.
    Data {
        piece: u32,
        total_size: u32,
        data: &'a [u8],
    },
    Reject {
        piece: u32,
    },
}

impl<'a> MetadataMessage<'a> {
    pub fn decode(payload: &'a [u8]) -> Result<Self, ExtensionError> {
        let (v, used) = dict_of(payload)?;
        let d = v.as_dict().expect("checked by dict_of");
        let piece = int(d, b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(ExtensionError::MissingField("piece"))?;
        match int(d, b"msg_type").ok_or(ExtensionError::MissingField("msg_type"))? {
            0 => Ok(MetadataMessage::Request { piece }),
            1 => {
                let total =
                    int(d, b"total_size").ok_or(ExtensionError::MissingField("total_size"))?;
                if !(1..=i64::from(MAX_METADATA_SIZE)).contains(&total) {
                    return Err(ExtensionError::MetadataSize(total));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size: total as u32,
                    data: &payload[used..],
                })
            }
            2 => Ok(MetadataMessage::Reject { piece }),
            t => Err(ExtensionError::UnknownMetadataType(t)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (msg_type, piece) = match self {
            MetadataMessage::Request { piece } => (0, *piece),
            MetadataMessage::Data { piece, .. } => (1, *piece),
            MetadataMessage::Reject { piece } => (2, *piece),
        };
        let mut root: Vec<(&[u8], Value<'_>)> = vec![
            (b"msg_type", Value::Int(msg_type)),
            (b"piece", Value::Int(i64::from(piece))),
        ];
        if let MetadataMessage::Data { total_size, .. } = self {
            root.push((b"total_size", Value::Int(i64::from(*total_size))));
        }
        let mut out = bencode::to_vec(&Value::Dict(Dict::from_entries(root)));
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

/// How many 16 KiB pieces an info dictionary of `size` bytes travels in.
pub fn metadata_piece_count(size: u32) -> u32 {
    size.div_ceil(METADATA_PIECE_LEN)
}

/// The expected length of metadata piece `piece` of a `size`-byte dictionary; `None`
/// past the end.
pub fn metadata_piece_len(size: u32, piece: u32) -> Option<u32> {
    let start = piece.checked_mul(METADATA_PIECE_LEN)?;
    (start < size).then(|| (size - start).min(METADATA_PIECE_LEN))
}

/// A BEP 11 `ut_pex` message: peers the sender connected to and dropped since its last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// With each added peer, its `added.f` flags byte (0 when absent).
    pub added: Vec<(SocketAddr, u8)>,
    pub dropped: Vec<SocketAddr>,
}

/// `added.f` bit: the peer prefers encryption.
pub const PEX_FLAG_ENCRYPTION: u8 = 0x01;
/// `added.f` bit: the peer is a seed.
pub const PEX_FLAG_SEED: u8 = 0x02;

fn pex_list(d: &Dict<'_>, key: &'static str, v6: bool) -> Result<Vec<SocketAddr>, ExtensionError> {
    let Some(bytes) = d.get(key.as_bytes()).and_then(Value::as_bytes) else {
        return Ok(Vec::new());
    };
    let entry = if v6 { 18 } else { 6 };
    if bytes.len() / entry > MAX_PEX_PEERS {
        return Err(ExtensionError::PexFlood(key));
    }
    let peers = if v6 {
        compact::decode_peers_v6(bytes)
    } else {
        compact::decode_peers_v4(bytes)
    };
    peers.map_err(|_| ExtensionError::BadPexList(key))
}

impl PexMessage {
    /// Decodes a PEX payload; lists over [`MAX_PEX_PEERS`] are refused, flags missing or
    /// short for some peers read as 0.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let (v, _) = dict_of(payload)?;
        let d = v.as_dict().expect("checked by dict_of");
        let mut msg = PexMessage::default();
        for (list, flags_key, v6) in [("added", "added.f", false), ("added6", "added6.f", true)] {
            let flags = d
                .get(flags_key.as_bytes())
                .and_then(Value::as_bytes)
                .unwrap_or_default();
            let peers = pex_list(d, list, v6)?;
            msg.added.extend(
                peers
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (a, flags.get(i).copied().unwrap_or(0))),
            );
        }
        msg.dropped = pex_list(d, "dropped", false)?;
        msg.dropped.extend(pex_list(d, "dropped6", true)?);
        Ok(msg)
    }

    pub fn encode(&self) -> Vec<u8> {
        let (mut added, mut added_f, mut added6, mut added6_f) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (addr, flags) in &self.added {
            match addr {
                SocketAddr::V4(a) => {
                    compact::encode_v4(*a, &mut added);
                    added_f.push(*flags);
                }
                SocketAddr::V6(a) => {
                    compact::encode_v6(*a, &mut added6);
                    added6_f.push(*flags);
                }
            }
        }
        let (mut dropped, mut dropped6) = (Vec::new(), Vec::new());
        for addr in &self.dropped {
            match addr {
                SocketAddr::V4(a) => compact::encode_v4(*a, &mut dropped),
                SocketAddr::V6(a) => compact::encode_v6(*a, &mut dropped6),
            }
        }
        let root: Vec<(&[u8], Value<'_>)> = vec![
            (b"added", Value::Bytes(&added)),
            (b"added.f", Value::Bytes(&added_f)),
            (b"added6", Value::Bytes(&added6)),
            (b"added6.f", Value::Bytes(&added6_f)),
            (b"dropped", Value::Bytes(&dropped)),
            (b"dropped6", Value::Bytes(&dropped6)),
        ];
        bencode::to_vec(&Value::Dict(Dict::from_entries(root)))
    }
}

#[cfg(test)]
mod tests;
