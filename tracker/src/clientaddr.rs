//! Who a request comes from: the one resolver of the client address (the TCP peer, or a
//! forwarded header / `ip=` when the connection comes from a trusted proxy), and the
//! check for addresses that usually mean a proxy or Docker port publishing hides the
//! real peers (the classic "every peer is 172.17.0.1").

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::HeaderName;

/// An IP network such as `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// A `trusted_proxies` entry that is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network (e.g. 10.0.0.0/8, 172.16.0.0/12, ::1/128)")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip.trim().parse().map_err(|_| err())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// The first and the last address of the network (the host bits all 0, then all 1).
    pub fn bounds(&self) -> (IpAddr, IpAddr) {
        match self.net {
            IpAddr::V4(n) => {
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u32::from(n) & !host;
                (
                    IpAddr::from(first.to_be_bytes()),
                    IpAddr::from((first | host).to_be_bytes()),
                )
            }
            IpAddr::V6(n) => {
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u128::from(n) & !host;
                (
                    IpAddr::from(first.to_be_bytes()),
                    IpAddr::from((first | host).to_be_bytes()),
                )
            }
        }
    }
}

/// Resolves client addresses the same way for every endpoint and front end.
#[derive(Debug, Clone)]
pub struct AddrResolver {
    trusted: Vec<Cidr>,
    header: Option<HeaderName>,
    honor_ip_param: bool,
    /// Whether some listen address is not loopback: then loopback clients are suspicious.
    public: bool,
}

impl AddrResolver {
    /// `header`/`honor_ip_param` only take effect for connections from `trusted`.
    pub fn new(
        trusted: Vec<Cidr>,
        header: Option<HeaderName>,
        honor_ip_param: bool,
        listen: &[SocketAddr],
    ) -> Self {
        AddrResolver {
            trusted,
            header,
            honor_ip_param,
            public: listen.iter().any(|a| !a.ip().is_loopback()),
        }
    }

    /// The header to read, if any (callers pass its value to [`Self::resolve`]).
    pub fn header(&self) -> Option<&HeaderName> {
        self.header.as_ref()
    }

    /// Whether a connection from `ip` may speak for its clients.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client's address. From a trusted proxy: `ip_param` when `honor_ip_param`, else
    /// the header's last entry (the one that proxy appended), else the TCP peer. From
    /// anyone else the header and `ip=` are ignored. Rate limiting passes `ip_param =
    /// None`: the client must not choose whose budget it spends.
    pub fn resolve(
        &self,
        tcp: Option<IpAddr>,
        header_value: Option<&[u8]>,
        ip_param: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let tcp = tcp?;
        if !self.is_trusted(tcp) {
            return Some(tcp);
        }
        if self.honor_ip_param {
            if let Some(ip) = ip_param {
                return Some(ip);
            }
        }
        if self.header.is_some() {
            if let Some(ip) = header_value.and_then(last_forwarded) {
                return Some(ip);
            }
        }
        Some(tcp)
    }

    /// Whether a resolved client address is most likely not the peer's own: loopback
    /// while the tracker listens on a public address, or a Docker bridge gateway
    /// (`172.16.0.0/12` ending in `.1`, what published ports make every client look
    /// like). Such peers cannot reach each other.
    pub fn suspicious(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (self.public && v4.is_loopback())
                    || (o[0] == 172 && (o[1] & 0xf0) == 16 && o[3] == 1)
            }
            IpAddr::V6(v6) => self.public && v6.is_loopback(),
        }
    }
}

/// The last entry of a forwarding header such as `X-Forwarded-For: a, b, c`.
fn last_forwarded(value: &[u8]) -> Option<IpAddr> {
    let value = std::str::from_utf8(value).ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Whether this process runs in a container (Docker or Podman leave a marker file).
pub fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "192.168.1.5".parse().unwrap();
        assert!(one.contains(ip("192.168.1.5")) && !one.contains(ip("192.168.1.6")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!(c.bounds(), (ip("10.0.0.0"), ip("10.255.255.255")));
        assert_eq!(
            "10.1.2.3/16".parse::<Cidr>().unwrap().bounds(),
            (ip("10.1.0.0"), ip("10.1.255.255"))
        );
        assert_eq!(one.bounds(), (ip("192.168.1.5"), ip("192.168.1.5")));
        assert_eq!(all.bounds(), (ip("0.0.0.0"), ip("255.255.255.255")));
        assert_eq!(
            v6.bounds(),
            (ip("fd00::"), ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "banana",
            "10.0.0.0/x",
            "1.2.3/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn header_and_ip_param_only_count_from_trusted_proxies() {
        let listen = ["0.0.0.0:6969".parse().unwrap()];
        let r = AddrResolver::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            Some(HeaderName::from_static("x-forwarded-for")),
            true,
            &listen,
        );
        let xff = Some(&b"203.0.113.9, 10.1.1.1"[..]);
        // Trusted: ip= first, then the header's last entry, then the TCP peer.
        assert_eq!(
            r.resolve(Some(ip("127.0.0.1")), xff, Some(ip("10.9.9.9"))),
            Some(ip("10.9.9.9"))
        );
        assert_eq!(
            r.resolve(Some(ip("127.0.0.1")), xff, None),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            r.resolve(Some(ip("127.0.0.1")), None, None),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            r.resolve(Some(ip("127.0.0.1")), Some(b"junk"), None),
            Some(ip("127.0.0.1"))
        );
        // Untrusted: both ignored.
        assert_eq!(
            r.resolve(Some(ip("198.51.100.7")), xff, Some(ip("10.9.9.9"))),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(r.resolve(None, xff, None), None);
    }

    #[test]
    fn loopback_and_docker_gateways_are_suspicious_when_listening_publicly() {
        let public = AddrResolver::new(vec![], None, false, &["0.0.0.0:1".parse().unwrap()]);
        let local = AddrResolver::new(vec![], None, false, &["127.0.0.1:1".parse().unwrap()]);
        for a in ["127.0.0.1", "::1", "172.17.0.1", "172.20.0.1"] {
            assert!(public.suspicious(ip(a)), "{a}");
        }
        for a in ["172.17.0.2", "10.0.0.1", "192.0.2.1", "172.32.0.1"] {
            assert!(!public.suspicious(ip(a)), "{a}");
        }
        assert!(!local.suspicious(ip("127.0.0.1")));
        assert!(local.suspicious(ip("172.17.0.1")));
    }
}
