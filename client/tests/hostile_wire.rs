//! Hostile peer-wire input the client must refuse: foreign handshakes, oversized frames,
//! malformed bitfields, unsolicited data, and connection floods from one address.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::wire::Wire;
use common::*;
use kpbt_client::TorrentHandle;
use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::wire::{Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A leecher with nothing yet (so it sends no bitfield and requests nothing from us).
async fn empty_leecher(
    max_connections_per_ip: Option<usize>,
) -> (tempfile::TempDir, TorrentHandle, Metainfo) {
    let src = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        "target.bin",
        16 * 1024,
        &[(vec![], data(3 * 16 * 1024 + 5, 21))],
        src.path(),
    );
    let mut cfg = config(dir.path(), vec![]);
    if let Some(n) = max_connections_per_ip {
        cfg.max_connections_per_ip = n;
    }
    let leecher = kpbt_client::start(meta.clone(), cfg).await.unwrap();
    (dir, leecher, meta)
}

/// Reads until EOF; fails if the client keeps the connection open for 10 s. Returns
/// everything it sent.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .expect("the client should have closed the connection")
        .ok();
    got
}

async fn raw_handshake(addr: SocketAddr, bytes: [u8; HANDSHAKE_LEN]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    read_until_closed(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_for_another_torrent_is_refused() {
    let (_d, leecher, _) = empty_leecher(None).await;
    let foreign = Handshake::new(InfoHash([0xee; 20]), PeerId([1; 20])).encode();
    let reply = raw_handshake(addr_of(&leecher), foreign).await;
    // Incoming handshakes are checked before ours is sent: the client does not even
    // confirm which torrent it serves.
    assert!(reply.is_empty(), "got {} bytes", reply.len());
    leecher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_with_wrong_protocol_string_is_refused() {
    let (_d, leecher, meta) = empty_leecher(None).await;
    let mut bytes = Handshake::new(meta.info_hash, PeerId([1; 20])).encode();
    bytes[1..20].copy_from_slice(b"BitTorrent protocoX");
    let reply = raw_handshake(addr_of(&leecher), bytes).await;
    assert!(reply.is_empty(), "got {} bytes", reply.len());
    leecher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_length_disconnects() {
    let (_d, leecher, meta) = empty_leecher(None).await;
    let mut w = Wire::connect(addr_of(&leecher), meta.info_hash).await;
    // A 2 GiB piece frame announced: refused from the length prefix alone.
    w.s.write_all(&[0x7f, 0xff, 0xff, 0xff, 7]).await.unwrap();
    w.expect_closed().await;
    leecher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitfield_of_the_wrong_size_disconnects() {
    let (_d, leecher, meta) = empty_leecher(None).await;
    let mut w = Wire::connect(addr_of(&leecher), meta.info_hash).await;
    // 4 pieces need exactly one byte.
    w.send(Message::Bitfield(Bytes::from_static(&[0xf0, 0x00])))
        .await;
    w.expect_closed().await;
    leecher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_unsolicited_blocks_disconnects() {
    let (_d, leecher, meta) = empty_leecher(None).await;
    let mut w = Wire::connect(addr_of(&leecher), meta.info_hash).await;
    // We never advertised pieces, so nothing was requested from us; every block is
    // unsolicited. A few are tolerated (late answers to cancels), a stream is not.
    for i in 0..100u32 {
        let sent = async {
            let mut b = bytes::BytesMut::new();
            Message::Piece {
                index: i % 4,
                begin: 0,
                data: Bytes::from(vec![0xab; 1024]),
            }
            .encode(&mut b);
            w.s.write_all(&b).await
        };
        if sent.await.is_err() {
            break; // already disconnected
        }
    }
    w.expect_closed().await;
    assert_eq!(
        leecher.summary().pieces_verified,
        0,
        "nothing unsolicited counted"
    );
    leecher.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_one_address_are_capped() {
    let (_d, leecher, meta) = empty_leecher(Some(2)).await;
    let addr = addr_of(&leecher);
    let _first = Wire::connect_as(addr, meta.info_hash, PeerId([1; 20])).await;
    let _second = Wire::connect_as(addr, meta.info_hash, PeerId([2; 20])).await;
    let third = Handshake::new(meta.info_hash, PeerId([3; 20])).encode();
    let reply = raw_handshake(addr, third).await;
    assert!(
        reply.is_empty(),
        "the third connection is closed before any handshake"
    );
    leecher.shutdown().await.unwrap();
}
