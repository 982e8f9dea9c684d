//! Containerized web-seed swarm: an nginx origin is the only source of the payload (no
//! kpbt seeder), and the leechers share what each fetched from it.

use std::time::Duration;

use anyhow::ensure;
use kpbt_integration::docker::run_test;
use kpbt_integration::origin::Origin;
use kpbt_integration::swarm::{Announce, Role, Swarm};

const MIB: u64 = 1024 * 1024;
const PIECE: u32 = 256 * 1024;
const LEECHERS: usize = 4;

/// Four leechers with `--origin` and a tracker, nothing else: all complete with exact
/// bytes, and the origin sends well under the four copies that four plain HTTP downloads
/// would take (nginx caps each connection at 2 MiB/s, so the leechers overlap and the
/// peers-first policy has something to share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_alone_seeds_four_leechers_that_share() {
    run_test(
        "an_origin_alone_seeds_four_leechers_that_share",
        Duration::from_secs(420),
        async {
            let swarm = Swarm::new("origin", 24 * MIB, PIECE).await?;
            let origin = Origin::start(&swarm).await?;
            let mut peers = Vec::new();
            for i in 1..=LEECHERS {
                peers.push(
                    swarm
                        .start_peer_with_args(
                            &format!("leecher{i}"),
                            Role::Leecher,
                            None,
                            Announce::Tiers,
                            &["--origin", &origin.url],
                        )
                        .await?,
                );
            }
            for p in &peers {
                p.wait_complete(Duration::from_secs(240)).await?;
            }
            for p in &peers {
                swarm.assert_same_payload(p);
            }
            let payload = swarm.meta.info.total_length;
            let served = origin.bytes_served().await?;
            let copies = served as f64 / payload as f64;
            eprintln!(
                "origin sent {served} bytes = {copies:.2} copies of the {payload}-byte payload to {LEECHERS} leechers"
            );
            ensure!(
                served >= payload,
                "the origin sent {served} bytes, less than the payload ({payload}): its log does not count what it served:\n{}",
                origin.logs().await
            );
            // Four plain HTTP downloads take 4.0; the benchmark sees about 1.5. The
            // leechers hold four exact copies, so whatever the origin did not send
            // (here at least 1.5 copies) came from peers: there is no seeder.
            ensure!(
                copies <= 2.5,
                "the origin sent {copies:.2} copies of the payload to {LEECHERS} leechers (at most 2.5 expected): the leechers did not share"
            );
            Ok(())
        },
    )
    .await;
}
