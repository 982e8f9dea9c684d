//! Docker plumbing for the swarm tests: the engine check, one image build per test run,
//! and a Docker API version shim for engines older than the client library speaks.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Images the tests run; built by `docker/build-images.sh` (tag `$KPBT_IMAGE_TAG`,
/// default `dev`, so several checkouts on one engine keep their own).
pub const TRACKER_IMAGE: &str = "kpbt/tracker";
pub const CLIENT_IMAGE: &str = "kpbt/client";
/// Debian's redis-server on the offline Debian base (`docker/build-ha-images.sh`).
pub const REDIS_IMAGE: (&str, &str) = ("kpbt/redis", "dev");
/// Debian's nginx on the same base, the web-seed origin (`docker/build-ha-images.sh`).
pub const NGINX_IMAGE: (&str, &str) = ("kpbt/nginx", "dev");

/// The tag of the kpbt images under test.
pub fn image_tag() -> String {
    std::env::var("KPBT_IMAGE_TAG")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "dev".to_owned())
}

const UNREACHABLE: &str =
    "Docker engine not reachable: start dockerd or set KPBT_SKIP_DOCKER=1 to skip the container tests";

/// Call first in every container test. Returns `false` (after printing an explicit
/// SKIPPED line) when `KPBT_SKIP_DOCKER=1`; panics with an explanation when the engine
/// is unreachable or the images can't be built. The first caller builds the images
/// (`docker/build-images.sh`) unless `KPBT_IMAGES_PREBUILT=1`; the rest wait for it.
pub fn setup(test: &str) -> bool {
    if std::env::var("KPBT_SKIP_DOCKER").as_deref() == Ok("1") {
        // Straight to the stream, past libtest's output capture: a skip must be visible.
        let line =
            format!("SKIPPED {test}: KPBT_SKIP_DOCKER=1, containerized swarm test not run\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        return false;
    }
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = READY.get_or_init(prepare) {
        panic!("{e}");
    }
    true
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

fn prepare() -> Result<(), String> {
    let out = Command::new("timeout") // a wedged engine must fail the run, not hang it
        .args([
            "60",
            "docker",
            "version",
            "--format",
            "{{.Server.APIVersion}}",
        ])
        .output()
        .map_err(|e| format!("{UNREACHABLE} (cannot run `docker`: {e})"))?;
    if !out.status.success() {
        return Err(format!(
            "{UNREACHABLE} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let server_api = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if std::env::var("KPBT_IMAGES_PREBUILT").as_deref() == Ok("1") {
        eprintln!("KPBT_IMAGES_PREBUILT=1: using the existing kpbt images");
    } else {
        let script = repo_root().join("docker/build-images.sh");
        eprintln!(
            "building the kpbt images once for this run: {}",
            script.display()
        );
        let status = Command::new("timeout")
            .arg("1800")
            .arg(&script)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!("{} failed: {status}", script.display()));
        }
    }
    let tag = image_tag();
    for (name, tag) in [
        (TRACKER_IMAGE, tag.as_str()),
        (CLIENT_IMAGE, tag.as_str()),
        REDIS_IMAGE,
        NGINX_IMAGE,
    ] {
        let ok = Command::new("timeout")
            .args([
                "60",
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                &format!("{name}:{tag}"),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!(
                "image {name}:{tag} is missing: run docker/build-images.sh (or unset KPBT_IMAGES_PREBUILT)"
            ));
        }
    }
    if needs_shim(&server_api) {
        let target = docker_socket()?;
        let sock = start_api_shim(target, server_api.clone())
            .map_err(|e| format!("cannot start the Docker API shim: {e}"))?;
        eprintln!(
            "Docker engine speaks API {server_api} only; testcontainers goes through a version shim at {}",
            sock.display()
        );
        // Set once, before any testcontainers client exists (it reads DOCKER_HOST lazily).
        std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display()));
    }
    Ok(())
}

/// The API version testcontainers' bollard puts in every request path.
const CLIENT_API_MINOR: u32 = 53;

fn needs_shim(server_api: &str) -> bool {
    match server_api.split_once('.') {
        Some(("1", minor)) => minor.parse::<u32>().is_ok_and(|m| m < CLIENT_API_MINOR),
        _ => false,
    }
}

