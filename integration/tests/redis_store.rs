//! Trackers on Redis, in containers: several kpbt-tracker instances share one swarm
//! through a kpbt/redis container (Debian's redis-server on the offline Debian base), and
//! the swarm survives losing a tracker, a Redis restart, and a Redis Cluster master.
//! Every transfer ends with the downloaded bytes compared with the source.

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kpbt_integration::docker::run_test;
use kpbt_integration::swarm::{
    start_redis, start_tracker, tail, Announce, Peer, Role, Store, Swarm, TRACKER_PORT,
};
use testcontainers::core::IntoContainerPort;

const MIB: u64 = 1024 * 1024;
const PIECE: u32 = 256 * 1024;
const TEST_LIMIT: Duration = Duration::from_secs(420);
/// CPU share of a deliberately slow peer (Docker --cpus): keeps transfers in flight.
const SLOW: f64 = 0.02;
const COMPLETE_WITHIN: Duration = Duration::from_secs(240);
const UNAVAILABLE: &str = "storage is unavailable";

async fn run(name: &str, body: impl Future<Output = Result<()>>) {
    run_test(name, TEST_LIMIT, body).await
}

async fn wait_all_complete(swarm: &Swarm, peers: &[Peer]) -> Result<()> {
    for p in peers {
        p.wait_complete(COMPLETE_WITHIN).await?;
        swarm.assert_same_payload(p);
    }
    Ok(())
}

fn total_peers(s: &serde_json::Value) -> u64 {
    s["seeders"].as_u64().unwrap_or(0) + s["leechers"].as_u64().unwrap_or(0)
}

/// A raw announce (host → tracker `i`'s published port) for `hash` from peer `n`;
/// returns the bencoded body.
async fn announce_raw(swarm: &Swarm, i: usize, hash: [u8; 20], n: u16) -> Result<Vec<u8>> {
    let path = announce_path(&hash, n);
    let (status, body) = swarm.http_get_at(i, path).await?;
    ensure!(status == 200, "announce answered HTTP {status}");
    Ok(body)
}

fn announce_path(hash: &[u8; 20], n: u16) -> String {
    let mut id = [b'r'; 20];
    id[..2].copy_from_slice(&n.to_be_bytes());
    format!(
        "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=1&compact=1",
        kpbt_testkit::url_encode_bytes(hash),
        kpbt_testkit::url_encode_bytes(&id),
        10_000 + n
    )
}

