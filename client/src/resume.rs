//! Durable resume: `DIR/.NAME.kpbt-resume` records the info hash, each file's size and
//! mtime and the have-bitfield, so a restart can skip re-hashing pieces it already
//! verified. Saves are batched (every few seconds, at completion and at shutdown):
//! first fdatasync every file written since the last save, *then* replace the resume
//! file atomically (temp + fsync + rename + fsync dir). The bitfield is snapshotted
//! before the sync, so it never claims a piece whose data might not be on disk.
//! Anything doubtful on load (missing, corrupt, other torrent, size changed, file
//! modified after the save) falls back to hashing; the file is untrusted input.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kpbt_proto::wire::Bitfield;
use kpbt_proto::InfoHash;
use sha1::{Digest, Sha1};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::shared::Shared;
use crate::storage::{Storage, StorageError};

/// How often new pieces are made durable and recorded. Syncing in batches rather than
/// per piece keeps writes at page-cache speed (1.4 GB/s vs 360 MB/s with a sync per write).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);
const MAGIC: &str = "kpbt-resume 1";
/// A resume file is a few lines plus one hex bitfield; anything far bigger is not ours.
const MAX_LEN: u64 = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResumeError {
    #[error("not a kpbt resume file or damaged: {0}")]
    Corrupt(&'static str),
    #[error("resume file is for another torrent")]
    OtherTorrent,
}

/// One file's size and modification time (nanoseconds since the epoch) at save time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub mtime_ns: u128,
}

/// The decoded contents of a resume file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    pub info_hash: [u8; 20],
    pub piece_count: u32,
    pub files: Vec<FileStamp>,
    pub have: Vec<u8>,
}

/// Where the resume file for torrent `name` downloaded into `dir` lives. Hidden and
/// next to the data, so moving the directory moves the resume state with it.
pub fn resume_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.kpbt-resume"))
}

pub fn encode(d: &ResumeData) -> Vec<u8> {
    let mut s = format!(
        "{MAGIC}\ninfo_hash {}\npieces {}\n",
        hex::encode(d.info_hash),
        d.piece_count
    );
    for f in &d.files {
        s.push_str(&format!("file {} {}\n", f.len, f.mtime_ns));
    }
    s.push_str(&format!("have {}\n", hex::encode(&d.have)));
    // A checksum catches torn or hand-edited files that still parse.
    let sum = hex::encode(Sha1::digest(s.as_bytes()));
    s.push_str(&format!("sha1 {sum}\n"));
    s.into_bytes()
}

pub fn decode(bytes: &[u8]) -> Result<ResumeData, ResumeError> {
    use ResumeError::Corrupt;
    let text = std::str::from_utf8(bytes).map_err(|_| Corrupt("not UTF-8"))?;
    let body_end = text.rfind("sha1 ").ok_or(Corrupt("no checksum"))?;
    let (body, sum) = text.split_at(body_end);
    let sum = sum.strip_prefix("sha1 ").unwrap_or_default().trim_end();
    if hex::encode(Sha1::digest(body.as_bytes())) != sum {
        return Err(Corrupt("checksum mismatch"));
    }
    let mut lines = body.lines();
    if lines.next() != Some(MAGIC) {
        return Err(Corrupt("bad header"));
    }
    let mut field = |name: &str| -> Result<&str, ResumeError> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
            .ok_or(Corrupt("missing field"))
    };
    let mut info_hash = [0u8; 20];
    hex::decode_to_slice(field("info_hash")?, &mut info_hash)
        .map_err(|_| Corrupt("bad info hash"))?;
    let piece_count: u32 = field("pieces")?
        .parse()
        .map_err(|_| Corrupt("bad piece count"))?;
    let mut files = Vec::new();
    let have = loop {
        let line = lines.next().ok_or(Corrupt("truncated"))?;
        if let Some(h) = line.strip_prefix("have ") {
            break hex::decode(h).map_err(|_| Corrupt("bad bitfield"))?;
        }
        let mut parts = line
            .strip_prefix("file ")
            .ok_or(Corrupt("bad line"))?
            .split(' ');
        let mut num = || parts.next().and_then(|p| p.parse::<u128>().ok());
        let (Some(len), Some(mtime_ns)) = (num(), num()) else {
            return Err(Corrupt("bad file line"));
        };
        let len = u64::try_from(len).map_err(|_| Corrupt("bad file length"))?;
        files.push(FileStamp { len, mtime_ns });
    };
    if have.len() as u64 != (piece_count as u64).div_ceil(8) {
        return Err(Corrupt("bitfield length"));
    }
    Ok(ResumeData {
        info_hash,
        piece_count,
        files,
        have,
    })
}

