//! Deterministic test payloads (independent of any RNG crate's version).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// SplitMix64: tiny, fast, and stable forever, so payloads never change between runs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes determined only by `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    SplitMix64(seed).fill(&mut v);
    v
}

/// Writes `len` pseudo-random bytes determined by `seed` to `path` (parents created).
/// The content equals [`random_bytes`]`(len, seed)`.
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut rng = SplitMix64(seed);
    let mut f = io::BufWriter::new(fs::File::create(path)?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// Creates a multi-file tree under `dir` and returns its files (relative paths) with
/// sizes, sorted. Sizes are deliberately odd so files straddle piece boundaries, and
/// one file is smaller than a block. Total is ~1.3 MiB.
///
/// No zero-length file is included: mktorrent/aria2/transmission handle them, but
/// they exercise nothing on the wire and some tools skip creating them; add one
/// yourself with `File::create` if a test needs it.
pub fn make_multi_file_tree(dir: &Path, seed: u64) -> io::Result<Vec<(PathBuf, u64)>> {
    let files: [(&str, u64); 6] = [
        ("a.bin", 100_003),
        ("sub/b.bin", 262_145),
        ("sub/deeper/c.bin", 1),
        ("sub/deeper/d.txt", 16_383),
        ("e.bin", 524_287),
        ("z/last.bin", 400_009),
    ];
    let mut out = Vec::new();
    for (i, (rel, len)) in files.iter().enumerate() {
        write_random_file(&dir.join(rel), *len, seed.wrapping_add(i as u64))?;
        out.push((PathBuf::from(rel), *len));
    }
    out.sort();
    Ok(out)
}

/// Panics with the first differing offset unless files `a` and `b` are identical.
pub fn assert_same_file(a: &Path, b: &Path) {
    let read = |p: &Path| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    let (x, y) = (read(a), read(b));
    if x != y {
        let at = x
            .iter()
            .zip(&y)
            .position(|(p, q)| p != q)
            .unwrap_or(x.len().min(y.len()));
        panic!(
            "{} ({} bytes) and {} ({} bytes) differ, first at byte {at}",
            a.display(),
            x.len(),
            b.display(),
            y.len()
        );
    }
}
