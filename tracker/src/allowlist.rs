//! The private-swarm allowlist: a file of hex info hashes, loaded at start and reloaded
//! through [`crate::reload`] (polled, and on SIGHUP; a bad file keeps the old list).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kpbt_proto::InfoHash;

use crate::reload::{FileContents, WatchedFile};

#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("reading allowlist {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("allowlist {path} line {line}: expected 40 hex digits, got {got:?}")]
    BadLine {
        path: PathBuf,
        line: usize,
        got: String,
    },
}

/// The allowed info hashes.
#[derive(Debug, Default)]
pub struct AllowSet(pub HashSet<InfoHash>);

impl FileContents for AllowSet {
    type Error = AllowlistError;

    fn parse(path: &Path, text: &str) -> Result<Self, AllowlistError> {
        parse(path, text).map(AllowSet)
    }

    fn read_error(path: &Path, source: std::io::Error) -> AllowlistError {
        AllowlistError::Read {
            path: path.to_owned(),
            source,
        }
    }

    fn entries(&self) -> usize {
        self.0.len()
    }
}

/// The allowlist file as the tracker holds it.
pub type Allowlist = WatchedFile<AllowSet>;

/// Parses allowlist text: one hash a line; blank lines and `#` comments (whole-line or
/// trailing) are ignored.
pub fn parse(path: &Path, text: &str) -> Result<HashSet<InfoHash>, AllowlistError> {
    let mut set = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let hash = InfoHash::from_hex(line).ok_or_else(|| AllowlistError::BadLine {
            path: path.to_owned(),
            line: n + 1,
            got: line.chars().take(60).collect(),
        })?;
        set.insert(hash);
    }
    Ok(set)
}

impl WatchedFile<AllowSet> {
    pub fn contains(&self, hash: &InfoHash) -> bool {
        self.get().0.contains(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_rejects_garbage() {
        let p = Path::new("x");
        let text = "# header\n\n0123456789abcdef0123456789abcdef01234567  # trailing\n  ABCDEF0123456789ABCDEF0123456789ABCDEF01\n";
        let set = parse(p, text).unwrap();
        assert_eq!(set.len(), 2);
        assert!(
            set.contains(&InfoHash::from_hex("abcdef0123456789abcdef0123456789abcdef01").unwrap())
        );
        let err = parse(p, "0123\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn reload_keeps_old_list_on_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allow.txt");
        let h = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(&path, h).unwrap();
        let list = Allowlist::load("allowlist", &path).unwrap();
        assert_eq!(list.reload_if_changed().unwrap(), None);
        std::fs::write(&path, "not a hash, and a different length").unwrap();
        assert!(list.reload_if_changed().is_err());
        assert!(list.contains(&InfoHash::from_hex(h).unwrap()));
        std::fs::write(&path, format!("{h}\n{}\n", "f".repeat(40))).unwrap();
        assert_eq!(list.reload_if_changed().unwrap(), Some(2));
    }
}
