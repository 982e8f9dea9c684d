//! Peer exchange (BEP 11) and the Fast extension (BEP 6): a newcomer told of one peer
//! finds a third through PEX; a private torrent exchanges no peers; a seeder opens with
//! have-all and rejects requests while choking; PEX floods and oversized lists are
//! ignored or end the connection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::Wire;
use common::*;
use kpbt_proto::extension::{ExtendedHandshake, PexMessage, HANDSHAKE_ID};
use kpbt_proto::wire::{BlockRequest, Handshake, Message};
use kpbt_proto::PeerId;

/// Three peers: A and B seed; A dials B; N knows only A.
async fn three_peers(
    private: bool,
) -> (
    Vec<tempfile::TempDir>,
    kpbt_client::TorrentHandle,
    kpbt_client::TorrentHandle,
    kpbt_client::TorrentHandle,
) {
    let a_dir = tempfile::tempdir().unwrap();
    let content = data(600 * 1024, 31);
    let meta = make_torrent_opts(
        "pex.bin",
        16 * 1024,
        &[(vec![], content.clone())],
        a_dir.path(),
        private,
    );
    let b_dir = tempfile::tempdir().unwrap();
    std::fs::write(b_dir.path().join("pex.bin"), &content).unwrap();
    let b = kpbt_client::start(meta.clone(), config(b_dir.path(), vec![]))
        .await
        .unwrap();
    let a = kpbt_client::start(meta.clone(), config(a_dir.path(), vec![addr_of(&b)]))
        .await
        .unwrap();
    // A is connected to B before the newcomer arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.peers().is_empty() {
        assert!(Instant::now() < deadline, "A never connected to B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n_dir = tempfile::tempdir().unwrap();
    let mut n_cfg = config(n_dir.path(), vec![addr_of(&a)]);
    // Slow enough that N is still downloading when PEX arrives.
    n_cfg.download_limit = Some(100 * 1024);
    let n = kpbt_client::start(meta, n_cfg).await.unwrap();
    (vec![a_dir, b_dir, n_dir], a, b, n)
}

fn port_of(h: &kpbt_client::TorrentHandle) -> u16 {
    h.listen_addr().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_finds_the_third_peer_through_pex() {
    let (_dirs, a, b, n) = three_peers(false).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if n.peers().iter().any(|p| p.port() == port_of(&b)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "N never learned B: N has {:?}",
            n.peers()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in [n, a, b] {
        h.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_torrent_exchanges_no_peers() {
    let (_dirs, a, b, n) = three_peers(true).await;
    // Well past the first PEX message A would send (one tick after the handshakes).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ports: Vec<u16> = n.peers().iter().map(SocketAddr::port).collect();
    assert!(
        !ports.contains(&port_of(&b)),
        "N learned B although the torrent is private: {ports:?}"
    );
    assert!(!n.peers().is_empty(), "N is still connected to A");
    // On the wire: no ut_pex offered, and a ut_pex message is ignored (not fatal).
    let mut w = Wire::connect_with(
        addr_of(&a),
        Handshake::new(n_info_hash(&a), PeerId([5; 20])).with_extension_protocol(),
    )
    .await;
    let hs = next_extended_handshake(&mut w).await;
    assert_eq!(hs.id_of("ut_pex"), None);
    assert!(hs.id_of("ut_metadata").is_some());
    w.send(ext_handshake_with_pex()).await;
    w.send(pex_message(&[addr_of(&b)])).await;
    w.send(Message::Interested).await;
    expect_unchoke(&mut w, "after an unasked-for ut_pex").await;
    for h in [n, a, b] {
        h.shutdown().await.unwrap();
    }
}

fn n_info_hash(h: &kpbt_client::TorrentHandle) -> kpbt_proto::InfoHash {
    h.info_hash()
}

/// Reads until the peer unchokes us: proof the connection survived what came before.
async fn expect_unchoke(w: &mut Wire, what: &str) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match w.recv().await {
                Some(Message::Unchoke) => return,
                Some(_) => continue,
                None => panic!("disconnected {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no unchoke {what}"));
}

fn ext_handshake_with_pex() -> Message {
    let hs = ExtendedHandshake {
        extensions: vec![("ut_pex".into(), 9)],
        ..Default::default()
    };
    Message::Extended {
        id: HANDSHAKE_ID,
        payload: hs.encode().into(),
    }
}

/// A ut_pex message sent under the id kpbt advertises (1).
fn pex_message(added: &[SocketAddr]) -> Message {
    let m = PexMessage {
        added: added.iter().map(|a| (*a, 0)).collect(),
        dropped: Vec::new(),
    };
    Message::Extended {
        id: 1,
        payload: m.encode().into(),
    }
}

async fn next_extended_handshake(w: &mut Wire) -> ExtendedHandshake {
    loop {
        match w.recv().await.expect("connection open") {
            Message::Extended {
                id: HANDSHAKE_ID,
                payload,
            } => return ExtendedHandshake::decode(&payload).unwrap(),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn pex_floods_are_ignored_and_oversized_lists_end_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        "f.bin",
        16 * 1024,
        &[(vec![], data(100_000, 3))],
        dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    let mut w = Wire::connect_with_extensions(addr_of(&seeder), meta.info_hash).await;
    let hs = next_extended_handshake(&mut w).await;
    assert_eq!(hs.id_of("ut_pex"), Some(1), "public torrents offer PEX");
    w.send(ext_handshake_with_pex()).await;
    // Two messages at once: the second is ignored, the connection stays.
    let junk: Vec<SocketAddr> = (1..=50)
        .map(|i| SocketAddr::from(([10, 9, 0, i as u8], 1)))
        .collect();
    w.send(pex_message(&junk)).await;
    w.send(pex_message(&junk)).await;
    w.send(Message::Interested).await;
    expect_unchoke(&mut w, "after a second PEX message soon after the first").await;
    // A list over the 200-peer bound is refused by the decoder: disconnect.
    let mut big = Vec::new();
    for i in 0..201u32 {
        big.extend_from_slice(&i.to_be_bytes());
        big.extend_from_slice(&[0x1a, 0xe1]);
    }
    let mut payload = b"d5:added".to_vec();
    payload.extend_from_slice(format!("{}:", big.len()).as_bytes());
    payload.extend_from_slice(&big);
    payload.push(b'e');
    // (Another peer id: a second connection under the first one's is a duplicate.)
    let mut w2 = Wire::connect_with(
        addr_of(&seeder),
        Handshake::new(meta.info_hash, PeerId([3; 20])).with_extension_protocol(),
    )
    .await;
    w2.send(ext_handshake_with_pex()).await;
    w2.send(Message::Extended {
        id: 1,
        payload: Bytes::from(payload),
    })
    .await;
    w2.expect_closed().await;
    seeder.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_fast_seeder_says_have_all_and_rejects_requests_while_choking() {
    let dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(
        "fast.bin",
        16 * 1024,
        &[(vec![], data(200_000, 4))],
        dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    let mut w = Wire::connect_with(
        addr_of(&seeder),
        Handshake::new(meta.info_hash, PeerId([4; 20])).with_fast(),
    )
    .await;
    // No extension protocol asked for, so the first message is the have-all.
    assert_eq!(w.recv().await, Some(Message::HaveAll));
    // Not interested, so choked: a request gets a reject, not silence.
    let r = BlockRequest {
        index: 1,
        begin: 0,
        length: 16 * 1024,
    };
    w.send(Message::Request(r)).await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match w.recv().await.expect("open") {
                Message::Reject(x) => return x,
                Message::KeepAlive => continue,
                other => panic!("expected a reject, got {other:?}"),
            }
        }
    })
    .await
    .expect("reject within 5 s");
    assert_eq!(got, r);
    // Without the Fast bit: a plain bitfield, and have-all is a protocol error.
    let mut plain = Wire::connect(addr_of(&seeder), meta.info_hash).await;
    assert!(matches!(plain.recv().await, Some(Message::Bitfield(_))));
    plain.send(Message::HaveAll).await;
    plain.expect_closed().await;
    seeder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_peers_download_from_each_other() {
    let seed_dir = tempfile::tempdir().unwrap();
    let content = data(1024 * 1024 + 7, 6);
    let meta = make_torrent(
        "both.bin",
        32 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(seed_dir.path(), vec![]))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut leecher = kpbt_client::start(meta, config(out.path(), vec![addr_of(&seeder)]))
        .await
        .unwrap();
    wait_complete(&mut leecher, 60).await;
    assert_eq!(std::fs::read(out.path().join("both.bin")).unwrap(), content);
    leecher.shutdown().await.unwrap();
    seeder.shutdown().await.unwrap();
}

/// A seeder that keeps us choked but allows piece 2 fast (BEP 6): the leecher's first
/// request, made while choked, is for piece 2; once unchoked it gets the rest, bytes
/// compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_fast_pieces_are_requested_while_choked() {
    use kpbt_proto::wire::HANDSHAKE_LEN;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let content = data(5 * 16 * 1024, 8);
    let meta = make_torrent(
        "allowed.bin",
        16 * 1024,
        &[(vec![], content.clone())],
        dir.path(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let seeder_addr = listener.local_addr().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut leecher = kpbt_client::start(meta.clone(), config(out.path(), vec![seeder_addr]))
        .await
        .unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let mut hs = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut hs).await.unwrap();
    assert!(Handshake::decode(&hs).unwrap().supports_fast());
    s.write_all(
        &Handshake::new(meta.info_hash, PeerId([5; 20]))
            .with_fast()
            .encode(),
    )
    .await
    .unwrap();
    let mut w = Wire {
        s,
        rbuf: bytes::BytesMut::new(),
    };
    w.send(Message::HaveAll).await;
    w.send(Message::AllowedFast(2)).await;
    // Choked: only piece 2 may be asked for.
    let serve = |r: BlockRequest| {
        let at = (r.index * 16 * 1024 + r.begin) as usize;
        Message::Piece {
            index: r.index,
            begin: r.begin,
            data: bytes::Bytes::copy_from_slice(&content[at..at + r.length as usize]),
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.recv().await.expect("open") {
                Message::Request(r) => return r,
                _ => continue,
            }
        }
    })
    .await
    .expect("a request while choked");
    assert_eq!(first.index, 2, "{first:?}");
    w.send(serve(first)).await;
    // Then unchoked: the rest, each request answered.
    w.send(Message::Unchoke).await;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                m = w.recv() => match m {
                    Some(Message::Request(r)) => w.send(serve(r)).await,
                    Some(_) => {}
                    None => break,
                },
                r = leecher.wait_complete() => { r.unwrap(); break; }
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the leecher did not complete");
    assert_eq!(
        std::fs::read(out.path().join("allowed.bin")).unwrap(),
        content
    );
    leecher.shutdown().await.unwrap();
}
