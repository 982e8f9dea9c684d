//! Peer wire protocol (BEP 3): handshake, length-prefixed messages and piece bitfields.
//!
//! Decoding works on a `BytesMut` read buffer: a complete frame is split off without
//! copying (piece payloads stay zero-copy `Bytes`), an incomplete one is left in place,
//! and an oversized length prefix is refused before anything is reserved for it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::types::{InfoHash, PeerId};

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// The block size every client requests in; larger requests are refused by most peers.
pub const BLOCK_SIZE: u32 = 16 * 1024;
/// Reserved-bit flag for the extension protocol (BEP 10), byte 5 bit 0x10.
pub const RESERVED_EXTENSION_PROTOCOL: (usize, u8) = (5, 0x10);
/// Reserved-bit flag for the Fast extension (BEP 6), byte 7 bit 0x04.
pub const RESERVED_FAST: (usize, u8) = (7, 0x04);

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum WireError {
    #[error("peer does not speak the BitTorrent protocol (bad handshake header)")]
    BadProtocol,
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("message id {id} has a payload of {len} bytes; expected {expected}")]
    BadPayloadLength {
        id: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("bitfield is {got} bytes; {expected} expected for {pieces} pieces")]
    BitfieldSize {
        got: usize,
        expected: usize,
        pieces: u32,
    },
    #[error("bitfield sets bits beyond the last piece")]
    BitfieldSpareBits,
}

/// The 68-byte opening exchange of every peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Self {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    pub fn decode(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        if bytes[0] != 19 || &bytes[1..20] != PROTOCOL {
            return Err(WireError::BadProtocol);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&bytes[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Self {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        })
    }

    /// The same handshake announcing the extension protocol (BEP 10).
    pub fn with_extension_protocol(mut self) -> Self {
        let (byte, bit) = RESERVED_EXTENSION_PROTOCOL;
        self.reserved[byte] |= bit;
        self
    }

    /// The same handshake announcing the Fast extension (BEP 6).
    pub fn with_fast(mut self) -> Self {
        let (byte, bit) = RESERVED_FAST;
        self.reserved[byte] |= bit;
        self
    }

    pub fn supports_fast(&self) -> bool {
        let (byte, bit) = RESERVED_FAST;
        self.reserved[byte] & bit != 0
    }

    pub fn supports_extensions(&self) -> bool {
        let (byte, bit) = RESERVED_EXTENSION_PROTOCOL;
        self.reserved[byte] & bit != 0
    }
}

/// A block request or cancel: `length` bytes at `begin` within piece `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRequest {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bytes),
    Request(BlockRequest),
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel(BlockRequest),
    Port(u16),
    /// BEP 6 (only between peers that both set the Fast bit): "you may fetch this".
    Suggest(u32),
    /// BEP 6: instead of a bitfield, "I have every piece" / "I have none".
    HaveAll,
    HaveNone,
    /// BEP 6: the request will not be served (e.g. we are choking the peer).
    Reject(BlockRequest),
    /// BEP 6: this piece may be requested even while choked.
    AllowedFast(u32),
    Extended {
        id: u8,
        payload: Bytes,
    },
    Unknown {
        id: u8,
        payload: Bytes,
    },
}

mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST: u8 = 0x0d;
    pub const HAVE_ALL: u8 = 0x0e;
    pub const HAVE_NONE: u8 = 0x0f;
    pub const REJECT: u8 = 0x10;
    pub const ALLOWED_FAST: u8 = 0x11;
    pub const EXTENDED: u8 = 20;
}

/// The largest frame a well-behaved peer sends for a torrent of `piece_count` pieces:
/// a full block, or the bitfield, whichever is bigger (plus headers).
pub fn max_frame_for(piece_count: u32) -> u32 {
    let bitfield = piece_count.div_ceil(8) + 1;
    (BLOCK_SIZE + 9).max(bitfield).max(64 * 1024)
}

