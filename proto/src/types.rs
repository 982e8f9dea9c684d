//! Identifier newtypes: info hashes, peer ids and piece indices.

use std::fmt;

/// SHA-1 of the raw bencoded `info` dictionary of a torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

/// The 20 bytes a peer names itself with in announces and handshakes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

/// Index of a piece within a torrent. Only meaningful together with the torrent's
/// piece count; see [`crate::metainfo::Info::piece_count`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PieceIndex(pub u32);

macro_rules! id20 {
    ($t:ident) => {
        impl $t {
            pub const LEN: usize = 20;

            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }

            /// Parses 40 hex digits (either case).
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 20];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Takes exactly 20 bytes; anything else is `None`.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; 20]>::try_from(b).ok().map(Self)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.to_hex())
            }
        }

        impl From<[u8; 20]> for $t {
            fn from(b: [u8; 20]) -> Self {
                Self(b)
            }
        }
    };
}

id20!(InfoHash);
id20!(PeerId);

impl PeerId {
    /// A fresh Azureus-style id: `-KP0100-` followed by 12 random bytes from `random`.
    pub fn generate(random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(b"-KP0100-");
        id[8..].copy_from_slice(&random);
        Self(id)
    }
}

impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_lengths() {
        let h = InfoHash::from_hex("0123456789abcdefABCDEF0123456789abcdef01").unwrap();
        assert_eq!(h.to_hex(), "0123456789abcdefabcdef0123456789abcdef01");
        assert!(InfoHash::from_hex("0123").is_none());
        assert!(InfoHash::from_hex("zz23456789abcdefABCDEF0123456789abcdef01").is_none());
        assert!(PeerId::from_slice(&[0u8; 19]).is_none());
        assert_eq!(PeerId::from_slice(&[7u8; 20]).unwrap().0, [7u8; 20]);
    }

    #[test]
    fn generated_peer_id_has_client_prefix() {
        let id = PeerId::generate([1; 12]);
        assert_eq!(&id.0[..8], b"-KP0100-");
    }
}
