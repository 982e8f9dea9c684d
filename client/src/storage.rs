//! On-disk storage of one torrent: safe path construction under the output directory,
//! files opened once and pre-sized (sparse, never truncated), positioned reads/writes
//! of pieces across file boundaries, and parallel verification of existing data.
//! All methods block: call them from blocking threads, never from async tasks.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use kpbt_proto::geometry::Geometry;
use sha1::{Digest, Sha1};

use crate::direct_io::{self, MIN_DIRECT_PIECE};
use crate::fd_cache::{FileCache, FileKey};

fn key(owner: u64, file: usize, direct: bool) -> FileKey {
    FileKey {
        owner,
        file: file as u32,
        direct,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsafe path component {component:?} in torrent file list")]
    UnsafeComponent { component: String },
    #[error("{path} exists but is not a regular directory (symlinks are refused so nothing is written outside the output directory)")]
    NotADirectory { path: PathBuf },
    #[error("{path} exists but is not a regular file (symlinks are refused)")]
    NotAFile { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// One file of the torrent, as storage sees it.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// Components relative to the output directory (starting with the torrent name).
    pub components: Vec<String>,
    pub length: u64,
    /// Byte offset of this file in the torrent's concatenated data.
    pub offset: u64,
}

/// The geometry of the torrent's data.
#[derive(Clone, Debug)]
pub struct Layout {
    pub piece_len: u32,
    pub total_len: u64,
    pub files: Vec<FileSpec>,
    pub hashes: Vec<[u8; 20]>,
}

/// A part of a byte range that lies in one file.
pub use kpbt_proto::geometry::Span as Slice;

impl Layout {
    pub fn piece_count(&self) -> u32 {
        self.hashes.len() as u32
    }

    /// Piece offsets and sizes: [`kpbt_proto::geometry`], as everywhere.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            piece_length: self.piece_len,
            total_length: self.total_len,
        }
    }

    pub fn piece_offset(&self, piece: u32) -> u64 {
        self.geometry().piece_offset(piece)
    }

    pub fn piece_size(&self, piece: u32) -> u32 {
        self.geometry().piece_size(piece)
    }

    /// Splits the torrent byte range `[offset, offset+len)` into per-file parts.
    /// Zero-length files never appear.
    pub fn slices(&self, offset: u64, len: u64) -> Vec<Slice> {
        kpbt_proto::geometry::spans(
            &self.files,
            |f| (f.offset, f.length),
            self.total_len,
            offset,
            len,
        )
        .collect()
    }
}

/// Checks one path component from a torrent: it must name a plain entry in its parent.
pub fn check_component(c: &str) -> Result<(), StorageError> {
    let bad = c.is_empty()
        || c == "."
        || c == ".."
        || c.contains('/')
        || c.contains('\\')
        || c.contains('\0')
        || (c.len() >= 2 && c.as_bytes()[1] == b':'); // drive prefix, harmless here but never legitimate
    if bad {
        Err(StorageError::UnsafeComponent {
            component: c.to_string(),
        })
    } else {
        Ok(())
    }
}

