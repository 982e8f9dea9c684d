//! A kpbt swarm in containers: a per-test Docker network, one tracker container (memory
//! store) or several sharing a Redis container, seeder and leecher containers with
//! bind-mounted per-test directories, and host-side checks (tracker /health, /stats,
//! /metrics; pieces on disk hashed against the torrent).

use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use kpbt_proto::metainfo::Metainfo;
use sha1::{Digest, Sha1};
use testcontainers::core::{AccessMode, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::docker::{image_tag, CLIENT_IMAGE, REDIS_IMAGE, TRACKER_IMAGE};

/// The tracker's announce interval inside the tests, seconds: short, so a restarted
/// tracker learns the swarm again quickly.
pub const ANNOUNCE_INTERVAL: u32 = 5;
pub const TRACKER_PORT: u16 = 6969;
const REDIS_PORT: u16 = 6379;
/// Torrent file name inside the per-test directory (mounted at /torrent).
const TORRENT: &str = "swarm.torrent";

/// One test's swarm: network, tracker, payload and .torrent. Containers are removed
/// when their handles drop, the network with the last of them, the files with `dir`.
pub struct Swarm {
    /// Unique prefix of this swarm's container and network names.
    pub prefix: String,
    pub network: String,
    pub meta: Metainfo,
    /// Tracker 0 is the first tier of `swarm.torrent`.
    trackers: Vec<ContainerAsync<GenericImage>>,
    redis: Option<ContainerAsync<GenericImage>>,
    // Last: removed after the containers that write into it.
    dir: tempfile::TempDir,
}

/// A seeder or leecher container and its host data directory.
pub struct Peer {
    pub name: String,
    /// Host directory mounted at the peer's data dir (holds NAME/... of the torrent).
    pub data: PathBuf,
    pub container: ContainerAsync<GenericImage>,
}

/// Where the swarm's trackers keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// One tracker, memory store.
    Memory,
    /// `trackers` instances on one Redis container.
    Redis { trackers: usize },
}

/// Which .torrent a peer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Every tracker, each its own BEP 12 tier, in order.
    Tiers,
    /// Only tracker `i`.
    Only(usize),
}

/// What a client container runs.
pub enum Role {
    Seeder,
    /// `download --seed`: keeps serving after it completes.
    Leecher,
    /// `download` without `--seed`: exits 0 when complete.
    LeecherThenExit,
}

