//! .torrent metainfo: parsing with full validation (BEP 3, 12, 27), piece geometry, and building.
//!
//! A `Metainfo` that parsed is safe to lay out on disk: every file path is a list of plain
//! components (no `..`, `.`, separators, drive prefixes or empty names), no two files share
//! a path, no file sits where another needs a directory, and the piece hashes cover exactly
//! the total length.

use std::collections::HashSet;
use std::path::PathBuf;

use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::bencode::{self, BencodeError, Dict, Limits, Value};
use crate::geometry::Geometry;
use crate::types::{InfoHash, PieceIndex};

/// Largest .torrent accepted; real ones are kilobytes to a few megabytes.
pub const MAX_TORRENT_BYTES: usize = 64 * 1024 * 1024;
/// Most files one torrent may list.
pub const MAX_FILES: usize = 1_000_000;
/// Deepest directory nesting in a file path.
pub const MAX_PATH_DEPTH: usize = 64;
/// Largest piece accepted (libtorrent and Transmission refuse beyond similar sizes).
pub const MAX_PIECE_LENGTH: u32 = 256 * 1024 * 1024;
/// Most web seeds (BEP 19 `url-list` entries) kept from one torrent; the rest are ignored.
pub const MAX_WEB_SEEDS: usize = 32;
/// Longest web seed URL kept; longer entries are ignored.
pub const MAX_WEB_SEED_LEN: usize = 2048;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetainfoError {
    #[error("torrent file is {0} bytes; larger than the {MAX_TORRENT_BYTES}-byte limit")]
    TooLarge(usize),
    // Not `#[from]`: that would also make it the `source`, and error chains would print
    // the bencode detail twice.
    #[error("not valid bencode: {0}")]
    Bencode(BencodeError),
    #[error("torrent is not a dictionary")]
    NotADict,
    #[error("torrent has no `info` dictionary")]
    MissingInfo,
    #[error("`{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("piece length {0} is invalid (must be between 1 and {MAX_PIECE_LENGTH})")]
    PieceLength(i64),
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesLength(usize),
    #[error("{hashes} piece hashes do not match {total} bytes in pieces of {piece_length}")]
    PieceCount {
        hashes: usize,
        total: u64,
        piece_length: u32,
    },
    #[error("file length {0} is invalid")]
    FileLength(i64),
    #[error("torrent lists more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("torrent lists no files")]
    NoFiles,
    #[error("unsafe path component {0:?}: refusing to write outside the download directory")]
    UnsafePath(String),
    #[error("path {0:?} is listed twice")]
    DuplicatePath(String),
    #[error("path {0:?} is both a file and a directory")]
    FileDirCollision(String),
    #[error("total size overflows")]
    SizeOverflow,
}

/// A parsed, validated torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub info: Info,
    /// BEP 12 tiers: `announce-list` when present, else `[[announce]]`; may be empty.
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// BEP 19 web seeds (`url-list`): HTTP(S) URLs that serve the torrent's files. At most
    /// [`MAX_WEB_SEEDS`], each at most [`MAX_WEB_SEED_LEN`] bytes, duplicates and entries
    /// that are not `http://` or `https://` dropped; may be empty.
    pub web_seeds: Vec<String>,
    /// The info dictionary exactly as it was in the file: what the info hash covers, and
    /// what BEP 9 serves to magnet clients.
    pub info_bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub piece_length: u32,
    pub piece_hashes: Vec<[u8; 20]>,
    pub files: Vec<FileEntry>,
    pub total_length: u64,
    pub private: bool,
    pub multi_file: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Components relative to the output directory, starting with the torrent name.
    pub path: Vec<String>,
    pub length: u64,
    /// Byte offset of this file in the torrent's concatenated data.
    pub offset: u64,
}

impl FileEntry {
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }
}

/// One file's share of a byte range of the torrent's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlice {
    pub file_index: usize,
    pub file_offset: u64,
    pub len: u64,
}

impl From<BencodeError> for MetainfoError {
    fn from(e: BencodeError) -> Self {
        MetainfoError::Bencode(e)
    }
}

