//! A tracker on its own thread with its own actix System, for embedding and tests.
//!
//! [`crate::start`] must run inside an actix runtime; callers that live in plain threads
//! or in a tokio runtime of their own (the client's tests, the integration tests) use
//! this instead of each building the thread, System and shutdown dance themselves.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;

use crate::{AppState, Config, StartError};

/// A running tracker; dropping it stops the server and joins its thread.
pub struct BackgroundTracker {
    addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    state: Arc<AppState>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundTracker {
    /// Starts serving on `listeners` (already bound, so connections queue from now on).
    pub fn start(config: Config, listeners: Vec<TcpListener>) -> Result<Self, StartError> {
        Self::start_with_udp(config, listeners, Vec::new())
    }

    /// [`BackgroundTracker::start`] with UDP tracker sockets too.
    pub fn start_with_udp(
        config: Config,
        listeners: Vec<TcpListener>,
        udp_sockets: Vec<UdpSocket>,
    ) -> Result<Self, StartError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kpbt-tracker".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match crate::start_with_udp(config, listeners, udp_sockets) {
                        Ok(t) => {
                            let started = (
                                t.handle(),
                                t.shared_state(),
                                t.local_addrs().to_vec(),
                                t.udp_addrs().to_vec(),
                            );
                            let _ = tx.send(Ok(started));
                            if let Err(e) = t.wait().await {
                                tracing::error!("tracker stopped with an error: {e}");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })
            })?;
        match rx.recv() {
            Ok(Ok((handle, state, addrs, udp_addrs))) => Ok(Self {
                addrs,
                udp_addrs,
                state,
                handle,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Io(std::io::Error::other(
                    "tracker thread died while starting",
                )))
            }
        }
    }

    /// Binds 127.0.0.1:0 and starts there.
    pub fn start_on_loopback(config: Config) -> Result<Self, StartError> {
        Self::start(config, vec![TcpListener::bind("127.0.0.1:0")?])
    }

    /// Binds 127.0.0.1:0 for both HTTP and UDP and starts there.
    pub fn start_on_loopback_with_udp(config: Config) -> Result<Self, StartError> {
        Self::start_with_udp(
            config,
            vec![TcpListener::bind("127.0.0.1:0")?],
            vec![UdpSocket::bind("127.0.0.1:0")?],
        )
    }

    /// The UDP sockets' addresses (empty unless started with UDP).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// `udp://ADDR/announce` for the first UDP socket.
    ///
    /// # Panics
    /// If the tracker was started without UDP sockets.
    pub fn udp_announce_url(&self) -> String {
        format!("udp://{}/announce", self.udp_addrs[0])
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr())
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

impl Drop for BackgroundTracker {
    fn drop(&mut self) {
        // `stop` sends the command at once; its future only reports completion.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