fn open_dir(path: &Path) -> Result<()> {
    // The images run as uid 10001; the client opens payload files read-write.
    for entry in walk(path)? {
        let mode = if entry.is_dir() { 0o777 } else { 0o666 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            for e in std::fs::read_dir(&out[i])? {
                out.push(e?.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Which of the tracker's front ends the swarm's .torrent announces to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerProtocol {
    Http,
    /// `udp://` only (BEP 15); the tracker also listens on UDP, same port number.
    Udp,
}

impl Swarm {
    /// Writes a multi-file payload of about `size` bytes, makes its private .torrent
    /// announcing to this swarm's tracker container over HTTP, and starts that tracker.
    pub async fn new(test: &str, size: u64, piece_length: u32) -> Result<Swarm> {
        Self::build(
            test,
            size,
            piece_length,
            Store::Memory,
            TrackerProtocol::Http,
        )
        .await
    }

    /// [`Swarm::new`] with the .torrent's only tracker on `protocol`.
    pub async fn new_with(
        test: &str,
        size: u64,
        piece_length: u32,
        protocol: TrackerProtocol,
    ) -> Result<Swarm> {
        Self::build(test, size, piece_length, Store::Memory, protocol).await
    }

    /// [`Swarm::new`] with the trackers `store` says.
    pub async fn with_store(
        test: &str,
        size: u64,
        piece_length: u32,
        store: Store,
    ) -> Result<Swarm> {
        Self::build(test, size, piece_length, store, TrackerProtocol::Http).await
    }

    async fn build(
        test: &str,
        size: u64,
        piece_length: u32,
        store: Store,
        protocol: TrackerProtocol,
    ) -> Result<Swarm> {
        let prefix = format!("kpbt-it-{}-{test}", std::process::id());
        let network = format!("{prefix}-net");
        let n_trackers = match store {
            Store::Memory => 1,
            Store::Redis { trackers } => trackers.max(1),
        };
        let tracker_names: Vec<String> =
            (0..n_trackers).map(|i| tracker_name(&prefix, i)).collect();
        let dir = tempfile::Builder::new().prefix("kpbt-it-").tempdir()?;
        let root = dir.path().join("payload").join("kpbt-swarm");
        let files = [
            ("a.bin", size / 2 + 12_345),
            ("sub/b.bin", size / 4 - 777),
            ("sub/deeper/c.txt", 9_999),
            ("z.bin", size / 4 - 12_345 + 777 - 9_999),
        ];
        for (i, (rel, len)) in files.iter().enumerate() {
            kpbt_testkit::write_random_file(&root.join(rel), *len, 0x5eed + i as u64)?;
        }
        let torrent_dir = dir.path().join("torrent");
        std::fs::create_dir_all(&torrent_dir)?;
        let scheme = match protocol {
            TrackerProtocol::Http => "http",
            TrackerProtocol::Udp => "udp",
        };
        let url = |name: &String| format!("{scheme}://{name}:{TRACKER_PORT}/announce");
        // The same info dict under different announce keys: one info hash, one swarm.
        let mut meta = None;
        let mut write_torrent = |file: String, tiers: Vec<Vec<String>>| -> Result<()> {
            let plan = kpbt_client::create::plan(kpbt_client::create::CreateOptions {
                path: root.clone(),
                trackers: tiers,
                piece_length: Some(piece_length),
                private: true,
                comment: Some(format!("kpbt-integration {test}")),
                web_seeds: Vec::new(),
            })?;
            let (bytes, _) = kpbt_client::create::build(&plan, 2, &AtomicU64::new(0))?;
            std::fs::write(torrent_dir.join(file), &bytes)?;
            let m = Metainfo::from_bytes(&bytes)?;
            if let Some(first) = &meta {
                let first: &Metainfo = first;
                ensure!(
                    first.info_hash == m.info_hash,
                    "torrents differ in info hash"
                );
            } else {
                meta = Some(m);
            }
            Ok(())
        };
        write_torrent(
            TORRENT.into(),
            tracker_names.iter().map(|n| vec![url(n)]).collect(),
        )?;
        if n_trackers > 1 {
            for (i, n) in tracker_names.iter().enumerate() {
                write_torrent(format!("swarm-{i}.torrent"), vec![vec![url(n)]])?;
            }
        }
        let meta = meta.context("no torrent written")?;
        open_dir(dir.path())?;

        let (redis, store_url) = match store {
            Store::Memory => (None, None),
            Store::Redis { .. } => {
                let name = format!("{prefix}-redis");
                let c = start_redis(&name, &network, &[]).await?;
                (Some(c), Some(format!("redis://{name}:{REDIS_PORT}")))
            }
        };
        let mut trackers = Vec::new();
        for name in &tracker_names {
            trackers.push(start_tracker(name, &network, store_url.as_deref()).await?);
        }
        let swarm = Swarm {
            prefix,
            network,
            meta,
            trackers,
            redis,
            dir,
        };
        for i in 0..n_trackers {
            swarm
                .wait_tracker_healthy_at(i, Duration::from_secs(30))
                .await?;
        }
        Ok(swarm)
    }

    /// How many tracker containers the swarm has.
    pub fn tracker_count(&self) -> usize {
        self.trackers.len()
    }

    /// Host directory holding `NAME/...` of the original payload.
    pub fn payload_dir(&self) -> PathBuf {
        self.dir.path().join("payload")
    }

    pub fn piece_count(&self) -> usize {
        self.meta.info.piece_hashes.len()
    }

    /// The tracker's published address on the host (changes when it restarts).
    pub async fn tracker_addr(&self) -> Result<SocketAddr> {
        self.tracker_addr_at(0).await
    }

    /// Tracker `i`'s published address on the host.
    pub async fn tracker_addr_at(&self, i: usize) -> Result<SocketAddr> {
        let port = self.trackers[i]
            .get_host_port_ipv4(TRACKER_PORT.tcp())
            .await?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    async fn http_get(&self, path: &'static str) -> Result<(u16, Vec<u8>)> {
        self.http_get_at(0, path.to_owned()).await
    }

    /// GET `path` (already percent-encoded) from tracker `i`.
    pub async fn http_get_at(&self, i: usize, path: String) -> Result<(u16, Vec<u8>)> {
        let addr = self.tracker_addr_at(i).await?;
        tokio::task::spawn_blocking(move || {
            kpbt_testkit::http_get(addr, &path, Duration::from_secs(3))
                .with_context(|| format!("GET {path} from tracker {addr}"))
        })
        .await?
    }

    pub async fn wait_tracker_healthy(&self, timeout: Duration) -> Result<()> {
        self.wait_tracker_healthy_at(0, timeout).await
    }

    pub async fn wait_tracker_healthy_at(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.http_get_at(i, "/health".into()).await {
                Ok((200, _)) => return Ok(()),
                r if Instant::now() > deadline => {
                    bail!("tracker not healthy in {timeout:?}: {r:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The tracker's /stats, decoded.
    pub async fn stats(&self) -> Result<serde_json::Value> {
        self.stats_at(0).await
    }

    /// Tracker `i`'s /stats, decoded.
    pub async fn stats_at(&self, i: usize) -> Result<serde_json::Value> {
        let (status, body) = self.http_get_at(i, "/stats".into()).await?;
        if status != 200 {
            bail!("/stats answered {status}");
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Polls /stats until `pred` holds; returns the matching stats.
    pub async fn wait_stats(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        self.wait_stats_at(0, what, timeout, pred).await
    }

    /// [`Swarm::wait_stats`] on tracker `i`.
    pub async fn wait_stats_at(
        &self,
        i: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats_at(i).await;
            if let Ok(s) = &s {
                if pred(s) {
                    return Ok(s.clone());
                }
            }
            if Instant::now() > deadline {
                bail!("tracker /stats never showed {what} in {timeout:?}; last: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The tracker's /metrics (Prometheus text format).
    pub async fn metrics(&self) -> Result<String> {
        let (status, body) = self.http_get("/metrics").await?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(String::from_utf8(body)?)
    }

    /// Stops the tracker container (SIGTERM) and starts it again; waits for /health.
    pub async fn restart_tracker(&self) -> Result<()> {
        self.trackers[0].stop().await?;
        self.trackers[0].start().await?;
        self.wait_tracker_healthy(Duration::from_secs(30)).await
    }

    /// SIGKILLs tracker `i` (it stays down).
    pub fn kill_tracker(&self, i: usize) -> Result<()> {
        docker_kill(self.trackers[i].id())
    }

    /// Whether tracker `i`'s container is still running.
    pub async fn tracker_running(&self, i: usize) -> Result<bool> {
        Ok(self.trackers[i].is_running().await?)
    }

    /// Stops the Redis container and starts it again (no persistence: it comes back
    /// empty), calling `during` while it is down.
    pub async fn restart_redis<F: std::future::Future<Output = Result<()>>>(
        &self,
        during: impl FnOnce() -> F,
    ) -> Result<()> {
        let redis = self.redis.as_ref().context("this swarm has no Redis")?;
        redis.stop().await?;
        let checked = during().await;
        redis.start().await?;
        checked
    }

    pub async fn tracker_logs(&self) -> String {
        logs(&self.trackers[0]).await
    }

    pub async fn tracker_logs_at(&self, i: usize) -> String {
        logs(&self.trackers[i]).await
    }

    /// Starts a client container on the swarm network. `cpus` caps its CPU share (a
    /// slow peer keeps a transfer in flight long enough to act on it).
    pub async fn start_peer(&self, name: &str, role: Role, cpus: Option<f64>) -> Result<Peer> {
        self.start_peer_with(name, role, cpus, Announce::Tiers)
            .await
    }

    /// [`Swarm::start_peer`] announcing as `announce` says.
    pub async fn start_peer_with(
        &self,
        name: &str,
        role: Role,
        cpus: Option<f64>,
        announce: Announce,
    ) -> Result<Peer> {
        self.start_peer_with_args(name, role, cpus, announce, &[])
            .await
    }

    /// [`Swarm::start_peer_with`] with extra `kpbt-client` arguments (e.g. a
    /// `--download-limit` that keeps a transfer in flight however fast the host is).
    pub async fn start_peer_with_args(
        &self,
        name: &str,
        role: Role,
        cpus: Option<f64>,
        announce: Announce,
        extra: &[&str],
    ) -> Result<Peer> {
        let data = match role {
            Role::Seeder => self.payload_dir(),
            _ => {
                let d = self.dir.path().join("peers").join(name);
                std::fs::create_dir_all(&d)?;
                open_dir(&d)?;
                d
            }
        };
        let torrent = match announce {
            Announce::Only(i) if self.trackers.len() > 1 => format!("/torrent/swarm-{i}.torrent"),
            _ => format!("/torrent/{TORRENT}"),
        };
        let mut cmd: Vec<String> = match role {
            Role::Seeder => vec!["seed".into(), torrent, "/data".into()],
            _ => vec!["download".into(), torrent, "-o".into(), "/data".into()],
        };
        if matches!(role, Role::Leecher) {
            cmd.push("--seed".into());
        }
        cmd.extend(["--port".into(), "6881".into()]);
        cmd.extend(extra.iter().map(|a| a.to_string()));
        let mut req = GenericImage::new(CLIENT_IMAGE, &image_tag())
            .with_wait_for(WaitFor::message_on_stderr("torrent started"))
            .with_network(&self.network)
            .with_container_name(format!("{}-{name}", self.prefix))
            .with_env_var("RUST_LOG", "info")
            .with_env_var("NO_COLOR", "1")
            .with_mount(Mount::bind_mount(data.to_string_lossy(), "/data"))
            .with_mount(
                Mount::bind_mount(
                    self.dir.path().join("torrent").to_string_lossy(),
                    "/torrent",
                )
                .with_access_mode(AccessMode::ReadOnly),
            )
            .with_cmd(cmd)
            .with_startup_timeout(Duration::from_secs(60));
        if let Some(cpus) = cpus {
            let nano = (cpus * 1e9) as i64;
            req = req.with_host_config_modifier(move |hc| hc.nano_cpus = Some(nano));
        }
        let container = req
            .start()
            .await
            .with_context(|| format!("starting peer container {name}"))?;
        Ok(Peer {
            name: name.to_string(),
            data,
            container,
        })
    }

    /// Which pieces `peer` holds on disk right now (hashed here against the torrent).
    /// `known` pieces are taken as held (pieces never go away) and not read again.
    pub fn held_pieces(&self, peer: &Peer, known: &[bool]) -> Vec<bool> {
        held_pieces(&self.meta, &peer.data, known)
    }

    /// Panics unless every file of the torrent in `peer`'s directory equals the original.
    pub fn assert_same_payload(&self, peer: &Peer) {
        for f in &self.meta.info.files {
            let rel = f.relative_path();
            kpbt_testkit::assert_same_file(&self.payload_dir().join(&rel), &peer.data.join(&rel));
        }
    }
}

/// Hashes each piece found under `root` (files at their torrent paths, `NAME/...`) against the torrent's piece hashes.
pub fn held_pieces(meta: &Metainfo, root: &Path, known: &[bool]) -> Vec<bool> {
    let info = &meta.info;
    let files: Vec<Option<std::fs::File>> = info
        .files
        .iter()
        .map(|f| std::fs::File::open(root.join(f.relative_path())).ok())
        .collect();
    let mut out = vec![false; info.piece_hashes.len()];
    let mut buf = Vec::new();
    for (i, expected) in info.piece_hashes.iter().enumerate() {
        if known.get(i).copied().unwrap_or(false) {
            out[i] = true;
            continue;
        }
        let offset = i as u64 * info.piece_length as u64;
        let len = (info.total_length - offset).min(info.piece_length as u64);
        buf.clear();
        buf.resize(len as usize, 0);
        let mut at = 0usize;
        let mut complete = true;
        for s in info.file_slices(offset, len) {
            let dst = &mut buf[at..at + s.len as usize];
            match &files[s.file_index] {
                Some(f) if f.read_exact_at(dst, s.file_offset).is_ok() => {}
                _ => complete = false,
            }
            at += s.len as usize;
        }
        out[i] = complete && Sha1::digest(&buf).as_slice() == expected.as_slice();
    }
    out
}

pub fn count(held: &[bool]) -> usize {
    held.iter().filter(|h| **h).count()
}

/// Everything the container wrote to stderr so far (its whole life, restarts included).
pub async fn logs(c: &ContainerAsync<GenericImage>) -> String {
    let err = c.stderr_to_vec().await.unwrap_or_default();
    let out = c.stdout_to_vec().await.unwrap_or_default();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    )
}

impl Peer {
    pub async fn logs(&self) -> String {
        logs(&self.container).await
    }

    /// Waits until the peer's log contains `needle` `times` times; returns the log.
    pub async fn wait_for_log(
        &self,
        needle: &str,
        times: usize,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.logs().await;
            if log.matches(needle).count() >= times {
                return Ok(log);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no {needle:?} (x{times}) in its log within {timeout:?}; log tail:\n{}",
                    self.name,
                    tail(&log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits for the client's "download complete" log line.
    pub async fn wait_complete(&self, timeout: Duration) -> Result<String> {
        self.wait_for_log("download complete: all", 1, timeout)
            .await
    }

    /// SIGKILL, as the OOM killer or a power cut would: no clean shutdown.
    pub fn kill(&self) -> Result<()> {
        docker_kill(self.container.id()).with_context(|| format!("killing {}", self.name))
    }

    /// Waits until the container has exited; returns its exit code.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<i64> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.container.is_running().await? {
                return Ok(self.container.exit_code().await?.unwrap_or(-1));
            }
            if Instant::now() > deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `docker kill --signal KILL ID`.
pub fn docker_kill(id: &str) -> Result<()> {
    let out = Command::new("timeout")
        .args(["30", "docker", "kill", "--signal", "KILL", id])
        .output()?;
    if !out.status.success() {
        return Err(anyhow!(
            "docker kill {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Container name of tracker `i` of a swarm (`-tracker`, `-tracker1`, ...).
pub fn tracker_name(prefix: &str, i: usize) -> String {
    match i {
        0 => format!("{prefix}-tracker"),
        i => format!("{prefix}-tracker{i}"),
    }
}

/// Starts a kpbt-tracker container on `network` (`store`: a `--store` URL, else memory),
/// with the tests' short announce interval; does not wait for /health.
pub async fn start_tracker(
    name: &str,
    network: &str,
    store: Option<&str>,
) -> Result<ContainerAsync<GenericImage>> {
    let mut cmd = vec![
        "--listen".to_string(),
        format!("0.0.0.0:{TRACKER_PORT}"),
        // Always on, so an HTTP swarm's tracker runs the same code; only the .torrent
        // decides which front end the peers use.
        "--udp-listen".into(),
        format!("0.0.0.0:{TRACKER_PORT}"),
        "--announce-interval".into(),
        ANNOUNCE_INTERVAL.to_string(),
        "--min-interval".into(),
        "1".into(),
    ];
    if let Some(s) = store {
        cmd.extend([
            "--store".into(),
            s.into(),
            "--reap-interval".into(),
            "5".into(),
        ]);
    }
    GenericImage::new(TRACKER_IMAGE, &image_tag())
        .with_exposed_port(TRACKER_PORT.tcp())
        .with_wait_for(WaitFor::Nothing)
        .with_network(network)
        .with_container_name(name)
        .with_env_var("NO_COLOR", "1")
        .with_cmd(cmd)
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .with_context(|| format!("starting tracker container {name}"))
}

/// Starts a kpbt/redis container on `network` without persistence, `extra` appended to
/// its arguments, and waits until it accepts connections.
pub async fn start_redis(
    name: &str,
    network: &str,
    extra: &[&str],
) -> Result<ContainerAsync<GenericImage>> {
    let mut cmd: Vec<String> = [
        "--bind",
        "0.0.0.0",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(String::from)
    .to_vec();
    cmd.extend(extra.iter().map(|s| s.to_string()));
    GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network(network)
        .with_container_name(name)
        .with_cmd(cmd)
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .with_context(|| format!("starting redis container {name}"))
}

pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The value of an unlabelled sample `name` in Prometheus text, or the sum over its
/// labelled series.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let series_name = series.split('{').next().unwrap_or("");
        if series_name == name {
            let v: f64 = value.parse().ok()?;
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}