/// Joins `components` under `root`, creating missing directories and refusing any
/// existing non-directory or symlink on the way, so the result is strictly inside `root`.
pub fn safe_join(
    root: &Path,
    components: &[String],
    create_dirs: bool,
) -> Result<PathBuf, StorageError> {
    let mut path = root.to_path_buf();
    let n = components.len();
    for (i, c) in components.iter().enumerate() {
        check_component(c)?;
        path.push(c);
        if i + 1 == n {
            break;
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(StorageError::NotADirectory { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create_dirs => {
                fs::create_dir(&path).map_err(|source| StorageError::Io {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StorageError::Io { path, source }),
        }
    }
    Ok(path)
}

pub struct Storage {
    layout: Layout,
    /// Descriptors come from a cache shared by every torrent of the process (bounded,
    /// least recently used closed first); `owner` is this storage's key prefix in it.
    cache: Arc<FileCache>,
    owner: u64,
    /// Files are reopened read-write (`false` for `seed`, which never writes).
    writable: bool,
    /// One lock per file around writes: ext4 serialises buffered writes to an inode
    /// anyway, and its rwsem spins on contention, burning the CPU that hashing needs.
    write_locks: Vec<std::sync::Mutex<()>>,
    /// Files that also get an O_DIRECT handle for writing verified pieces around the
    /// page cache (see `direct_io`); false when disabled or refused by the filesystem.
    direct: Vec<bool>,
    paths: Vec<PathBuf>,
    /// Length of each file before we opened it (0 if it did not exist): only pieces
    /// fully inside pre-existing data are worth verifying.
    pre_existing: Vec<u64>,
    /// Files written since the last `sync_dirty`: only those need an fdatasync.
    dirty: Vec<AtomicBool>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.cache.forget_owner(self.owner);
    }
}

/// How verified pieces reach the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Through the page cache.
    Buffered,
    /// Aligned parts with O_DIRECT where the filesystem allows it and pieces are at least
    /// `direct_io::MIN_DIRECT_PIECE`; everything else buffered.
    Direct,
}

impl Storage {
    /// Opens (creating if needed) every file under `root`, writing through the page cache.
    /// Existing data is kept: files shorter than expected are extended (sparse), longer
    /// ones are left alone.
    pub fn open(root: &Path, layout: Layout) -> Result<Storage, StorageError> {
        Storage::open_with(root, layout, WriteMode::Buffered)
    }

    /// Like [`Storage::open`], choosing how verified pieces are written.
    pub fn open_with(
        root: &Path,
        layout: Layout,
        mode: WriteMode,
    ) -> Result<Storage, StorageError> {
        Storage::open_in(root, layout, mode, FileCache::global())
    }

    /// Like [`Storage::open_with`], with descriptors from `cache`.
    pub fn open_in(
        root: &Path,
        layout: Layout,
        mode: WriteMode,
        cache: Arc<FileCache>,
    ) -> Result<Storage, StorageError> {
        fs::create_dir_all(root).map_err(|source| StorageError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let owner = cache.new_owner();
        let mut paths = Vec::with_capacity(layout.files.len());
        let mut pre_existing = Vec::with_capacity(layout.files.len());
        for (i, f) in layout.files.iter().enumerate() {
            let path = safe_join(root, &f.components, true)?;
            let existing = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => return Err(StorageError::NotAFile { path }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(source) => return Err(StorageError::Io { path, source }),
            };
            let io_err = |source| StorageError::Io {
                path: path.clone(),
                source,
            };
            // No truncate(true): resuming must never lose data already on disk.
            #[allow(clippy::suspicious_open_options)]
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_err)?;
            if existing < f.length {
                file.set_len(f.length).map_err(io_err)?;
            }
            // Kept while the cache has room, so a small torrent opens each file once.
            cache.insert(key(owner, i, false), Arc::new(file));
            pre_existing.push(existing);
            paths.push(path);
        }
        let direct_worthwhile = mode == WriteMode::Direct
            && layout.piece_len >= MIN_DIRECT_PIECE
            && (layout.piece_len as usize).is_multiple_of(direct_io::ALIGN);
        // Only files big enough to take whole pieces get an O_DIRECT twin; the
        // filesystem is asked once per file whether it allows O_DIRECT at all.
        let direct = paths
            .iter()
            .zip(&layout.files)
            .enumerate()
            .map(|(i, (p, f))| {
                if !direct_worthwhile || f.length < u64::from(MIN_DIRECT_PIECE) {
                    return false;
                }
                match direct_io::open_direct(p) {
                    Some(file) => {
                        cache.insert(key(owner, i, true), Arc::new(file));
                        true
                    }
                    None => false,
                }
            })
            .collect();
        Ok(Storage {
            write_locks: paths.iter().map(|_| std::sync::Mutex::new(())).collect(),
            dirty: paths.iter().map(|_| AtomicBool::new(false)).collect(),
            layout,
            cache,
            owner,
            writable: true,
            direct,
            paths,
            pre_existing,
        })
    }

    /// Opens files that already exist with their exact lengths (checked by
    /// `seed_check::inspect`) for reading only: nothing is created, extended or written,
    /// so serving a folder can never change the user's data.
    pub fn open_read_only(layout: Layout, paths: Vec<PathBuf>) -> Result<Storage, StorageError> {
        let cache = FileCache::global();
        let storage = Storage {
            pre_existing: layout.files.iter().map(|f| f.length).collect(),
            direct: paths.iter().map(|_| false).collect(),
            write_locks: paths.iter().map(|_| std::sync::Mutex::new(())).collect(),
            dirty: paths.iter().map(|_| AtomicBool::new(false)).collect(),
            owner: cache.new_owner(),
            cache,
            writable: false,
            layout,
            paths,
        };
        // Proves every file opens now (a permission problem is reported up front).
        for i in 0..storage.paths.len() {
            storage.handle(i)?;
        }
        Ok(storage)
    }

    /// The ordinary descriptor of file `i`, reopened (never following a symlink) if the
    /// cache closed it.
    fn handle(&self, i: usize) -> Result<Arc<File>, StorageError> {
        self.cache
            .get(key(self.owner, i, false), || {
                OpenOptions::new()
                    .read(true)
                    .write(self.writable)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&self.paths[i])
            })
            .map_err(|e| self.io_err(i, e))
    }

    /// The O_DIRECT descriptor of file `i`, if it has one; `None` also when reopening
    /// it fails (the write then goes through the page cache).
    fn direct_handle(&self, i: usize) -> Option<Arc<File>> {
        if !self.direct[i] {
            return None;
        }
        self.cache
            .get(key(self.owner, i, true), || {
                direct_io::open_direct(&self.paths[i])
                    .ok_or_else(|| io::Error::other("O_DIRECT reopen refused"))
            })
            .ok()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn io_err(&self, file: usize, source: io::Error) -> StorageError {
        StorageError::Io {
            path: self.paths[file].clone(),
            source,
        }
    }

    /// Writes a whole verified piece.
    pub fn write_piece(&self, piece: u32, data: &[u8]) -> Result<(), StorageError> {
        let mut pos = 0usize;
        for s in self
            .layout
            .slices(self.layout.piece_offset(piece), data.len() as u64)
        {
            let part = &data[pos..pos + s.len as usize];
            let _guard = self.write_locks[s.file]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let written = self.write_direct(s.file, s.file_offset, part)?;
            if written < part.len() {
                self.handle(s.file)?
                    .write_all_at(&part[written..], s.file_offset + written as u64)
                    .map_err(|e| self.io_err(s.file, e))?;
            }
            self.dirty[s.file].store(true, Ordering::Release);
            pos += s.len as usize;
        }
        Ok(())
    }

    /// Writes the aligned prefix of `part` with O_DIRECT when this file has a direct
    /// handle; returns how many bytes it wrote (the caller writes the rest buffered).
    fn write_direct(&self, file: usize, offset: u64, part: &[u8]) -> Result<usize, StorageError> {
        let Some(direct) = self.direct_handle(file) else {
            return Ok(0);
        };
        let n = direct_io::direct_prefix(offset, part);
        if n == 0 {
            return Ok(0);
        }
        match direct.write_all_at(&part[..n], offset) {
            Ok(()) => Ok(n),
            // A device with larger blocks than `ALIGN`, or a short write that left the
            // rest unaligned: the buffered handle rewrites the whole part.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %self.paths[file].display(), "direct write refused: {e}");
                Ok(0)
            }
            Err(e) => Err(self.io_err(file, e)),
        }
    }

    /// fdatasyncs every file written since the last call, so everything written before
    /// this call is durable when it returns.
    pub fn sync_dirty(&self) -> Result<(), StorageError> {
        for i in 0..self.paths.len() {
            // Cleared before syncing: a write racing with the sync marks it dirty again.
            // A handle the cache closed since is reopened: fdatasync on any descriptor
            // flushes the file's dirty pages.
            if self.dirty[i].swap(false, Ordering::AcqRel) {
                if let Err(e) = self
                    .handle(i)
                    .and_then(|f| f.sync_data().map_err(|e| self.io_err(i, e)))
                {
                    self.dirty[i].store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Current metadata (size, mtime) of every file, read by path so it costs no
    /// descriptors.
    pub fn file_metadata(&self) -> Result<Vec<fs::Metadata>, StorageError> {
        self.paths
            .iter()
            .enumerate()
            .map(|(i, p)| fs::symlink_metadata(p).map_err(|e| self.io_err(i, e)))
            .collect()
    }

    /// Reads `buf.len()` bytes starting at `begin` within `piece`.
    pub fn read(&self, piece: u32, begin: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let mut pos = 0usize;
        let start = self.layout.piece_offset(piece) + begin as u64;
        for s in self.layout.slices(start, buf.len() as u64) {
            let part = &mut buf[pos..pos + s.len as usize];
            self.handle(s.file)?
                .read_exact_at(part, s.file_offset)
                .map_err(|e| self.io_err(s.file, e))?;
            pos += s.len as usize;
        }
        Ok(())
    }

    /// True if `data` is the correct content of `piece`.
    pub fn hash_ok(&self, piece: u32, data: &[u8]) -> bool {
        let digest: [u8; 20] = Sha1::digest(data).into();
        self.layout.hashes.get(piece as usize) == Some(&digest)
    }

    fn piece_in_existing_data(&self, piece: u32) -> bool {
        let off = self.layout.piece_offset(piece);
        let len = self.layout.piece_size(piece) as u64;
        self.layout
            .slices(off, len)
            .iter()
            .all(|s| s.file_offset + s.len <= self.pre_existing[s.file])
    }

    /// Hashes every piece that lies in data that existed before we opened the files,
    /// using `threads` threads. Returns which pieces are verified. `stop` aborts early.
    pub fn verify_existing(
        &self,
        threads: usize,
        stop: &AtomicBool,
    ) -> Result<Vec<bool>, StorageError> {
        self.verify_untrusted(threads, stop, &[])
    }

    /// Like `verify_existing`, but pieces marked in `trusted` (e.g. by a resume file)
    /// count as verified without being read.
    pub fn verify_untrusted(
        &self,
        threads: usize,
        stop: &AtomicBool,
        trusted: &[bool],
    ) -> Result<Vec<bool>, StorageError> {
        let n = self.layout.piece_count();
        let next = AtomicU32::new(0);
        let is_trusted = |p: u32| trusted.get(p as usize).copied().unwrap_or(false);
        let results: Vec<AtomicBool> = (0..n).map(|p| AtomicBool::new(is_trusted(p))).collect();
        let first_err = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    let mut buf = vec![0u8; self.layout.piece_len as usize];
                    loop {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        if p >= n || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if is_trusted(p) || !self.piece_in_existing_data(p) {
                            continue;
                        }
                        let b = &mut buf[..self.layout.piece_size(p) as usize];
                        match self.read(p, 0, b) {
                            Ok(()) => {
                                results[p as usize].store(self.hash_ok(p, b), Ordering::Relaxed)
                            }
                            Err(e) => {
                                first_err
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        Ok(results.into_iter().map(|a| a.into_inner()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[(&[&str], u64)], piece_len: u32) -> Layout {
        let mut off = 0;
        let files: Vec<FileSpec> = files
            .iter()
            .map(|(c, l)| {
                let f = FileSpec {
                    components: c.iter().map(|s| s.to_string()).collect(),
                    length: *l,
                    offset: off,
                };
                off += l;
                f
            })
            .collect();
        let pieces = off.div_ceil(piece_len as u64) as usize;
        Layout {
            piece_len,
            total_len: off,
            files,
            hashes: vec![[0; 20]; pieces],
        }
    }

    #[test]
    fn slices_span_files_and_skip_empty_ones() {
        let l = layout(
            &[
                (&["t", "a"], 10),
                (&["t", "empty"], 0),
                (&["t", "b"], 5),
                (&["t", "c"], 20),
            ],
            8,
        );
        assert_eq!(
            l.slices(8, 8),
            vec![
                Slice {
                    file: 0,
                    file_offset: 8,
                    len: 2
                },
                Slice {
                    file: 2,
                    file_offset: 0,
                    len: 5
                },
                Slice {
                    file: 3,
                    file_offset: 0,
                    len: 1
                }
            ]
        );
        assert_eq!(
            l.slices(34, 1),
            vec![Slice {
                file: 3,
                file_offset: 19,
                len: 1
            }]
        );
        assert_eq!(l.piece_size(4), 3);
    }

    #[test]
    fn rejects_unsafe_components_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["..", ".", "", "a/b", "a\\b", "C:x", "nul\0"] {
            assert!(
                safe_join(dir.path(), &["t".into(), bad.into()], true).is_err(),
                "{bad:?}"
            );
        }
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("evil")).unwrap();
        let r = safe_join(dir.path(), &["evil".into(), "f".into()], true);
        assert!(
            matches!(r, Err(StorageError::NotADirectory { .. })),
            "{r:?}"
        );
        // A symlinked file is refused too.
        std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("link")).unwrap();
        let l = layout(&[(&["link"], 4)], 4);
        assert!(matches!(
            Storage::open(dir.path(), l),
            Err(StorageError::NotAFile { .. })
        ));
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn write_read_across_files_and_resume_never_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..35u8).collect();
        let mut l = layout(
            &[(&["t", "a"], 10), (&["t", "d", "b"], 5), (&["t", "c"], 20)],
            8,
        );
        l.hashes = data.chunks(8).map(|c| Sha1::digest(c).into()).collect();
        {
            let s = Storage::open(dir.path(), l.clone()).unwrap();
            // Nothing pre-existed: nothing verifies.
            assert!(s
                .verify_existing(2, &AtomicBool::new(false))
                .unwrap()
                .iter()
                .all(|v| !v));
            for p in [0u32, 1, 3] {
                let o = p as usize * 8;
                s.write_piece(p, &data[o..(o + 8).min(35)]).unwrap();
            }
            let mut buf = [0u8; 6];
            s.read(1, 1, &mut buf).unwrap();
            assert_eq!(&buf, &data[9..15]);
        }
        assert_eq!(
            fs::read(dir.path().join("t/d/b")).unwrap(),
            data[10..15].to_vec()
        );
        // Reopen: existing data is kept and verified; piece 2 (never written) is not.
        let s = Storage::open(dir.path(), l).unwrap();
        let v = s.verify_existing(2, &AtomicBool::new(false)).unwrap();
        assert_eq!(v, vec![true, true, false, true, false]);
        assert_eq!(fs::metadata(dir.path().join("t/c")).unwrap().len(), 20);
    }

    #[test]
    fn longer_existing_file_is_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), vec![7u8; 100]).unwrap();
        let _s = Storage::open(dir.path(), layout(&[(&["f"], 10)], 8)).unwrap();
        assert_eq!(fs::metadata(dir.path().join("f")).unwrap().len(), 100);
    }

    #[test]
    fn direct_writes_land_exactly_with_unaligned_files_and_tail() {
        use crate::direct_io::PieceBuffer;
        let dir = tempfile::tempdir().unwrap();
        let piece_len = MIN_DIRECT_PIECE;
        // File a ends mid-block, so b starts unaligned; the last piece is short and odd.
        let sizes = [300 * 1024 + 5, 200 * 1024 - 5, 600 * 1024 + 77];
        let total: u64 = sizes.iter().sum();
        let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let mut l = layout(
            &[
                (&["t", "a"], sizes[0]),
                (&["t", "b"], sizes[1]),
                (&["t", "c"], sizes[2]),
            ],
            piece_len,
        );
        l.hashes = data
            .chunks(piece_len as usize)
            .map(|c| Sha1::digest(c).into())
            .collect();
        let s = Storage::open_with(dir.path(), l.clone(), WriteMode::Direct).unwrap();
        // Where the filesystem offers O_DIRECT (not tmpfs), it must actually be used.
        let fs_has_direct = direct_io::open_direct(&s.paths()[0]).is_some();
        // b is smaller than a piece: no second descriptor for it.
        let has = s.direct.clone();
        assert_eq!(has, [fs_has_direct, false, fs_has_direct]);
        let mut buf = PieceBuffer::default();
        for p in (0..l.piece_count()).rev() {
            let off = l.piece_offset(p) as usize;
            buf.reset(l.piece_size(p) as usize);
            buf.as_mut_slice()
                .copy_from_slice(&data[off..off + l.piece_size(p) as usize]);
            s.write_piece(p, buf.as_slice()).unwrap();
        }
        s.sync_dirty().unwrap();
        let mut on_disk = Vec::new();
        for name in ["a", "b", "c"] {
            on_disk.extend(fs::read(dir.path().join("t").join(name)).unwrap());
        }
        assert!(on_disk == data, "files differ from the pieces written");
        // Buffered reads through the other handle see the direct writes.
        let v = s.verify_untrusted(2, &AtomicBool::new(false), &[]).unwrap();
        assert!(v.iter().all(|ok| !ok), "nothing pre-existed at open");
        let s = Storage::open(dir.path(), l).unwrap();
        let v = s.verify_existing(2, &AtomicBool::new(false)).unwrap();
        assert!(v.iter().all(|ok| *ok), "{v:?}");
    }

    #[test]
    fn a_torrent_of_more_files_than_descriptors_works_within_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let n = 300;
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let files: Vec<(Vec<&str>, u64)> = names
            .iter()
            .map(|name| (vec!["t", name.as_str()], 1000 + name.len() as u64))
            .collect();
        let spec: Vec<(&[&str], u64)> = files.iter().map(|(c, l)| (c.as_slice(), *l)).collect();
        let mut l = layout(&spec, 16 * 1024);
        let data: Vec<u8> = (0..l.total_len).map(|i| (i % 251) as u8).collect();
        l.hashes = data
            .chunks(l.piece_len as usize)
            .map(|c| Sha1::digest(c).into())
            .collect();
        let cache = Arc::new(FileCache::new(8));
        let s = Storage::open_in(dir.path(), l.clone(), WriteMode::Direct, cache.clone()).unwrap();
        assert!(cache.open_count() <= 8);
        for p in (0..l.piece_count()).rev() {
            let off = l.piece_offset(p) as usize;
            s.write_piece(p, &data[off..off + l.piece_size(p) as usize])
                .unwrap();
            assert!(cache.open_count() <= 8, "{}", cache.open_count());
        }
        s.sync_dirty().unwrap();
        let v = s.verify_untrusted(2, &AtomicBool::new(false), &[]).unwrap();
        assert!(v.iter().all(|ok| !ok), "nothing pre-existed at open");
        drop(s);
        assert_eq!(cache.open_count(), 0, "a dropped storage closes its files");
        let s = Storage::open_in(dir.path(), l, WriteMode::Buffered, cache.clone()).unwrap();
        let v = s.verify_existing(2, &AtomicBool::new(false)).unwrap();
        assert!(
            v.iter().all(|ok| *ok),
            "every piece reads back through reopened files"
        );
        assert!(
            cache.open_count() <= 8 + 2,
            "at most one in-flight handle per thread over"
        );
    }
}