impl Metainfo {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        if bytes.len() > MAX_TORRENT_BYTES {
            return Err(MetainfoError::TooLarge(bytes.len()));
        }
        let root = bencode::decode_with(bytes, Limits::default())?;
        let root = root.as_dict().ok_or(MetainfoError::NotADict)?;
        let info_dict = root
            .get(b"info")
            .ok_or(MetainfoError::MissingInfo)?
            .as_dict()
            .ok_or(MetainfoError::Field("info"))?;
        // The info hash covers the raw bytes as they were sent, never a re-encoding.
        let info_hash = InfoHash(Sha1::digest(info_dict.raw()).into());
        let info = parse_info(info_dict)?;
        Ok(Self {
            info_hash,
            info,
            trackers: parse_trackers(root),
            comment: opt_string(root, b"comment"),
            created_by: opt_string(root, b"created by"),
            creation_date: root.get(b"creation date").and_then(Value::as_int),
            web_seeds: parse_web_seeds(root),
            info_bytes: info_dict.raw().to_vec(),
        })
    }
}

fn opt_string(dict: &Dict<'_>, key: &[u8]) -> Option<String> {
    dict.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Trackers are advisory: malformed entries are dropped rather than failing the torrent.
fn parse_trackers(root: &Dict<'_>) -> Vec<Vec<String>> {
    let tiers: Vec<Vec<String>> = root
        .get(b"announce-list")
        .and_then(Value::as_list)
        .map(|tiers| {
            tiers
                .iter()
                .filter_map(Value::as_list)
                .map(|tier| {
                    tier.iter()
                        .filter_map(Value::as_str)
                        .filter(|url| !url.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|tier| !tier.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !tiers.is_empty() {
        return tiers;
    }
    match root.get(b"announce").and_then(Value::as_str) {
        Some(url) if !url.is_empty() => vec![vec![url.to_owned()]],
        _ => Vec::new(),
    }
}

/// `url-list` is one URL or a list of them (BEP 19). Like trackers, web seeds are
/// advisory: anything unusable is skipped, never an error.
fn parse_web_seeds(root: &Dict<'_>) -> Vec<String> {
    let entries: Vec<&Value<'_>> = match root.get(b"url-list") {
        Some(Value::List(list)) => list.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    let mut seeds: Vec<String> = Vec::new();
    for url in entries.into_iter().filter_map(Value::as_str) {
        if seeds.len() == MAX_WEB_SEEDS {
            break;
        }
        if is_web_seed_url(url) && !seeds.iter().any(|s| s == url) {
            seeds.push(url.to_owned());
        }
    }
    seeds
}

/// True for an `http://` or `https://` URL with a host, no whitespace or control
/// characters, within [`MAX_WEB_SEED_LEN`]: what a web seed may be.
pub fn is_web_seed_url(url: &str) -> bool {
    if url.len() > MAX_WEB_SEED_LEN {
        return false;
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with(['/', '?', '#'])
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_info(info: &Dict<'_>) -> Result<Info, MetainfoError> {
    let name = info
        .get(b"name")
        .and_then(Value::as_str)
        .ok_or(MetainfoError::Field("name"))?;
    check_component(name)?;
    let raw_piece_length = info
        .get(b"piece length")
        .and_then(Value::as_int)
        .ok_or(MetainfoError::Field("piece length"))?;
    let piece_length = u32::try_from(raw_piece_length)
        .ok()
        .filter(|&l| l > 0 && l <= MAX_PIECE_LENGTH)
        .ok_or(MetainfoError::PieceLength(raw_piece_length))?;
    let pieces = info
        .get(b"pieces")
        .and_then(Value::as_bytes)
        .ok_or(MetainfoError::Field("pieces"))?;
    if !pieces.len().is_multiple_of(20) {
        return Err(MetainfoError::PiecesLength(pieces.len()));
    }
    let private = info.get(b"private").and_then(Value::as_int) == Some(1);

    let (files, multi_file) = match (info.get(b"length"), info.get(b"files")) {
        (Some(length), None) => {
            let length = file_length(length)?;
            let entry = FileEntry {
                path: vec![name.to_owned()],
                length,
                offset: 0,
            };
            (vec![entry], false)
        }
        (None, Some(list)) => (parse_files(name, list)?, true),
        _ => return Err(MetainfoError::Field("length or files")),
    };
    let total_length = files
        .last()
        .map(|f| f.offset + f.length)
        .unwrap_or_default();
    // Geometry::piece_count's formula, in u64: an absurd count must fail this check,
    // not wrap.
    let expected_pieces = total_length.div_ceil(u64::from(piece_length));
    let hashes = pieces.len() / 20;
    if hashes as u64 != expected_pieces || hashes > u32::MAX as usize {
        return Err(MetainfoError::PieceCount {
            hashes,
            total: total_length,
            piece_length,
        });
    }
    let piece_hashes = pieces
        .chunks_exact(20)
        .map(|c| <[u8; 20]>::try_from(c).expect("chunks_exact yields 20 bytes"))
        .collect();
    Ok(Info {
        name: name.to_owned(),
        piece_length,
        piece_hashes,
        files,
        total_length,
        private,
        multi_file,
    })
}

fn file_length(value: &Value<'_>) -> Result<u64, MetainfoError> {
    let raw = value.as_int().ok_or(MetainfoError::Field("length"))?;
    u64::try_from(raw).map_err(|_| MetainfoError::FileLength(raw))
}

fn parse_files(name: &str, list: &Value<'_>) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = list.as_list().ok_or(MetainfoError::Field("files"))?;
    if list.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    if list.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles);
    }
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for file in list {
        let length = file_length(file.get(b"length").ok_or(MetainfoError::Field("length"))?)?;
        let components = file
            .get(b"path")
            .and_then(Value::as_list)
            .ok_or(MetainfoError::Field("path"))?;
        if components.is_empty() || components.len() > MAX_PATH_DEPTH {
            return Err(MetainfoError::UnsafePath(String::new()));
        }
        let mut path = Vec::with_capacity(components.len() + 1);
        path.push(name.to_owned());
        for component in components {
            let component = component.as_str().ok_or(MetainfoError::Field("path"))?;
            check_component(component)?;
            path.push(component.to_owned());
        }
        files.push(FileEntry {
            path,
            length,
            offset,
        });
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::SizeOverflow)?;
    }
    check_layout(&files)?;
    Ok(files)
}

/// A path component that is safe to join onto a directory on any platform.
fn check_component(component: &str) -> Result<(), MetainfoError> {
    let unsafe_component = component.is_empty()
        || component == "."
        || component == ".."
        || component.contains(['/', '\\', '\0'])
        || (component.len() >= 2 && component.as_bytes()[1] == b':');
    if unsafe_component {
        Err(MetainfoError::UnsafePath(component.to_owned()))
    } else {
        Ok(())
    }
}

/// No duplicate files, and no file where another file needs a directory.
fn check_layout(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut file_paths = HashSet::with_capacity(files.len());
    for file in files {
        if !file_paths.insert(file.path.join("/")) {
            return Err(MetainfoError::DuplicatePath(file.path.join("/")));
        }
    }
    for file in files {
        for depth in 1..file.path.len() {
            let dir = file.path[..depth].join("/");
            if file_paths.contains(&dir) {
                return Err(MetainfoError::FileDirCollision(dir));
            }
        }
    }
    Ok(())
}

impl Info {
    pub fn piece_count(&self) -> u32 {
        self.piece_hashes.len() as u32
    }

    /// A validated index, or `None` when out of range.
    pub fn piece_index(&self, index: u32) -> Option<PieceIndex> {
        (index < self.piece_count()).then_some(PieceIndex(index))
    }

    /// Piece length and total length, for offsets and sizes ([`crate::geometry`]).
    pub fn geometry(&self) -> Geometry {
        Geometry {
            piece_length: self.piece_length,
            total_length: self.total_length,
        }
    }

    pub fn piece_offset(&self, piece: PieceIndex) -> u64 {
        self.geometry().piece_offset(piece.0)
    }

    /// Length of `piece`; only the last piece may be shorter than `piece_length`.
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        self.geometry().piece_size(piece.0)
    }

    pub fn piece_hash(&self, piece: PieceIndex) -> &[u8; 20] {
        &self.piece_hashes[piece.0 as usize]
    }

    /// The files covered by `len` bytes at `offset`, in order, zero-length files skipped.
    pub fn file_slices(&self, offset: u64, len: u64) -> Vec<FileSlice> {
        crate::geometry::spans(
            &self.files,
            |f| (f.offset, f.length),
            self.total_length,
            offset,
            len,
        )
        .map(|s| FileSlice {
            file_index: s.file,
            file_offset: s.file_offset,
            len: s.len,
        })
        .collect()
    }
}

/// Everything needed to write a new .torrent.
#[derive(Debug, Clone, Default)]
pub struct NewTorrent {
    pub name: String,
    pub piece_length: u32,
    pub piece_hashes: Vec<[u8; 20]>,
    /// Multi-file layout: paths under the torrent root (without the name) and lengths.
    pub files: Vec<(Vec<String>, u64)>,
    /// Single-file layout: the file's length. Exactly one of this and `files` is used.
    pub single_file_length: Option<u64>,
    pub trackers: Vec<Vec<String>>,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// BEP 19 web seeds, written as `url-list`: a string for one URL, a list for more
    /// (as mktorrent writes them).
    pub web_seeds: Vec<String>,
}

/// Encodes `t` as a .torrent (canonical bencode, keys sorted).
pub fn build_torrent(t: &NewTorrent) -> Vec<u8> {
    let pieces: Vec<u8> = t.piece_hashes.concat();
    let mut info = vec![
        (&b"name"[..], Value::Bytes(t.name.as_bytes())),
        (b"piece length", Value::Int(i64::from(t.piece_length))),
        (b"pieces", Value::Bytes(&pieces)),
    ];
    if t.private {
        info.push((b"private", Value::Int(1)));
    }
    match t.single_file_length {
        Some(length) => info.push((b"length", Value::Int(length as i64))),
        None => {
            let files = t
                .files
                .iter()
                .map(|(path, length)| {
                    Value::Dict(Dict::from_entries(vec![
                        (b"length", Value::Int(*length as i64)),
                        (
                            b"path",
                            Value::List(path.iter().map(|c| Value::Bytes(c.as_bytes())).collect()),
                        ),
                    ]))
                })
                .collect();
            info.push((b"files", Value::List(files)));
        }
    }
    let mut root = vec![(&b"info"[..], Value::Dict(Dict::from_entries(info)))];
    if let Some(first) = t.trackers.first().and_then(|tier| tier.first()) {
        root.push((b"announce", Value::Bytes(first.as_bytes())));
    }
    if t.trackers.iter().map(Vec::len).sum::<usize>() > 1 {
        let tiers = t
            .trackers
            .iter()
            .map(|tier| Value::List(tier.iter().map(|u| Value::Bytes(u.as_bytes())).collect()))
            .collect();
        root.push((b"announce-list", Value::List(tiers)));
    }
    if let Some(comment) = &t.comment {
        root.push((b"comment", Value::Bytes(comment.as_bytes())));
    }
    if let Some(created_by) = &t.created_by {
        root.push((b"created by", Value::Bytes(created_by.as_bytes())));
    }
    if let Some(date) = t.creation_date {
        root.push((b"creation date", Value::Int(date)));
    }
    match t.web_seeds.as_slice() {
        [] => {}
        [one] => root.push((b"url-list", Value::Bytes(one.as_bytes()))),
        many => root.push((
            b"url-list",
            Value::List(many.iter().map(|u| Value::Bytes(u.as_bytes())).collect()),
        )),
    }
    bencode::to_vec(&Value::Dict(Dict::from_entries(root)))
}

/// A piece length for `total` bytes, the rule `kpbt-client create` documents: the
/// smallest power of two from 16 KiB to 16 MiB that gives at most 2,000 pieces (about
/// 1,000-2,000, as mktorrent and libtorrent aim for), but at least 64 KiB above 16 MiB and
/// at least 256 KiB above 64 MiB: per-piece costs (a hash, a `have` to every peer, a
/// write) stay small, and pieces of 256 KiB or more are written around the page cache.
pub fn default_piece_length(total: u64) -> u32 {
    const MIB: u64 = 1024 * 1024;
    let floor: u32 = match total {
        t if t > 64 * MIB => 256 * 1024,
        t if t > 16 * MIB => 64 * 1024,
        _ => 16 * 1024,
    };
    let mut length = floor;
    while length < 16 * 1024 * 1024 && total / u64::from(length) > 2000 {
        length *= 2;
    }
    length
}

#[cfg(test)]
mod tests;
