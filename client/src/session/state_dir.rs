//! The session's state dir on disk: `torrents/<info hash>/` holds each torrent's
//! `.torrent`, its `state.json` (target dir, paused flag, queue position) and its resume
//! file. Every write goes to a temp file that is synced and renamed into place, so a
//! crash leaves the old or the new version, never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kpbt_proto::InfoHash;
use serde::{Deserialize, Serialize};

/// What is kept about one torrent besides its .torrent and resume file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedState {
    /// The folder that holds the torrent's NAME.
    pub dir: PathBuf,
    pub paused: bool,
    /// Order of adding: the download queue runs oldest first.
    pub seq: u64,
    /// Unix seconds when the torrent was added.
    pub added: u64,
    /// Peers to dial besides the trackers' (given when the torrent was added).
    #[serde(default)]
    pub peers: Vec<std::net::SocketAddr>,
    /// Served read-only, never written (`seed` semantics).
    #[serde(default)]
    pub seed_only: bool,
    /// This torrent's own caps, bytes/s, on top of the host's.
    #[serde(default)]
    pub upload_limit: Option<u64>,
    #[serde(default)]
    pub download_limit: Option<u64>,
    /// Web seed/origin URLs given when the torrent was added (`add --origin`).
    #[serde(default)]
    pub origins: Vec<String>,
}

const TORRENT_FILE: &str = "torrent.torrent";
const STATE_FILE: &str = "state.json";
/// `torrents/.adding-<info hash>/`: an add being written (not an info hash, so older
/// versions skip it).
const STAGING_PREFIX: &str = ".adding-";

/// One torrent found in the state dir: its parts, or why they cannot be used.
pub struct Loaded {
    pub info_hash: InfoHash,
    pub torrent: Result<Vec<u8>, String>,
    pub state: Result<SavedState, String>,
}

pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the state dir.
    pub fn open(root: &Path) -> std::io::Result<StateDir> {
        fs::create_dir_all(root.join("torrents"))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn torrent_dir(&self, ih: InfoHash) -> PathBuf {
        self.root.join("torrents").join(ih.to_hex())
    }

    pub fn resume_path(&self, ih: InfoHash) -> PathBuf {
        self.torrent_dir(ih).join("resume")
    }

    pub fn torrent_path(&self, ih: InfoHash) -> PathBuf {
        self.torrent_dir(ih).join(TORRENT_FILE)
    }

    /// Records a newly added torrent. Both files are written into a staging folder that
    /// is renamed into place, so a crash leaves either the whole add or no trace of it
    /// (never a torrent dir without its state). Four fsyncs: the two files, the staging
    /// folder, and `torrents/` for the rename.
    /// The caller keeps no torrent of this hash (a failed add removes what it wrote).
    pub fn add(&self, ih: InfoHash, torrent: &[u8], state: &SavedState) -> std::io::Result<()> {
        let json = state_json(state)?;
        let staging = self.staging_dir(ih);
        let placed = self.torrent_dir(ih);
        // A leftover of an add that crashed half-way was never acknowledged: start over.
        remove_dir_if_present(&staging)?;
        fs::create_dir(&staging)?;
        let mut renamed = false;
        let written = (|| {
            write_synced(&staging.join(TORRENT_FILE), torrent)?;
            write_synced(&staging.join(STATE_FILE), &json)?;
            fs::File::open(&staging)?.sync_all()?;
            fs::rename(&staging, &placed)?;
            renamed = true;
            fs::File::open(self.root.join("torrents"))?.sync_all()
        })();
        if written.is_err() {
            // The add is refused, so nothing of it may load after a restart.
            let _ = fs::remove_dir_all(if renamed { &placed } else { &staging });
        }
        written
    }

    fn staging_dir(&self, ih: InfoHash) -> PathBuf {
        self.root
            .join("torrents")
            .join(format!("{STAGING_PREFIX}{}", ih.to_hex()))
    }

    pub fn save_state(&self, ih: InfoHash, state: &SavedState) -> std::io::Result<()> {
        write_atomic(&self.torrent_dir(ih).join(STATE_FILE), &state_json(state)?)
    }

    pub fn remove(&self, ih: InfoHash) -> std::io::Result<()> {
        remove_dir_if_present(&self.torrent_dir(ih))
    }

    /// Every torrent dir, each read as far as it can be; entries that are not info
    /// hashes are ignored (with a warning from the caller's log of `skipped`). Staging
    /// folders of adds that never finished are deleted.
    pub fn load_all(&self) -> std::io::Result<(Vec<Loaded>, Vec<PathBuf>)> {
        let mut found = Vec::new();
        let mut skipped = Vec::new();
        for entry in fs::read_dir(self.root.join("torrents"))? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(STAGING_PREFIX)) {
                // One leftover that cannot be deleted must not keep the rest from loading.
                if InfoHash::from_hex(rest).is_some()
                    && remove_dir_if_present(&entry.path()).is_ok()
                {
                    continue;
                }
            }
            let Some(ih) = name.to_str().and_then(InfoHash::from_hex) else {
                skipped.push(entry.path());
                continue;
            };
            let dir = entry.path();
            let torrent = fs::read(dir.join(TORRENT_FILE))
                .map_err(|e| format!("cannot read {}: {e}", dir.join(TORRENT_FILE).display()));
            let state_path = dir.join(STATE_FILE);
            let state = fs::read(&state_path)
                .map_err(|e| format!("cannot read {}: {e}", state_path.display()))
                .and_then(|b| {
                    serde_json::from_slice::<SavedState>(&b)
                        .map_err(|e| format!("{} is corrupt: {e}", state_path.display()))
                });
            found.push(Loaded {
                info_hash: ih,
                torrent,
                state,
            });
        }
        Ok((found, skipped))
    }
}

