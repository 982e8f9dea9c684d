//! Guarded Debian `nginx` serving a directory on a free 127.0.0.1 port: an HTTP origin
//! for web seed tests (range requests, as object stores serve them).

use crate::net::{free_port, wait_for_tcp};
use crate::process::ChildGuard;
use crate::DEFAULT_TIMEOUT;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// A running nginx (killed on drop; its error log is printed if the test fails).
///
/// Everything it writes (config, pid, logs, temp dirs) is in a private temp dir; it
/// runs in the foreground (`daemon off`) as one process (`master_process off`), so the
/// guard's SIGKILL leaves no worker behind (a killed master's workers live on).
pub struct Nginx {
    guard: ChildGuard,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// Serves `root` at `http://127.0.0.1:PORT/` (`Nginx::url`).
    pub fn serve(root: &Path) -> io::Result<Self> {
        Self::serve_with(root, "")
    }

    /// [`Nginx::serve`] with extra directives for the `location /` block, e.g.
    /// `limit_rate 2m;` to cap each response's rate.
    pub fn serve_with(root: &Path, location_extra: &str) -> io::Result<Self> {
        Self::serve_on(root, free_port(), location_extra)
    }

    /// [`Nginx::serve_with`] on a given port (e.g. one a client was told about before
    /// the server came up).
    pub fn serve_on(root: &Path, port: u16, location_extra: &str) -> io::Result<Self> {
        crate::require_binary("nginx", "nginx");
        let dir = tempfile::Builder::new().prefix("kpbt-nginx-").tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("tmp"))?;
        let root = std::fs::canonicalize(root)?;
        // One process, serving as whoever started it (no switch to `nobody`, who could
        // not read a test's private temp dirs).
        let conf = format!(
            "master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ {location_extra} }}
    }}
}}
",
            d = d.display(),
            root = root.display(),
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(crate::program("nginx"));
        cmd.arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"]);
        let mut guard = ChildGuard::spawn("nginx", cmd, d)?;
        guard.add_log(d.join("error.log"));
        guard.wait_until("listening", DEFAULT_TIMEOUT, || {
            wait_for_tcp(("127.0.0.1", port), Duration::from_millis(1)).is_ok()
        })?;
        Ok(Self { guard, port, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/`: the served directory (ends in `/`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The access log (one line per request: `... "GET /path HTTP/1.1" 206 BYTES ...`).
    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// Body bytes nginx sent in all (the sum of the access log's `$body_bytes_sent`).
    pub fn bytes_sent(&self) -> u64 {
        let log = std::fs::read_to_string(self.access_log()).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split('"').nth(2))
            .filter_map(|status_bytes| status_bytes.split_whitespace().nth(1))
            .filter_map(|b| b.parse::<u64>().ok())
            .sum()
    }

    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }
}
