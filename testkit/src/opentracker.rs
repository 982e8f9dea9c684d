//! Guarded Debian `opentracker` on a free 127.0.0.1 port, with its access whitelist.

use crate::net::{free_port, http_get, wait_for_tcp};
use crate::process::ChildGuard;
use crate::torrent::url_encode_bytes;
use crate::DEFAULT_TIMEOUT;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const WHITELIST: &str = "whitelist.txt";

/// A running opentracker (TCP and UDP on the same 127.0.0.1 port), killed on drop.
///
/// Debian's build is whitelist-only: only the info hashes passed to
/// [`OpenTracker::start`] or [`OpenTracker::allow`] are tracked.
pub struct OpenTracker {
    guard: ChildGuard,
    port: u16,
    dir: TempDir,
}

/// A scrape result for one torrent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scrape {
    pub complete: u64,
    pub incomplete: u64,
    pub downloaded: u64,
}

impl OpenTracker {
    /// Starts opentracker allowing `info_hashes`, and waits until it accepts TCP.
    pub fn start(info_hashes: &[[u8; 20]]) -> io::Result<Self> {
        crate::require_binary("opentracker", "opentracker");
        let dir = tempfile::Builder::new()
            .prefix("kpbt-opentracker-")
            .tempdir()?;
        // As root opentracker chroots here and drops to `nobody`, who must read it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let mut wl = String::new();
        for h in info_hashes {
            wl.push_str(&hex::encode(h));
            wl.push('\n');
        }
        write_world_readable(&dir.path().join(WHITELIST), wl.as_bytes())?;
        let port = free_port();
        let mut cmd = Command::new(crate::program("opentracker"));
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        .args(["-A", "127.0.0.1", "-w", WHITELIST, "-d"])
        .arg(dir.path())
        .current_dir(dir.path());
        let mut guard = ChildGuard::spawn("opentracker", cmd, dir.path())?;
        guard.wait_until("TCP listener", DEFAULT_TIMEOUT, || {
            wait_for_tcp(("127.0.0.1", port), Duration::from_millis(1)).is_ok()
        })?;
        let mut t = Self { guard, port, dir };
        for h in info_hashes {
            t.wait_allowed(h, DEFAULT_TIMEOUT)?;
        }
        Ok(t)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT/announce`
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// `udp://127.0.0.1:PORT/announce` (BEP 15)
    pub fn udp_announce_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }

    /// Adds `info_hash` to the whitelist, reloads (SIGHUP) and waits until it's active.
    pub fn allow(&mut self, info_hash: &[u8; 20]) -> io::Result<()> {
        let path = self.dir.path().join(WHITELIST);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        writeln!(f, "{}", hex::encode(info_hash))?;
        drop(f);
        let st = Command::new("kill")
            .args(["-HUP", &self.guard.pid().to_string()])
            .status()?;
        if !st.success() {
            return Err(io::Error::other(format!("kill -HUP opentracker: {st}")));
        }
        self.wait_allowed(info_hash, DEFAULT_TIMEOUT)
    }

    /// True if the tracker accepts announces for `info_hash`. Probes with an
    /// announce of a fake leecher at 127.0.0.1:1 (the whitelist is only checked
    /// when a peer is added), then removes it again with `event=stopped`.
    pub fn is_allowed(&self, info_hash: &[u8; 20]) -> io::Result<bool> {
        let q = format!(
            "/announce?info_hash={}&peer_id=-KT0000-probeprobe00&port=1&uploaded=0&downloaded=0&left=1&compact=1&numwant=0",
            url_encode_bytes(info_hash)
        );
        let (status, body) = http_get(self.addr(), &q, Duration::from_secs(5))?;
        let allowed = status == 200 && !contains(&body, b"failure reason");
        if allowed {
            http_get(
                self.addr(),
                &format!("{q}&event=stopped"),
                Duration::from_secs(5),
            )?;
        }
        Ok(allowed)
    }

    fn wait_allowed(&mut self, info_hash: &[u8; 20], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.is_allowed(info_hash)? {
            if Instant::now() >= deadline || !self.guard.is_running() {
                return Err(io::Error::other(format!(
                    "opentracker never whitelisted {}\n{}",
                    hex::encode(info_hash),
                    self.guard.log_tails()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Scrapes one torrent. Unknown torrents scrape as all zeros.
    pub fn scrape(&self, info_hash: &[u8; 20]) -> io::Result<Scrape> {
        let q = format!("/scrape?info_hash={}", url_encode_bytes(info_hash));
        let (status, body) = http_get(self.addr(), &q, Duration::from_secs(5))?;
        if status != 200 {
            return Err(io::Error::other(format!(
                "scrape: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let int = |key: &[u8]| -> u64 {
            let mut pat = format!("{}:", key.len()).into_bytes();
            pat.extend_from_slice(key);
            pat.push(b'i');
            find(&body, &pat)
                .and_then(|i| {
                    let rest = &body[i + pat.len()..];
                    let end = rest.iter().position(|&c| c == b'e')?;
                    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
                })
                .unwrap_or(0)
        };
        Ok(Scrape {
            complete: int(b"complete"),
            incomplete: int(b"incomplete"),
            downloaded: int(b"downloaded"),
        })
    }

    /// Waits until at least `n` seeders (complete peers) of `info_hash` have announced.
    pub fn wait_for_seeders(
        &self,
        info_hash: &[u8; 20],
        n: u64,
        timeout: Duration,
    ) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.scrape(info_hash)?;
            if s.complete >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("opentracker: {s:?} after {timeout:?}, wanted {n} seeders"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}

fn write_world_readable(path: &std::path::Path, data: &[u8]) -> io::Result<()> {
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}