fn stamp_of(meta: &fs::Metadata) -> FileStamp {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    FileStamp {
        len: meta.len(),
        mtime_ns,
    }
}

/// Makes every piece in `have` durable, then records `have` atomically at `path`.
/// Blocking.
pub fn save(
    storage: &Storage,
    info_hash: InfoHash,
    have: &Bitfield,
    path: &Path,
) -> Result<(), StorageError> {
    storage.sync_dirty()?;
    let files = storage
        .file_metadata()?
        .iter()
        .map(stamp_of)
        .collect::<Vec<_>>();
    let data = ResumeData {
        info_hash: info_hash.0,
        piece_count: have.len(),
        files,
        have: have.as_bytes().to_vec(),
    };
    write_atomically(path, &encode(&data)).map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // The rename itself is only durable once the directory entry is synced.
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

/// Which pieces the resume file at `path` lets us trust without hashing: claimed in
/// its bitfield and lying only in files whose size is unchanged and that were not
/// modified after the save. `None` (with the reason logged) means hash everything.
pub fn trusted_pieces(storage: &Storage, info_hash: InfoHash, path: &Path) -> Option<Vec<bool>> {
    let bytes = match fs::File::open(path).and_then(|f| {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(f, MAX_LEN), &mut v).map(|_| v)
    }) {
        Ok(b) => b,
        Err(e) => {
            debug!(path = %path.display(), "no usable resume file: {e}");
            return None;
        }
    };
    let layout = storage.layout();
    let data = decode(&bytes).and_then(|d| {
        if d.info_hash != info_hash.0
            || d.piece_count != layout.piece_count()
            || d.files.len() != layout.files.len()
        {
            Err(ResumeError::OtherTorrent)
        } else {
            Ok(d)
        }
    });
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            warn!(path = %path.display(), "ignoring resume file, verifying data instead: {e}");
            return None;
        }
    };
    let now = storage.file_metadata().ok()?;
    let file_ok: Vec<bool> = layout
        .files
        .iter()
        .zip(&data.files)
        .zip(&now)
        .map(|((spec, saved), meta)| {
            let cur = stamp_of(meta);
            saved.len == spec.length && cur.len == spec.length && cur.mtime_ns <= saved.mtime_ns
        })
        .collect();
    if file_ok.iter().any(|ok| !ok) {
        debug!("some files changed since the resume file was saved; hashing them");
    }
    let have = Bitfield::from_wire(&data.have, data.piece_count).ok()?;
    Some(
        (0..layout.piece_count())
            .map(|p| {
                have.get(p)
                    && layout
                        .slices(layout.piece_offset(p), layout.piece_size(p) as u64)
                        .iter()
                        .all(|s| file_ok[s.file])
            })
            .collect(),
    )
}

/// Snapshots the bitfield and saves; blocking.
pub(crate) fn save_shared(shared: &Shared, path: &Path) -> Result<(), StorageError> {
    // The periodic saver and the final save at shutdown may overlap: they share the
    // temp file name, and the newest snapshot must be the one that lands last, so
    // snapshot and write happen under the torrent's resume lock.
    let _guard = shared.resume_lock.lock().unwrap_or_else(|e| e.into_inner());
    let have = shared.lock().picker.have_set().clone();
    save(&shared.storage, shared.info_hash, &have, path)
}