/// Writes `bytes` to `path` through a synced temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        // The rename itself must survive a crash too.
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn state_json(state: &SavedState) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(state).map_err(std::io::Error::other)
}

/// Creates (or truncates) `path` with `bytes`, synced to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn remove_dir_if_present(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with every field set away from its default, so a lost field shows.
    fn saved() -> SavedState {
        SavedState {
            dir: "/data".into(),
            paused: true,
            seq: 7,
            added: 1,
            peers: vec!["127.0.0.1:6881".parse().unwrap()],
            seed_only: true,
            upload_limit: Some(1),
            download_limit: None,
            origins: vec!["http://origin/files/".into()],
        }
    }

    #[test]
    fn saved_torrents_load_back_and_damage_is_reported_per_torrent() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path()).unwrap();
        let a = InfoHash::from_hex(&"aa".repeat(20)).unwrap();
        let b = InfoHash::from_hex(&"bb".repeat(20)).unwrap();
        let st = saved();
        sd.add(a, b"d4:infod...e", &st).unwrap();
        sd.add(b, b"x", &st).unwrap();
        fs::write(sd.torrent_dir(b).join("state.json"), b"{not json").unwrap();
        fs::create_dir_all(tmp.path().join("torrents/not-a-hash")).unwrap();
        let (mut loaded, skipped) = sd.load_all().unwrap();
        loaded.sort_by_key(|l| l.info_hash.to_hex());
        assert_eq!(skipped.len(), 1);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].torrent.as_deref().unwrap(), b"d4:infod...e");
        assert_eq!(loaded[0].state.as_ref().unwrap(), &st);
        let err = loaded[1].state.as_ref().unwrap_err();
        assert!(err.contains("state.json is corrupt"), "{err}");
        sd.remove(a).unwrap();
        sd.remove(a).unwrap();
        assert!(!sd.torrent_dir(a).exists());
    }

    #[test]
    fn an_add_that_crashed_half_way_leaves_no_torrent_and_is_cleaned_up() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::open(tmp.path()).unwrap();
        let a = InfoHash::from_hex(&"aa".repeat(20)).unwrap();
        let b = InfoHash::from_hex(&"bb".repeat(20)).unwrap();
        let st = saved();
        // What a crash between the two file writes leaves: a staging folder, half done.
        for ih in [a, b] {
            fs::create_dir(sd.staging_dir(ih)).unwrap();
            fs::write(sd.staging_dir(ih).join(TORRENT_FILE), b"d4:inf").unwrap();
        }
        // Adding the same torrent again starts over and lands whole.
        sd.add(a, b"d4:infod...e", &st).unwrap();
        assert!(!sd.staging_dir(a).exists());
        assert_eq!(fs::read(sd.torrent_path(a)).unwrap(), b"d4:infod...e");
        // Loading drops the other leftover instead of reporting a damaged torrent.
        let (loaded, skipped) = sd.load_all().unwrap();
        assert_eq!(loaded.len(), 1, "only the finished add loads");
        assert_eq!(loaded[0].info_hash, a);
        assert_eq!(loaded[0].state.as_ref().unwrap(), &st);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(!sd.staging_dir(b).exists());
        assert!(!sd.torrent_dir(b).exists());
    }

    #[test]
    fn state_written_before_origins_existed_still_loads() {
        let old = r#"{"dir":"/d","paused":false,"seq":1,"added":2,"peers":[],"seed_only":false}"#;
        let st: SavedState = serde_json::from_str(old).unwrap();
        assert!(st.origins.is_empty());
    }
}
