//! kpbt-testkit owns the helpers that kpbt's tracker and client tests use to run
//! against real third-party BitTorrent software on loopback: free ports and TCP
//! readiness, deterministic payloads, `.torrent` creation via `mktorrent`, and
//! kill-on-drop guards for `aria2c`, `transmission-cli`, libtorrent (through its
//! Python bindings), `opentracker` and `nginx` (an HTTP origin for web seed tests).
//!
//! Everything here is synchronous (std only) so it works from plain `#[test]`s.
//! **From `#[tokio::test]`**: the waits (`wait_complete`, `wait_for_seeders`, …)
//! block the calling thread for seconds. On the default current-thread runtime
//! that freezes every task, including a kpbt client or tracker running in the same
//! runtime, so the test deadlocks until the timeout. Use
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` and/or wrap waits in
//! `tokio::task::spawn_blocking(move || dl.wait_complete(t).map(|_| dl))`.
//!
//! Typical flow (see `tests/interop.rs`):
//! ```no_run
//! use kpbt_testkit::*;
//! use std::time::Duration;
//! if !require_binaries(&[("opentracker", "opentracker"), ("aria2c", "aria2"),
//!                        ("mktorrent", "mktorrent")]) { return; }
//! let tmp = TempDir::new().expect("tempdir");
//! let data = tmp.path().join("seed/payload.bin");
//! write_random_file(&data, 3 << 20, 1).expect("payload");
//! let mut tracker = OpenTracker::start(&[]).expect("opentracker");
//! let torrent = mktorrent(&data, &tracker.announce_url(), 16, true);
//! let ih = info_hash(&torrent);
//! tracker.allow(&ih).expect("whitelist");
//! let _seed = Aria2::seed(&torrent, &tmp.path().join("seed"), free_port()).expect("seed");
//! tracker.wait_for_seeders(&ih, 1, Duration::from_secs(30)).expect("announced");
//! let mut dl = Aria2::download(&torrent, &tmp.path().join("dl"), free_port()).expect("dl");
//! dl.wait_complete(Duration::from_secs(45)).expect("complete");
//! assert_same_file(&data, &tmp.path().join("dl/payload.bin"));
//! ```
//!
//! Every process guard kills its child on drop and, if the test is panicking,
//! prints the tail of the child's stdout/stderr/log files (the harness shows it
//! under the failed test). Every wait takes a timeout; nothing waits forever.
//!
//! # Installing the tools
//! `scripts/install-deps.sh` installs them from Debian apt. Interop tests call
//! [`require_binary`] first; it panics with an install hint when a tool is missing,
//! unless `KPBT_SKIP_INTEROP=1`, in which case the test prints `SKIPPED` and returns.
//!
//! # Observed behaviour of the Debian bookworm tools (verified by `tests/`)
//! * **opentracker** (`0.0~git20210823`): built IPv4-only (`-i ::1` is not
//!   accepted) and with `WANT_ACCESSLIST_WHITE`: it answers *every* info hash that is
//!   not in its whitelist with `failure reason: Requested download is not authorized
//!   for use with this tracker.` [`OpenTracker`] therefore takes the info hashes to
//!   allow (and can add more later, reloading with `SIGHUP`). When started as root
//!   it chroots into `-d DIR` and drops to `nobody`, so the whitelist path is
//!   relative to that dir, which must be world-readable. Its announce interval is
//!   ~1800 s (randomised) and it returns the announcing peer itself in `peers`.
//!   Peers are keyed by ip:port, so several clients on 127.0.0.1 coexist.
//!   `/stats` needs `-A 127.0.0.1` (done here).
//! * **aria2c 1.36** announces with `compact=1`, `no_peer_id=1`, `numwant=50`,
//!   `key=…`, `supportcrypto=1`, `event=started|stopped|completed`, and sends **no**
//!   `ip=` parameter. Its `info_hash`/`peer_id` escaping leaves RFC 3986 unreserved
//!   bytes (`A-Za-z0-9-._~`) raw, so a tracker must percent-decode byte-wise. Its
//!   peer id looks like `A2-1-36-0-` + 10 random bytes.
//!   aria2 happily connects to peers on 127.0.0.1 (no same-IP filtering); it even
//!   dials its own address when the tracker returns it (opentracker does), then
//!   notices the duplicate peer id; harmless.
//!   When it **initiates** a connection it first tries an MSE/PE (encrypted)
//!   handshake even with `--bt-require-crypto=false`, and falls back to a plain
//!   handshake only after that fails; a peer without MSE (ours) sees ~96+ random
//!   bytes first and must drop the connection promptly: aria2 then reconnects with
//!   a plaintext handshake about 1 s later (pinned by a test in `tests/interop.rs`).
//!   `--seed-time` is in **minutes**; `--seed-ratio=0.0` means "ignore ratio".
//!   With `--seed-time=0` a downloader exits (code 0) when the download is complete
//!   and verified, after announcing `event=stopped`. A seeder opens its listen port
//!   only after `--check-integrity` has verified the data.
//!   aria2's seeder choke round runs every 10 s; the first unchoke of a newly
//!   interested peer can take up to ~10 s.
//! * **transmission-cli 3.00** has no flags for DHT/LPD/PEX/uTP: [`Transmission`]
//!   writes a `settings.json` into a private `-g` config dir that disables them and
//!   port mapping, sets `encryption: 0` ("tolerated" = prefer plaintext, same as
//!   `-et`) and binds to 127.0.0.1. It never exits by itself: completion is detected
//!   with a `-f` "torrent done" script that touches a marker file.
//!   **It never dials peers at 127.x** (libtransmission 3.00 treats loopback
//!   addresses from trackers as "martian"); it only *accepts* connections on
//!   loopback. So a transmission downloader needs a seeder that dials it: the seeder
//!   must announce after transmission did (aria2: `--bt-tracker-interval=1`, see
//!   [`Aria2::seed_with`]). The same holds for our client talking to transmission:
//!   kpbt must initiate the connection. It verifies existing data even in an empty
//!   download dir (harmless). It sends
//!   `interested` only on its 10 s peer-manager pulse, so a transmission download
//!   of even a tiny torrent takes ≥10 s. It logs to stderr (debug level), and
//!   writes a `\r`-updated progress line to stdout.
//!   Its announces look like `info_hash=%cd%27%fa~Y…&peer_id=-TR3000-xxxxxxxxxxxx&
//!   port=P&uploaded=0&downloaded=0&left=N&numwant=80&key=643caf26&compact=1&
//!   supportcrypto=1&event=started`: **lower-case** hex escapes, unreserved bytes
//!   raw, no `ip=`, no `no_peer_id`; `numwant=0` with `event=stopped`. It also
//!   scrapes `/scrape?info_hash=…` (derived from the announce URL) right away.
//!   aria2 (for comparison) uses upper-case escapes. Setting aria2's
//!   `--bt-external-ip` would add `ip=`; it is not needed on loopback and not set.
//! * **mktorrent 1.1**: `-d` (no date) makes output deterministic; `-p` sets
//!   `private=1`; `-w URL` (repeatable) writes `url-list`: a string for one URL, a list
//!   for several.
//! * **nginx 1.22** (Debian's `nginx`; `nginx-light` is a transitional package for it):
//!   answers `Range: bytes=a-b` with 206 and `Content-Range: bytes a-b/SIZE`, a range
//!   past the end with 416. Started as root, its workers run as `nobody` (who cannot
//!   read a test's temp dirs), and a SIGKILLed master leaves its workers running,
//!   listening; [`Nginx`] therefore runs it as one process (`master_process off`). It
//!   creates temp dirs under /var/lib/nginx unless told otherwise (it is told to use
//!   its own dir).
//! * **libtorrent 2.0.8** (`python3-libtorrent`, run by [`Libtorrent`] through
//!   `scripts/lt_peer.py`): Debian installs the bindings for `/usr/bin/python3` only
//!   (a pyenv `python3` first on `PATH` cannot import them; [`libtorrent_python`]
//!   picks the right one). `lt.session(settings, 0)` starts without the default
//!   plugins; the script adds back `ut_metadata` and `smart_ban`, and `ut_pex` only
//!   when asked. Loopback peers fall in its "local" peer class, which ignores unchoke
//!   slots: an interested loopback peer is unchoked at once (even a request from a
//!   not-interested peer counts as interest) and never choked by the choker, so a
//!   "reject while choked" test needs `choke_after` (everyone in the global class,
//!   then no unchoke slots). A request from a peer it never choked ends the
//!   connection ("too many piece requests while choked") instead of a reject.
//!   It sets the DHT bit in its handshake although DHT is off, sends the extension
//!   handshake, then have-all (seeding) and an unchoke. Its magnet parser takes
//!   `x.pe` raw: `127.0.0.1%3A6881` is no peer. It announces about 0.5 s after a
//!   torrent is added. Its PEX messages list the recipient itself. Several peers on
//!   127.0.0.1 need `allow_multiple_connections_per_ip`.
//! * **transmission-cli 3.00** with magnet peers: a tracker-less test cannot tell
//!   when it serves a torrent (after "Verification is done" it still resets
//!   connections for a moment, and it logs nothing more without a tracker), so such
//!   tests still give its torrent a tracker to wait on. It refuses a connection from
//!   an address while it still holds another from there (an open one, or one in its
//!   handshake), so a magnet client's data connection right after its metadata
//!   connection closed is dropped once.