/// Saves every `SAVE_INTERVAL` when pieces were added, and at completion. The final
/// save at shutdown is done by the session once all writes have finished. A complete
/// torrent whose state is saved has nothing left to record (pieces are never lost), so
/// the saver then only waits for the shutdown: no wake-ups while it seeds.
pub(crate) async fn run_saver(
    shared: Arc<Shared>,
    path: PathBuf,
    mut complete: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SAVE_INTERVAL);
    let mut saved_count: Option<u32> = None;
    let mut complete_seen = false;
    loop {
        let done = complete_seen && saved_count == Some(shared.piece_count);
        tokio::select! {
            _ = tick.tick(), if !done => {}
            r = complete.wait_for(|c| *c), if !complete_seen => {
                complete_seen = true;
                if r.is_err() { return; }
            }
            _ = shutdown.changed() => return,
        }
        let count = shared.lock().picker.have_count();
        if saved_count == Some(count) {
            continue;
        }
        let (s, p) = (shared.clone(), path.clone());
        match tokio::task::spawn_blocking(move || save_shared(&s, &p)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("cannot save resume data: {e}"),
            Err(e) => warn!("resume save task failed: {e}"),
        }
        // Also after a failure (e.g. a read-only seed directory): retry when there is
        // something new to record, not every tick.
        saved_count = Some(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FileSpec, Layout};
    use std::sync::atomic::AtomicBool;

    fn setup(dir: &Path) -> (Layout, Vec<u8>) {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 7) as u8).collect();
        let layout = Layout {
            piece_len: 16,
            total_len: 100,
            files: vec![
                FileSpec {
                    components: vec!["t".into(), "a".into()],
                    length: 40,
                    offset: 0,
                },
                FileSpec {
                    components: vec!["t".into(), "b".into()],
                    length: 60,
                    offset: 40,
                },
            ],
            hashes: data.chunks(16).map(|c| Sha1::digest(c).into()).collect(),
        };
        let s = Storage::open(dir, layout.clone()).unwrap();
        for p in 0..7u32 {
            let o = p as usize * 16;
            s.write_piece(p, &data[o..(o + 16).min(100)]).unwrap();
        }
        (layout, data)
    }

    fn all_have(n: u32) -> Bitfield {
        let mut b = Bitfield::new(n);
        for p in 0..n {
            b.set(p);
        }
        b
    }

    #[test]
    fn round_trip_and_decode_rejects_damage() {
        let d = ResumeData {
            info_hash: [3; 20],
            piece_count: 10,
            files: vec![FileStamp {
                len: 5,
                mtime_ns: 123,
            }],
            have: vec![0xff, 0xc0],
        };
        let bytes = encode(&d);
        assert_eq!(decode(&bytes), Ok(d));
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 2] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped).is_err());
        assert!(decode(&[0xff, 0xfe, b's', b'h']).is_err());
    }

    #[test]
    fn saved_bitfield_is_trusted_and_skips_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = setup(dir.path());
        let ih = InfoHash([9; 20]);
        let path = resume_path(dir.path(), "t");
        {
            let s = Storage::open(dir.path(), layout.clone()).unwrap();
            save(&s, ih, &all_have(7), &path).unwrap();
        }
        // Corrupt piece 0 on disk but put the mtime back: only a trusting restart would
        // still claim it, which proves the trusted piece was not re-hashed.
        let a = dir.path().join("t/a");
        let mtime = fs::metadata(&a).unwrap().modified().unwrap();
        let f = fs::OpenOptions::new().write(true).open(&a).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"X", 0).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        let s = Storage::open(dir.path(), layout).unwrap();
        let trusted = trusted_pieces(&s, ih, &path).unwrap();
        assert!(trusted.iter().all(|t| *t));
        let v = s
            .verify_untrusted(2, &AtomicBool::new(false), &trusted)
            .unwrap();
        assert!(v.iter().all(|t| *t));
    }

    #[test]
    fn modified_file_missing_corrupt_or_foreign_resume_falls_back_to_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = setup(dir.path());
        let ih = InfoHash([9; 20]);
        let path = resume_path(dir.path(), "t");
        let s = Storage::open(dir.path(), layout.clone()).unwrap();
        assert_eq!(trusted_pieces(&s, ih, &path), None, "missing");
        save(&s, ih, &all_have(7), &path).unwrap();
        assert_eq!(
            trusted_pieces(&s, InfoHash([8; 20]), &path),
            None,
            "foreign"
        );
        // File b modified after the save (and corrupted): its pieces are hashed again,
        // pieces wholly in file a are still trusted.
        let b = dir.path().join("t/b");
        let later = fs::metadata(&b).unwrap().modified().unwrap() + Duration::from_secs(5);
        let f = fs::OpenOptions::new().write(true).open(&b).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"XX", 50).unwrap();
        f.set_modified(later).unwrap();
        drop(f);
        let trusted = trusted_pieces(&s, ih, &path).unwrap();
        // Piece 2 spans a and b (bytes 32..48), so only 0 and 1 stay trusted.
        assert_eq!(trusted, [true, true, false, false, false, false, false]);
        let v = s
            .verify_untrusted(2, &AtomicBool::new(false), &trusted)
            .unwrap();
        // Piece 5 (bytes 80..96 = b[40..56]) was corrupted.
        assert_eq!(v, [true, true, true, true, true, false, true]);
        fs::write(&path, b"kpbt-resume 1\ngarbage").unwrap();
        assert_eq!(trusted_pieces(&s, ih, &path), None, "corrupt");
    }
}
