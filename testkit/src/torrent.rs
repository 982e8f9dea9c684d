//! `.torrent` creation with `mktorrent`, and info-hash computation.

use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `mktorrent` on `path` (a file or directory) and returns the path of the new
/// torrent, written next to it as `<path>.torrent` (outside a directory payload).
///
/// `piece_len_log2` is mktorrent's `-l` (e.g. 16 = 64 KiB pieces; mktorrent accepts
/// 15..=28). `-d` (no creation date) keeps the output deterministic.
/// Panics with mktorrent's output if it fails.
pub fn mktorrent(path: &Path, announce_url: &str, piece_len_log2: u8, private: bool) -> PathBuf {
    let name = path
        .file_name()
        .expect("mktorrent: payload path has no file name");
    let mut out = path.to_path_buf();
    out.set_file_name(format!("{}.torrent", name.to_string_lossy()));
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new(crate::program("mktorrent"));
    cmd.arg("-a")
        .arg(announce_url)
        .arg("-l")
        .arg(piece_len_log2.to_string())
        .arg("-d")
        .arg("-t")
        .arg("1")
        .arg("-o")
        .arg(&out);
    if private {
        cmd.arg("-p");
    }
    cmd.arg(path);
    let res = cmd
        .output()
        .expect("failed to run mktorrent (install it with `apt-get install mktorrent`)");
    assert!(
        res.status.success(),
        "mktorrent {} failed ({}):\n{}{}",
        path.display(),
        res.status,
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// SHA-1 of the bencoded `info` dictionary of the torrent file at `torrent`.
pub fn info_hash(torrent: &Path) -> [u8; 20] {
    let data = std::fs::read(torrent)
        .unwrap_or_else(|e| panic!("reading torrent {}: {e}", torrent.display()));
    let (start, end) = info_span(&data)
        .unwrap_or_else(|| panic!("{}: no top-level info dictionary", torrent.display()));
    Sha1::digest(&data[start..end]).into()
}

/// Percent-encodes every byte that is not RFC 3986 unreserved (as BitTorrent
/// clients do for `info_hash` and `peer_id`).
pub fn url_encode_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Byte range of the value of the top-level `info` key.
fn info_span(d: &[u8]) -> Option<(usize, usize)> {
    if d.first() != Some(&b'd') {
        return None;
    }
    let mut i = 1;
    while d.get(i) != Some(&b'e') {
        let (key, after_key) = parse_string(d, i)?;
        let end = skip_value(d, after_key)?;
        if key == b"info" {
            return Some((after_key, end));
        }
        i = end;
    }
    None
}

fn parse_string(d: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let colon = i + d.get(i..)?.iter().position(|&c| c == b':')?;
    let len: usize = std::str::from_utf8(&d[i..colon]).ok()?.parse().ok()?;
    let start = colon + 1;
    Some((d.get(start..start + len)?, start + len))
}

fn skip_value(d: &[u8], i: usize) -> Option<usize> {
    match *d.get(i)? {
        b'i' => Some(i + d.get(i..)?.iter().position(|&c| c == b'e')? + 1),
        b'l' | b'd' => {
            let mut j = i + 1;
            while *d.get(j)? != b'e' {
                j = skip_value(d, j)?;
            }
            Some(j + 1)
        }
        b'0'..=b'9' => parse_string(d, i).map(|(_, end)| end),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_span_finds_nested_info() {
        let t = b"d8:announce3:url4:infod6:lengthi5e4:name1:x6:piecesli1ei2eeee";
        let (s, e) = info_span(t).expect("info span");
        assert_eq!(&t[s..e], b"d6:lengthi5e4:name1:x6:piecesli1ei2eee");
    }

    #[test]
    fn url_encoding_keeps_unreserved() {
        assert_eq!(url_encode_bytes(b"aZ9-._~ \x00\xff"), "aZ9-._~%20%00%FF");
    }
}
