//! Fuzz entry points: each decodes hostile bytes and checks the decoder's invariants.
//!
//! The `cargo fuzz` targets in `fuzz/` and the corpus-replay test in `proto/tests/`
//! call these same functions, so every corpus file is also an ordinary regression test.
//! A broken invariant panics, which is what both harnesses report.

use bytes::BytesMut;

use crate::announce;
use crate::bencode;
use crate::metainfo::Metainfo;
use crate::tracker_reply;
use crate::udp;
use crate::wire::{self, Bitfield, Message};
use crate::PieceIndex;

/// Decoding never panics; whatever decodes re-encodes to something that decodes the same.
pub fn bencode(data: &[u8]) {
    if let Ok(value) = bencode::decode(data) {
        let encoded = bencode::to_vec(&value);
        let again = bencode::decode(&encoded).expect("our own encoding decodes");
        assert_eq!(bencode::to_vec(&again), encoded, "encoding is stable");
    }
}

/// A torrent that parses is safe to lay out: plain path components and consistent geometry.
pub fn metainfo(data: &[u8]) {
    let Ok(meta) = Metainfo::from_bytes(data) else {
        return;
    };
    let info = &meta.info;
    assert!(meta.web_seeds.len() <= crate::metainfo::MAX_WEB_SEEDS);
    for url in &meta.web_seeds {
        assert!(
            crate::metainfo::is_web_seed_url(url),
            "{url:?} kept as a web seed"
        );
    }
    for file in &info.files {
        for component in &file.path {
            assert!(!component.is_empty() && component != "." && component != "..");
            assert!(!component.contains(['/', '\\', '\0']));
        }
    }
    // Only check a bounded number of pieces so one input cannot make the run slow.
    for index in (0..info.piece_count()).take(64) {
        let piece = PieceIndex(index);
        let size = info.piece_size(piece);
        assert!(size > 0 && size <= info.piece_length);
        let covered: u64 = info
            .file_slices(info.piece_offset(piece), u64::from(size))
            .iter()
            .map(|s| s.len)
            .sum();
        assert_eq!(
            covered,
            u64::from(size),
            "piece {index} is fully backed by files"
        );
    }
}

/// Query parsing never panics; a parsed announce survives a round trip through the encoder.
pub fn announce_query(data: &[u8]) {
    if let Ok(request) = announce::parse_announce_query(data) {
        let query = request.to_query_string();
        let again =
            announce::parse_announce_query(query.as_bytes()).expect("re-encoded query parses");
        assert_eq!(again, request);
    }
    let _ = announce::parse_scrape_query(data, 64);
}

/// Tracker replies decode without panicking and never yield more than the peer cap.
pub fn tracker_reply(data: &[u8]) {
    if let Ok(reply) = tracker_reply::decode_announce_reply(data) {
        assert!(reply.peers.len() <= tracker_reply::MAX_PEERS);
        assert!(reply.peers.iter().all(|p| p.port() != 0));
    }
    let _ = tracker_reply::decode_scrape_reply(data);
}

