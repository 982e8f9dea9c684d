//! Sans-IO BitTorrent protocol: the types and codecs shared by kpbt's tracker and client.
//!
//! Nothing here touches a socket or a file. Every decoder takes bytes that may be hostile
//! and returns a typed error instead of panicking; every size it allocates is bounded by
//! the input length or by an explicit limit.
//!
//! Layout:
//! - [`types`]: `InfoHash`, `PeerId`, `PieceIndex` newtypes.
//! - [`cli_text`]: one-line error chains and the colour rule, for both binaries.
//! - [`bencode`]: bounded bencode decoder (with raw spans, for the info hash) and encoder.
//! - [`magnet`]: magnet links (BEP 9) parsed from untrusted text and written for torrents.
//! - [`geometry`]: piece offsets and sizes, and the files a byte range covers (the one place).
//! - [`metainfo`]: .torrent parsing and validation (BEP 3, 12, 27) and torrent building.
//! - [`compact`]: compact peer lists (BEP 23, BEP 7).
//! - [`extension`]: extension-protocol payloads (BEP 10 handshake, BEP 9 ut_metadata, BEP 11 ut_pex).
//! - [`announce`]: tracker-side announce and scrape query parsing and reply encoding.
//! - [`tracker_reply`]: client-side decoding of announce and scrape replies.
//! - [`redact`]: passkeys and query values out of tracker URLs before they are logged.
//! - [`udp`]: UDP tracker datagrams (BEP 15, BEP 41) and stateless connection ids.
//! - [`wire`]: peer wire handshake and messages (BEP 3, with extension ids kept opaque).
//! - `fuzzing`: fuzz entry points with invariant checks, shared by `fuzz/` and corpus replay.

pub mod announce;
pub mod bencode;
pub mod cli_text;
pub mod compact;
pub mod extension;
#[doc(hidden)]
pub mod fuzzing;
pub mod geometry;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod redact;
pub mod tracker_reply;
pub mod types;
pub mod udp;
pub mod wire;

pub use types::{InfoHash, PeerId, PieceIndex};
