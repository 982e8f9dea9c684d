//! Guarded `aria2c` BitTorrent seeder/downloader confined to loopback.

use crate::process::ChildGuard;
use crate::{wait_for_tcp, DEFAULT_TIMEOUT};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running `aria2c` (killed on drop; its logs are printed if the test fails).
pub struct Aria2 {
    // Field order matters: the guard (which dumps logs) drops before the log dir.
    guard: ChildGuard,
    listen_port: u16,
    _log_dir: TempDir,
}

impl Aria2 {
    /// Flags used for every aria2 run: no DHT/LPD/PEX/IPv6, no config file, verify
    /// data, plaintext allowed, short tracker timeouts, quiet console, info log file.
    pub fn base_args(dir: &Path, listen_port: u16, log_file: &Path) -> Vec<String> {
        [
            "--no-conf=true",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--bt-require-crypto=false",
            "--check-integrity=true",
            "--bt-seed-unverified=false",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=notice",
            "--log-level=info",
            "--bt-tracker-connect-timeout=5",
            "--bt-tracker-timeout=10",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            format!("--listen-port={listen_port}"),
            format!("--dir={}", dir.display()),
            format!("--log={}", log_file.display()),
        ])
        .collect()
    }

    /// Seeds `torrent` from the data in `data_dir` (which holds the torrent's file or
    /// top directory). Returns once aria2 has verified the data and listens on
    /// `listen_port`; it then announces to the tracker within ~1 s.
    pub fn seed(torrent: &Path, data_dir: &Path, listen_port: u16) -> io::Result<Self> {
        Self::seed_with(torrent, data_dir, listen_port, &[])
    }

    /// [`Aria2::seed`] with extra aria2 flags. E.g. `--bt-tracker-interval=1` makes
    /// the seeder re-announce every second so it learns (and connects to) peers
    /// that cannot connect to it themselves, such as transmission on loopback.
    pub fn seed_with(
        torrent: &Path,
        data_dir: &Path,
        listen_port: u16,
        extra: &[&str],
    ) -> io::Result<Self> {
        // --seed-time is in minutes; ratio 0.0 = ignore ratio.
        let mut args = vec!["--seed-ratio=0.0", "--seed-time=600"];
        args.extend_from_slice(extra);
        let mut a = Self::spawn("aria2-seed", torrent, data_dir, listen_port, &args)?;
        a.wait_listening(DEFAULT_TIMEOUT)?;
        Ok(a)
    }

    /// Downloads `torrent` into `out_dir`; aria2 exits 0 once the data is complete
    /// and verified (`--seed-time=0`). Wait for that with [`Aria2::wait_complete`].
    pub fn download(torrent: &Path, out_dir: &Path, listen_port: u16) -> io::Result<Self> {
        Self::download_with(torrent, out_dir, listen_port, &[])
    }

    /// [`Aria2::download`] with extra aria2 flags, e.g. `--bt-tracker-interval=1`
    /// when the seeder may announce after this downloader (opentracker's interval
    /// is ~30 min, so otherwise aria2 would not hear of it in time).
    pub fn download_with(
        torrent: &Path,
        out_dir: &Path,
        listen_port: u16,
        extra: &[&str],
    ) -> io::Result<Self> {
        let mut args = vec!["--seed-time=0"];
        args.extend_from_slice(extra);
        Self::spawn("aria2-download", torrent, out_dir, listen_port, &args)
    }

    /// Spawns aria2 with [`Aria2::base_args`] plus `extra` args (later flags win).
    pub fn spawn(
        name: &str,
        torrent: &Path,
        dir: &Path,
        listen_port: u16,
        extra: &[&str],
    ) -> io::Result<Self> {
        crate::require_binary("aria2c", "aria2");
        std::fs::create_dir_all(dir)?;
        let log_dir = tempfile::Builder::new().prefix("kpbt-aria2-").tempdir()?;
        let log_file = log_dir.path().join(format!("{name}.aria2.log"));
        let mut cmd = Command::new(crate::program("aria2c"));
        cmd.args(Self::base_args(dir, listen_port, &log_file))
            .args(extra)
            .arg(torrent);
        let mut guard = ChildGuard::spawn(name, cmd, log_dir.path())?;
        guard.add_log(log_file);
        Ok(Self {
            guard,
            listen_port,
            _log_dir: log_dir,
        })
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Waits until aria2 accepts peer connections (it listens only after verifying).
    pub fn wait_listening(&mut self, timeout: Duration) -> io::Result<()> {
        let port = self.listen_port;
        self.guard.wait_until("listening", timeout, || {
            wait_for_tcp(("127.0.0.1", port), Duration::from_millis(1)).is_ok()
        })
    }

    /// Waits for a downloader to exit, and checks it exited 0 (download complete).
    pub fn wait_complete(&mut self, timeout: Duration) -> io::Result<()> {
        let st = self.guard.wait_exit(timeout)?;
        if st.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "aria2c exited with {st}\n{}",
                self.guard.log_tails()
            )))
        }
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}
