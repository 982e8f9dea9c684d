//! The `create` and `demo` commands: make a .torrent (with a hashing progress bar), or a
//! deterministic demo payload plus its .torrent for the compose swarm.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kpbt_client::create::{self, CreateOptions};
use kpbt_client::rng::XorShift64;

/// Builds the torrent for `options`, writes it to `out` atomically, returns its info hash.
pub fn create_torrent(options: CreateOptions, out: &Path, quiet: bool) -> Result<String> {
    let source = options.path.clone();
    let plan = create::plan(options)
        .with_context(|| format!("cannot create a torrent from {}", source.display()))?;
    let total = plan.total_length();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hashed = AtomicU64::new(0);
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("hashing [{bar:30.cyan/blue}] {percent:>3}% {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let (bytes, info_hash) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| create::build(&plan, threads, &hashed));
        while !worker.is_finished() {
            if let Some(bar) = &bar {
                bar.set_position(hashed.load(Ordering::Relaxed));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        worker.join().expect("hashing thread panicked")
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    write_atomically(out, &bytes)?;
    if !quiet {
        eprintln!(
            "created {} ({} files, {} bytes, {} KiB pieces), info hash {info_hash}",
            out.display(),
            plan.file_count(),
            total,
            plan.piece_length() / 1024
        );
    }
    Ok(info_hash.to_hex())
}

/// Writes via a temporary file and rename, so a crash never leaves a truncated torrent.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Writes `DIR/demo/` (a few files of pseudo-random bytes, `size` in total) and
/// `DIR/demo.torrent`. Deterministic, so every run of the demo swarm shares the same data.
/// Does nothing if the torrent already exists, so a restarted container keeps its data.
pub fn demo(dir: &Path, size: u64, trackers: Vec<Vec<String>>) -> Result<()> {
    let torrent = dir.join("demo.torrent");
    if torrent.exists() {
        eprintln!(
            "{} exists; keeping the existing demo payload",
            torrent.display()
        );
        return Ok(());
    }
    let root = dir.join("demo");
    if root.exists() {
        bail!(
            "{} exists without demo.torrent; remove it to regenerate the demo payload",
            root.display()
        );
    }
    let files: [(PathBuf, u64); 3] = [
        (root.join("release/app.bin"), size / 2),
        (root.join("release/assets.pak"), size - size / 2 - size / 8),
        (root.join("dataset/sample.dat"), size / 8),
    ];
    let mut rng = XorShift64::new(0x9e37_79b9_7f4a_7c15);
    for (path, len) in &files {
        std::fs::create_dir_all(path.parent().expect("demo files have a parent"))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        let mut left = *len;
        while left > 0 {
            // Deterministic and incompressible enough for a transfer demo.
            let word = rng.next_u64().to_le_bytes();
            let take = left.min(8) as usize;
            out.write_all(&word[..take])?;
            left -= take as u64;
        }
        out.flush()?;
    }
    let options = CreateOptions {
        path: root,
        trackers,
        piece_length: None,
        private: true,
        comment: Some("kpbt demo payload".into()),
        web_seeds: Vec::new(),
    };
    create_torrent(options, &torrent, false)?;
    Ok(())
}
