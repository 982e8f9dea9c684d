//! `kpbt-tracker health [URL]`: a minimal HTTP/1.1 GET over a std `TcpStream`, so the
//! `FROM scratch` image (no shell, no curl) can probe itself from a compose healthcheck.
//!
//! Only what a probe needs: `http://host[:port][/path]`, one request, the status line.
//! The whole probe (resolve, connect, send, read) shares one deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The URL probed when none is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:6969/health";
/// How long the whole probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a probe failed; the message is what the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {secs} s", secs = TIMEOUT.as_secs())]
    Timeout { addr: SocketAddr },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} did not answer with HTTP: {line:?}")]
    NotHttp { addr: SocketAddr, line: String },
    #[error("unhealthy: {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// `http://host[:port][/path]` split into the authority (as sent in `Host`), the address
/// to resolve and the request target.
fn split_url(url: &str) -> Result<(&str, String, &str), ProbeError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        ProbeError::BadUrl(format!(
            "health URL {url:?} must start with http:// (e.g. {DEFAULT_URL})"
        ))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(ProbeError::BadUrl(format!(
            "health URL {url:?} has no host (e.g. {DEFAULT_URL})"
        )));
    }
    // A port is present if the text after the last ':' is digits and, for IPv6, that ':'
    // comes after the closing bracket.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.starts_with('[') || h.ends_with(']'))
    });
    let target = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, target, path))
}

/// GETs `url`; `Ok(status)` for a 2xx answer within [`TIMEOUT`], else the reason.
pub fn check(url: &str) -> Result<u16, ProbeError> {
    let deadline = Instant::now() + TIMEOUT;
    let (authority, target, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            host: authority.to_owned(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::Timeout { addr });
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let status = request(s, addr, authority, path, deadline)?;
                if (200..300).contains(&status) {
                    return Ok(status);
                }
                return Err(ProbeError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = Some(ProbeError::Timeout { addr });
            }
            Err(source) => last = Some(ProbeError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| ProbeError::Resolve {
        host: authority.to_owned(),
        source: std::io::Error::other("no addresses"),
    }))
}

/// Sends the request and reads the status line (the rest is not needed).
fn request(
    mut s: TcpStream,
    addr: SocketAddr,
    host: &str,
    path: &str,
    deadline: Instant,
) -> Result<u16, ProbeError> {
    let io = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            ProbeError::Timeout { addr }
        } else {
            ProbeError::Io { addr, source }
        }
    };
    let left = || {
        // A zero timeout means "block forever" to set_*_timeout; keep at least 1 ms.
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left())).map_err(io)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kpbt-tracker-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    // The status line fits in the first few hundred bytes; read at most 1 KiB of it.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        if Instant::now() >= deadline {
            return Err(ProbeError::Timeout { addr });
        }
        s.set_read_timeout(Some(left())).map_err(io)?;
        match s.read(&mut buf).map_err(io)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").to_owned();
    let mut parts = line.split(' ');
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(ProbeError::NotHttp { addr, line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_or_refused() {
        let ok = |u| {
            let (a, t, p) = split_url(u).unwrap();
            (a.to_owned(), t, p.to_owned())
        };
        assert_eq!(
            ok("http://127.0.0.1:6969/health"),
            (
                "127.0.0.1:6969".into(),
                "127.0.0.1:6969".into(),
                "/health".into()
            )
        );
        assert_eq!(
            ok("http://tracker"),
            ("tracker".into(), "tracker:80".into(), "/".into())
        );
        assert_eq!(ok("http://[::1]/x").1, "[::1]:80");
        assert_eq!(ok("http://[::1]:9/x").1, "[::1]:9");
        for bad in [
            "https://x/health",
            "127.0.0.1:6969",
            "http:///health",
            "http://u@h/",
        ] {
            assert!(
                matches!(split_url(bad), Err(ProbeError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
