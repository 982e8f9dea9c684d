//! Magnet downloads (BEP 9): the metadata is fetched from peers and checked against the
//! info hash; a peer serving wrong metadata is dropped and an honest one is used; the
//! `download` command takes a magnet link, saves the .torrent next to the data and
//! downloads it, bytes compared.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kpbt_client::magnet_fetch::{fetch, FetchConfig};
use kpbt_proto::extension::{ExtendedHandshake, MetadataMessage, METADATA_PIECE_LEN};
use kpbt_proto::magnet::Magnet;
use kpbt_proto::metainfo::Metainfo;
use kpbt_proto::wire::{decode_message, Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::PeerId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fetch_config(peers: Vec<SocketAddr>, secs: u64) -> FetchConfig {
    FetchConfig {
        peer_id: PeerId([7; 20]),
        port: 6881,
        peers,
        use_trackers: false,
        http: reqwest::Client::new(),
        timeout: Duration::from_secs(secs),
    }
}

fn magnet_of(meta: &Metainfo) -> Magnet {
    Magnet {
        info_hash: meta.info_hash,
        name: Some(meta.info.name.clone()),
        trackers: Vec::new(),
        peers: Vec::new(),
        web_seeds: Vec::new(),
    }
}

/// A peer that answers every metadata request with the right shape but `info` with
/// one byte flipped (or an oversized `metadata_size` when `oversize`).
async fn lying_peer(meta: &Metainfo, oversize: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut info = meta.info_bytes.clone();
    info[10] ^= 0x55;
    let ih = meta.info_hash;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let info = info.clone();
            tokio::spawn(async move {
                let mut hs = [0u8; HANDSHAKE_LEN];
                s.read_exact(&mut hs).await.unwrap();
                s.write_all(
                    &Handshake::new(ih, PeerId([6; 20]))
                        .with_extension_protocol()
                        .encode(),
                )
                .await
                .unwrap();
                let ext = ExtendedHandshake {
                    extensions: vec![("ut_metadata".into(), 3)],
                    metadata_size: Some(if oversize { 1 << 30 } else { info.len() as u32 }),
                    ..Default::default()
                };
                let mut out = BytesMut::new();
                Message::Extended {
                    id: 0,
                    payload: Bytes::from(ext.encode()),
                }
                .encode(&mut out);
                s.write_all(&out).await.unwrap();
                let mut buf = BytesMut::new();
                loop {
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    while let Ok(Some(m)) = decode_message(&mut buf, 1 << 20) {
                        let Message::Extended { id: 3, payload } = m else {
                            continue;
                        };
                        let Ok(MetadataMessage::Request { piece }) =
                            MetadataMessage::decode(&payload)
                        else {
                            continue;
                        };
                        let start = (piece * METADATA_PIECE_LEN) as usize;
                        let end = (start + METADATA_PIECE_LEN as usize).min(info.len());
                        let reply = MetadataMessage::Data {
                            piece,
                            total_size: info.len() as u32,
                            data: &info[start..end],
                        }
                        .encode();
                        let mut out = BytesMut::new();
                        // Our id for ut_metadata (the fetcher's handshake said 2).
                        Message::Extended {
                            id: 2,
                            payload: Bytes::from(reply),
                        }
                        .encode(&mut out);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_oversized_metadata_is_dropped_and_an_honest_peer_is_used() {
    let dir = tempfile::tempdir().unwrap();
    // 1,000 pieces: the info dictionary spans two metadata pieces.
    let meta = make_torrent(
        "big.bin",
        16 * 1024,
        &[(vec![], data(1000 * 16 * 1024, 8))],
        dir.path(),
    );
    let seeder = kpbt_client::start(meta.clone(), config(dir.path(), vec![]))
        .await
        .unwrap();
    let liar = lying_peer(&meta, false).await;
    let huge = lying_peer(&meta, true).await;
    // Only liars: no metadata, and a clear timeout error.
    let err = fetch(&magnet_of(&meta), fetch_config(vec![liar, huge], 3))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no peer delivered the metadata"),
        "{err}"
    );
    // Liars first, then the honest seeder: its copy is used and verified.
    let torrent = fetch(
        &magnet_of(&meta),
        fetch_config(vec![liar, huge, addr_of(&seeder)], 30),
    )
    .await
    .expect("metadata from the honest peer");
    let got = Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(got.info_hash, meta.info_hash);
    assert_eq!(got.info_bytes, meta.info_bytes);
    seeder.shutdown().await.unwrap();
}

#[test]
fn download_takes_a_magnet_link_saves_the_torrent_and_completes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seed_dir = tempfile::tempdir().unwrap();
    let content = data(2 * 1024 * 1024 + 99, 9);
    let meta = make_torrent(
        "via-magnet.bin",
        32 * 1024,
        &[(vec![], content.clone())],
        seed_dir.path(),
    );
    let seeder = rt
        .block_on(kpbt_client::start(
            meta.clone(),
            config(seed_dir.path(), vec![]),
        ))
        .unwrap();
    let link = Magnet {
        info_hash: meta.info_hash,
        name: Some("via-magnet.bin".into()),
        trackers: Vec::new(),
        peers: vec![addr_of(&seeder).to_string()],
        web_seeds: Vec::new(),
    }
    .to_uri();
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kpbt-client"))
        .args(["download", &link, "-o"])
        .arg(out.path())
        .args(["--no-trackers", "--port", "0", "--quiet"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(out.path().join("via-magnet.bin")).unwrap(),
        content
    );
    let saved =
        Metainfo::from_bytes(&std::fs::read(out.path().join("via-magnet.bin.torrent")).unwrap())
            .unwrap();
    assert_eq!(saved.info_hash, meta.info_hash);
    rt.block_on(seeder.shutdown()).unwrap();
}
