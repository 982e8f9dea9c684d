//! In-process end-to-end tests: our seeder and our leecher on loopback, byte-compared;
//! a resumed download; a scripted malicious peer that gets banned.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_file_download_from_our_seeder() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // 3 MiB + a ragged tail: short last piece and short last block.
    let content = data(3 * 1024 * 1024 + 12_345, 1);
    let meta = make_torrent(
        "single.bin",
        64 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    // Seed-only, as `kpbt-client seed` runs: read-only files, nothing written.
    let mut seed_cfg = config(seed_dir.path(), vec![]);
    seed_cfg.seed_only = true;
    let seeder = kpbt_client::start(meta.clone(), seed_cfg).await.unwrap();
    assert!(seeder.is_complete(), "seeder verified its data");
    let mut leecher = kpbt_client::start(meta, config(out.path(), vec![addr_of(&seeder)]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    let s = leecher.shutdown().await.unwrap();
    assert!(s.complete);
    assert_eq!(s.downloaded, content.len() as u64);
    assert_eq!(
        std::fs::read(out.path().join("single.bin")).unwrap(),
        content
    );
    let seeder = seeder.shutdown().await.unwrap();
    assert!(seeder.uploaded >= content.len() as u64);
}

#[tokio::test]
async fn a_taken_port_moves_on_only_when_fallback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent("f.bin", 16 * 1024, &[(vec![], data(20_000, 3))], dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(dir.path(), vec![]);
    cfg.listen = taken.local_addr().unwrap();
    match kpbt_client::start(meta.clone(), cfg.clone()).await {
        Err(kpbt_client::ClientError::Bind { addr, .. }) => assert_eq!(addr, cfg.listen),
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("bound a taken port"),
    }
    cfg.listen_fallback = true;
    let h = kpbt_client::start(meta, cfg.clone()).await.unwrap();
    assert_ne!(h.listen_addr().port(), cfg.listen.port());
    assert_eq!(h.listen_addr().ip(), cfg.listen.ip(), "same bind address");
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_download_with_empty_and_nested_files() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let files = vec![
        (vec!["a.bin"], data(100_003, 2)),
        (vec!["sub", "empty"], vec![]),
        (vec!["sub", "deeper", "c.bin"], data(1, 3)),
        (vec!["sub", "d.txt"], data(16_383, 4)),
        (vec!["z.bin"], data(700_001, 5)),
    ];
    let meta = make_torrent("multi", 32 * 1024, &files, seed_dir.path());
    let seeder = kpbt_client::start(meta.clone(), config(seed_dir.path(), vec![]))
        .await
        .unwrap();
    let mut leecher = kpbt_client::start(meta, config(out.path(), vec![addr_of(&seeder)]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    leecher.shutdown().await.unwrap();
    for (p, d) in &files {
        let path = p
            .iter()
            .fold(out.path().join("multi"), |acc, c| acc.join(c));
        assert_eq!(&std::fs::read(&path).unwrap(), d, "{}", path.display());
    }
    seeder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_verifies_existing_data_and_fetches_only_missing_pieces() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let piece = 32 * 1024;
    let content = data(40 * piece + 777, 6);
    let meta = make_torrent(
        "r.bin",
        piece as u32,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    // The first 30 pieces are already there, the rest is garbage of the right length.
    let mut partial = content[..30 * piece].to_vec();
    partial.extend(std::iter::repeat_n(0xAAu8, content.len() - partial.len()));
    std::fs::write(out.path().join("r.bin"), &partial).unwrap();
    // The leecher starts without peers so its verified state can be checked first;
    // the seeder then dials it.
    let mut leecher = kpbt_client::start(meta.clone(), config(out.path(), vec![]))
        .await
        .unwrap();
    assert_eq!(leecher.summary().pieces_verified, 30);
    let seeder = kpbt_client::start(meta, config(seed_dir.path(), vec![addr_of(&leecher)]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    let s = leecher.shutdown().await.unwrap();
    assert_eq!(
        s.downloaded,
        (content.len() - 30 * piece) as u64,
        "only missing pieces fetched"
    );
    assert_eq!(std::fs::read(out.path().join("r.bin")).unwrap(), content);
    seeder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_share_a_download() {
    // Two leechers start together from one seeder; both must complete with exact bytes.
    let seed_dir = tempfile::tempdir().unwrap();
    let (o1, o2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let content = data(2 * 1024 * 1024 + 5, 7);
    let meta = make_torrent(
        "s.bin",
        16 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(seed_dir.path(), vec![]))
        .await
        .unwrap();
    let mut l1 = kpbt_client::start(meta.clone(), config(o1.path(), vec![addr_of(&seeder)]))
        .await
        .unwrap();
    let mut l2 = kpbt_client::start(
        meta,
        config(o2.path(), vec![addr_of(&seeder), addr_of(&l1)]),
    )
    .await
    .unwrap();
    wait_complete(&mut l1, 60).await;
    wait_complete(&mut l2, 60).await;
    for o in [&o1, &o2] {
        assert_eq!(std::fs::read(o.path().join("s.bin")).unwrap(), content);
    }
    l1.shutdown().await.unwrap();
    l2.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();
}

/// IPv6: a seeder on [::1] and a leecher that dials it there; a default listener
/// (`::`) takes IPv4 peers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_over_ipv6_loopback_and_dual_stack_listener() {
    let seed_dir = tempfile::tempdir().unwrap();
    let content = data(1024 * 1024 + 5, 61);
    let meta = make_torrent(
        "v6.bin",
        32 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let mut seed_cfg = config(seed_dir.path(), vec![]);
    seed_cfg.listen = "[::1]:0".parse().unwrap();
    let seeder = kpbt_client::start(meta.clone(), seed_cfg).await.unwrap();
    let v6: std::net::SocketAddr = format!("[::1]:{}", seeder.listen_addr().port())
        .parse()
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut leecher = kpbt_client::start(meta.clone(), config(out.path(), vec![v6]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    assert_eq!(std::fs::read(out.path().join("v6.bin")).unwrap(), content);
    assert!(
        leecher.peers().iter().all(|p| p.is_ipv6()),
        "{:?}",
        leecher.peers()
    );
    leecher.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();

    // The library default listens on `::`; an IPv4 peer reaches it and shows as IPv4.
    let mut dual_cfg = config(seed_dir.path(), vec![]);
    dual_cfg.listen = kpbt_client::Config::new(seed_dir.path()).listen;
    let dual = kpbt_client::start(meta.clone(), dual_cfg).await.unwrap();
    assert!(dual.listen_addr().is_ipv6(), "{}", dual.listen_addr());
    let out4 = tempfile::tempdir().unwrap();
    let v4: std::net::SocketAddr = format!("127.0.0.1:{}", dual.listen_addr().port())
        .parse()
        .unwrap();
    let mut l4 = kpbt_client::start(meta, config(out4.path(), vec![v4]))
        .await
        .unwrap();
    wait_complete(&mut l4, 60).await;
    assert_eq!(std::fs::read(out4.path().join("v6.bin")).unwrap(), content);
    let seen = dual.peers();
    assert!(
        seen.iter()
            .all(|p| p.ip() == std::net::IpAddr::from([127, 0, 0, 1])),
        "canonical IPv4: {seen:?}"
    );
    l4.shutdown().await.unwrap();
    dual.shutdown().await.unwrap();
}
