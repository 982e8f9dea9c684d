//! What `seed` finds in its DIR before serving it: every file present with its exact
//! size and every piece matching its hash, or a report that names what is missing,
//! short, long or corrupt. Nothing here creates, extends or writes a file.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::{safe_join, Layout, StorageError};
use crate::units::{count, format_bytes};

/// At most this many files are named in a report; the rest are counted.
const NAMED_FILES: usize = 10;

/// What is wrong with one file of the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    /// A directory, symlink or device where the file should be.
    NotAFile,
    WrongSize {
        actual: u64,
    },
    /// Present with the right size, but `bad_pieces` of its pieces fail their hash.
    Corrupt {
        bad_pieces: u32,
    },
}

/// Why `seed` refuses to serve DIR.
#[derive(Clone, Debug)]
pub struct DataReport {
    pub dir: PathBuf,
    pub name: String,
    pub file_count: usize,
    /// (path, expected length, problem), in torrent order.
    pub problems: Vec<(PathBuf, u64, FileProblem)>,
    /// DIR looks like the torrent's own folder (or file) rather than its parent.
    pub looks_like_content: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedCheckError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Incomplete(Box<DataReport>),
    #[error("{dir} does not exist: give the folder that holds {name}")]
    NoDir { dir: PathBuf, name: String },
    #[error("{dir} is a file, not a folder: give the folder that holds {name}")]
    DirIsAFile { dir: PathBuf, name: String },
}

/// Checks that every file of `layout` exists under `dir` as a regular file of exactly
/// its length, and returns their paths (for [`crate::storage::Storage::open_read_only`]).
/// Directories are never created.
pub fn inspect(dir: &Path, name: &str, layout: &Layout) -> Result<Vec<PathBuf>, SeedCheckError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SeedCheckError::DirIsAFile {
                dir: dir.to_path_buf(),
                name: name.to_string(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SeedCheckError::NoDir {
                dir: dir.to_path_buf(),
                name: name.to_string(),
            })
        }
        Err(source) => {
            return Err(StorageError::Io {
                path: dir.to_path_buf(),
                source,
            }
            .into())
        }
    }
    let mut paths = Vec::with_capacity(layout.files.len());
    let mut problems = Vec::new();
    for f in &layout.files {
        let path = safe_join(dir, &f.components, false)?;
        let problem = match fs::symlink_metadata(&path) {
            Ok(m) if !m.is_file() => Some(FileProblem::NotAFile),
            Ok(m) if m.len() != f.length => Some(FileProblem::WrongSize { actual: m.len() }),
            Ok(_) => None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Some(FileProblem::Missing)
            }
            Err(source) => return Err(StorageError::Io { path, source }.into()),
        };
        if let Some(p) = problem {
            problems.push((path.clone(), f.length, p));
        }
        paths.push(path);
    }
    if problems.is_empty() {
        return Ok(paths);
    }
    Err(report(dir, name, layout, problems))
}

/// The report for pieces that failed their hash: each file they touch is named with
/// its count of bad pieces. `verified[p]` is false for a bad piece.
pub fn corrupt(dir: &Path, name: &str, layout: &Layout, verified: &[bool]) -> SeedCheckError {
    let mut bad = vec![0u32; layout.files.len()];
    for (piece, ok) in verified.iter().enumerate() {
        if *ok {
            continue;
        }
        let piece = piece as u32;
        for s in layout.slices(layout.piece_offset(piece), layout.piece_size(piece) as u64) {
            bad[s.file] += 1;
        }
    }
    let problems = layout
        .files
        .iter()
        .zip(bad)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| {
            let mut path = dir.to_path_buf();
            path.extend(&f.components);
            (path, f.length, FileProblem::Corrupt { bad_pieces: n })
        })
        .collect();
    report(dir, name, layout, problems)
}

fn report(
    dir: &Path,
    name: &str,
    layout: &Layout,
    problems: Vec<(PathBuf, u64, FileProblem)>,
) -> SeedCheckError {
    SeedCheckError::Incomplete(Box::new(DataReport {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        file_count: layout.files.len(),
        looks_like_content: looks_like_content(dir, name, layout),
        problems,
    }))
}

/// The README's classic mistake: `seed T ./release-1.2` instead of `seed T .`. True when
/// DIR/NAME is absent but DIR is itself named NAME, or holds the torrent's files
/// directly (multi-file torrents).
fn looks_like_content(dir: &Path, name: &str, layout: &Layout) -> bool {
    if dir.join(name).exists() {
        return false;
    }
    let named_like_it = fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n == name))
        .unwrap_or(false);
    let holds_its_files = layout
        .files
        .iter()
        .filter(|f| f.components.len() > 1)
        .take(3)
        .any(|f| {
            dir.join(f.components[1..].iter().collect::<PathBuf>())
                .is_file()
        });
    named_like_it || holds_its_files
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tally = |pick: fn(&FileProblem) -> bool| {
            self.problems.iter().filter(|(_, _, p)| pick(p)).count() as u64
        };
        let mut kinds = Vec::new();
        for (n, what) in [
            (tally(|p| *p == FileProblem::Missing), "missing"),
            (tally(|p| *p == FileProblem::NotAFile), "not a regular file"),
            (
                tally(|p| matches!(p, FileProblem::WrongSize { .. })),
                "the wrong size",
            ),
            (
                tally(|p| matches!(p, FileProblem::Corrupt { .. })),
                "corrupt (pieces fail their hash check)",
            ),
        ] {
            if n > 0 {
                kinds.push(format!("{n} {what}"));
            }
        }
        writeln!(
            f,
            "{} does not hold the complete data of {:?} ({}): {}",
            self.dir.display(),
            self.name,
            count(self.file_count as u64, "file"),
            kinds.join(", ")
        )?;
        for (path, expected, problem) in self.problems.iter().take(NAMED_FILES) {
            let detail = match problem {
                FileProblem::Missing => "missing".to_string(),
                FileProblem::NotAFile => "not a regular file (symlinks are refused)".into(),
                FileProblem::WrongSize { actual } => format!(
                    "{} {} bytes, expected {} ({})",
                    if actual < expected {
                        "short:"
                    } else {
                        "too long:"
                    },
                    actual,
                    expected,
                    format_bytes(*expected)
                ),
                FileProblem::Corrupt { bad_pieces } => {
                    format!(
                        "{} fail the hash check",
                        count(u64::from(*bad_pieces), "piece")
                    )
                }
            };
            writeln!(f, "  {}: {detail}", path.display())?;
        }
        if self.problems.len() > NAMED_FILES {
            writeln!(f, "  ... and {} more", self.problems.len() - NAMED_FILES)?;
        }
        if self.looks_like_content {
            writeln!(
                f,
                "{} looks like {:?} itself: DIR must be the folder that holds {:?}",
                self.dir.display(),
                self.name,
                self.name
            )?;
        }
        write!(
            f,
            "seed serves only complete data and never writes; to complete or repair it, \
             download into the same folder: kpbt-client download TORRENT -o {} --seed",
            self.dir.display()
        )
    }
}
