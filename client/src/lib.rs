//! kpbt-client: a BitTorrent client library on tokio that downloads and seeds.
//!
//! Layout:
//! - [`session`]: many torrents in one process: queue, persistence in a state dir,
//!   pause/resume/recheck/remove (the `serve` host agent); `api`: its HTTP/JSON API.
//! - [`engine`]: one torrent's life (`start`, `download`, `TorrentHandle`, `Config`).
//! - `services`: what a session shares among torrents (peer id, HTTP client, limits).
//! - `listener`: the one peer listener, routing connections by info hash.
//! - `messages`: what peer tasks, the piece state and the torrent task tell each other.
//! - `shared`: a torrent's piece state, hashing/writing pipeline, smart ban.
//! - `torrent`: shared piece state, hashing/writing pipeline, smart ban, the torrent task.
//! - `peer`: one task per peer connection (wire protocol, download pipeline, uploads).
//! - `peer_ext`: the extension protocol on one connection (BEP 10 handshake, serving BEP 9 metadata).
//! - [`tracker`]: announce loop over HTTP(S) and UDP trackers, BEP 12 tiers, back-off.
//! - [`tracker_udp`]: the BEP 15 client (with BEP 41 URL data), used by [`tracker`].
//! - [`picker`]: rarest-first/endgame block picker (pure).
//! - [`choker`]: reciprocation-based unchoke decisions (pure).
//! - [`storage`]: files on disk, safe paths, positioned I/O, verification.
//! - [`fd_cache`]: the process-wide, bounded (LRU) cache of open file descriptors.
//! - [`direct_io`]: O_DIRECT writes of verified pieces (aligned buffers, fallbacks).
//! - [`seed_check`]: what `seed` finds in DIR (missing/short/corrupt files), never writing.
//! - [`resume`]: the resume file (durable have-bitfield) that lets restarts skip hashing.
//! - [`ratelimit`]: token bucket for `--upload-limit`/`--download-limit`.
//! - `metrics`: Prometheus metrics at `GET /metrics` (`Config::metrics_listen`).
//! - [`progress`]: terminal bar or plain progress lines.
//! - [`create`]: building .torrent files (parallel hashing).
//! - [`units`]: sizes and rates as typed on the command line (`20M`).
//! - [`rng`]: seeded xorshift for picks and choke rotation (deterministic in tests).
//! - [`webseed`]: web seeds (BEP 19) and `--origin` URLs: pieces over HTTP range requests.

pub mod api;
mod api_common;
mod api_files;
mod api_metrics;
pub mod choker;
pub mod create;
pub mod direct_io;
pub mod engine;
pub mod fd_cache;
mod http_error;
mod listener;
pub mod magnet_fetch;
mod messages;
mod metrics;
mod peer;
mod peer_ext;
pub mod picker;
pub mod progress;
pub mod ratelimit;
mod redial;
pub mod resume;
pub mod rng;
pub mod seed_check;
mod services;
pub mod session;
mod shared;
pub mod storage;
mod torrent;
pub mod tracker;
pub mod tracker_udp;
pub mod units;
pub mod webseed;

pub use engine::{download, start, ClientError, Config, Summary, TorrentHandle};
pub use progress::ProgressMode;
