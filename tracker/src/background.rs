//! A tracker on its own thread with its own actix System, for embedding and tests.
//!
//! [`crate::start`] must run inside an actix runtime; callers that live in plain threads
//! or in a tokio runtime of their own (the client's tests, the integration tests) use
//! this instead of each building the thread, System and shutdown dance themselves.

use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;

use crate::{AppState, Config, StartError};

/// A running tracker; dropping it stops the server and joins its thread.
pub struct BackgroundTracker {
    addrs: Vec<SocketAddr>,
    state: Arc<AppState>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundTracker {
    /// Starts serving on `listeners` (already bound, so connections queue from now on).
    pub fn start(config: Config, listeners: Vec<TcpListener>) -> Result<Self, StartError> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kpbt-tracker".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match crate::start(config, listeners) {
                        Ok(t) => {
                            let started = (t.handle(), t.shared_state(), t.local_addrs().to_vec());
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
            Ok(Ok((handle, state, addrs))) => Ok(Self {
                addrs,
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
