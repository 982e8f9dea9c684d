//! Guarded Debian `redis-server` on a free 127.0.0.1 port, no persistence, waited for
//! with PING; and the raw RESP helpers the tests use to poke it.

use crate::net::free_port;
use crate::process::ChildGuard;
use crate::DEFAULT_TIMEOUT;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Env var that turns Redis-backed tests into no-ops when `redis-server` is absent.
pub const SKIP_REDIS_ENV: &str = "KPBT_SKIP_REDIS";

/// Checks that `redis-server` is installed. Missing: panics with an install hint, or
/// with `KPBT_SKIP_REDIS=1` prints `SKIPPED (KPBT_SKIP_REDIS=1): ...` and returns false.
pub fn require_redis() -> bool {
    if crate::find_binary("redis-server").is_some() {
        return true;
    }
    let msg = "redis-server not found: install it with `apt-get install redis-server` \
               (scripts/install-deps.sh) or set KPBT_SKIP_REDIS=1 to skip the Redis store tests";
    if std::env::var(SKIP_REDIS_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED ({SKIP_REDIS_ENV}=1): {msg}");
        false
    } else {
        panic!("{msg}");
    }
}

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    guard: ChildGuard,
    port: u16,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> io::Result<Self> {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (e.g. again after [`RedisServer::kill`]).
    pub fn start_on(port: u16) -> io::Result<Self> {
        Self::start_with(port, &[])
    }

    /// Starts one on `port` with `extra` arguments (e.g. `--cluster-enabled yes`); its
    /// working directory (where a cluster node keeps `nodes.conf`) is its own.
    pub fn start_with(port: u16, extra: &[&str]) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("kpbt-redis-").tempdir()?;
        let mut cmd = Command::new(crate::program("redis-server"));
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra);
        let mut guard = ChildGuard::spawn("redis-server", cmd, dir.path())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        guard.wait_until("PING answered", DEFAULT_TIMEOUT, || {
            command(addr, &["PING"]).is_ok_and(|r| r == b"+PONG\r\n")
        })?;
        Ok(Self {
            guard,
            port,
            _dir: dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT/DB`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Sends one command, returns the raw reply (see [`command`]).
    pub fn cmd(&self, args: &[&str]) -> io::Result<Vec<u8>> {
        command(self.addr(), args)
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub fn used_memory(&self) -> io::Result<u64> {
        let info = self.cmd(&["INFO", "memory"])?;
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no used_memory in INFO"))
    }

    /// Calls of the command `name` (lower case, e.g. `evalsha`) so far, from
    /// `INFO commandstats`; 0 for a command never called.
    pub fn command_calls(&self, name: &str) -> io::Result<u64> {
        let info = self.cmd(&["INFO", "commandstats"])?;
        let prefix = format!("cmdstat_{name}:calls=");
        let Some(rest) = String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        else {
            return Ok(0);
        };
        rest.split(',')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad commandstats line: {rest}")))
    }

    /// SIGKILLs the server (a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// SIGSTOPs the server: its sockets stay open and the kernel still accepts
    /// connections, but nothing is answered (a hung or unreachable node, not a refusal).
    /// Dropping the guard still kills it.
    pub fn freeze(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .args(["-STOP", &self.guard.pid().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -STOP: {status}")))
        }
    }
}

/// Sends one command over a fresh connection and returns the raw RESP reply (one read
/// until the reply looks complete; enough for simple and short bulk replies).
pub fn command(addr: SocketAddr, args: &[&str]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if complete(&buf) {
            break;
        }
    }
    Ok(buf)
}

/// Whether `buf` holds one whole simple / error / integer / bulk reply.
fn complete(buf: &[u8]) -> bool {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match buf[0] {
        b'$' => {
            let len: i64 = std::str::from_utf8(&buf[1..line_end])
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            len < 0 || buf.len() >= line_end + 2 + len as usize + 2
        }
        _ => true,
    }
}
