//! The private-swarm allowlist: a file of hex info hashes, loaded at start and reloaded when
//! its modification time or size changes (polled) or on SIGHUP.
//!
//! A file that fails to parse on reload leaves the previous list in force: a half-written
//! edit must not open (or close) the tracker to everything.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use kpbt_proto::InfoHash;

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

/// Identifies one version of the file cheaply.
type Stamp = Option<(SystemTime, u64)>;

pub struct Allowlist {
    path: PathBuf,
    /// Swapped whole on reload; readers on the announce path take no lock and write no
    /// shared cache line (unlike an `RwLock`'s reader count).
    set: ArcSwap<HashSet<InfoHash>>,
    stamp: Mutex<Stamp>,
}

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

fn stamp_of(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Allowlist {
    /// Loads the file; failing here stops the tracker from starting.
    pub fn load(path: &Path) -> Result<Self, AllowlistError> {
        let list = Allowlist {
            path: path.to_owned(),
            set: ArcSwap::from_pointee(HashSet::new()),
            stamp: Mutex::new(None),
        };
        list.reload()?;
        Ok(list)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, hash: &InfoHash) -> bool {
        self.set.load().contains(hash)
    }

    pub fn len(&self) -> usize {
        self.set.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file unconditionally; returns the number of hashes now allowed.
    pub fn reload(&self) -> Result<usize, AllowlistError> {
        let stamp = stamp_of(&self.path);
        let text = std::fs::read_to_string(&self.path).map_err(|source| AllowlistError::Read {
            path: self.path.clone(),
            source,
        })?;
        let set = parse(&self.path, &text)?;
        let n = set.len();
        self.set.store(Arc::new(set));
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(n)
    }

    /// Reloads if the file's mtime or size changed since the last load.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, AllowlistError> {
        let now = stamp_of(&self.path);
        let last = *self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now == last {
            return Ok(None);
        }
        self.reload().map(Some)
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
        let list = Allowlist::load(&path).unwrap();
        assert_eq!(list.reload_if_changed().unwrap(), None);
        std::fs::write(&path, "not a hash, and a different length").unwrap();
        assert!(list.reload_if_changed().is_err());
        assert!(list.contains(&InfoHash::from_hex(h).unwrap()));
        std::fs::write(&path, format!("{h}\n{}\n", "f".repeat(40))).unwrap();
        assert_eq!(list.reload_if_changed().unwrap(), Some(2));
    }
}