/// Every frame that decodes re-encodes to exactly the bytes it was decoded from.
pub fn wire(data: &[u8]) {
    let max_frame = wire::max_frame_for(1000);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match wire::decode_message(&mut buf, max_frame) {
            Ok(Some(message)) => {
                let consumed = before.len() - buf.len();
                let mut encoded = BytesMut::new();
                message.encode(&mut encoded);
                assert_eq!(&encoded[..], &before[..consumed], "{message:?}");
                if let Message::Bitfield(bits) = &message {
                    if let Ok(field) = Bitfield::from_wire(bits, 1000) {
                        assert_eq!(field.as_bytes(), &bits[..]);
                    }
                }
                if let Message::Extended { payload, .. } = &message {
                    extension_payload(payload);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    if data.len() >= wire::HANDSHAKE_LEN {
        let mut handshake = [0u8; wire::HANDSHAKE_LEN];
        handshake.copy_from_slice(&data[..wire::HANDSHAKE_LEN]);
        if let Ok(decoded) = wire::Handshake::decode(&handshake) {
            assert_eq!(decoded.encode(), handshake);
        }
    }
}

/// Extension payloads: whatever decodes re-encodes to something that decodes the same.
fn extension_payload(payload: &[u8]) {
    use crate::extension::{ExtendedHandshake, MetadataMessage, PexMessage, MAX_PEX_PEERS};
    if let Ok(hs) = ExtendedHandshake::decode(payload) {
        assert_eq!(ExtendedHandshake::decode(&hs.encode()).as_ref(), Ok(&hs));
    }
    if let Ok(m) = MetadataMessage::decode(payload) {
        assert_eq!(MetadataMessage::decode(&m.encode()).as_ref(), Ok(&m));
        // A magnet download feeds such pieces to its assembly: it refuses, never panics.
        if let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = m
        {
            let ih = crate::InfoHash([0; 20]);
            if let Ok(mut a) = crate::metadata::MetadataAssembly::new(ih, u64::from(total_size)) {
                let _ = a.on_data(piece, total_size, data);
            }
        }
    }
    if let Ok(p) = PexMessage::decode(payload) {
        assert!(p.added.len() <= 2 * MAX_PEX_PEERS && p.dropped.len() <= 2 * MAX_PEX_PEERS);
        assert_eq!(PexMessage::decode(&p.encode()).as_ref(), Ok(&p));
    }
}

/// UDP tracker datagrams (both directions) decode without panicking; a request or
/// response that decodes re-encodes to the bytes it came from (up to the BEP 41 options'
/// end for announces), and URL data never outgrows its input.
pub fn udp_tracker(data: &[u8]) {
    match udp::parse_request(data) {
        Ok(udp::Request::Connect { transaction_id }) => {
            assert_eq!(udp::encode_connect_request(transaction_id)[..], data[..16]);
        }
        Ok(udp::Request::Announce(a)) => {
            let mut out = Vec::new();
            udp::encode_announce_request(&mut out, &a);
            // Every negative num_want means "the tracker's default" and is written back
            // as -1, so those four bytes may differ; everything else must not.
            if a.num_want.is_none() && out.len() >= 96 && data.len() >= 96 {
                out[92..96].copy_from_slice(&data[92..96]);
            }
            assert_eq!(out, data);
            let mut path = Vec::new();
            if udp::url_data(a.options, &mut path).is_ok() {
                assert!(path.len() <= a.options.len());
            }
        }
        Ok(udp::Request::Scrape(s)) => {
            assert!(s.len() <= udp::MAX_SCRAPE_HASHES);
            let mut out = Vec::new();
            udp::encode_scrape_request(&mut out, &s);
            assert_eq!(out, data);
        }
        Err(e) => {
            let _ = (e.transaction_id(), e.label());
        }
    }
    for family in [udp::PeerFamily::V4, udp::PeerFamily::V6] {
        let Ok(resp) = udp::parse_response(data, family) else {
            continue;
        };
        let mut out = Vec::new();
        match &resp {
            udp::Response::Connect {
                transaction_id,
                connection_id,
            } => {
                udp::encode_connect_response(&mut out, *transaction_id, *connection_id);
                assert_eq!(out[..], data[..16]);
            }
            udp::Response::Announce(a) => {
                assert!(a.peers.len() <= udp::max_reply_peers(family));
                assert!(a.peers.iter().all(|p| p.port() != 0));
            }
            udp::Response::Scrape {
                transaction_id,
                stats,
            } => {
                udp::encode_scrape_header(&mut out, *transaction_id);
                stats
                    .iter()
                    .for_each(|s| udp::push_scrape_stats(&mut out, s));
                assert_eq!(out, data);
            }
            udp::Response::Error { message, .. } => {
                assert!(message.len() <= 3 * udp::MAX_ERROR_MESSAGE);
            }
        }
    }
}

/// A fuzz entry point: takes hostile bytes, panics only on a broken invariant.
pub type FuzzTarget = fn(&[u8]);

/// All targets by name, for the corpus-replay test.
pub const TARGETS: &[(&str, FuzzTarget)] = &[
    ("bencode", bencode),
    ("metainfo", metainfo),
    ("announce_query", announce_query),
    ("tracker_reply", tracker_reply),
    ("wire", wire),
    ("magnet", magnet),
    ("udp_tracker", udp_tracker),
];

/// A magnet link that parses writes back to a link that parses to the same thing.
pub fn magnet(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = crate::magnet::parse(text) {
        assert!(m.trackers.len() <= crate::magnet::MAX_TRACKERS);
        assert!(m.peers.len() <= crate::magnet::MAX_PEERS);
        let again = crate::magnet::parse(&m.to_uri()).expect("our own link parses");
        assert_eq!(again, m, "magnet round trip");
    }
}
