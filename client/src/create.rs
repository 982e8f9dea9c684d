//! Torrent creation: lists a file or directory, hashes its pieces on every core, builds the .torrent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kpbt_proto::metainfo::{self, FileEntry, Info, NewTorrent};
use kpbt_proto::{InfoHash, PieceIndex};
use sha1::{Digest, Sha1};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CreateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has a name that is not valid UTF-8; rename it to include it in a torrent")]
    NonUtf8Name(PathBuf),
    #[error("{0} holds no files to share")]
    Empty(PathBuf),
    #[error("piece length {0} is invalid: use a power of two from 16 KiB to 256 MiB")]
    PieceLength(u32),
    #[error("{0} changed size while it was being hashed; try again when it is not being written")]
    Changed(PathBuf),
    #[error("tracker URL {url:?} {problem}: give a full announce URL such as http://tracker.example:6969/announce")]
    TrackerUrl { url: String, problem: &'static str },
    #[error("web seed URL {url:?} {problem}: give the http(s) URL of the file, or of the folder that holds NAME (ending in /), e.g. http://origin.example/files/")]
    WebSeedUrl { url: String, problem: &'static str },
}

/// Checks a BEP 19 web seed (or `--origin`) URL: `http://` or `https://` with a host, in
/// the bounds a torrent may carry ([`metainfo::is_web_seed_url`]).
pub fn check_web_seed_url(url: &str) -> Result<(), CreateError> {
    let bad = |problem| CreateError::WebSeedUrl {
        url: url.to_string(),
        problem,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !metainfo::is_web_seed_url(url) {
        return Err(bad("is too long or holds spaces or control characters"));
    }
    Ok(())
}

/// Checks an announce URL before it is written into a torrent: `http://`, `https://` or
/// `udp://` (BEP 15, which needs a port), with a host.
pub fn check_tracker_url(url: &str) -> Result<(), CreateError> {
    let bad = |problem| CreateError::TrackerUrl {
        url: url.to_string(),
        problem,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a URL"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        "udp" if parsed.port().is_none() => return Err(bad("needs a port (udp://HOST:PORT)")),
        "udp" => {}
        _ => return Err(bad("must start with http://, https:// or udp://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub path: PathBuf,
    /// BEP 12 tiers, in order of preference.
    pub trackers: Vec<Vec<String>>,
    pub piece_length: Option<u32>,
    pub private: bool,
    pub comment: Option<String>,
    /// BEP 19 web seeds written as `url-list` (`--web-seed`): where HTTP(S) serves the
    /// same files.
    pub web_seeds: Vec<String>,
}

/// A file to be shared: where it is on disk and its path inside the torrent.
#[derive(Debug, Clone)]
struct SourceFile {
    disk_path: PathBuf,
    torrent_path: Vec<String>,
    length: u64,
}

/// The plan for a torrent, before hashing: lets the caller size a progress bar.
pub struct Plan {
    options: CreateOptions,
    name: String,
    single_file: bool,
    files: Vec<SourceFile>,
    piece_length: u32,
}

impl Plan {
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// Lists what `options.path` holds and picks the piece length.
pub fn plan(options: CreateOptions) -> Result<Plan, CreateError> {
    for url in options.trackers.iter().flatten() {
        check_tracker_url(url)?;
    }
    for url in &options.web_seeds {
        check_web_seed_url(url)?;
    }
    let path = &options.path;
    let meta = std::fs::metadata(path).map_err(|source| io(path, source))?;
    let name = utf8_name(path)?;
    let (single_file, files) = if meta.is_file() {
        let file = SourceFile {
            disk_path: path.clone(),
            torrent_path: Vec::new(),
            length: meta.len(),
        };
        (true, vec![file])
    } else {
        let mut files = Vec::new();
        walk(path, &mut Vec::new(), &mut files)?;
        if files.is_empty() {
            return Err(CreateError::Empty(path.clone()));
        }
        (false, files)
    };
    let total: u64 = files.iter().map(|f| f.length).sum();
    let piece_length = match options.piece_length {
        None => metainfo::default_piece_length(total),
        Some(len)
            if len.is_power_of_two() && (16 * 1024..=metainfo::MAX_PIECE_LENGTH).contains(&len) =>
        {
            len
        }
        Some(len) => return Err(CreateError::PieceLength(len)),
    };
    Ok(Plan {
        options,
        name,
        single_file,
        files,
        piece_length,
    })
}

fn io(path: &Path, source: std::io::Error) -> CreateError {
    CreateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn utf8_name(path: &Path) -> Result<String, CreateError> {
    let absolute = std::path::absolute(path).map_err(|source| io(path, source))?;
    absolute
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NonUtf8Name(path.to_owned()))
}

/// Regular files below `dir`, sorted by name at every level so the torrent is reproducible.
/// Symlinks are skipped: following them could share files from outside the directory.
fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<SourceFile>,
) -> Result<(), CreateError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| io(dir, source))?
        .collect::<Result<_, _>>()
        .map_err(|source| io(dir, source))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| io(&path, source))?;
        let name = entry
            .file_name()
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| CreateError::NonUtf8Name(path.clone()))?;
        if kind.is_dir() {
            prefix.push(name);
            walk(&path, prefix, out)?;
            prefix.pop();
        } else if kind.is_file() {
            let length = entry.metadata().map_err(|source| io(&path, source))?.len();
            let mut torrent_path = prefix.clone();
            torrent_path.push(name);
            out.push(SourceFile {
                disk_path: path,
                torrent_path,
                length,
            });
        } else {
            tracing::warn!(path = %path.display(), "skipping: not a regular file");
        }
    }
    Ok(())
}

/// Hashes every piece on `threads` threads and returns the .torrent bytes and info hash.
/// `hashed` is advanced by the bytes hashed so far, for progress display.
pub fn build(
    plan: &Plan,
    threads: usize,
    hashed: &AtomicU64,
) -> Result<(Vec<u8>, InfoHash), CreateError> {
    let layout = layout_info(plan);
    let piece_count = layout.piece_count();
    let threads = threads.clamp(1, 64).min(piece_count.max(1) as usize);
    let mut hashes = vec![[0u8; 20]; piece_count as usize];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let layout = &layout;
                scope.spawn(move || hash_stripe(plan, layout, worker, threads, hashed))
            })
            .collect();
        for worker in workers {
            for (index, hash) in worker.join().expect("hashing thread panicked")? {
                hashes[index as usize] = hash;
            }
        }
        Ok::<_, CreateError>(())
    })?;
    let options = &plan.options;
    let torrent = NewTorrent {
        name: plan.name.clone(),
        piece_length: plan.piece_length,
        piece_hashes: hashes,
        files: if plan.single_file {
            Vec::new()
        } else {
            plan.files
                .iter()
                .map(|f| (f.torrent_path.clone(), f.length))
                .collect()
        },
        single_file_length: plan.single_file.then(|| plan.total_length()),
        trackers: options.trackers.clone(),
        private: options.private,
        comment: options.comment.clone(),
        created_by: Some(concat!("kpbt-client/", env!("CARGO_PKG_VERSION")).to_owned()),
        creation_date: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64),
        web_seeds: options.web_seeds.clone(),
    };
    let bytes = metainfo::build_torrent(&torrent);
    // Parse what we built: it proves the torrent is valid and yields the info hash
    // exactly as every other client will compute it.
    let parsed = metainfo::Metainfo::from_bytes(&bytes).expect("a torrent we built parses");
    Ok((bytes, parsed.info_hash))
}

