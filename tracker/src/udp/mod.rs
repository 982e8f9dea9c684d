//! The UDP front end (BEP 15 with BEP 41): socket threads that feed datagrams to
//! [`handler`], which answers from the same [`crate::AppState`] the HTTP front end uses.
//!
//! Each socket is served by `workers` plain threads doing blocking `recv_from` /
//! `send_to` on clones of it (the kernel hands each datagram to one of them): two system
//! calls per datagram and nothing else, where a tokio `UdpSocket` loop adds readiness
//! polling and task wake-ups on a runtime shared with other work. (A tokio variant was not
//! measured; the server CPU cost per response is in docs/benchmarks.md.) Each thread owns
//! its receive and reply buffers, so a datagram costs no allocation beyond what the
//! store's peer selection returns.

mod handler;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kpbt_proto::udp::{ConnectionIdKey, MAX_DATAGRAM};

pub use handler::{BAD_CONNECTION_ID, BAD_PATH};

use crate::AppState;

/// How long a thread blocks in `recv_from` before looking at the stop flag; stopping
/// normally wakes threads at once with a datagram, so this only bounds a missed wake-up.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// Socket receive buffer asked for, so bursts queue instead of being dropped (the kernel
/// caps it at net.core.rmem_max).
const RECV_BUFFER_BYTES: libc::c_int = 4 << 20;

/// Running UDP sockets; dropping it stops and joins their threads.
pub struct UdpServer {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<(SocketAddr, JoinHandle<()>)>,
}

impl UdpServer {
    /// Serves every socket in `sockets` (already bound) with `threads_per_socket` threads
    /// each. The connection-id key comes from the config, or is random for this process.
    pub fn start(
        state: Arc<AppState>,
        sockets: Vec<UdpSocket>,
        threads_per_socket: usize,
    ) -> io::Result<Self> {
        let key = state
            .config
            .connection_id_key()
            .unwrap_or_else(|| ConnectionIdKey::new(rand::random()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = UdpServer {
            addrs: Vec::new(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        for socket in sockets {
            let addr = socket.local_addr()?;
            socket.set_read_timeout(Some(IDLE_WAKE))?;
            set_recv_buffer(&socket);
            server.addrs.push(addr);
            for i in 0..threads_per_socket.max(1) {
                let s = socket.try_clone()?;
                let handler = handler::Handler::new(state.clone(), key.clone())?;
                let stop = stop.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("kpbt-udp-{}-{i}", addr.port()))
                    .spawn(move || serve(&s, handler, &stop))?;
                server.threads.push((addr, thread));
            }
        }
        Ok(server)
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops every thread and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (addr, _) in &self.threads {
            wake(*addr);
        }
        for (_, t) in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(socket: &UdpSocket, mut handler: handler::Handler, stop: &AtomicBool) {
    // One byte more than any request, so an oversized datagram shows as too long instead
    // of being silently truncated into something that parses.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) {
                    tracing::debug!("udp recv: {e}");
                }
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if handler.handle(from, &buf[..n], unix_now(), &mut out) {
            if let Err(e) = socket.send_to(&out, from) {
                tracing::debug!("udp send to {from}: {e}");
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends an empty datagram to a socket of ours so its blocked `recv_from` returns.
fn wake(addr: SocketAddr) {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        a => a,
    };
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // Best effort: a thread that misses it notices the stop within IDLE_WAKE.
    if let Ok(s) = UdpSocket::bind(local) {
        let _ = s.send_to(&[], target);
    }
}

fn set_recv_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open socket fd and a pointer to a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&RECV_BUFFER_BYTES as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("SO_RCVBUF: {}", io::Error::last_os_error());
    }
}