/// The `failure reason` of a bencoded reply, if it has one.
fn failure_reason(body: &[u8]) -> Option<String> {
    let key = b"14:failure reason";
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[at..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let text = rest.get(colon + 1..colon + 1 + len)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_on_one_redis_serve_one_swarm() {
    run("two_trackers_on_one_redis_serve_one_swarm", async {
        let swarm =
            Swarm::with_store("rshare", 8 * MIB, PIECE, Store::Redis { trackers: 2 }).await?;
        // The seeder only talks to tracker 0; leechers alternate between the two, so
        // half of them can only learn of the seeder through the shared store.
        let _seeder = swarm
            .start_peer_with("seeder", Role::Seeder, None, Announce::Only(0))
            .await?;
        let mut peers = Vec::new();
        for i in 1..=4 {
            let only = Announce::Only(i % 2);
            peers.push(
                swarm
                    .start_peer_with(&format!("leecher{i}"), Role::Leecher, None, only)
                    .await?,
            );
        }
        wait_all_complete(&swarm, &peers).await?;
        // Both instances report the same shared figures: 5 seeders, once all re-announced.
        let want = |s: &serde_json::Value| {
            s["seeders"].as_u64() == Some(5) && s["leechers"].as_u64() == Some(0)
        };
        let a = swarm
            .wait_stats_at(0, "5 seeders", Duration::from_secs(30), want)
            .await?;
        let b = swarm
            .wait_stats_at(1, "5 seeders", Duration::from_secs(30), want)
            .await?;
        for k in ["torrents", "seeders", "leechers"] {
            ensure!(a[k] == b[k], "/stats disagree on {k}: {a} vs {b}");
        }
        ensure!(a["torrents"].as_u64() == Some(1), "{a}");
        ensure!(a["store"] == "redis", "{a}");
        // Each instance served its own half of the announces.
        for (i, s) in [&a, &b].into_iter().enumerate() {
            ensure!(
                s["announces"].as_u64().unwrap_or(0) > 0,
                "tracker {i} saw no announces: {s}"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_fail_over_to_the_other_tracker_when_one_is_killed() {
    run(
        "clients_fail_over_to_the_other_tracker_when_one_is_killed",
        async {
            let swarm =
                Swarm::with_store("rkill", 16 * MIB, PIECE, Store::Redis { trackers: 2 }).await?;
            // BEP 12 tiers: tracker 0 first, tracker 1 as the backup.
            let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
            let mut peers = Vec::new();
            for i in 1..=2 {
                // Rate-limited: still downloading when the tracker is killed, however
                // fast the host is (a CPU cap alone was not slow enough).
                peers.push(
                    swarm
                        .start_peer_with_args(
                            &format!("leecher{i}"),
                            Role::Leecher,
                            Some(SLOW),
                            Announce::Tiers,
                            &["--download-limit", "1M"],
                        )
                        .await?,
                );
            }
            // Tracker 1 sees the swarm that announced to tracker 0.
            swarm
                .wait_stats_at(1, "3 peers via tracker 0", Duration::from_secs(30), |s| {
                    total_peers(s) >= 3
                })
                .await?;
            swarm.kill_tracker(0)?;
            let mut incomplete = 0;
            for p in &peers {
                if !p.logs().await.contains("download complete") {
                    incomplete += 1;
                }
            }
            ensure!(
                incomplete > 0,
                "every leecher completed before the kill: nothing proved"
            );
            // A newcomer must reach the swarm through tracker 1 (tier 2).
            peers.push(swarm.start_peer("late", Role::Leecher, None).await?);
            wait_all_complete(&swarm, &peers).await?;
            let s = swarm
                .wait_stats_at(1, "the late leecher", Duration::from_secs(30), |s| {
                    total_peers(s) >= 4
                })
                .await?;
            ensure!(s["announces"].as_u64().unwrap_or(0) > 0, "{s}");
            ensure!(!swarm.tracker_running(0).await?, "tracker 0 was not killed");
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_survives_a_redis_restart() {
    run("swarm_survives_a_redis_restart", async {
        let swarm =
            Swarm::with_store("rrestart", 16 * MIB, PIECE, Store::Redis { trackers: 2 }).await?;
        let _seeder = swarm
            .start_peer_with("seeder", Role::Seeder, None, Announce::Only(0))
            .await?;
        let mut peers = Vec::new();
        for i in 1..=2 {
            // Rate-limited (16 MiB at 1 MiB/s): still downloading when Redis restarts,
            // however fast the host is (a CPU cap alone was not slow enough).
            peers.push(
                swarm
                    .start_peer_with_args(
                        &format!("leecher{i}"),
                        Role::Leecher,
                        Some(SLOW),
                        Announce::Only(i % 2),
                        &["--download-limit", "1M"],
                    )
                    .await?,
            );
        }
        swarm
            .wait_stats_at(
                0,
                "the seeder and 2 leechers",
                Duration::from_secs(30),
                |s| total_peers(s) >= 3,
            )
            .await?;
        swarm
            .restart_redis(|| async {
                // Redis is down: both trackers answer with a failure reason, at once,
                // and report unhealthy.
                for i in 0..2 {
                    let started = Instant::now();
                    let body = announce_raw(&swarm, i, [7; 20], 1).await?;
                    let why =
                        failure_reason(&body).context("no failure reason while Redis is down")?;
                    ensure!(why.contains(UNAVAILABLE), "tracker {i}: {why}");
                    ensure!(
                        started.elapsed() < Duration::from_secs(3),
                        "took {:?}",
                        started.elapsed()
                    );
                    let (status, text) = swarm.http_get_at(i, "/health".into()).await?;
                    ensure!(
                        status == 503,
                        "tracker {i} /health {status}: {}",
                        String::from_utf8_lossy(&text)
                    );
                }
                Ok(())
            })
            .await?;
        let incomplete = {
            let mut n = 0;
            for p in &peers {
                if !p.logs().await.contains("download complete") {
                    n += 1;
                }
            }
            n
        };
        ensure!(
            incomplete > 0,
            "every leecher completed before the restart: nothing proved"
        );
        // Back without restarting the trackers: healthy again, and announces succeed.
        for i in 0..2 {
            swarm
                .wait_tracker_healthy_at(i, Duration::from_secs(30))
                .await?;
            let body = announce_raw(&swarm, i, [8; 20], 2).await?;
            ensure!(
                failure_reason(&body).is_none(),
                "tracker {i} after the restart: {:?}",
                failure_reason(&body)
            );
        }
        // The empty Redis fills up again as peers re-announce; a newcomer finds them.
        peers.push(
            swarm
                .start_peer_with("late", Role::Leecher, None, Announce::Only(1))
                .await?,
        );
        wait_all_complete(&swarm, &peers).await?;
        for i in 0..2 {
            ensure!(swarm.tracker_running(i).await?, "tracker {i} died");
        }
        Ok(())
    })
    .await;
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("timeout")
        .arg("60")
        .arg("docker")
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn redis_cli(container: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["exec", container, "redis-cli"];
    all.extend_from_slice(args);
    docker(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_master_failover_is_survived() {
    run("redis_cluster_master_failover_is_survived", async {
        let prefix = format!("kpbt-it-{}-rcluster", std::process::id());
        let network = format!("{prefix}-net");
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            // A replica's first sync starts at once, not after the default 5 s wait.
            "--repl-diskless-sync-delay",
            "0",
        ];
        let mut nodes = Vec::new();
        for i in 0..6 {
            nodes.push(start_redis(&format!("{prefix}-redis{i}"), &network, &extra).await?);
        }
        let ips: Vec<String> = nodes
            .iter()
            .map(|n| {
                docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n.id()])
                    .map(|s| s.trim().to_owned())
            })
            .collect::<Result<_>>()?;
        let mut create = vec!["--cluster", "create"];
        let addrs: Vec<String> = ips.iter().map(|ip| format!("{ip}:6379")).collect();
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        redis_cli(nodes[0].id(), &create)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in &nodes {
            while !redis_cli(n.id(), &["cluster", "info"])?.contains("cluster_state:ok") {
                ensure!(Instant::now() < deadline, "cluster never became ok");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // The addresses the nodes announce (what the tracker is sent to) are the ones it
        // can reach: each node's address on the tests' network, no other.
        let announced = redis_cli(nodes[0].id(), &["cluster", "nodes"])?;
        for a in &addrs {
            ensure!(announced.contains(&format!(" {a}@")), "{a} not announced:\n{announced}");
        }
        ensure!(announced.lines().count() == 6, "cluster nodes:\n{announced}");
        let store = format!("redis-cluster://{},{},{}", addrs[0], addrs[1], addrs[2]);
        let tracker = start_tracker(&format!("{prefix}-tracker"), &network, Some(&store)).await?;
        let port = tracker.get_host_port_ipv4(TRACKER_PORT.tcp()).await?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let get = move |path: String| async move {
            tokio::task::spawn_blocking(move || kpbt_testkit::http_get(addr, &path, Duration::from_secs(5)))
                .await?
                .context("GET from the tracker")
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get("/health".into()).await.map(|r| r.0).unwrap_or(0) != 200 {
            ensure!(Instant::now() < deadline, "tracker never healthy on the cluster");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Many info hashes: their hash tags spread over all three masters' slots.
        let hashes: Vec<[u8; 20]> = (0u16..60)
            .map(|i| {
                let mut h = [0x33; 20];
                h[..2].copy_from_slice(&i.to_be_bytes());
                h
            })
            .collect();
        // All announces of one round concurrently; returns how many failed, and why.
        let round = |n: u16| {
            let hashes = hashes.clone();
            async move {
                let calls = hashes.iter().enumerate().map(|(i, h)| {
                    let path = announce_path(h, n + i as u16);
                    async move { get(path).await }
                });
                let mut failed = Vec::new();
                for r in futures_join(calls).await {
                    let (status, body) = r?;
                    ensure!(status == 200, "HTTP {status}");
                    if let Some(f) = failure_reason(&body) {
                        failed.push(f);
                    }
                }
                Ok::<_, anyhow::Error>(failed)
            }
        };
        let failed = round(0).await?;
        ensure!(failed.is_empty(), "announces failed on a healthy cluster: {failed:?}");
        let masters: Vec<usize> = (0..6)
            .filter(|&i| redis_cli(nodes[i].id(), &["role"]).is_ok_and(|r| r.starts_with("master")))
            .collect();
        ensure!(masters.len() == 3, "masters: {masters:?}");
        for &m in &masters {
            let keys: u64 = redis_cli(nodes[m].id(), &["dbsize"])?.trim().parse()?;
            ensure!(keys > 0, "master {m} holds no swarm keys: the hashes did not spread");
        }
        // A replica that has not yet synced with its master refuses to take over ("unable
        // to failover: disconnected from master for longer than allowed"): wait for every
        // replication link, or the kill below tests nothing but that refusal.
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in (0..6).filter(|i| !masters.contains(i)) {
            while !redis_cli(nodes[i].id(), &["info", "replication"])?
                .contains("master_link_status:up")
            {
                ensure!(Instant::now() < deadline, "replica {i} never synced with its master");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let victim = masters[0];
        kpbt_integration::swarm::docker_kill(nodes[victim].id())?;
        let killed = Instant::now();
        // Bounded: node timeout 2 s, then the replica's election, then the tracker
        // refreshes its slot map. Failures meanwhile are failure reasons, not hangs.
        let mut rounds = 0;
        loop {
            rounds += 1;
            let failed = round(100 * rounds).await?;
            if failed.is_empty() {
                break;
            }
            ensure!(
                failed.iter().all(|f| f.contains(UNAVAILABLE)),
                "unexpected failure reasons: {failed:?}"
            );
            ensure!(
                killed.elapsed() < Duration::from_secs(20),
                "announces still failing {:?} after the master was killed: {failed:?}\ntracker log:\n{}",
                killed.elapsed(),
                tail(&kpbt_integration::swarm::logs(&tracker).await, 30)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "announces for all {} hashes succeed again {:.1}s after the master was killed ({rounds} rounds)",
            hashes.len(),
            killed.elapsed().as_secs_f64()
        );
        ensure!(tracker.is_running().await?, "the tracker process died");
        let promoted = (0..6)
            .filter(|&i| i != victim)
            .filter(|&i| redis_cli(nodes[i].id(), &["role"]).is_ok_and(|r| r.starts_with("master")))
            .count();
        ensure!(promoted == 3, "no replica took over ({promoted} masters)");
        Ok(())
    })
    .await;
}

/// Runs futures concurrently, results in order (no extra dependency for join_all).
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("announce task panicked"));
    }
    out
}
