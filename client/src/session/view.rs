//! What the session API shows of a torrent: the JSON shapes of `GET /torrents` and
//! `GET /torrents/{info_hash}`, and the session-wide totals, read from the entries.

use std::sync::atomic::Ordering;

use kpbt_proto::InfoHash;
use serde::Serialize;

use super::entry::{Entry, Run};

/// One of `checking`, `queued`, `downloading`, `seeding`, `paused`, `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    Checking,
    Queued,
    Downloading,
    Seeding,
    Paused,
    Error,
}

impl std::fmt::Display for TorrentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            TorrentState::Checking => "checking",
            TorrentState::Queued => "queued",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Paused => "paused",
            TorrentState::Error => "error",
        };
        f.write_str(s)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TorrentView {
    pub info_hash: String,
    pub name: String,
    pub state: TorrentState,
    /// Share of the data verified, 0..1.
    pub progress: f64,
    pub size: u64,
    /// Verified bytes downloaded / bytes uploaded since the torrent last started.
    pub downloaded: u64,
    pub uploaded: u64,
    /// The part of `downloaded` from peers / from web seeds and origins.
    pub peer_bytes: u64,
    pub origin_bytes: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: usize,
    pub dir: String,
    pub error: Option<String>,
    /// The torrent's own caps, bytes/s (null: only the host's apply).
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileView {
    pub index: usize,
    /// Relative to `dir` (starts with the torrent's name).
    pub path: String,
    pub size: u64,
    pub progress: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerView {
    pub address: String,
    /// The peer id's printable client prefix (e.g. `-qB4650-`).
    pub client: String,
    /// Payload bytes this connection moved each way.
    pub downloaded: u64,
    pub uploaded: u64,
    pub am_choking: bool,
    pub peer_choking: bool,
    pub am_interested: bool,
    pub peer_interested: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TorrentDetail {
    #[serde(flatten)]
    pub summary: TorrentView,
    pub pieces: u32,
    pub pieces_have: u32,
    pub piece_length: u32,
    pub files: Vec<FileView>,
    pub peer_list: Vec<PeerView>,
    /// The torrent's web seeds and origins: URL (redacted), state, bytes, errors.
    pub web_seeds: Vec<crate::webseed::WebSeedView>,
}

/// Session-wide figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub torrents: usize,
    /// (state, count) for every state, zeros included.
    pub by_state: Vec<(TorrentState, usize)>,
    pub peers: usize,
    pub downloaded: u64,
    pub uploaded: u64,
}

pub(super) fn state_of(e: &Entry) -> TorrentState {
    match &e.run {
        Run::Error(_) => TorrentState::Error,
        Run::Running(h) if h.shared.failure().is_some() => TorrentState::Error,
        _ if e.saved.paused => TorrentState::Paused,
        Run::Idle | Run::Checking => TorrentState::Checking,
        Run::Queued(_) => TorrentState::Queued,
        Run::Running(h) if h.is_complete() => TorrentState::Seeding,
        Run::Running(_) => TorrentState::Downloading,
    }
}

pub(super) fn summary(ih: InfoHash, e: &Entry) -> TorrentView {
    let (name, size) = e.meta.as_ref().map_or((String::new(), 0), |m| {
        (m.info.name.clone(), m.info.total_length)
    });
    let (progress, downloaded, uploaded, peers) = match &e.run {
        Run::Running(h) => {
            let s = &h.shared;
            let verified = s.verified_bytes.load(Ordering::Relaxed);
            (
                fraction(verified, size),
                s.downloaded.load(Ordering::Relaxed),
                s.uploaded.load(Ordering::Relaxed),
                s.peer_count.load(Ordering::Relaxed),
            )
        }
        Run::Queued(p) => (
            f64::from(p.verified_count()) / f64::from(p.piece_count().max(1)),
            0,
            0,
            0,
        ),
        _ => (0.0, 0, 0, 0),
    };
    let (peer_bytes, origin_bytes) = match &e.run {
        Run::Running(h) => h.bytes_by_source(),
        _ => (0, 0),
    };
    TorrentView {
        info_hash: ih.to_hex(),
        name,
        state: state_of(e),
        progress,
        size,
        downloaded,
        uploaded,
        peer_bytes,
        origin_bytes,
        download_rate: e.rates.0,
        upload_rate: e.rates.1,
        peers,
        dir: e.saved.dir.display().to_string(),
        upload_limit: e.saved.upload_limit,
        download_limit: e.saved.download_limit,
        error: match &e.run {
            Run::Error(r) => Some(r.clone()),
            Run::Running(h) => h.shared.failure(),
            _ => None,
        },
    }
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

pub(super) fn detail(ih: InfoHash, e: &Entry) -> TorrentDetail {
    let summary = summary(ih, e);
    let Some(meta) = &e.meta else {
        return TorrentDetail {
            summary,
            pieces: 0,
            pieces_have: 0,
            piece_length: 0,
            files: Vec::new(),
            peer_list: Vec::new(),
            web_seeds: Vec::new(),
        };
    };
    let info = &meta.info;
    let (have, peer_list) = match &e.run {
        Run::Running(h) => {
            let st = h.shared.lock();
            let peers = st
                .peers
                .values()
                .map(|p| {
                    let (am_choking, peer_choking, am_interested) = p.stats.flags();
                    PeerView {
                        address: p.addr.to_string(),
                        client: client_prefix(p.peer_id.as_bytes()),
                        downloaded: p.stats.downloaded.load(Ordering::Relaxed),
                        uploaded: p.stats.uploaded.load(Ordering::Relaxed),
                        am_choking,
                        peer_choking,
                        am_interested,
                        peer_interested: p.stats.peer_interested(),
                    }
                })
                .collect();
            let have: Vec<bool> = (0..info.piece_count()).map(|i| st.picker.have(i)).collect();
            (have, peers)
        }
        _ => (vec![false; info.piece_count() as usize], Vec::new()),
    };
    let plen = u64::from(info.piece_length.max(1));
    let files = info
        .files
        .iter()
        .enumerate()
        .map(|(index, f)| {
            // Verified bytes of this file: the overlap of each verified piece with it.
            let mut done = 0u64;
            if f.length > 0 {
                let first = f.offset / plen;
                let last = (f.offset + f.length - 1) / plen;
                for p in first..=last {
                    if have.get(p as usize).copied().unwrap_or(false) {
                        let start = (p * plen).max(f.offset);
                        let end = ((p + 1) * plen).min(f.offset + f.length);
                        done += end - start;
                    }
                }
            }
            FileView {
                index,
                path: f.path.join("/"),
                size: f.length,
                progress: fraction(done, f.length),
            }
        })
        .collect();
    TorrentDetail {
        summary,
        pieces: info.piece_count(),
        pieces_have: have.iter().filter(|h| **h).count() as u32,
        piece_length: info.piece_length,
        files,
        peer_list,
        web_seeds: match &e.run {
            Run::Running(h) => h.web_seeds(),
            _ => Vec::new(),
        },
    }
}

/// The printable start of a peer id: Azureus-style ids carry the client there.
fn client_prefix(id: &[u8; 20]) -> String {
    id.iter()
        .take(8)
        .take_while(|b| b.is_ascii_graphic())
        .map(|b| *b as char)
        .collect()
}

pub(super) fn totals<'a>(entries: impl Iterator<Item = &'a Entry>) -> Totals {
    use TorrentState::*;
    let mut t = Totals {
        by_state: [Checking, Queued, Downloading, Seeding, Paused, Error]
            .into_iter()
            .map(|s| (s, 0))
            .collect(),
        ..Totals::default()
    };
    for e in entries {
        t.torrents += 1;
        let s = state_of(e);
        if let Some(slot) = t.by_state.iter_mut().find(|(st, _)| *st == s) {
            slot.1 += 1;
        }
        if let Run::Running(h) = &e.run {
            t.peers += h.shared.peer_count.load(Ordering::Relaxed);
            let (d, u) = h.counters();
            t.downloaded += d;
            t.uploaded += u;
        }
    }
    t
}

/// One running torrent's figures for the per-torrent metric series.
#[derive(Clone, Debug)]
pub struct TorrentSample {
    pub name: String,
    pub info_hash: String,
    pub downloaded: u64,
    pub uploaded: u64,
    pub peer_bytes: u64,
    pub origin_bytes: u64,
    pub peers: usize,
    pub pieces: u32,
    pub pieces_have: u32,
    pub pieces_verified: u64,
    pub hash_failures: u64,
    pub peers_banned: u64,
}

pub(super) fn sample(ih: InfoHash, e: &Entry) -> Option<TorrentSample> {
    let Run::Running(h) = &e.run else { return None };
    let s = &h.shared;
    let (have, banned) = {
        let st = s.lock();
        (st.picker.have_count(), st.banned.len() as u64)
    };
    Some(TorrentSample {
        name: e
            .meta
            .as_ref()
            .map(|m| m.info.name.clone())
            .unwrap_or_default(),
        info_hash: ih.to_hex(),
        downloaded: s.downloaded.load(Ordering::Relaxed),
        uploaded: s.uploaded.load(Ordering::Relaxed),
        peer_bytes: s.peer_bytes.load(Ordering::Relaxed),
        origin_bytes: s.origin_bytes.load(Ordering::Relaxed),
        peers: s.peer_count.load(Ordering::Relaxed),
        pieces: s.piece_count,
        pieces_have: have,
        pieces_verified: s.pieces_verified.load(Ordering::Relaxed),
        hash_failures: s.hash_failures.load(Ordering::Relaxed),
        peers_banned: banned,
    })
}
