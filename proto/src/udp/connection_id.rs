//! Stateless connection ids: a keyed MAC over (client address, issue time), so a tracker
//! needs no table of handed-out ids and a flood of connects cannot grow its memory.
//!
//! Layout of the 64 bits: the issue time (Unix seconds, low 32 bits) in the high half and
//! the first 32 bits of SipHash-2-4 (a PRF built for short inputs) over that time and the
//! client's IP in the low half. The time is in the clear so that checking costs one MAC,
//! and so that validity is exact: BEP 15 lets clients use an id for one minute and asks
//! trackers to accept it for two. The port is left out on purpose: some clients send the
//! connect and the announce from different sockets. A forger who cannot see our replies
//! has one chance in 2^32 per datagram.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use super::ConnectionId;

/// How long after issuing an id the tracker accepts it (BEP 15: two minutes).
pub const CONNECTION_ID_LIFETIME_SECS: u32 = 120;
/// How far in the future an id's issue time may lie: instances sharing a key behind one
/// address need not have exactly the same clock.
pub const CONNECTION_ID_CLOCK_SKEW_SECS: u32 = 5;

/// The MAC key. Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionIdKey([u8; 16]);

impl std::fmt::Debug for ConnectionIdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionIdKey(..)")
    }
}

impl ConnectionIdKey {
    pub fn new(key: [u8; 16]) -> Self {
        Self(key)
    }

    /// Parses 32 hex digits (as written in a config file).
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut k = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut k).ok()?;
        Some(Self(k))
    }

    fn mac(&self, issued: u32, client: IpAddr) -> u32 {
        let ip = match client.to_canonical() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(&issued.to_be_bytes());
        h.write(&ip);
        h.finish() as u32
    }

    /// The id for `client` at `now_unix` (seconds since the Unix epoch).
    pub fn issue(&self, client: IpAddr, now_unix: u64) -> ConnectionId {
        let issued = now_unix as u32;
        ConnectionId((u64::from(issued) << 32) | u64::from(self.mac(issued, client)))
    }

    /// Whether `id` was issued by this key to `client` within the last
    /// [`CONNECTION_ID_LIFETIME_SECS`] before `now_unix`.
    pub fn check(&self, id: ConnectionId, client: IpAddr, now_unix: u64) -> bool {
        let issued = (id.0 >> 32) as u32;
        // Wrapping difference as signed, so the 2106 rollover of the 32-bit time is harmless.
        let age = (now_unix as u32).wrapping_sub(issued) as i32;
        if age > CONNECTION_ID_LIFETIME_SECS as i32 || age < -(CONNECTION_ID_CLOCK_SKEW_SECS as i32)
        {
            return false;
        }
        // A single 32-bit integer comparison takes the same time whatever the values, so
        // it leaks nothing about how many bits of a guess were right.
        self.mac(issued, client) == id.0 as u32
    }
}