mod aria2;
mod libtorrent;
mod net;
mod nginx;
mod opentracker;
mod payload;
mod process;
mod redis;
mod swarm;
mod torrent;
mod transmission;

use std::path::PathBuf;

pub use aria2::Aria2;
pub use libtorrent::{
    libtorrent_python, require_libtorrent, Libtorrent, LtOptions, LT_PEER_SCRIPT,
};
pub use net::{free_port, http_get, wait_for_tcp};
pub use nginx::Nginx;
pub use opentracker::{OpenTracker, Scrape};
pub use payload::{assert_same_file, make_multi_file_tree, random_bytes, write_random_file};
pub use process::ChildGuard;
pub use redis::{command as redis_command, require_redis, RedisServer, SKIP_REDIS_ENV};
pub use swarm::SingleFileSwarm;
pub use tempfile::{self, TempDir};
pub use torrent::{info_hash, mktorrent, url_encode_bytes};
pub use transmission::{settings_json as transmission_settings_json, Transmission};

/// Env var that turns interop tests into no-ops when the third-party tools are absent.
pub const SKIP_INTEROP_ENV: &str = "KPBT_SKIP_INTEROP";

/// Default time limit used by the wrappers for anything that waits.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// True when `KPBT_SKIP_INTEROP=1` is set.
pub fn skip_interop() -> bool {
    std::env::var(SKIP_INTEROP_ENV).is_ok_and(|v| v == "1")
}

