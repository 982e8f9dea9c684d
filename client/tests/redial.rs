//! Dialling a peer again after it turned us away: a leecher given a seeder's address
//! before the seeder is up (connection refused) dials it again within seconds, not
//! after a fixed quarter minute, and completes, bytes compared.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refused_the_first_dial_is_dialled_again_soon() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let content = data(1024 * 1024 + 17, 5);
    let meta = make_torrent(
        "late.bin",
        64 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let port = kpbt_testkit::free_port();
    let seeder_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Nothing listens there yet: the first dial is refused.
    let mut leecher = kpbt_client::start(meta.clone(), config(out.path(), vec![seeder_addr]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut seed_cfg = config(seed_dir.path(), vec![]);
    seed_cfg.listen = seeder_addr;
    seed_cfg.seed_only = true;
    let seeder = kpbt_client::start(meta, seed_cfg).await.unwrap();
    // Redials come at 1, 2, 4 s... after the refusals; the old fixed wait was 15 s.
    wait_complete(&mut leecher, 10).await;
    assert_eq!(std::fs::read(out.path().join("late.bin")).unwrap(), content);
    leecher.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();
}
