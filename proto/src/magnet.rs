//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<40 hex | 32 base32>&dn=..&tr=..&x.pe=..&ws=..`
//! parsed from untrusted text (bounded, typed errors), and written for a torrent.

use crate::announce::{percent_decode, percent_encode_into};
use crate::types::InfoHash;

/// Longest magnet link accepted; real ones with a dozen trackers are under 2 KiB.
pub const MAX_MAGNET_LEN: usize = 16 * 1024;
/// Most `tr=` trackers and `x.pe=` peers kept from one link; the rest are ignored.
pub const MAX_TRACKERS: usize = 32;
pub const MAX_PEERS: usize = 64;
/// Most `ws=` web seeds kept, as for a torrent's `url-list`.
pub const MAX_WEB_SEEDS: usize = crate::metainfo::MAX_WEB_SEEDS;
const MAX_NAME_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a display name until the metadata arrives (untrusted, never a path).
    pub name: Option<String>,
    /// `tr`: tracker URLs, each its own tier, in link order.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses as given (`HOST:PORT`, `[v6]:PORT`), resolved by the caller.
    pub peers: Vec<String>,
    /// `ws`: web seeds (BEP 19 URLs, as a torrent's `url-list`); values that are not
    /// `http(s)://` URLs are skipped.
    pub web_seeds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with \"magnet:?\")")]
    NotMagnet,
    #[error("magnet link is {0} bytes, over the {MAX_MAGNET_LEN}-byte limit")]
    TooLong(usize),
    #[error("magnet link has no BitTorrent info hash (xt=urn:btih:...)")]
    NoInfoHash,
    #[error("magnet link has only a BitTorrent v2 hash (urn:btmh), which is not supported")]
    V2Only,
    #[error("magnet info hash {0:?} is neither 40 hex digits nor 32 base32 characters")]
    BadInfoHash(String),
    #[error("magnet link has two different info hashes")]
    ConflictingInfoHashes,
    #[error("magnet parameter {0} has a malformed %-escape or is not UTF-8")]
    BadValue(String),
}

/// Parses a magnet link. Unknown parameters are ignored, as BEP 9 expects; trackers and
/// peers beyond the limits are dropped.
pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
    if link.len() > MAX_MAGNET_LEN {
        return Err(MagnetError::TooLong(link.len()));
    }
    let query = link
        .strip_prefix("magnet:?")
        .or_else(|| {
            // The scheme is case-insensitive.
            let head = link.get(..8)?;
            head.eq_ignore_ascii_case("magnet:?").then(|| &link[8..])
        })
        .ok_or(MagnetError::NotMagnet)?;
    let mut info_hash = None;
    let mut saw_v2 = false;
    let mut magnet = Magnet {
        info_hash: InfoHash([0; 20]),
        name: None,
        trackers: Vec::new(),
        peers: Vec::new(),
        web_seeds: Vec::new(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        // `xt.1`, `tr.2`: BEP 9 allows numbered copies of a parameter.
        let base = key.split_once('.').map_or(key, |(b, n)| {
            if n.bytes().all(|c| c.is_ascii_digit()) {
                b
            } else {
                key
            }
        });
        match base {
            "xt" | "dn" | "tr" | "x.pe" | "ws" => {}
            _ => continue,
        }
        let value = decode_value(key, raw, base == "dn")?;
        match base {
            "xt" => {
                if let Some(hash) = value.strip_prefix("urn:btih:") {
                    let ih = parse_info_hash(hash)?;
                    if info_hash.is_some_and(|h| h != ih) {
                        return Err(MagnetError::ConflictingInfoHashes);
                    }
                    info_hash = Some(ih);
                } else if value.starts_with("urn:btmh:") {
                    saw_v2 = true;
                }
            }
            "dn" => {
                let mut name = value;
                if name.len() > MAX_NAME_LEN {
                    let mut cut = MAX_NAME_LEN;
                    while !name.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    name.truncate(cut);
                }
                magnet.name = Some(name);
            }
            "tr" if magnet.trackers.len() < MAX_TRACKERS && !magnet.trackers.contains(&value) => {
                magnet.trackers.push(value)
            }
            "x.pe" if magnet.peers.len() < MAX_PEERS => magnet.peers.push(value),
            "ws" if magnet.web_seeds.len() < MAX_WEB_SEEDS
                && crate::metainfo::is_web_seed_url(&value)
                && !magnet.web_seeds.contains(&value) =>
            {
                magnet.web_seeds.push(value)
            }
            _ => {}
        }
    }
    magnet.info_hash = match info_hash {
        Some(ih) => ih,
        None if saw_v2 => return Err(MagnetError::V2Only),
        None => return Err(MagnetError::NoInfoHash),
    };
    Ok(magnet)
}

