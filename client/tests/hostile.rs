//! Untrusted peers: a scripted peer that serves corrupt blocks is banned while the
//! download completes from an honest peer; peers that send bad requests or a bad
//! bitfield are disconnected.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::wire::Wire;
use common::*;
use kpbt_proto::wire::{BlockRequest, Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves every request with garbage; counts the blocks it sent.
async fn corrupt_seeder(listener: TcpListener, ih: InfoHash, pieces: u32, sent: Arc<AtomicU32>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut hs = [0u8; HANDSHAKE_LEN];
            if s.read_exact(&mut hs).await.is_err() {
                return;
            }
            if s.write_all(&Handshake::new(ih, PeerId([6; 20])).encode())
                .await
                .is_err()
            {
                return;
            }
            let mut w = Wire {
                s,
                rbuf: BytesMut::new(),
            };
            let full = kpbt_proto::wire::Bitfield::full(pieces);
            w.send(Message::Bitfield(Bytes::copy_from_slice(full.as_bytes())))
                .await;
            w.send(Message::Unchoke).await;
            while let Some(m) = w.recv().await {
                if let Message::Request(r) = m {
                    let data = Bytes::from(vec![0x55u8; r.length as usize]);
                    let mut b = BytesMut::new();
                    Message::Piece {
                        index: r.index,
                        begin: r.begin,
                        data,
                    }
                    .encode(&mut b);
                    if w.s.write_all(&b).await.is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_banned_and_download_completes_from_honest_peer() {
    let seed_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let content = data(2 * 1024 * 1024 + 99, 11);
    let meta = make_torrent(
        "victim.bin",
        32 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let honest = kpbt_client::start(meta.clone(), config(seed_dir.path(), vec![]))
        .await
        .unwrap();
    // 127.0.0.2 is loopback too, but a different IP, so banning it spares the honest seeder.
    let evil = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let sent = Arc::new(AtomicU32::new(0));
    tokio::spawn(corrupt_seeder(
        evil,
        meta.info_hash,
        meta.info.piece_count(),
        sent.clone(),
    ));

    let mut leecher =
        kpbt_client::start(meta, config(out.path(), vec![evil_addr, addr_of(&honest)]))
            .await
            .unwrap();
    wait_complete(&mut leecher, 60).await;
    let s = leecher.shutdown().await.unwrap();
    assert!(
        sent.load(Ordering::Relaxed) > 0,
        "the corrupt peer got to send data"
    );
    assert_eq!(
        s.banned,
        vec![evil_addr.ip()],
        "exactly the corrupt peer is banned"
    );
    assert_eq!(
        std::fs::read(out.path().join("victim.bin")).unwrap(),
        content
    );
    honest.shutdown().await.unwrap();
}

async fn seeder_and_wire() -> (tempfile::TempDir, kpbt_client::TorrentHandle, Wire, Vec<u8>) {
    let seed_dir = tempfile::tempdir().unwrap();
    let content = data(100_000, 12);
    let meta = make_torrent(
        "up.bin",
        32 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(seed_dir.path(), vec![]))
        .await
        .unwrap();
    let mut w = Wire::connect(addr_of(&seeder), meta.info_hash).await;
    match w.recv().await {
        Some(Message::Bitfield(b)) => assert_eq!(b.len(), 1, "4 pieces fit one byte"),
        other => panic!("expected bitfield, got {other:?}"),
    }
    w.send(Message::Interested).await;
    loop {
        match w.recv().await {
            Some(Message::Unchoke) => break,
            Some(_) => {}
            None => panic!("seeder closed before unchoking"),
        }
    }
    (seed_dir, seeder, w, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_serves_valid_requests_and_drops_oversized_ones() {
    let (_d, seeder, mut w, content) = seeder_and_wire().await;
    // Last piece (index 3) is short: 100_000 - 3*32768 = 1696 bytes.
    w.send(Message::Request(BlockRequest {
        index: 3,
        begin: 0,
        length: 1696,
    }))
    .await;
    w.send(Message::Request(BlockRequest {
        index: 1,
        begin: 16384,
        length: 16384,
    }))
    .await;
    let mut got = vec![];
    while got.len() < 2 {
        if let Some(Message::Piece { index, begin, data }) = w.recv().await {
            got.push((index, begin, data));
        }
    }
    got.sort_by_key(|g| g.0);
    assert_eq!(&got[0].2[..], &content[32768 + 16384..65536]);
    assert_eq!(&got[1].2[..], &content[98304..]);
    w.send(Message::Request(BlockRequest {
        index: 0,
        begin: 0,
        length: 32 * 1024,
    }))
    .await;
    w.expect_closed().await;
    seeder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_drops_requests_beyond_piece_or_index() {
    for bad in [
        BlockRequest {
            index: 3,
            begin: 0,
            length: 1697,
        }, // past the end of the short last piece
        BlockRequest {
            index: 4,
            begin: 0,
            length: 16384,
        }, // no such piece
    ] {
        let (_d, seeder, mut w, _) = seeder_and_wire().await;
        w.send(Message::Request(bad)).await;
        w.expect_closed().await;
        seeder.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bitfield_disconnects() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        "bf.bin",
        16 * 1024,
        &[(vec![], data(3 * 16384, 13))],
        src.path(),
    );
    let leecher = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    let mut w = Wire::connect(addr_of(&leecher), meta.info_hash).await;
    // 3 pieces: a spare bit (bit 3) set is a protocol violation.
    w.send(Message::Bitfield(Bytes::from_static(&[0b1111_0000])))
        .await;
    w.expect_closed().await;
    leecher.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_connection_gets_keepalives_and_silent_peer_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        "ka.bin",
        16 * 1024,
        &[(vec![], data(16384, 14))],
        src.path(),
    );
    let leecher = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    let mut w = Wire::connect(addr_of(&leecher), meta.info_hash).await;
    let t0 = tokio::time::Instant::now();
    // We say nothing at all; the client (which has no pieces, so sends no bitfield)
    // must keep the connection alive, then give up on us.
    let first = w.recv().await;
    assert_eq!(first, Some(Message::KeepAlive));
    let ka = t0.elapsed();
    assert!(
        ka >= Duration::from_secs(90) && ka < Duration::from_secs(95),
        "keep-alive after {ka:?}"
    );
    while w.recv().await.is_some() {}
    let gone = t0.elapsed();
    assert!(
        gone >= Duration::from_secs(180) && gone < Duration::from_secs(190),
        "dropped after {gone:?}"
    );
    leecher.shutdown().await.unwrap();
}