fn docker_socket() -> Result<PathBuf, String> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => Ok(PathBuf::from(&h["unix://".len()..])),
        Ok(h) if !h.is_empty() => Err(format!(
            "DOCKER_HOST={h}: the engine is older than API 1.{CLIENT_API_MINOR} and the version shim only handles unix sockets"
        )),
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

/// A unix-socket relay to the engine that rewrites the `/v1.NN/` API version prefix of
/// requests to the engine's own version. Docker engines refuse requests that name a newer
/// API than theirs (`client version 1.53 is too new`), and testcontainers 0.28 doesn't
/// negotiate; the engines here (20.10, API 1.41) answer the calls it makes the same way.
fn start_api_shim(target: PathBuf, server_api: String) -> io::Result<PathBuf> {
    if server_api.len() != 4 {
        return Err(io::Error::other(format!(
            "unexpected API version {server_api}"
        )));
    }
    remove_stale_shims();
    let dir = std::env::temp_dir().join(format!("kpbt-docker-shim-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("docker.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("docker-api-shim".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("shim runtime");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).expect("shim listener");
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let target = target.clone();
                    let api = server_api.clone();
                    tokio::spawn(async move {
                        let _ = relay(client, &target, api.as_bytes()).await;
                    });
                }
            });
        })?;
    Ok(sock)
}

/// The shim's socket outlives its test process; remove those of processes that are gone.
fn remove_stale_shims() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("kpbt-docker-shim-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

async fn relay(client: UnixStream, target: &Path, api: &[u8]) -> io::Result<()> {
    let server = UnixStream::connect(target).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                sw.write_all(&pending).await?;
                sw.shutdown().await?;
                return std::future::pending::<io::Result<()>>().await;
            }
            pending.extend_from_slice(&buf[..n]);
            let keep = rewrite_versions(&mut pending, api);
            let rest = pending.split_off(pending.len() - keep);
            sw.write_all(&pending).await?;
            pending = rest;
        }
    };
    let down = async move {
        tokio::io::copy(&mut sr, &mut cw).await?;
        cw.shutdown().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// `/v1.DD/` → `/v1.<api>/` in place (same length). Returns how many trailing bytes
/// could still start a match and must wait for more input.
fn rewrite_versions(buf: &mut [u8], api: &[u8]) -> usize {
    const PAT: usize = 7;
    let matches_at = |b: &[u8], i: usize, len: usize| {
        (0..len).all(|k| {
            let c = b[i + k];
            match k {
                0 | 6 => c == b'/',
                1 => c == b'v',
                2 => c == b'1',
                3 => c == b'.',
                _ => c.is_ascii_digit(),
            }
        })
    };
    let mut i = 0;
    while i + PAT <= buf.len() {
        if matches_at(buf, i, PAT) {
            buf[i + 2..i + 6].copy_from_slice(api);
            i += PAT;
        } else {
            i += 1;
        }
    }
    (1..PAT.min(buf.len() + 1))
        .rev()
        .find(|&k| matches_at(buf, buf.len() - k, k))
        .unwrap_or(0)
}

/// Runs one container test body under a hard time `limit` (containers are removed on
/// drop either way), after [`setup`]; a failure or timeout panics with the test's name.
pub async fn run_test(
    name: &str,
    limit: std::time::Duration,
    body: impl std::future::Future<Output = anyhow::Result<()>>,
) {
    if !setup(name) {
        return;
    }
    let start = std::time::Instant::now();
    match tokio::time::timeout(limit, body).await {
        Ok(Ok(())) => eprintln!("{name}: passed in {:.1}s", start.elapsed().as_secs_f64()),
        Ok(Err(e)) => panic!(
            "{name} failed after {:.1}s: {e:#}",
            start.elapsed().as_secs_f64()
        ),
        Err(_) => panic!("{name} timed out after {limit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_and_holds_back_partial_prefixes() {
        let mut b = b"GET /v1.53/containers/json HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(rewrite_versions(&mut b, b"1.41"), 0);
        assert_eq!(&b[..], b"GET /v1.41/containers/json HTTP/1.1\r\n\r\n");
        let mut b = b"xx /v1.5".to_vec();
        assert_eq!(rewrite_versions(&mut b, b"1.41"), 5);
        let mut b = b"body}".to_vec();
        assert_eq!(rewrite_versions(&mut b, b"1.41"), 0);
        assert!(needs_shim("1.41"));
        assert!(!needs_shim("1.53"));
    }
}