fn decode_value(key: &str, raw: &str, plus_is_space: bool) -> Result<String, MagnetError> {
    let bad = || MagnetError::BadValue(key.to_string());
    // Form-style `+` for a space, before %-decoding so that `%2B` stays a plus.
    let raw = if plus_is_space {
        std::borrow::Cow::Owned(raw.replace('+', "%20"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    let bytes = percent_decode(raw.as_bytes()).ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// An info hash as people and magnet links write it: 40 hex digits, or 32 base32
/// characters (RFC 4648, either case), as older clients write it.
pub fn parse_info_hash(text: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(text.chars().take(64).collect());
    match text.len() {
        40 => InfoHash::from_hex(text).ok_or_else(bad),
        32 => base32_20(text).map(InfoHash).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// RFC 4648 base32 (no padding, either case) of exactly 20 bytes.
fn base32_20(text: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let (mut acc, mut bits, mut n) = (0u64, 0u32, 0usize);
    for c in text.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
        }
    }
    (n == 20).then_some(out)
}

impl Magnet {
    /// The link for this torrent: `magnet:?xt=urn:btih:<hex>&dn=<name>&tr=<url>...&ws=<url>...`.
    pub fn to_uri(&self) -> String {
        let mut s = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        if let Some(name) = &self.name {
            s.push_str("&dn=");
            percent_encode_into(&mut s, name.as_bytes());
        }
        for t in &self.trackers {
            s.push_str("&tr=");
            percent_encode_into(&mut s, t.as_bytes());
        }
        for p in &self.peers {
            s.push_str("&x.pe=");
            peer_encode_into(&mut s, p);
        }
        for w in &self.web_seeds {
            s.push_str("&ws=");
            percent_encode_into(&mut s, w.as_bytes());
        }
        s
    }
}

/// `x.pe` values keep `:` and the brackets of `[v6]:port` as they are: libtorrent
/// (2.0) reads the value without percent-decoding it, so `127.0.0.1%3A6881` would be
/// no peer at all there. Anything else outside the unreserved set is escaped.
fn peer_encode_into(out: &mut String, peer: &str) {
    for &b in peer.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";

    #[test]
    fn parses_hex_and_base32_with_names_trackers_and_peers() {
        let m = parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Release+1.2%20(final)&tr=http%3A%2F%2Ft%3A6969%2Fannounce\
             &tr=udp%3A%2F%2Fu%3A80&x.pe=10.0.0.5:6881&x.pe=[::1]:51413&foo=bar"
        ))
        .unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("Release 1.2 (final)"));
        assert_eq!(m.trackers, ["http://t:6969/announce", "udp://u:80"]);
        assert_eq!(m.peers, ["10.0.0.5:6881", "[::1]:51413"]);

        // The same hash in base32, as older clients write it.
        let b32 = parse("magnet:?xt=urn:btih:ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW").unwrap();
        assert_eq!(b32.info_hash.to_hex(), HEX);
        assert_eq!(
            parse_info_hash("zhqvoy7xelzd5gfctxwn7lrudomnkmcw")
                .unwrap()
                .to_hex(),
            HEX
        );
        for bad in ["", "c9e1", &HEX[1..], "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMC1"] {
            assert!(parse_info_hash(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&format!("MAGNET:?xt=urn:btih:{}", HEX.to_uppercase()))
                .unwrap()
                .info_hash
                .to_hex(),
            HEX
        );
    }

    #[test]
    fn round_trips_through_to_uri() {
        let m = Magnet {
            info_hash: InfoHash::from_hex(HEX).unwrap(),
            name: Some("a b+c&c=d/é".into()),
            trackers: vec!["http://t:6969/announce?passkey=x&y=z".into()],
            peers: vec!["127.0.0.1:6881".into()],
            web_seeds: vec![
                "http://origin/files/".into(),
                "https://o2/dir/?x=1&y=2".into(),
            ],
        };
        assert_eq!(parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn peers_are_written_the_way_libtorrent_reads_them() {
        let m = Magnet {
            info_hash: InfoHash::from_hex(HEX).unwrap(),
            name: None,
            trackers: vec![],
            peers: vec![
                "127.0.0.1:6881".into(),
                "[::1]:51413".into(),
                "a&b:1".into(),
            ],
            web_seeds: vec![],
        };
        assert_eq!(
            m.to_uri(),
            format!("magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&x.pe=a%26b:1")
        );
        assert_eq!(parse(&m.to_uri()).unwrap(), m);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let cases: [(&str, MagnetError); 7] = [
            ("http://x", MagnetError::NotMagnet),
            ("magnet:?dn=x", MagnetError::NoInfoHash),
            ("magnet:?xt=urn:btmh:1220abcd", MagnetError::V2Only),
            (
                "magnet:?xt=urn:btih:1234",
                MagnetError::BadInfoHash("1234".into()),
            ),
            (
                "magnet:?xt=urn:btih:ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMC1",
                MagnetError::BadInfoHash("ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMC1".into()),
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&xt.1=urn:btih:{}", "0".repeat(40)),
                MagnetError::ConflictingInfoHashes,
            ),
            (
                &format!("magnet:?xt=urn:btih:{HEX}&dn=%zz"),
                MagnetError::BadValue("dn".into()),
            ),
        ]
        .map(|(s, e)| (Box::leak(s.to_string().into_boxed_str()) as &str, e));
        for (link, want) in cases {
            assert_eq!(parse(link), Err(want), "{link}");
        }
        let long = format!(
            "magnet:?xt=urn:btih:{HEX}&dn={}",
            "a".repeat(MAX_MAGNET_LEN)
        );
        assert!(matches!(parse(&long), Err(MagnetError::TooLong(_))));
    }

    #[test]
    fn web_seeds_must_be_http_urls_and_are_kept_once() {
        let link = format!(
            "magnet:?xt=urn:btih:{HEX}&ws=ftp%3A%2F%2Fx%2F&ws=http%3A%2F%2Fa%2Fb%2F&ws=javascript:1&ws=http%3A%2F%2Fa%2Fb%2F&ws.1=https%3A%2F%2Fc%2F"
        );
        assert_eq!(
            parse(&link).unwrap().web_seeds,
            vec!["http://a/b/".to_string(), "https://c/".to_string()]
        );
        let many: String = (0..100).map(|i| format!("&ws=http://h{i}/")).collect();
        let m = parse(&format!("magnet:?xt=urn:btih:{HEX}{many}")).unwrap();
        assert_eq!(m.web_seeds.len(), MAX_WEB_SEEDS);
    }

    #[test]
    fn lists_are_bounded() {
        let mut link = format!("magnet:?xt=urn:btih:{HEX}");
        for i in 0..200 {
            link.push_str(&format!("&tr=http://t{i}/a&x.pe=10.0.0.1:{i}"));
        }
        let m = parse(&link).unwrap();
        assert_eq!(m.trackers.len(), MAX_TRACKERS);
        assert_eq!(m.peers.len(), MAX_PEERS);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
            let _ = parse(&format!("magnet:?{s}"));
        }
    }
}