/// The piece geometry of the plan, reusing the metainfo slicing logic.
fn layout_info(plan: &Plan) -> Info {
    let mut offset = 0;
    let files = plan
        .files
        .iter()
        .map(|f| {
            let entry = FileEntry {
                path: f.torrent_path.clone(),
                length: f.length,
                offset,
            };
            offset += f.length;
            entry
        })
        .collect();
    let total = plan.total_length();
    Info {
        name: plan.name.clone(),
        piece_length: plan.piece_length,
        piece_hashes: vec![
            [0; 20];
            kpbt_proto::geometry::Geometry {
                piece_length: plan.piece_length,
                total_length: total,
            }
            .piece_count() as usize
        ],
        files,
        total_length: total,
        private: plan.options.private,
        multi_file: !plan.single_file,
    }
}

/// Hashes pieces `worker`, `worker + stride`, ... with one open handle per file.
fn hash_stripe(
    plan: &Plan,
    layout: &Info,
    worker: usize,
    stride: usize,
    hashed: &AtomicU64,
) -> Result<Vec<(u32, [u8; 20])>, CreateError> {
    // The few files the last pieces touched stay open: a worker's pieces are `stride`
    // apart, so it rarely needs an older file again, and a directory of thousands of
    // files must not cost thousands of descriptors.
    const KEEP_OPEN: usize = 4;
    let mut handles: Vec<(usize, File)> = Vec::with_capacity(KEEP_OPEN + 1);
    let mut buf = vec![0u8; plan.piece_length as usize];
    let mut out = Vec::new();
    for index in (worker as u32..layout.piece_count()).step_by(stride) {
        let piece = PieceIndex(index);
        let size = layout.piece_size(piece) as usize;
        let mut filled = 0;
        for slice in layout.file_slices(layout.piece_offset(piece), size as u64) {
            let source = &plan.files[slice.file_index];
            let pos = match handles.iter().position(|(i, _)| *i == slice.file_index) {
                Some(pos) => pos,
                None => {
                    if handles.len() == KEEP_OPEN {
                        handles.remove(0);
                    }
                    let f = File::open(&source.disk_path).map_err(|e| io(&source.disk_path, e))?;
                    handles.push((slice.file_index, f));
                    handles.len() - 1
                }
            };
            let file = &handles[pos].1;
            let dest = &mut buf[filled..filled + slice.len as usize];
            file.read_exact_at(dest, slice.file_offset).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    CreateError::Changed(source.disk_path.clone())
                } else {
                    io(&source.disk_path, e)
                }
            })?;
            filled += slice.len as usize;
        }
        out.push((index, Sha1::digest(&buf[..size]).into()));
        hashed.fetch_add(size as u64, Ordering::Relaxed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpbt_proto::metainfo::Metainfo;

    fn options(path: &Path) -> CreateOptions {
        CreateOptions {
            path: path.to_owned(),
            trackers: vec![vec!["http://127.0.0.1:6969/announce".into()]],
            piece_length: Some(16 * 1024),
            private: true,
            comment: None,
            web_seeds: Vec::new(),
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn multi_file_torrent_hashes_across_file_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("set");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        let a = pattern(20_000, 1);
        let c = pattern(30_001, 2);
        std::fs::write(root.join("a.bin"), &a).unwrap();
        std::fs::write(root.join("b/c/z.bin"), &c).unwrap();
        std::fs::write(root.join("b/empty"), b"").unwrap();
        let plan = plan(options(&root)).unwrap();
        let hashed = AtomicU64::new(0);
        let (bytes, info_hash) = build(&plan, 3, &hashed).unwrap();
        assert_eq!(hashed.load(Ordering::Relaxed), 50_001);
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(meta.info_hash, info_hash);
        assert!(meta.info.private && meta.info.multi_file);
        let paths: Vec<String> = meta.info.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["set/a.bin", "set/b/c/z.bin", "set/b/empty"]);
        let data: Vec<u8> = a.iter().chain(c.iter()).copied().collect();
        for (i, chunk) in data.chunks(16 * 1024).enumerate() {
            let want: [u8; 20] = Sha1::digest(chunk).into();
            assert_eq!(meta.info.piece_hashes[i], want, "piece {i}");
        }
    }

    #[test]
    fn single_file_and_bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.iso");
        std::fs::write(&file, pattern(40_000, 9)).unwrap();
        let plan = plan(CreateOptions {
            piece_length: None,
            ..options(&file)
        })
        .unwrap();
        let (bytes, _) = build(&plan, 2, &AtomicU64::new(0)).unwrap();
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(meta.info.name, "one.iso");
        assert!(!meta.info.multi_file);
        assert_eq!(meta.info.total_length, 40_000);
        assert!(meta.web_seeds.is_empty());
        let seeded = super::plan(CreateOptions {
            web_seeds: vec!["http://o:8080/files/".into(), "https://m/one.iso".into()],
            ..options(&file)
        })
        .unwrap();
        let (bytes, _) = build(&seeded, 2, &AtomicU64::new(0)).unwrap();
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(
            meta.web_seeds,
            ["http://o:8080/files/", "https://m/one.iso"]
        );
        for (url, problem) in [
            ("ftp://o/x", "must start with http"),
            ("origin/files/", "is not a URL"),
            ("http://o/a b", "spaces"),
        ] {
            let err = super::plan(CreateOptions {
                web_seeds: vec![url.into()],
                ..options(&file)
            })
            .err()
            .expect("bad web seed refused")
            .to_string();
            assert!(err.contains(problem) && err.contains(url), "{err}");
        }

        let empty = dir.path().join("empty-dir");
        std::fs::create_dir(&empty).unwrap();
        assert!(matches!(
            super::plan(options(&empty)),
            Err(CreateError::Empty(_))
        ));
        let bad_len = CreateOptions {
            piece_length: Some(1000),
            ..options(&file)
        };
        assert!(matches!(
            super::plan(bad_len),
            Err(CreateError::PieceLength(1000))
        ));
        assert!(matches!(
            super::plan(options(&dir.path().join("missing"))),
            Err(CreateError::Io { .. })
        ));
    }
}
