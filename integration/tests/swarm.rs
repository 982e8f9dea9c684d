//! Containerized swarm tests: one container per peer on a per-test Docker network,
//! from the kpbt/tracker:dev and kpbt/client:dev images (see integration/src/lib.rs).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use kpbt_integration::docker::run_test;
use kpbt_integration::swarm::{count, metric, tail, Peer, Role, Swarm, TrackerProtocol};

const MIB: u64 = 1024 * 1024;
const PIECE: u32 = 256 * 1024;
const TEST_LIMIT: Duration = Duration::from_secs(420);
/// CPU share of a deliberately slow peer (Docker --cpus).
const SLOW: f64 = 0.02;
const COMPLETE_WITHIN: Duration = Duration::from_secs(240);

async fn run(name: &str, body: impl Future<Output = Result<()>>) {
    run_test(name, TEST_LIMIT, body).await
}

async fn leechers(
    swarm: &Swarm,
    n: usize,
    role: fn() -> Role,
    cpus: Option<f64>,
) -> Result<Vec<Peer>> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(
            swarm
                .start_peer(&format!("leecher{i}"), role(), cpus)
                .await?,
        );
    }
    Ok(out)
}

async fn wait_all_complete(peers: &[Peer]) -> Result<()> {
    for p in peers {
        p.wait_complete(COMPLETE_WITHIN).await?;
    }
    Ok(())
}

