//! Passkeys: per-user secrets in the announce URL (`/announce/<key>`) that gate a private
//! tracker. Owns the key type, the key file (TOML, written atomically) and the set the
//! running tracker checks, which is reloaded through [`crate::reload`] like the allowlist.
//!
//! Revoked keys stay in the file (with the revocation time), so `list` keeps the history and
//! a revoked key is answered "revoked" rather than "unknown".

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::reload::{FileContents, WatchedFile};

/// A passkey: exactly [`Passkey::LEN`] ASCII letters and digits (~190 bits when random).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Passkey([u8; Passkey::LEN]);

impl Passkey {
    pub const LEN: usize = 32;

    /// Accepts exactly 32 ASCII alphanumerics; anything else is not a key.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != Self::LEN || !b.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut k = [0u8; Self::LEN];
        k.copy_from_slice(b);
        Some(Passkey(k))
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use rand::distributions::Alphanumeric;
        use rand::Rng;
        let mut k = [0u8; Self::LEN];
        for (slot, c) in k
            .iter_mut()
            .zip(rand::rngs::OsRng.sample_iter(Alphanumeric))
        {
            *slot = c;
        }
        Passkey(k)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored (parse and generate guarantee it).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Passkey {
    // Keys are secrets: debug output (which may reach logs) shows only a prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passkey({}…)", &self.as_str()[..4])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("reading passkey file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Only the line and the parser's message: TOML errors quote the offending line, which
    /// here may hold a key, and this error reaches logs.
    #[error("parsing passkey file {path}: line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "passkey file {path} does not exist; create it with \
         `kpbt-tracker --passkey-file {path} keys add`"
    )]
    Missing { path: PathBuf },
    #[error("passkey file {path}: entry {index}: {problem}")]
    BadEntry {
        path: PathBuf,
        index: usize,
        problem: &'static str,
    },
    #[error("writing passkey file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no such passkey")]
    NoSuchKey,
    #[error("passkey already revoked")]
    AlreadyRevoked,
}

/// One key as stored in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub key: String,
    /// Unix seconds.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Unix seconds; present once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

/// The key file: `[[key]]` tables, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyEntry>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl KeyFile {
    /// Parses and validates file text (every key well formed, no duplicates).
    pub fn parse(path: &Path, text: &str) -> Result<Self, PasskeyError> {
        let file: KeyFile = toml::from_str(text).map_err(|e| PasskeyError::Parse {
            path: path.to_owned(),
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut seen = std::collections::HashSet::new();
        for (index, e) in file.keys.iter().enumerate() {
            let bad = |problem| PasskeyError::BadEntry {
                path: path.to_owned(),
                index: index + 1,
                problem,
            };
            let key = Passkey::parse(&e.key).ok_or_else(|| bad("key is not 32 letters/digits"))?;
            if !seen.insert(key) {
                return Err(bad("duplicate key"));
            }
        }
        Ok(file)
    }

    /// Reads the file; a missing file is an empty one (the CLI creates it on first `add`).
    pub fn read(path: &Path) -> Result<Self, PasskeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
            Err(source) => Err(PasskeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Reads a file that must exist (`list`, `revoke`): a missing one says how to create it.
    pub fn read_existing(path: &Path) -> Result<Self, PasskeyError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PasskeyError::Missing {
                path: path.to_owned(),
            }),
            _ => Self::read(path),
        }
    }

    /// Writes the file atomically: a temp file in the same directory, fsync, rename over
    /// the old one, fsync the directory. A crash leaves either the old or the new file,
    /// and the running tracker never reads a half-written one.
    ///
    /// The keys are secrets: a new file is created 0600. A rewrite keeps the old file's
    /// mode, and its owner and group where we may set them (as root), so an operator's
    /// `chgrp kpbt; chmod 640` for a tracker running as another user survives `keys add`.
    pub fn write(&self, path: &Path) -> Result<(), PasskeyError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let err = |source| PasskeyError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map_or_else(|| "passkeys".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let mut text = String::from(
            "# kpbt-tracker passkeys; manage with `kpbt-tracker keys add|list|revoke`.\n\n",
        );
        // Serializing strings and integers cannot fail.
        text.push_str(&toml::to_string(self).unwrap_or_default());
        let old = std::fs::metadata(path).ok();
        // A temp file left by a crashed run with our pid; create_new below must not follow
        // whatever is at that name.
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            if let Some(m) = &old {
                // Best effort: only root may give the file away; the mode is ours to set.
                let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
                f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    /// Adds a fresh key.
    pub fn add(&mut self, note: Option<String>) -> Passkey {
        let key = Passkey::generate();
        self.keys.push(KeyEntry {
            key: key.to_string(),
            created: unix_now(),
            note,
            revoked: None,
        });
        key
    }

    /// Marks `key` revoked now.
    pub fn revoke(&mut self, key: &str) -> Result<(), PasskeyError> {
        let e = self
            .keys
            .iter_mut()
            .find(|e| e.key == key)
            .ok_or(PasskeyError::NoSuchKey)?;
        if e.revoked.is_some() {
            return Err(PasskeyError::AlreadyRevoked);
        }
        e.revoked = Some(unix_now());
        Ok(())
    }
}

/// What a presented key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Revoked,
    Unknown,
}

