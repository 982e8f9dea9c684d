//! The interop tests' common setup: one random file, its torrent, and an opentracker that
//! allows it; then "wait for the seeder" and "compare what was downloaded".

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{assert_same_file, info_hash, mktorrent, write_random_file, OpenTracker};

/// `<dir>/seed/payload.bin` (random, `len` bytes), a torrent for it with 64 KiB pieces
/// announcing to a fresh opentracker, and that tracker with the torrent allowed.
pub struct SingleFileSwarm {
    pub torrent: PathBuf,
    pub info_hash: [u8; 20],
    pub tracker: OpenTracker,
    seed_dir: PathBuf,
}

impl SingleFileSwarm {
    /// Panics if any step fails (tests only).
    pub fn new(dir: &Path, len: u64, seed: u64) -> SingleFileSwarm {
        let seed_dir = dir.join("seed");
        let data = seed_dir.join("payload.bin");
        write_random_file(&data, len, seed).expect("write payload");
        // The announce URL needs the tracker's port and the whitelist needs the info
        // hash: start the tracker empty, then allow the torrent's hash (SIGHUP reload).
        let mut tracker = OpenTracker::start(&[]).expect("start opentracker");
        let torrent = mktorrent(&data, &tracker.announce_url(), 16, true);
        let info_hash = info_hash(&torrent);
        tracker.allow(&info_hash).expect("whitelist info hash");
        SingleFileSwarm {
            torrent,
            info_hash,
            tracker,
            seed_dir,
        }
    }

    /// The directory a seeder serves from (it holds `payload.bin`).
    pub fn seed_dir(&self) -> &Path {
        &self.seed_dir
    }

    /// Waits until the tracker counts a seeder for the torrent.
    pub fn wait_for_seeder(&self, timeout: Duration) {
        self.tracker
            .wait_for_seeders(&self.info_hash, 1, timeout)
            .expect("seeder announced");
    }

    /// Panics unless `out_dir/payload.bin` is byte-identical to the seeded file.
    pub fn assert_downloaded(&self, out_dir: &Path) {
        assert_same_file(
            &self.seed_dir.join("payload.bin"),
            &out_dir.join("payload.bin"),
        );
    }
}
