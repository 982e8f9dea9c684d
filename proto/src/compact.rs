//! Compact peer lists: 6-byte IPv4 (BEP 23) and 18-byte IPv6 (BEP 7) address records.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("compact peer list of {len} bytes is not a multiple of {record}")]
    BadLength { len: usize, record: usize },
}

pub const V4_RECORD: usize = 6;
pub const V6_RECORD: usize = 18;

/// Appends the 6-byte compact form (BEP 23); on the tracker's reply hot path, so it only
/// extends `out` (no temporary allocation).
#[inline]
pub fn encode_v4(addr: SocketAddrV4, out: &mut Vec<u8>) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends the 18-byte compact form (BEP 7).
#[inline]
pub fn encode_v6(addr: SocketAddrV6, out: &mut Vec<u8>) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Decodes `peers`; records with port 0 are dropped since nobody can connect to them.
pub fn decode_peers_v4(bytes: &[u8]) -> Result<Vec<SocketAddr>, CompactError> {
    decode(bytes, V4_RECORD, |r| {
        let ip = Ipv4Addr::new(r[0], r[1], r[2], r[3]);
        SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([r[4], r[5]])))
    })
}

/// Decodes `peers6`; records with port 0 are dropped.
pub fn decode_peers_v6(bytes: &[u8]) -> Result<Vec<SocketAddr>, CompactError> {
    decode(bytes, V6_RECORD, |r| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&r[..16]);
        let port = u16::from_be_bytes([r[16], r[17]]);
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))
    })
}

fn decode(
    bytes: &[u8],
    record: usize,
    parse: impl Fn(&[u8]) -> SocketAddr,
) -> Result<Vec<SocketAddr>, CompactError> {
    if !bytes.len().is_multiple_of(record) {
        return Err(CompactError::BadLength {
            len: bytes.len(),
            record,
        });
    }
    Ok(bytes
        .chunks_exact(record)
        .map(parse)
        .filter(|a| a.port() != 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trip_fixture() {
        let mut out = Vec::new();
        encode_v4("10.1.2.3:6881".parse().unwrap(), &mut out);
        encode_v4("127.0.0.1:51413".parse().unwrap(), &mut out);
        assert_eq!(out, b"\x0a\x01\x02\x03\x1a\xe1\x7f\x00\x00\x01\xc8\xd5");
        let peers = decode_peers_v4(&out).unwrap();
        assert_eq!(peers[0], "10.1.2.3:6881".parse().unwrap());
        assert_eq!(peers[1], "127.0.0.1:51413".parse().unwrap());
    }

    #[test]
    fn v6_round_trip_and_port_zero_dropped() {
        let mut out = Vec::new();
        encode_v6("[::1]:6881".parse().unwrap(), &mut out);
        encode_v6("[fe80::2]:0".parse().unwrap(), &mut out);
        assert_eq!(out.len(), 36);
        assert_eq!(
            decode_peers_v6(&out).unwrap(),
            vec!["[::1]:6881".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(decode_peers_v4(&[1, 2, 3, 4, 5]).is_err());
        assert!(decode_peers_v6(&[0; 17]).is_err());
        assert_eq!(decode_peers_v4(&[]).unwrap(), vec![]);
    }
}
