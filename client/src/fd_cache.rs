//! Open file descriptors shared by every torrent of the process: at most `capacity` open
//! at once, the least recently used closed first, so a thousand torrents of a thousand
//! files each work under the 1,024-descriptor soft limit most hosts default to.
//!
//! Handles are `Arc<File>`: an I/O call clones one out and runs outside the lock, so an
//! eviction during a read only closes the file once that read is done (the cache can be
//! over capacity by the number of calls in flight, which the blocking pool bounds).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Which descriptor: the owning storage, the file's index in it, and whether it is the
/// O_DIRECT twin of the ordinary handle.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct FileKey {
    pub owner: u64,
    pub file: u32,
    pub direct: bool,
}

struct Entry {
    file: Arc<File>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<FileKey, Entry>,
    clock: u64,
}

pub struct FileCache {
    capacity: usize,
    inner: Mutex<Inner>,
    next_owner: AtomicU64,
}

impl FileCache {
    pub fn new(capacity: usize) -> FileCache {
        FileCache {
            capacity: capacity.max(1),
            inner: Mutex::default(),
            next_owner: AtomicU64::new(1),
        }
    }

    /// The process-wide cache, sized from the descriptor limit at first use (after
    /// [`raise_nofile_limit`]): half of the soft limit, leaving the rest to sockets.
    pub fn global() -> Arc<FileCache> {
        static GLOBAL: OnceLock<Arc<FileCache>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let soft = nofile_limit().map_or(1024, |(soft, _)| soft);
                let capacity = usize::try_from(soft / 2).unwrap_or(4096).clamp(32, 4096);
                Arc::new(FileCache::new(capacity))
            })
            .clone()
    }

    /// A fresh owner id for one storage's keys.
    pub fn new_owner(&self) -> u64 {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Entries are plain handles: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle for `key`, opened with `open` when it is not cached (the open runs
    /// outside the lock).
    pub fn get(
        &self,
        key: FileKey,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<Arc<File>> {
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(e) = inner.entries.get_mut(&key) {
                e.last_used = now;
                return Ok(e.file.clone());
            }
        }
        let file = Arc::new(open()?);
        self.insert(key, file.clone());
        Ok(file)
    }

    /// Caches `file` under `key`, closing the least recently used handles beyond capacity.
    pub fn insert(&self, key: FileKey, file: Arc<File>) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.insert(
            key,
            Entry {
                file,
                last_used: now,
            },
        );
        while inner.entries.len() > self.capacity {
            // A linear scan: only misses pay it, and capacity is a few thousand at most.
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => drop(inner.entries.remove(&k)),
                None => break,
            }
        }
    }

    /// Closes every handle of `owner` (its storage is gone).
    pub fn forget_owner(&self, owner: u64) {
        self.lock().entries.retain(|k, _| k.owner != owner);
    }

    pub fn open_count(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The RLIMIT_NOFILE (soft, hard) pair.
pub fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft descriptor limit to the hard one (as rqbit and most servers do at
/// start); returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Some(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    Some(if rc == 0 { hard } else { soft })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: u64, file: u32) -> FileKey {
        FileKey {
            owner,
            file,
            direct: false,
        }
    }

    #[test]
    fn least_recently_used_handles_are_closed_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2);
        let opens = std::cell::Cell::new(0);
        let open = |n: u32| {
            opens.set(opens.get() + 1);
            File::create(dir.path().join(n.to_string()))
        };
        cache.get(key(1, 0), || open(0)).unwrap();
        cache.get(key(1, 1), || open(1)).unwrap();
        cache.get(key(1, 0), || open(0)).unwrap(); // hit: 0 is now the newest
        cache.get(key(1, 2), || open(2)).unwrap(); // evicts 1
        assert_eq!(opens.get(), 3);
        assert_eq!(cache.open_count(), 2);
        cache.get(key(1, 0), || open(0)).unwrap();
        assert_eq!(opens.get(), 3, "0 stayed open");
        cache.get(key(1, 1), || open(1)).unwrap();
        assert_eq!(opens.get(), 4, "1 was closed and reopened");
        cache.forget_owner(1);
        assert_eq!(cache.open_count(), 0);
    }

    #[test]
    fn a_failed_open_caches_nothing() {
        let cache = FileCache::new(4);
        let e = cache
            .get(key(1, 0), || File::open("/nonexistent/kpbt"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(cache.open_count(), 0);
    }

    #[test]
    fn the_soft_limit_can_be_raised_to_the_hard_one() {
        let (_, hard) = nofile_limit().unwrap();
        assert_eq!(raise_nofile_limit(), Some(hard));
    }
}