/// Splits one complete message off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` is left untouched then, but capacity
/// for the rest of the frame is reserved so the next read fills it without reallocating.
pub fn decode_message(buf: &mut BytesMut, max_frame: u32) -> Result<Option<Message>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > max_frame {
        return Err(WireError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    if len == 0 {
        return Ok(Some(Message::KeepAlive));
    }
    let mut frame = buf.split_to(len as usize);
    let msg_id = frame.get_u8();
    let payload_len = frame.len();
    let expect = |expected: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(WireError::BadPayloadLength {
                id: msg_id,
                len: payload_len,
                expected,
            })
        }
    };
    let message = match msg_id {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => {
            expect("0", payload_len == 0)?;
            match msg_id {
                id::CHOKE => Message::Choke,
                id::UNCHOKE => Message::Unchoke,
                id::INTERESTED => Message::Interested,
                _ => Message::NotInterested,
            }
        }
        id::HAVE | id::SUGGEST | id::ALLOWED_FAST => {
            expect("4", payload_len == 4)?;
            let index = frame.get_u32();
            match msg_id {
                id::HAVE => Message::Have(index),
                id::SUGGEST => Message::Suggest(index),
                _ => Message::AllowedFast(index),
            }
        }
        id::HAVE_ALL | id::HAVE_NONE => {
            expect("0", payload_len == 0)?;
            if msg_id == id::HAVE_ALL {
                Message::HaveAll
            } else {
                Message::HaveNone
            }
        }
        id::BITFIELD => Message::Bitfield(frame.freeze()),
        id::REQUEST | id::CANCEL | id::REJECT => {
            expect("12", payload_len == 12)?;
            let request = BlockRequest {
                index: frame.get_u32(),
                begin: frame.get_u32(),
                length: frame.get_u32(),
            };
            match msg_id {
                id::REQUEST => Message::Request(request),
                id::CANCEL => Message::Cancel(request),
                _ => Message::Reject(request),
            }
        }
        id::PIECE => {
            expect("at least 8", payload_len >= 8)?;
            let index = frame.get_u32();
            let begin = frame.get_u32();
            Message::Piece {
                index,
                begin,
                data: frame.freeze(),
            }
        }
        id::PORT => {
            expect("2", payload_len == 2)?;
            Message::Port(frame.get_u16())
        }
        id::EXTENDED => {
            expect("at least 1", payload_len >= 1)?;
            let ext = frame.get_u8();
            Message::Extended {
                id: ext,
                payload: frame.freeze(),
            }
        }
        other => Message::Unknown {
            id: other,
            payload: frame.freeze(),
        },
    };
    Ok(Some(message))
}

/// Writes the 13-byte header of a piece message whose `data_len` bytes follow separately,
/// so block data read from disk can be sent without copying it into the frame.
pub fn encode_piece_header(index: u32, begin: u32, data_len: u32, out: &mut BytesMut) {
    out.put_u32(9 + data_len);
    out.put_u8(id::PIECE);
    out.put_u32(index);
    out.put_u32(begin);
}

impl Message {
    pub fn encode(&self, out: &mut BytesMut) {
        let simple = |out: &mut BytesMut, id: u8| {
            out.put_u32(1);
            out.put_u8(id);
        };
        match self {
            Message::KeepAlive => out.put_u32(0),
            Message::Choke => simple(out, id::CHOKE),
            Message::Unchoke => simple(out, id::UNCHOKE),
            Message::Interested => simple(out, id::INTERESTED),
            Message::NotInterested => simple(out, id::NOT_INTERESTED),
            Message::Have(index) => put_index(out, id::HAVE, *index),
            Message::Bitfield(bits) => put_payload(out, id::BITFIELD, &[], bits),
            Message::Request(r) => put_request(out, id::REQUEST, r),
            Message::Cancel(r) => put_request(out, id::CANCEL, r),
            Message::Piece { index, begin, data } => {
                encode_piece_header(*index, *begin, data.len() as u32, out);
                out.extend_from_slice(data);
            }
            Message::Port(port) => {
                out.put_u32(3);
                out.put_u8(id::PORT);
                out.put_u16(*port);
            }
            Message::Suggest(index) => put_index(out, id::SUGGEST, *index),
            Message::AllowedFast(index) => put_index(out, id::ALLOWED_FAST, *index),
            Message::HaveAll => simple(out, id::HAVE_ALL),
            Message::HaveNone => simple(out, id::HAVE_NONE),
            Message::Reject(r) => put_request(out, id::REJECT, r),
            Message::Extended { id: ext, payload } => {
                put_payload(out, id::EXTENDED, &[*ext], payload)
            }
            Message::Unknown { id, payload } => put_payload(out, *id, &[], payload),
        }
    }
}

