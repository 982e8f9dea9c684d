//! Shared test harness: an in-process tracker on port 0, a raw HTTP client, and bencode
//! helpers built on `serde_bencode` (software we did not write) to check replies.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpbt_tracker::background::BackgroundTracker;
use kpbt_tracker::{AppState, Config};
use serde_bencode::value::Value;

/// A tracker on its own thread (see `kpbt_tracker::background`), ready to serve.
pub struct TestTracker {
    pub addrs: Vec<SocketAddr>,
    pub state: Arc<AppState>,
    _tracker: BackgroundTracker,
}

impl TestTracker {
    pub fn start(config: Config) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Self::start_on(config, vec![l])
    }

    pub fn start_on(config: Config, listeners: Vec<TcpListener>) -> Self {
        let tracker = BackgroundTracker::start(config, listeners).expect("tracker starts");
        let t = TestTracker {
            addrs: tracker.addrs().to_vec(),
            state: tracker.state().clone(),
            _tracker: tracker,
        };
        // Real readiness: the listener is bound already; wait until requests are served.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = get(t.addr(), "/health", &[]) {
                assert_eq!(r.status, 200);
                break;
            }
            assert!(Instant::now() < deadline, "tracker never became ready");
            std::thread::yield_now();
        }
        t
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn get(&self, path: &str) -> Reply {
        get(self.addr(), path, &[]).expect("HTTP request")
    }

    /// Announce/scrape: HTTP 200, text/plain, canonical bencode; returns the decoded dict.
    pub fn bget(&self, path: &str) -> Dict {
        bget_at(self.addr(), path, &[])
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 GET on a fresh connection (`Connection: close`), read to EOF.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

pub type Dict = HashMap<Vec<u8>, Value>;

/// GET, then check the reply is HTTP 200 text/plain holding canonical bencode (decoding
/// with serde_bencode and re-encoding gives the same bytes, so keys are sorted).
pub fn bget_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Dict {
    let r = get(addr, path, headers).expect("HTTP request");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    decode_canonical(&r.body)
}

pub fn decode_canonical(body: &[u8]) -> Dict {
    let v: Value = serde_bencode::from_bytes(body)
        .unwrap_or_else(|e| panic!("not bencode ({e}): {}", String::from_utf8_lossy(body)));
    let again = serde_bencode::to_bytes(&v).expect("re-encode");
    assert_eq!(
        again,
        body,
        "reply is not canonical bencode: {}",
        String::from_utf8_lossy(body)
    );
    match v {
        Value::Dict(d) => d,
        other => panic!("reply is not a dict: {other:?}"),
    }
}

pub fn int(d: &Dict, key: &str) -> i64 {
    match d.get(key.as_bytes()) {
        Some(Value::Int(i)) => *i,
        other => panic!("{key}: expected int, got {other:?} in {d:?}"),
    }
}

pub fn bytes<'a>(d: &'a Dict, key: &str) -> &'a [u8] {
    match d.get(key.as_bytes()) {
        Some(Value::Bytes(b)) => b,
        other => panic!("{key}: expected string, got {other:?}"),
    }
}

pub fn failure(d: &Dict) -> Option<String> {
    match d.get(&b"failure reason"[..]) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// The `peers` compact string as socket addresses.
pub fn compact_peers(d: &Dict) -> Vec<SocketAddr> {
    let b = bytes(d, "peers");
    assert_eq!(b.len() % 6, 0);
    b.chunks(6)
        .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
        .collect()
}

/// The `peers6` compact string as socket addresses (empty if absent).
pub fn compact_peers6(d: &Dict) -> Vec<SocketAddr> {
    let Some(Value::Bytes(b)) = d.get(&b"peers6"[..]) else {
        return Vec::new();
    };
    assert_eq!(b.len() % 18, 0);
    b.chunks(18)
        .map(|c| {
            let ip: [u8; 16] = c[..16].try_into().unwrap();
            SocketAddr::from((ip, u16::from_be_bytes([c[16], c[17]])))
        })
        .collect()
}

/// Percent-encodes every byte (what a cautious client does).
pub fn enc(b: &[u8]) -> String {
    b.iter().map(|x| format!("%{x:02X}")).collect()
}

/// `/announce?...` for torrent `[h; 20]`, peer id `[id; 20]`, listening on `port`.
pub fn announce_path(h: u8, id: u8, port: u16, left: u64, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        enc(&[h; 20]),
        enc(&[id; 20])
    )
}

/// A config for tests: a fast reaper is not needed (tests call `reap` with explicit times).
pub fn test_config() -> Config {
    Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers: 1,
        ..Config::default()
    }
}

/// Runs a store call to completion from a plain test thread (the memory store answers at
/// once; this only drives the future).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}
