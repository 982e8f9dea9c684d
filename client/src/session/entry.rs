//! One torrent as the session holds it: its metadata, saved state and what it is doing.

use std::sync::Arc;

use kpbt_proto::metainfo::Metainfo;

use super::state_dir::SavedState;
use crate::engine::{Prepared, TorrentHandle};

/// What one torrent is doing.
pub(super) enum Run {
    /// Paused (or between a stop and the next check).
    Idle,
    /// Data being opened and hashed by the check task of this generation.
    Checking,
    /// Checked and waiting for a download slot.
    Queued(Box<Prepared>),
    Running(TorrentHandle),
    Error(String),
}

pub(super) struct Entry {
    /// None when the state dir's .torrent for it could not be read.
    pub(super) meta: Option<Arc<Metainfo>>,
    pub(super) saved: SavedState,
    pub(super) run: Run,
    /// Bumped whenever the torrent is stopped or restarted, so a check that finishes
    /// after its torrent was paused or removed is thrown away.
    pub(super) generation: u64,
    /// Bytes/s over the last sample, and the counters then.
    pub(super) rates: (u64, u64),
    pub(super) last_counts: (u64, u64),
}
