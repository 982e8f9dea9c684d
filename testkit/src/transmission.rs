//! Guarded `transmission-cli` seeder/downloader confined to loopback, plaintext
//! preferred, with completion detected through a `-f` "torrent done" script.

use crate::process::ChildGuard;
use crate::{wait_for_tcp, DEFAULT_TIMEOUT};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running `transmission-cli` (killed on drop; logs printed if the test fails).
pub struct Transmission {
    guard: ChildGuard,
    port: u16,
    done_marker: PathBuf,
    _cfg: TempDir,
}

/// `settings.json` for the private config dir: no DHT/LPD/PEX/uTP/port mapping,
/// encryption "tolerated" (prefer plaintext), bound to loopback, no limits/queues.
pub fn settings_json(port: u16) -> String {
    format!(
        r#"{{
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "blocklist-enabled": false,
  "dht-enabled": false,
  "download-queue-enabled": false,
  "encryption": 0,
  "idle-seeding-limit-enabled": false,
  "lpd-enabled": false,
  "message-level": 3,
  "peer-port": {port},
  "peer-port-random-on-start": false,
  "pex-enabled": false,
  "port-forwarding-enabled": false,
  "ratio-limit-enabled": false,
  "rename-partial-files": false,
  "rpc-enabled": false,
  "seed-queue-enabled": false,
  "speed-limit-down-enabled": false,
  "speed-limit-up-enabled": false,
  "start-added-torrents": true,
  "utp-enabled": false
}}
"#
    )
}

impl Transmission {
    /// Seeds `torrent` from `data_dir`. Returns once transmission listens and has
    /// verified the data (it announces to the tracker right after).
    pub fn seed(torrent: &Path, data_dir: &Path, port: u16) -> io::Result<Self> {
        let mut t = Self::spawn("transmission-seed", torrent, data_dir, port)?;
        t.guard.wait_until("listening", DEFAULT_TIMEOUT, || {
            wait_for_tcp(("127.0.0.1", port), Duration::from_millis(1)).is_ok()
        })?;
        t.guard
            .wait_for_output("Verification is done", DEFAULT_TIMEOUT)?;
        Ok(t)
    }

    /// Downloads `torrent` into `out_dir`. transmission-cli keeps running (seeding)
    /// afterwards; use [`Transmission::wait_complete`] to wait for completion.
    /// Note: transmission expresses interest only on its 10 s pulse, so even tiny
    /// downloads take ≥10 s.
    pub fn download(torrent: &Path, out_dir: &Path, port: u16) -> io::Result<Self> {
        Self::spawn("transmission-download", torrent, out_dir, port)
    }

    /// Spawns `transmission-cli -g CFG -w DIR -p PORT -M -et -f DONE_SCRIPT TORRENT`.
    pub fn spawn(name: &str, torrent: &Path, dir: &Path, port: u16) -> io::Result<Self> {
        crate::require_binary("transmission-cli", "transmission-cli");
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let cfg = tempfile::Builder::new()
            .prefix("kpbt-transmission-")
            .tempdir()?;
        std::fs::write(cfg.path().join("settings.json"), settings_json(port))?;
        let done_marker = cfg.path().join("torrent-done");
        let script = cfg.path().join("on-done.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\n: > \"{}\"\n", done_marker.display()),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let mut cmd = Command::new(crate::program("transmission-cli"));
        cmd.arg("-g")
            .arg(cfg.path())
            .arg("-w")
            .arg(&dir)
            .args(["-p", &port.to_string(), "-M", "-et", "-D", "-U", "-B"])
            .arg("-f")
            .arg(&script)
            .arg(torrent);
        let guard = ChildGuard::spawn(name, cmd, cfg.path())?;
        Ok(Self {
            guard,
            port,
            done_marker,
            _cfg: cfg,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// True once transmission has run its "torrent done" script.
    pub fn is_complete(&self) -> bool {
        self.done_marker.exists()
    }

    /// Waits until the download completed (verified by transmission, files renamed).
    pub fn wait_complete(&mut self, timeout: Duration) -> io::Result<()> {
        let marker = self.done_marker.clone();
        self.guard
            .wait_until("download completion", timeout, || marker.exists())
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}
