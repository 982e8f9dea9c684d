//! HTTP load generator for the memory benchmark: announces `peers` distinct peers over
//! `torrents` torrents to a tracker over pipelined keep-alive connections (reconnecting and
//! resending if the server closes, as opentracker does), with numwant=0.
//!
//! `load_peers ADDR PEERS TORRENTS [THREADS]` — or `load_peers --hashes TORRENTS` to print
//! the torrents' info hashes in hex (for an allowlist/whitelist file).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

fn hash_of(t: u32) -> [u8; 20] {
    let mut h = [0x5au8; 20];
    h[..4].copy_from_slice(&t.to_be_bytes());
    h[16..].copy_from_slice(&t.wrapping_mul(2_654_435_761).to_le_bytes());
    h
}

fn enc(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

fn request(i: u32, torrents: u32) -> Vec<u8> {
    let t = i % torrents;
    let n = i / torrents;
    let mut id = [b'p'; 20];
    id[..4].copy_from_slice(&i.to_be_bytes());
    // Peers of one torrent differ by port (all come from 127.0.0.1).
    let port = 1024 + n;
    format!(
        "GET /announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={}&compact=1&numwant=0&event=started HTTP/1.1\r\nHost: t\r\n\r\n",
        enc(&hash_of(t)),
        enc(&id),
        n % 2
    )
    .into_bytes()
}

/// Parses complete responses at the front of `buf`; returns (responses, failures, consumed).
fn parse_responses(buf: &[u8]) -> (usize, usize, usize) {
    let (mut n, mut failures, mut pos) = (0, 0, 0);
    while let Some(end) = buf[pos..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[pos..pos + end]).to_ascii_lowercase();
        let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        else {
            break; // no length: body runs to EOF; handled by the caller
        };
        let body = pos + end + 4;
        if buf.len() < body + len {
            break;
        }
        if buf[body..body + len].starts_with(b"d14:failure") {
            failures += 1;
        }
        n += 1;
        pos = body + len;
    }
    (n, failures, pos)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).ok();
    // A server that neither answers nor closes (opentracker, sometimes, after a pipelined
    // batch) counts as closed.
    c.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .ok();
    c
}

fn run(addr: SocketAddr, ids: Vec<u32>, torrents: u32) -> (usize, usize) {
    let (mut done, mut failures) = (0usize, 0usize);
    // Pipelined batches on keep-alive; once the server is seen closing after a reply
    // (opentracker does), one request per fresh connection.
    let mut batch_size = 64usize;
    let mut conn = connect(addr);
    let mut stalls = 0u32;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    while done < ids.len() {
        let batch = &ids[done..(done + batch_size).min(ids.len())];
        let mut out = Vec::with_capacity(batch.len() * 200);
        for &i in batch {
            out.extend_from_slice(&request(i, torrents));
        }
        let mut got = 0usize;
        let mut closed = conn.write_all(&out).is_err();
        buf.clear();
        while !closed && got < batch.len() {
            let r = conn.read(&mut chunk).unwrap_or(0);
            if r == 0 {
                closed = true;
                break;
            }
            buf.extend_from_slice(&chunk[..r]);
            let (n, f, used) = parse_responses(&buf);
            got += n;
            failures += f;
            buf.drain(..used);
        }
        done += got;
        if closed || batch_size == 1 {
            if closed {
                batch_size = 1;
            }
            conn = connect(addr);
        }
        stalls = if got == 0 { stalls + 1 } else { 0 };
        assert!(stalls < 100, "server keeps closing without answering");
    }
    (done, failures)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--hashes") {
        let torrents: u32 = args.get(1).and_then(|s| s.parse().ok()).expect("TORRENTS");
        let mut out = String::new();
        for t in 0..torrents {
            out.push_str(&hex_of(&hash_of(t)));
            out.push('\n');
        }
        print!("{out}");
        return;
    }
    let addr: SocketAddr = args.first().and_then(|s| s.parse().ok()).expect("ADDR");
    let peers: u32 = args.get(1).and_then(|s| s.parse().ok()).expect("PEERS");
    let torrents: u32 = args.get(2).and_then(|s| s.parse().ok()).expect("TORRENTS");
    let threads: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let ids: Vec<u32> = (0..peers).filter(|i| i % threads == k).collect();
            std::thread::spawn(move || run(addr, ids, torrents))
        })
        .collect();
    let (mut done, mut failures) = (0, 0);
    for h in handles {
        let (d, f) = h.join().expect("loader thread");
        done += d;
        failures += f;
    }
    println!(
        "load_peers: {done} announces ({failures} failures) in {:.1}s ({:.0}/s)",
        start.elapsed().as_secs_f64(),
        done as f64 / start.elapsed().as_secs_f64()
    );
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
