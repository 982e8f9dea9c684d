//! Guarded libtorrent (rasterbar, `python3-libtorrent`) seeder/downloader confined to
//! loopback: `scripts/lt_peer.py` run by a Python that can `import libtorrent`.

use crate::process::ChildGuard;
use crate::{wait_for_tcp, DEFAULT_TIMEOUT, SKIP_INTEROP_ENV};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;

/// The peer script (also usable on its own, e.g. by `scripts/bench-magnet.sh`).
pub const LT_PEER_SCRIPT: &str = include_str!("../scripts/lt_peer.py");

/// A Python 3 that can import the libtorrent bindings. Debian's package installs them
/// for `/usr/bin/python3`, which a pyenv/venv `python3` earlier on `PATH` would not
/// see, so that one is tried first.
pub fn libtorrent_python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            [PathBuf::from("/usr/bin/python3"), PathBuf::from("python3")]
                .into_iter()
                .find(|py| {
                    Command::new(py)
                        .args(["-c", "import libtorrent"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .clone()
}

/// [`crate::require_binary`] for the libtorrent Python bindings: `true` when
/// `python3 -c 'import libtorrent'` works; otherwise panics with an install hint, or
/// with `KPBT_SKIP_INTEROP=1` prints `SKIPPED` and returns `false`.
pub fn require_libtorrent() -> bool {
    if libtorrent_python().is_some() {
        return true;
    }
    let msg = format!(
        "python3 cannot `import libtorrent`: install it with `apt-get install \
         python3-libtorrent` (scripts/install-deps.sh) or set {SKIP_INTEROP_ENV}=1 to skip \
         interop tests"
    );
    if crate::skip_interop() {
        eprintln!("SKIPPED ({SKIP_INTEROP_ENV}=1): {msg}");
        false
    } else {
        panic!("{msg}");
    }
}

/// How a [`Libtorrent`] peer runs besides the torrent, directory and port.
#[derive(Debug, Clone, Default)]
pub struct LtOptions {
    /// Addresses to listen on (`127.0.0.1` when empty), e.g. `["127.0.0.1", "::1"]`.
    pub listen: Vec<String>,
    /// Peers to dial (`connect_peer`), so no tracker is needed.
    pub peers: Vec<SocketAddr>,
    /// Load the `ut_pex` plugin (off otherwise: the session is created without the
    /// default plugins, then `ut_metadata` and `smart_ban` are added back).
    pub pex: bool,
    /// A downloader keeps running (seeding) after `DONE` instead of exiting 0.
    pub keep_seeding: bool,
    /// Unchoke as usual, then this many seconds after the start choke every peer and
    /// unchoke none from then on (loopback peers are not exempt from the choker, as
    /// they are by default). Prints `CHOKING`.
    pub choke_after: Option<f64>,
}

/// A running libtorrent peer (killed on drop; its output is printed if the test fails).
pub struct Libtorrent {
    // Field order matters: the guard (which dumps logs) drops before the log dir.
    guard: ChildGuard,
    port: u16,
    exits_when_done: bool,
    _dir: TempDir,
}

impl Libtorrent {
    /// Seeds `torrent` from `data_dir`. Returns once libtorrent has checked the data,
    /// reports it is seeding and accepts connections on `port`.
    pub fn seed(torrent: &Path, data_dir: &Path, port: u16) -> io::Result<Self> {
        Self::seed_with(torrent, data_dir, port, &LtOptions::default())
    }

    pub fn seed_with(
        torrent: &Path,
        data_dir: &Path,
        port: u16,
        opts: &LtOptions,
    ) -> io::Result<Self> {
        let mut lt = Self::spawn(
            "libtorrent-seed",
            "seed",
            &["--torrent".into(), torrent.display().to_string()],
            data_dir,
            port,
            opts,
        )?;
        lt.guard.wait_for_output("SEEDING", DEFAULT_TIMEOUT)?;
        lt.wait_listening(DEFAULT_TIMEOUT)?;
        Ok(lt)
    }

    /// Downloads `source` (a `.torrent` path, or a `magnet:` link) into `out_dir`.
    /// Wait with [`Libtorrent::wait_complete`].
    pub fn download(source: &str, out_dir: &Path, port: u16, opts: &LtOptions) -> io::Result<Self> {
        let what = if source.starts_with("magnet:") {
            "--magnet"
        } else {
            "--torrent"
        };
        Self::spawn(
            "libtorrent-download",
            "download",
            &[what.into(), source.into()],
            out_dir,
            port,
            opts,
        )
    }

    fn spawn(
        name: &str,
        mode: &str,
        source: &[String],
        dir: &Path,
        port: u16,
        opts: &LtOptions,
    ) -> io::Result<Self> {
        let python = libtorrent_python().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no python3 can import libtorrent (apt-get install python3-libtorrent)",
            )
        })?;
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix("kpbt-libtorrent-")
            .tempdir()?;
        let script = tmp.path().join("lt_peer.py");
        std::fs::write(&script, LT_PEER_SCRIPT)?;
        let mut cmd = Command::new(python);
        // -u: unbuffered, so the log files follow the events as they happen.
        cmd.arg("-u")
            .arg(&script)
            .arg(mode)
            .args(source)
            .arg("--dir")
            .arg(dir)
            .args(["--port", &port.to_string()]);
        for l in &opts.listen {
            cmd.args(["--listen", l]);
        }
        for p in &opts.peers {
            cmd.args(["--peer", &p.to_string()]);
        }
        if opts.pex {
            cmd.arg("--pex");
        }
        if opts.keep_seeding {
            cmd.arg("--keep-seeding");
        }
        if let Some(secs) = opts.choke_after {
            cmd.args(["--choke-after", &secs.to_string()]);
        }
        let guard = ChildGuard::spawn(name, cmd, tmp.path())?;
        Ok(Self {
            guard,
            port,
            exits_when_done: mode == "download" && !opts.keep_seeding,
            _dir: tmp,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until libtorrent accepts TCP connections on its port (on 127.0.0.1, or
    /// on `::1` when it listens only there).
    pub fn wait_listening(&mut self, timeout: Duration) -> io::Result<()> {
        let port = self.port;
        self.guard.wait_for_output("LISTENING", timeout)?;
        self.guard.wait_until("listening", timeout, || {
            wait_for_tcp(("127.0.0.1", port), Duration::from_millis(1)).is_ok()
                || wait_for_tcp(("::1", port), Duration::from_millis(1)).is_ok()
        })
    }

    /// Waits for a magnet download's `METADATA` line (info dictionary verified).
    pub fn wait_metadata(&mut self, timeout: Duration) -> io::Result<()> {
        self.guard.wait_for_output("METADATA", timeout)
    }

    /// Waits for `DONE` (every piece passed its hash check); without `keep_seeding`
    /// also for the exit, which must be 0.
    pub fn wait_complete(&mut self, timeout: Duration) -> io::Result<()> {
        self.guard.wait_for_output("\nDONE ", timeout)?;
        if !self.exits_when_done {
            return Ok(());
        }
        let st = self.guard.wait_exit(Duration::from_secs(10))?;
        if st.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "libtorrent exited with {st} after DONE\n{}",
                self.guard.log_tails()
            )))
        }
    }

    /// The seconds after adding the torrent at which `event` (`METADATA`, `DONE`)
    /// was printed, once it was.
    pub fn event_secs(&self, event: &str) -> Option<f64> {
        let out = std::fs::read_to_string(self.guard.stdout_log()).ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix(event)?.strip_prefix(' ')?.parse().ok())
    }

    /// Everything printed on stdout so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.guard.stdout_log()).unwrap_or_default()
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}