/// Finds `name` on `PATH`, or in `/usr/sbin` / `/sbin` (where Debian puts some daemons).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The program to spawn for `name`: its full path if found, else the bare name
/// (so the spawn error names it).
pub(crate) fn program(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| PathBuf::from(name))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks that a third-party binary needed by an interop test is installed.
///
/// Returns `true` when it is. When it is missing: panics with an install hint, or, if
/// `KPBT_SKIP_INTEROP=1`, prints `SKIPPED (KPBT_SKIP_INTEROP=1): ...` to stderr and
/// returns `false` (the test should then return early).
///
/// ```no_run
/// if !kpbt_testkit::require_binary("aria2c", "aria2") { return; }
/// ```
pub fn require_binary(name: &str, apt_package: &str) -> bool {
    if find_binary(name).is_some() {
        return true;
    }
    let msg = format!(
        "{name} not found: install it with `apt-get install {apt_package}` \
         (scripts/install-deps.sh) or set {SKIP_INTEROP_ENV}=1 to skip interop tests"
    );
    if skip_interop() {
        eprintln!("SKIPPED ({SKIP_INTEROP_ENV}=1): {msg}");
        false
    } else {
        panic!("{msg}");
    }
}

/// [`require_binary`] for several `(binary, apt package)` pairs; all must be present.
pub fn require_binaries(pairs: &[(&str, &str)]) -> bool {
    pairs.iter().all(|(b, p)| require_binary(b, p))
}
