//! Fetching a torrent's info dictionary from peers (BEP 9), sans IO: which piece to
//! ask for next, bounded assembly of the pieces a peer sends, the SHA-1 check against
//! the magnet's info hash, and the .torrent built around the verified dictionary.

use sha1::{Digest, Sha1};

use crate::bencode;
use crate::extension::{metadata_piece_count, metadata_piece_len, MAX_METADATA_SIZE};
use crate::InfoHash;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("peer advertises metadata of {0} bytes (the limit is {MAX_METADATA_SIZE})")]
    TooLarge(u64),
    #[error("peer advertises empty metadata")]
    Empty,
    #[error("metadata piece {piece}: {reason}")]
    BadPiece { piece: u32, reason: &'static str },
    #[error("the peer rejected metadata piece {0}")]
    Rejected(u32),
    #[error("metadata from this peer does not hash to the info hash")]
    HashMismatch,
}

/// The metadata one peer is sending us, piece by piece, in order.
#[derive(Debug)]
pub struct MetadataAssembly {
    info_hash: InfoHash,
    size: u32,
    buf: Vec<u8>,
    next: u32,
}

impl MetadataAssembly {
    /// Starts assembling `size` bytes (the peer's `metadata_size`), refusing sizes
    /// over the cap before allocating anything.
    pub fn new(info_hash: InfoHash, size: u64) -> Result<Self, MetadataError> {
        if size == 0 {
            return Err(MetadataError::Empty);
        }
        if size > u64::from(MAX_METADATA_SIZE) {
            return Err(MetadataError::TooLarge(size));
        }
        let size = size as u32;
        Ok(MetadataAssembly {
            info_hash,
            size,
            buf: Vec::with_capacity(size as usize),
            next: 0,
        })
    }

    /// The piece to request next, or None when all have arrived.
    pub fn next_request(&self) -> Option<u32> {
        (self.next < metadata_piece_count(self.size)).then_some(self.next)
    }

    pub fn piece_count(&self) -> u32 {
        metadata_piece_count(self.size)
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Takes a `data` message; returns the verified info dictionary once the last
    /// piece is in. Out-of-order, wrongly sized or inconsistent pieces are errors (we
    /// ask one piece at a time, so an honest peer never sends them).
    pub fn on_data(
        &mut self,
        piece: u32,
        total_size: u32,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, MetadataError> {
        let bad = |reason| MetadataError::BadPiece { piece, reason };
        if total_size != self.size {
            return Err(bad("total_size differs from the advertised metadata_size"));
        }
        if piece != self.next {
            return Err(bad("not the piece we asked for"));
        }
        let want = metadata_piece_len(self.size, piece).ok_or(bad("beyond the metadata"))?;
        if data.len() != want as usize {
            return Err(bad("wrong length"));
        }
        self.buf.extend_from_slice(data);
        self.next += 1;
        if self.next_request().is_some() {
            return Ok(None);
        }
        let digest: [u8; 20] = Sha1::digest(&self.buf).into();
        if digest != *self.info_hash.as_bytes() {
            return Err(MetadataError::HashMismatch);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }
}

/// A .torrent (bencoded dictionary) around a verified info dictionary, with the
/// trackers as one tier each (`announce` is the first, as BEP 12 asks for old clients)
/// and the web seeds as its `url-list` (BEP 19).
pub fn torrent_from_info(info: &[u8], trackers: &[String], web_seeds: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(info.len() + 64 * (trackers.len() + 1));
    let bytes = bencode::write_bytes;
    out.push(b'd');
    // Keys in sorted order: announce, announce-list, info.
    if let Some(first) = trackers.first() {
        bytes(&mut out, b"announce");
        bytes(&mut out, first.as_bytes());
        bytes(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            bytes(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    bytes(&mut out, b"info");
    out.extend_from_slice(info);
    if !web_seeds.is_empty() {
        bytes(&mut out, b"url-list");
        out.push(b'l');
        for w in web_seeds {
            bytes(&mut out, w.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::METADATA_PIECE_LEN;
    use crate::metainfo::{build_torrent, Metainfo, NewTorrent};

    const PIECE_LEN: u32 = METADATA_PIECE_LEN;

    fn sample_info() -> (Vec<u8>, InfoHash) {
        let t = NewTorrent {
            name: "x.bin".into(),
            piece_length: 16384,
            // Enough hashes for a three-piece info dictionary (> 32 KiB).
            piece_hashes: (0..2000u32).map(|i| [(i % 251) as u8; 20]).collect(),
            single_file_length: Some(2000 * 16384),
            ..Default::default()
        };
        let m = Metainfo::from_bytes(&build_torrent(&t)).unwrap();
        (m.info_bytes.clone(), m.info_hash)
    }

    #[test]
    fn assembles_in_order_verifies_and_builds_a_loadable_torrent() {
        let (info, ih) = sample_info();
        let mut a = MetadataAssembly::new(ih, info.len() as u64).unwrap();
        assert_eq!(a.piece_count(), 3);
        let mut done = None;
        while let Some(p) = a.next_request() {
            let start = (p * PIECE_LEN) as usize;
            let end = (start + PIECE_LEN as usize).min(info.len());
            done = a.on_data(p, info.len() as u32, &info[start..end]).unwrap();
        }
        let got = done.expect("complete");
        assert_eq!(got, info);
        let torrent = torrent_from_info(
            &got,
            &["http://t/announce".into(), "udp://u:1".into()],
            &["http://origin/".into()],
        );
        let m = Metainfo::from_bytes(&torrent).unwrap();
        assert_eq!(m.info_hash, ih);
        assert_eq!(
            m.trackers,
            vec![
                vec!["http://t/announce".to_string()],
                vec!["udp://u:1".to_string()]
            ]
        );
        assert_eq!(m.web_seeds, vec!["http://origin/".to_string()]);
        let bare = Metainfo::from_bytes(&torrent_from_info(&got, &[], &[])).unwrap();
        assert_eq!(bare.info_hash, ih);
        assert!(bare.trackers.is_empty());
        assert!(bare.web_seeds.is_empty());
    }

    #[test]
    fn hostile_sizes_pieces_and_data_are_refused() {
        let (info, ih) = sample_info();
        assert_eq!(
            MetadataAssembly::new(ih, 0).unwrap_err(),
            MetadataError::Empty
        );
        assert!(matches!(
            MetadataAssembly::new(ih, u64::MAX),
            Err(MetadataError::TooLarge(_))
        ));
        let size = info.len() as u32;
        let mut a = MetadataAssembly::new(ih, size as u64).unwrap();
        let p0 = &info[..PIECE_LEN as usize];
        assert!(a.on_data(1, size, p0).is_err(), "out of order");
        assert!(a.on_data(0, size + 1, p0).is_err(), "inconsistent total");
        assert!(a.on_data(0, size, &p0[1..]).is_err(), "short");
        // Right shape, wrong bytes: caught by the hash at the end.
        let mut a = MetadataAssembly::new(ih, size as u64).unwrap();
        let mut fake = info.clone();
        fake[100] ^= 1;
        let mut result = Ok(None);
        while let Some(p) = a.next_request() {
            let start = (p * PIECE_LEN) as usize;
            let end = (start + PIECE_LEN as usize).min(fake.len());
            result = a.on_data(p, size, &fake[start..end]);
        }
        assert_eq!(result, Err(MetadataError::HashMismatch));
    }
}