fn put_index(out: &mut BytesMut, id: u8, index: u32) {
    out.put_u32(5);
    out.put_u8(id);
    out.put_u32(index);
}

fn put_request(out: &mut BytesMut, id: u8, r: &BlockRequest) {
    out.put_u32(13);
    out.put_u8(id);
    out.put_u32(r.index);
    out.put_u32(r.begin);
    out.put_u32(r.length);
}

fn put_payload(out: &mut BytesMut, id: u8, prefix: &[u8], payload: &[u8]) {
    out.put_u32((1 + prefix.len() + payload.len()) as u32);
    out.put_u8(id);
    out.extend_from_slice(prefix);
    out.extend_from_slice(payload);
}

/// Which pieces a peer (or we) have, in wire order: piece 0 is the high bit of byte 0.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

impl Bitfield {
    pub fn new(len: u32) -> Self {
        Self {
            bits: vec![0; len.div_ceil(8) as usize],
            len,
            ones: 0,
        }
    }

    pub fn full(len: u32) -> Self {
        let mut field = Self::new(len);
        for i in 0..len {
            field.set(i);
        }
        field
    }

    /// Validates a received bitfield: exact byte length and no bits past `len`.
    pub fn from_wire(bytes: &[u8], len: u32) -> Result<Self, WireError> {
        let expected = len.div_ceil(8) as usize;
        if bytes.len() != expected {
            return Err(WireError::BitfieldSize {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        let spare = (expected as u32 * 8) - len;
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if bytes[expected - 1] & mask != 0 {
                return Err(WireError::BitfieldSpareBits);
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Self {
            bits: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// False for indices out of range, so callers can pass unvalidated numbers.
    pub fn get(&self, index: u32) -> bool {
        index < self.len && self.bits[(index / 8) as usize] & (0x80 >> (index % 8)) != 0
    }

    /// Sets a bit; returns whether it changed. Out-of-range indices are ignored.
    pub fn set(&mut self, index: u32) -> bool {
        if index >= self.len || self.get(index) {
            return false;
        }
        self.bits[(index / 8) as usize] |= 0x80 >> (index % 8);
        self.ones += 1;
        true
    }

    /// Clears a bit; returns whether it changed.
    pub fn clear(&mut self, index: u32) -> bool {
        if !self.get(index) {
            return false;
        }
        self.bits[(index / 8) as usize] &= !(0x80 >> (index % 8));
        self.ones -= 1;
        true
    }

    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(move |&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1 << 20;

    fn encoded(m: &Message) -> BytesMut {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        out
    }

    #[test]
    fn handshake_fixture_round_trips() {
        let hs = Handshake::new(InfoHash([0xaa; 20]), PeerId(*b"-KP0100-abcdefghijkl"));
        let bytes = hs.encode();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], b"BitTorrent protocol");
        assert_eq!(&bytes[48..], b"-KP0100-abcdefghijkl");
        assert_eq!(Handshake::decode(&bytes).unwrap(), hs);
        let mut bad = bytes;
        bad[5] = b'x';
        assert_eq!(Handshake::decode(&bad), Err(WireError::BadProtocol));
    }

    #[test]
    fn message_fixtures() {
        let cases: Vec<(Message, &[u8])> = vec![
            (Message::KeepAlive, b"\0\0\0\0"),
            (Message::Choke, b"\0\0\0\x01\x00"),
            (Message::Interested, b"\0\0\0\x01\x02"),
            (Message::Have(258), b"\0\0\0\x05\x04\0\0\x01\x02"),
            (
                Message::Request(BlockRequest {
                    index: 1,
                    begin: 16384,
                    length: 16384,
                }),
                b"\0\0\0\x0d\x06\0\0\0\x01\0\0\x40\0\0\0\x40\0",
            ),
            (
                Message::Piece {
                    index: 2,
                    begin: 0,
                    data: Bytes::from_static(b"abc"),
                },
                b"\0\0\0\x0c\x07\0\0\0\x02\0\0\0\0abc",
            ),
            (Message::Port(6881), b"\0\0\0\x03\x09\x1a\xe1"),
            // BEP 6 (Fast extension), byte for byte as in the BEP's message table.
            (Message::Suggest(5), b"\0\0\0\x05\x0d\0\0\0\x05"),
            (Message::HaveAll, b"\0\0\0\x01\x0e"),
            (Message::HaveNone, b"\0\0\0\x01\x0f"),
            (
                Message::Reject(BlockRequest {
                    index: 3,
                    begin: 0,
                    length: 16384,
                }),
                b"\0\0\0\x0d\x10\0\0\0\x03\0\0\0\0\0\0\x40\0",
            ),
            (Message::AllowedFast(9), b"\0\0\0\x05\x11\0\0\0\x09"),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                b"\0\0\0\x04\x14\0de",
            ),
        ];
        for (message, bytes) in cases {
            assert_eq!(&encoded(&message)[..], bytes, "{message:?}");
            let mut buf = BytesMut::from(bytes);
            assert_eq!(decode_message(&mut buf, MAX).unwrap(), Some(message));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn fast_bit_and_malformed_fast_messages() {
        let hs = Handshake::new(InfoHash([1; 20]), PeerId([2; 20])).with_fast();
        let bytes = hs.encode();
        assert_eq!(bytes[27], 0x04, "reserved byte 7, bit 0x04");
        let back = Handshake::decode(&bytes).unwrap();
        assert!(back.supports_fast() && !back.supports_extensions());
        for bad in [
            &b"\0\0\0\x02\x0e\0"[..],
            b"\0\0\0\x04\x11\0\0\0",
            b"\0\0\0\x05\x10\0\0\0\0",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(matches!(
                decode_message(&mut buf, MAX),
                Err(WireError::BadPayloadLength { .. })
            ));
        }
    }

    #[test]
    fn every_split_point_waits_for_the_whole_frame() {
        let mut stream = BytesMut::new();
        let messages = vec![
            Message::Unchoke,
            Message::Bitfield(Bytes::from_static(&[0xf0])),
            Message::Piece {
                index: 7,
                begin: 32,
                data: Bytes::from(vec![9u8; 100]),
            },
            Message::Cancel(BlockRequest {
                index: 1,
                begin: 2,
                length: 3,
            }),
        ];
        for m in &messages {
            m.encode(&mut stream);
        }
        for split in 0..=stream.len() {
            let mut buf = BytesMut::from(&stream[..split]);
            let mut got = Vec::new();
            while let Some(m) = decode_message(&mut buf, MAX).unwrap() {
                got.push(m);
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(m) = decode_message(&mut buf, MAX).unwrap() {
                got.push(m);
            }
            assert_eq!(got, messages, "split at {split}");
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_allocating() {
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xff\x07"[..]);
        let capacity = buf.capacity();
        assert_eq!(
            decode_message(&mut buf, MAX),
            Err(WireError::FrameTooLarge {
                len: u32::MAX,
                max: MAX
            })
        );
        assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn wrong_payload_lengths_are_errors() {
        for bytes in [
            &b"\0\0\0\x02\x00\x00"[..],
            b"\0\0\0\x04\x04\0\0\0",
            b"\0\0\0\x0c\x06\0\0\0\0\0\0\0\0\0\0\0",
            b"\0\0\0\x05\x07\0\0\0\0",
            b"\0\0\0\x01\x14",
        ] {
            let mut buf = BytesMut::from(bytes);
            assert!(decode_message(&mut buf, MAX).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn unknown_ids_are_kept_opaque() {
        let mut buf = BytesMut::from(&b"\0\0\0\x03\x63ab"[..]);
        assert_eq!(
            decode_message(&mut buf, MAX).unwrap(),
            Some(Message::Unknown {
                id: 0x63,
                payload: Bytes::from_static(b"ab")
            })
        );
    }

    #[test]
    fn bitfield_validation_and_ops() {
        assert!(Bitfield::from_wire(&[0xff], 10).is_err());
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0xc0], 10).unwrap().count_ones(),
            10
        );
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0xe0], 10),
            Err(WireError::BitfieldSpareBits)
        );
        let mut field = Bitfield::from_wire(&[0x80, 0x40], 10).unwrap();
        assert!(field.get(0) && field.get(9) && !field.get(1) && !field.get(10));
        assert!(field.set(3));
        assert!(!field.set(3));
        assert!(!field.set(99));
        assert_eq!(field.iter_set().collect::<Vec<_>>(), vec![0, 3, 9]);
        assert!(field.clear(0));
        assert_eq!(field.count_ones(), 2);
        assert!(Bitfield::full(10).is_complete());
        assert_eq!(Bitfield::full(10).as_bytes(), &[0xff, 0xc0]);
    }
}
