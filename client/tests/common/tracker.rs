//! kpbt-tracker in-process for client tests: its own thread and actix System, port 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use kpbt_proto::InfoHash;
use kpbt_tracker::AppState;

/// Our tracker on its own thread with its own actix System; stopped on drop.
pub struct Tracker {
    pub addr: SocketAddr,
    state: Arc<AppState>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tracker {
    pub fn start() -> Tracker {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let config = kpbt_tracker::Config {
            listen: vec![addr],
            workers: 1,
            ..kpbt_tracker::Config::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let t = kpbt_tracker::start(config, vec![l]).expect("tracker starts");
                tx.send((t.handle(), t.shared_state())).unwrap();
                t.wait().await.expect("tracker ran");
            })
        });
        let (handle, state) = rx.recv().unwrap();
        Tracker {
            addr,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn scrape(&self, ih: InfoHash) -> kpbt_proto::announce::ScrapeStats {
        self.state.store.scrape(&[ih])[0].1
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let h = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(h.stop(false)));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Tracker {
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }
}
