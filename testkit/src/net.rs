//! Loopback networking helpers: free ports, TCP readiness, a minimal HTTP GET.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to :0, release).
///
/// There is an inherent race with other processes; the kernel does not reuse an
/// ephemeral port immediately, so in practice it is fine for tests.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// Polls `connect()` until something accepts on `addr` or `timeout` passes.
pub fn wait_for_tcp(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<()> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        for a in &addrs {
            if TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing accepted TCP connections on {addrs:?} within {timeout:?}"),
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Minimal blocking HTTP/1.0 GET of `path_and_query` (already percent-encoded) on
/// `addr`. Returns `(status, body)`. Enough to talk to trackers in tests.
pub fn http_get(
    addr: SocketAddr,
    path_and_query: &str,
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: kpbt-testkit\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad HTTP status line"))?;
    Ok((status, buf[split + 4..].to_vec()))
}
