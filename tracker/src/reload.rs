//! Files the running tracker re-reads when they change (polled) or on SIGHUP: the allowlist
//! and the passkey file share this one mechanism.
//!
//! A file that fails to read or parse on reload leaves the previous contents in force: a
//! half-written edit must not open (or close) the tracker to everything.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};

/// Contents parsed from a watched file.
pub trait FileContents: Sized + Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Parses the whole file text.
    fn parse(path: &Path, text: &str) -> Result<Self, Self::Error>;
    /// Wraps an I/O error reading `path`.
    fn read_error(path: &Path, source: std::io::Error) -> Self::Error;
    /// A size figure for logs ("reloaded, N entries").
    fn entries(&self) -> usize;
}

/// Identifies one version of the file cheaply. The inode is included because atomic
/// writers (temp + rename, as `kpbt-tracker keys` does) replace the inode, and a rewrite
/// within the filesystem's timestamp granularity could otherwise keep mtime and size.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp_of(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A file's parsed contents, swapped whole on reload. Readers on the request path take no
/// lock and write no shared cache line (unlike an `RwLock`'s reader count).
pub struct WatchedFile<T> {
    name: &'static str,
    path: PathBuf,
    current: ArcSwap<T>,
    stamp: Mutex<Stamp>,
}

impl<T: FileContents> WatchedFile<T> {
    /// Loads the file; failing here stops the tracker from starting. `name` is for logs.
    pub fn load(name: &'static str, path: &Path) -> Result<Self, T::Error> {
        let stamp = stamp_of(path);
        let value = read::<T>(path)?;
        Ok(WatchedFile {
            name,
            path: path.to_owned(),
            current: ArcSwap::from_pointee(value),
            stamp: Mutex::new(stamp),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The contents now in force.
    pub fn get(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// Re-reads the file unconditionally; returns the new contents' [`FileContents::entries`].
    pub fn reload(&self) -> Result<usize, T::Error> {
        let stamp = stamp_of(&self.path);
        let value = read::<T>(&self.path)?;
        let n = value.entries();
        self.current.store(Arc::new(value));
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(n)
    }

    /// Reloads if the file's mtime, size or inode changed since the last load.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, T::Error> {
        let now = stamp_of(&self.path);
        let last = *self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now == last {
            return Ok(None);
        }
        self.reload().map(Some)
    }
}

fn read<T: FileContents>(path: &Path) -> Result<T, T::Error> {
    let text = std::fs::read_to_string(path).map_err(|e| T::read_error(path, e))?;
    T::parse(path, &text)
}

/// Object-safe view of a [`WatchedFile`], so the poller and the SIGHUP handler can walk
/// every watched file without knowing what each holds.
pub trait Reload: Send + Sync {
    /// What the file is, for logs ("allowlist", "passkeys").
    fn name(&self) -> &'static str;
    fn reload(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>>;
    fn reload_if_changed(&self) -> Result<Option<usize>, Box<dyn std::error::Error + Send + Sync>>;
}

impl<T: FileContents> Reload for WatchedFile<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn reload(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        Ok(WatchedFile::reload(self)?)
    }

    fn reload_if_changed(&self) -> Result<Option<usize>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(WatchedFile::reload_if_changed(self)?)
    }
}

/// Reloads each file if it changed (`force`: unconditionally, as on SIGHUP), logging
/// the outcome; errors keep the old contents.
pub fn reload_all(files: &[&dyn Reload], force: bool) {
    for f in files {
        let result = if force {
            f.reload().map(Some)
        } else {
            f.reload_if_changed()
        };
        match result {
            Ok(Some(n)) => tracing::info!(entries = n, "{} reloaded", f.name()),
            Ok(None) => {}
            Err(e) => tracing::warn!("{} not reloaded, keeping the old one: {e}", f.name()),
        }
    }
}
