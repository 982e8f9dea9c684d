//! A minimal scripted BitTorrent peer on one TcpStream, for tests that misbehave on purpose.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use kpbt_proto::wire::{decode_message, Handshake, Message, HANDSHAKE_LEN};
use kpbt_proto::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal scripted peer on one TcpStream.
pub struct Wire {
    pub s: TcpStream,
    pub rbuf: BytesMut,
}

impl Wire {
    pub async fn connect(addr: SocketAddr, ih: InfoHash) -> Wire {
        Self::connect_as(addr, ih, PeerId([9; 20])).await
    }

    /// Connects and completes the handshake under `peer_id`.
    pub async fn connect_as(addr: SocketAddr, ih: InfoHash, peer_id: PeerId) -> Wire {
        Self::connect_with(addr, Handshake::new(ih, peer_id)).await
    }

    /// Connects announcing the extension protocol (BEP 10), as magnet clients do.
    pub async fn connect_with_extensions(addr: SocketAddr, ih: InfoHash) -> Wire {
        Self::connect_with(
            addr,
            Handshake::new(ih, PeerId([8; 20])).with_extension_protocol(),
        )
        .await
    }

    pub async fn connect_with(addr: SocketAddr, ours: Handshake) -> Wire {
        let ih = ours.info_hash;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&ours.encode()).await.unwrap();
        let mut hs = [0u8; HANDSHAKE_LEN];
        s.read_exact(&mut hs).await.unwrap();
        assert_eq!(Handshake::decode(&hs).unwrap().info_hash, ih);
        Wire {
            s,
            rbuf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, m: Message) {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        self.s.write_all(&b).await.unwrap();
    }

    /// Next message, or None when the other side closed the connection.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = decode_message(&mut self.rbuf, 1 << 20).unwrap() {
                return Some(m);
            }
            match self.s.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the peer closes; panics if it does not within 10 s.
    pub async fn expect_closed(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.recv().await.is_some() {}
        })
        .await
        .expect("peer should have disconnected us");
    }
}