/// The keys the tracker checks announces against.
#[derive(Debug, Default)]
pub struct PasskeySet {
    /// Key → still active. A SipHash map with a random key: lookup time reveals nothing
    /// useful about how close a guess is.
    keys: HashMap<Passkey, bool>,
}

impl PasskeySet {
    pub fn status(&self, presented: &str) -> KeyStatus {
        match Passkey::parse(presented).and_then(|k| self.keys.get(&k)) {
            Some(true) => KeyStatus::Active,
            Some(false) => KeyStatus::Revoked,
            None => KeyStatus::Unknown,
        }
    }
}

impl FileContents for PasskeySet {
    type Error = PasskeyError;

    fn parse(path: &Path, text: &str) -> Result<Self, PasskeyError> {
        let file = KeyFile::parse(path, text)?;
        let keys = file
            .keys
            .iter()
            .filter_map(|e| Some((Passkey::parse(&e.key)?, e.revoked.is_none())))
            .collect();
        Ok(PasskeySet { keys })
    }

    fn read_error(path: &Path, source: std::io::Error) -> PasskeyError {
        PasskeyError::Read {
            path: path.to_owned(),
            source,
        }
    }

    /// Active keys.
    fn entries(&self) -> usize {
        self.keys.values().filter(|a| **a).count()
    }
}

/// The passkey file as the running tracker holds it.
pub type Passkeys = WatchedFile<PasskeySet>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_alphanumerics_and_fresh() {
        let a = Passkey::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(Passkey::parse(a.as_str()), Some(a));
        assert_ne!(a, Passkey::generate());
        assert_eq!(Passkey::parse(&"a".repeat(31)), None);
        assert_eq!(Passkey::parse(&format!("{}/", "a".repeat(31))), None);
        assert_eq!(Passkey::parse("ä".repeat(16).as_str()), None);
        assert!(!format!("{a:?}").contains(&a.as_str()[4..]));
    }

    #[test]
    fn file_round_trip_add_revoke_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut f = KeyFile::read(&path).unwrap();
        assert!(f.keys.is_empty());
        let a = f.add(Some("alice \"laptop\"\nnext".into()));
        let b = f.add(None);
        f.revoke(b.as_str()).unwrap();
        assert!(matches!(
            f.revoke(b.as_str()),
            Err(PasskeyError::AlreadyRevoked)
        ));
        assert!(matches!(f.revoke("nope"), Err(PasskeyError::NoSuchKey)));
        f.write(&path).unwrap();
        let back = KeyFile::read(&path).unwrap();
        assert_eq!(back, f);
        let set = PasskeySet::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(set.status(a.as_str()), KeyStatus::Active);
        assert_eq!(set.status(b.as_str()), KeyStatus::Revoked);
        assert_eq!(set.status(&"x".repeat(32)), KeyStatus::Unknown);
        assert_eq!(set.entries(), 1);
        let dup =
            format!("[[key]]\nkey = \"{a}\"\ncreated = 1\n[[key]]\nkey = \"{a}\"\ncreated = 2\n");
        assert!(KeyFile::parse(&path, &dup).is_err());
        assert!(KeyFile::parse(&path, "[[key]]\nkey = \"short\"\ncreated = 1\n").is_err());
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn file_is_created_private_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut f = KeyFile::default();
        f.add(None);
        f.write(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        // The operator opened it to a group: a rewrite keeps that.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        f.add(None);
        f.write(&path).unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(KeyFile::read(&path).unwrap().keys.len(), 2);
        assert!(matches!(
            KeyFile::read_existing(&dir.path().join("none.toml")),
            Err(PasskeyError::Missing { .. })
        ));
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        let key = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        let text = format!("[[key]]\nkey = \"{key}\"\ncreated = \"yesterday\"\n");
        let err = KeyFile::parse(Path::new("/k.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(key), "{err}");
        assert!(err.contains("/k.toml: line 3:"), "{err}");
        let text = format!("[[key]]\nkey = \"{key}\n");
        let err = KeyFile::parse(Path::new("/k.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(key), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