/// Polls the leechers' disks until together they hold every piece; returns what each
/// held at that moment.
async fn wait_union_complete(
    swarm: &Swarm,
    peers: &[Peer],
    timeout: Duration,
) -> Result<Vec<Vec<bool>>> {
    let deadline = Instant::now() + timeout;
    let mut held: Vec<Vec<bool>> = vec![Vec::new(); peers.len()];
    loop {
        for (p, h) in peers.iter().zip(held.iter_mut()) {
            *h = swarm.held_pieces(p, h);
        }
        let union = (0..swarm.piece_count())
            .filter(|&i| held.iter().any(|h| h[i]))
            .count();
        if union == swarm.piece_count() {
            return Ok(held);
        }
        ensure!(
            Instant::now() < deadline,
            "leechers together held only {union}/{} pieces after {timeout:?}",
            swarm.piece_count()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seeder_four_leechers_multi_file() {
    run("one_seeder_four_leechers_multi_file", async {
        let swarm = Swarm::new("basic", 32 * MIB, PIECE).await?;
        let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        let peers = leechers(&swarm, 4, || Role::Leecher, None).await?;
        wait_all_complete(&peers).await?;
        for p in &peers {
            swarm.assert_same_payload(p);
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leechers_finish_from_each_other_after_seeder_is_killed() {
    run("leechers_finish_from_each_other_after_seeder_is_killed", async {
        let swarm = Swarm::new("noseed", 32 * MIB, PIECE).await?;
        let seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        // Slow leechers: the seeder hands out distinct pieces faster than each can take
        // them in, so together they hold everything well before any one of them does.
        let peers = leechers(&swarm, 4, || Role::Leecher, Some(SLOW)).await?;
        let held = wait_union_complete(&swarm, &peers, COMPLETE_WITHIN).await?;
        seeder.kill()?;
        seeder.wait_exit(Duration::from_secs(20)).await?;
        // Re-read after the kill: whatever is still missing now can only come from the
        // other leechers.
        let after: Vec<usize> = peers
            .iter()
            .zip(&held)
            .map(|(p, h)| count(&swarm.held_pieces(p, h)))
            .collect();
        let n = swarm.piece_count();
        eprintln!("seeder killed; leechers held {after:?} of {n} pieces each");
        ensure!(
            after.iter().any(|&c| c < n),
            "every leecher had completed before the seeder was killed ({after:?}/{n}): the test proved nothing"
        );
        wait_all_complete(&peers).await?;
        for p in &peers {
            swarm.assert_same_payload(p);
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_restart_mid_transfer() {
    run("tracker_restart_mid_transfer", async {
        let swarm = Swarm::new("retrack", 32 * MIB, PIECE).await?;
        let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        let mut peers = leechers(&swarm, 4, || Role::Leecher, Some(SLOW)).await?;
        swarm
            .wait_stats("the seeder and 4 leechers", Duration::from_secs(30), |s| {
                s["seeders"].as_u64().unwrap_or(0) + s["leechers"].as_u64().unwrap_or(0) >= 5
            })
            .await?;
        swarm.restart_tracker().await?;
        let fresh = swarm.stats().await?;
        ensure!(
            fresh["announces"].as_u64() == Some(0) || fresh["uptime_secs"].as_u64() <= Some(5),
            "the tracker did not restart (stats {fresh})"
        );
        let mut incomplete = 0;
        for p in &peers {
            if !p.logs().await.contains("download complete") {
                incomplete += 1;
            }
        }
        ensure!(
            incomplete > 0,
            "all leechers completed before the tracker restart"
        );
        // The restarted tracker knows nobody until they re-announce; a newcomer can only
        // find the swarm through it.
        peers.push(swarm.start_peer("late", Role::Leecher, None).await?);
        let s = swarm
            .wait_stats("the swarm re-announced", Duration::from_secs(60), |s| {
                s["seeders"].as_u64().unwrap_or(0) + s["leechers"].as_u64().unwrap_or(0) >= 6
            })
            .await?;
        eprintln!("after the restart the tracker sees: {s}");
        wait_all_complete(&peers).await?;
        for p in &peers {
            swarm.assert_same_payload(p);
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leecher_resumes_without_refetching() {
    run("killed_leecher_resumes_without_refetching", async {
        let swarm = Swarm::new("resume", 32 * MIB, PIECE).await?;
        let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        let victim = swarm
            .start_peer("victim", Role::LeecherThenExit, Some(SLOW))
            .await?;
        let n = swarm.piece_count();
        let deadline = Instant::now() + COMPLETE_WITHIN;
        let mut held = Vec::new();
        while count(&held) < n / 4 {
            ensure!(
                Instant::now() < deadline,
                "victim never reached a quarter of the pieces"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            held = swarm.held_pieces(&victim, &held);
        }
        victim.kill()?;
        let code = victim.wait_exit(Duration::from_secs(20)).await?;
        ensure!(
            code == 137,
            "victim exit code {code} after SIGKILL (expected 137)"
        );
        // Its disk is final now: these are the pieces a resume must find.
        let at_kill = count(&swarm.held_pieces(&victim, &[]));
        ensure!(at_kill < n, "victim completed before it was killed");
        eprintln!("victim SIGKILLed holding {at_kill}/{n} verified pieces");
        victim.container.start().await?;
        let log = victim
            .wait_for_log("existing data verified", 1, Duration::from_secs(60))
            .await?;
        let have: usize = log
            .lines()
            .find(|l| l.contains("existing data verified"))
            .and_then(|l| l.split("have=").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        ensure!(
            have == at_kill,
            "after restart the victim found {have} pieces verified, its disk held {at_kill}"
        );
        let code = victim.wait_exit(COMPLETE_WITHIN).await?;
        let log = victim.logs().await;
        ensure!(code == 0, "victim exited {code}:\n{}", tail(&log, 30));
        // "done: PATH (N pieces verified); downloaded 22.8 MiB (23855104 bytes), ..." —
        // the exact count of bytes this session downloaded.
        let done = log
            .lines()
            .rfind(|l| l.starts_with("done: "))
            .ok_or_else(|| anyhow::anyhow!("no done: line\n{}", tail(&log, 30)))?;
        let after = done.split("downloaded ").nth(1).unwrap_or("");
        let downloaded: f64 = field(after, "(", " bytes)")?;
        let missing = (n - at_kill) as f64 * PIECE as f64;
        eprintln!("resumed session downloaded {downloaded:.0} bytes; missing was {missing:.0}");
        // Re-fetching the verified pieces would add at_kill whole pieces; the last piece
        // may be short, so allow one piece of slack and nothing more.
        ensure!(
            downloaded <= missing + PIECE as f64,
            "resumed session downloaded {downloaded:.0} bytes, but only {missing:.0} were missing"
        );
        swarm.assert_same_payload(&victim);
        Ok(())
    })
    .await;
}

fn field(line: &str, before: &str, after: &str) -> Result<f64> {
    let rest = line
        .split(before)
        .nth(1)
        .and_then(|r| r.split(after).next())
        .ok_or_else(|| anyhow::anyhow!("cannot find {before:?}..{after:?} in {line:?}"))?;
    Ok(rest.trim().parse()?)
}

/// The same swarm with only a `udp://` tracker in the .torrent: every announce must go
/// over BEP 15, and the swarm completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_with_only_a_udp_tracker() {
    run("swarm_with_only_a_udp_tracker", async {
        let swarm = Swarm::new_with("udp", 16 * MIB, PIECE, TrackerProtocol::Udp).await?;
        let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        let peers = leechers(&swarm, 3, || Role::Leecher, None).await?;
        wait_all_complete(&peers).await?;
        for p in &peers {
            swarm.assert_same_payload(p);
        }
        let m = swarm.metrics().await?;
        let udp: f64 = m
            .lines()
            .filter(|l| {
                l.starts_with("kpbt_tracker_announces_total") && l.contains("protocol=\"udp\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        let all = metric(&m, "kpbt_tracker_announces_total").unwrap_or(0.0);
        ensure!(
            udp >= 4.0 && udp == all,
            "udp announces {udp} of {all}\n{m}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_stats_and_metrics_match_the_swarm() {
    run("tracker_stats_and_metrics_match_the_swarm", async {
        let swarm = Swarm::new("stats", 8 * MIB, PIECE).await?;
        let _seeder = swarm.start_peer("seeder", Role::Seeder, None).await?;
        let mut peers = leechers(&swarm, 4, || Role::Leecher, None).await?;
        wait_all_complete(&peers).await?;
        let s = swarm
            .wait_stats("5 seeders and 0 leechers", Duration::from_secs(30), |s| {
                s["seeders"] == 5 && s["leechers"] == 0 && s["completed"] == 4
            })
            .await?;
        ensure!(s["torrents"] == 1, "stats: {s}");
        let m = swarm.metrics().await?;
        for (name, want) in [
            ("kpbt_tracker_completed_total", 4.0),
            ("kpbt_tracker_seeders", 5.0),
            ("kpbt_tracker_leechers", 0.0),
            ("kpbt_tracker_torrents", 1.0),
        ] {
            ensure!(
                metric(&m, name) == Some(want),
                "{name}: {:?}, want {want}\n{m}",
                metric(&m, name)
            );
        }
        // Clients keep announcing, so the two views are read at different moments: the
        // /stats figure read before /metrics can only be smaller or equal, the one read
        // after only larger or equal. Both fields must exist.
        let announces = metric(&m, "kpbt_tracker_announces_total")
            .ok_or_else(|| anyhow::anyhow!("no kpbt_tracker_announces_total in\n{m}"))?;
        let before = s["announces"]
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("/stats has no announces: {s}"))?;
        let after = swarm.stats().await?["announces"]
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("/stats has no announces"))?;
        ensure!(
            announces >= 9.0 && before <= announces && announces <= after,
            "announces: stats {before} then metrics {announces} then stats {after}"
        );
        // A leecher that stops cleanly (SIGTERM) announces `stopped`: both views drop it.
        let gone = peers.pop().expect("4 leechers");
        gone.container.stop().await?;
        let s = swarm
            .wait_stats(
                "4 seeders after a clean stop",
                Duration::from_secs(30),
                |s| s["seeders"] == 4,
            )
            .await?;
        let m = swarm.metrics().await?;
        ensure!(
            metric(&m, "kpbt_tracker_seeders") == Some(4.0),
            "metrics after stop:\n{m}"
        );
        ensure!(s["completed"] == 4 && metric(&m, "kpbt_tracker_completed_total") == Some(4.0));
        Ok(())
    })
    .await;
}
