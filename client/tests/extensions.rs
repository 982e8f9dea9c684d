//! The extension protocol against scripted peers: a magnet client fetches our info
//! dictionary over ut_metadata (BEP 9) and its SHA-1 is the info hash; malformed
//! extension messages end the connection; unknown ones are ignored.

mod common;

use bytes::Bytes;
use common::wire::Wire;
use common::*;
use kpbt_proto::extension::{
    metadata_piece_count, ExtendedHandshake, MetadataMessage, HANDSHAKE_ID,
};
use kpbt_proto::wire::Message;
use sha1::{Digest, Sha1};

/// A seeder of a torrent whose info dictionary spans several 16 KiB metadata pieces.
async fn seeder() -> (
    tempfile::TempDir,
    kpbt_client::TorrentHandle,
    kpbt_proto::metainfo::Metainfo,
) {
    let dir = tempfile::tempdir().unwrap();
    // 1,000 pieces of 16 KiB: 20,000 bytes of hashes, two metadata pieces.
    let meta = make_torrent(
        "big.bin",
        16 * 1024,
        &[(vec![], data(1000 * 16 * 1024, 5))],
        dir.path(),
    );
    assert!(meta.info_bytes.len() > 16 * 1024);
    let h = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    (dir, h, meta)
}

/// The next Extended message, skipping the base protocol's (bitfield, unchoke ...).
async fn next_extended(w: &mut Wire) -> (u8, Bytes) {
    loop {
        match w.recv().await.expect("connection open") {
            Message::Extended { id, payload } => return (id, payload),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_magnet_client_fetches_the_info_dictionary() {
    let (_dir, seeder, meta) = seeder().await;
    let mut w = Wire::connect_with_extensions(addr_of(&seeder), meta.info_hash).await;
    let (id, payload) = next_extended(&mut w).await;
    assert_eq!(id, HANDSHAKE_ID);
    let theirs = ExtendedHandshake::decode(&payload).unwrap();
    let ut_metadata = theirs.id_of("ut_metadata").expect("ut_metadata offered");
    let size = theirs.metadata_size.expect("metadata_size sent");
    assert_eq!(size as usize, meta.info_bytes.len());

    let ours = ExtendedHandshake {
        extensions: vec![("ut_metadata".into(), 7)],
        ..Default::default()
    };
    w.send(Message::Extended {
        id: HANDSHAKE_ID,
        payload: ours.encode().into(),
    })
    .await;
    // An extension we never agreed on is ignored, not fatal.
    w.send(Message::Extended {
        id: 99,
        payload: Bytes::from_static(b"junk"),
    })
    .await;
    let pieces = metadata_piece_count(size);
    let mut info = Vec::new();
    for piece in 0..pieces {
        let req = MetadataMessage::Request { piece }.encode();
        w.send(Message::Extended {
            id: ut_metadata,
            payload: req.into(),
        })
        .await;
        let (id, payload) = next_extended(&mut w).await;
        assert_eq!(id, 7, "replies use the id we asked for");
        match MetadataMessage::decode(&payload).unwrap() {
            MetadataMessage::Data {
                piece: p,
                total_size,
                data,
            } => {
                assert_eq!((p, total_size), (piece, size));
                info.extend_from_slice(data);
            }
            other => panic!("expected data, got {other:?}"),
        }
    }
    assert_eq!(<[u8; 20]>::from(Sha1::digest(&info)), meta.info_hash.0);

    let req = MetadataMessage::Request { piece: pieces }.encode();
    w.send(Message::Extended {
        id: ut_metadata,
        payload: req.into(),
    })
    .await;
    let (_, payload) = next_extended(&mut w).await;
    assert_eq!(
        MetadataMessage::decode(&payload).unwrap(),
        MetadataMessage::Reject { piece: pieces }
    );
    seeder.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_extension_messages_end_the_connection() {
    let (_dir, seeder, meta) = seeder().await;
    for payload in [
        &b"d1:md11:ut_metadata"[..],
        b"i5e",
        b"d13:metadata_sizei-4ee",
    ] {
        let mut w = Wire::connect_with_extensions(addr_of(&seeder), meta.info_hash).await;
        w.send(Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::copy_from_slice(payload),
        })
        .await;
        w.expect_closed().await;
    }
    // A metadata request before the peer's own handshake, and one that is not bencode.
    for (id, payload) in [
        (2u8, MetadataMessage::Request { piece: 0 }.encode()),
        (2, b"xx".to_vec()),
    ] {
        let mut w = Wire::connect_with_extensions(addr_of(&seeder), meta.info_hash).await;
        w.send(Message::Extended {
            id,
            payload: payload.into(),
        })
        .await;
        w.expect_closed().await;
    }
    assert!(
        seeder.is_complete(),
        "the seeder keeps serving after hostile peers"
    );
    seeder.shutdown().await.unwrap();
}
