//! The torrent task: dials and accepts peers (connections routed by the session's
//! listener), runs the choker, and reacts to verified pieces and storage failures.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::choker::{Choker, PeerSnapshot, RateMeter, RECHOKE_INTERVAL};
use crate::listener::Incoming;
use crate::messages::{Event, PeerCmd};
use crate::peer;
use crate::picker::PeerKey;
use crate::redial::Redial;
use crate::shared::Shared;
use crate::storage::StorageError;

/// Addresses waiting to be dialled, at most (PEX and tracker replies beyond are dropped).
const MAX_CANDIDATES: usize = 1000;

/// Where the torrent task gets new peer addresses from and how it is stopped.
pub(crate) struct TorrentTask {
    pub shared: Arc<Shared>,
    /// Connections the session's listener routed here by info hash.
    pub incoming: mpsc::Receiver<Incoming>,
    /// The listener's address, so we never dial ourselves.
    pub listen_addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub new_peers: mpsc::UnboundedReceiver<Vec<SocketAddr>>,
    pub initial_peers: Vec<SocketAddr>,
    pub complete_tx: watch::Sender<bool>,
    pub shutdown: watch::Receiver<bool>,
    pub upload_slots: usize,
}

impl TorrentTask {
    pub(crate) async fn run(mut self) -> Result<(), StorageError> {
        let shared = self.shared.clone();
        // Each connection task ends with its address, and the time of our dial for
        // the connections we made (the ones to dial again).
        let mut tasks: JoinSet<(SocketAddr, Option<Instant>)> = JoinSet::new();
        let mut connected: HashSet<SocketAddr> = HashSet::new();
        let mut candidates: VecDeque<SocketAddr> = self.initial_peers.iter().copied().collect();
        let mut redial = Redial::default();
        let mut choker = Choker::new(self.upload_slots, rand::random());
        let mut unchoked: HashSet<PeerKey> = HashSet::new();
        let mut meter = RateMeter::default();
        // Both only armed while they have work (peers to rank, peers given by hand to
        // dial again), so an idle seeding torrent costs no wake-ups; Delay: a re-armed
        // timer does not fire for the ticks it missed.
        let mut rechoke = tokio::time::interval(RECHOKE_INTERVAL);
        rechoke.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requeue = tokio::time::interval(Duration::from_secs(5));
        requeue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rechoke = Instant::now();
        if shared.is_complete() {
            let _ = self.complete_tx.send(true);
        }
        let result = loop {
            // Dial while below the connection limit.
            while tasks.len() < shared.max_peers {
                let Some(addr) = candidates.pop_front() else {
                    break;
                };
                let banned = shared.lock().banned.contains(&addr.ip());
                // Backing off: it comes back from the redial schedule when due.
                let waiting = !redial.may_dial(&addr, Instant::now());
                if banned || waiting || connected.contains(&addr) || addr == self.listen_addr {
                    continue;
                }
                redial.dialled(addr);
                connected.insert(addr);
                let s = shared.clone();
                tasks.spawn(async move {
                    let started = Instant::now();
                    peer::run_outgoing(s, addr).await;
                    (addr, Some(started))
                });
            }
            let mut do_rechoke = false;
            let next_redial = redial.next_due();
            let has_peers = !connected.is_empty();
            let has_given_peers = !self.initial_peers.is_empty();
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::PieceChecked { piece, ok, senders, block_hashes }) => {
                        shared.on_checked(piece, ok, senders, block_hashes);
                        if ok && shared.is_complete() && !*self.complete_tx.borrow() {
                            info!("download complete: all {} pieces verified", shared.piece_count);
                            let _ = self.complete_tx.send(true);
                            do_rechoke = true; // now seeding: rank by upload rate
                        }
                    }
                    Some(Event::StorageFailed(e)) => {
                        shared.set_failure(format!("stopped on a disk error: {e}"));
                        break Err(e);
                    }
                    Some(Event::Interest) => do_rechoke = true,
                    Some(Event::Peers(addrs)) => {
                        // Learned by PEX: bounded, so a flood cannot grow the queue.
                        for a in addrs {
                            if candidates.len() >= MAX_CANDIDATES {
                                break;
                            }
                            if !connected.contains(&a) && !candidates.contains(&a) {
                                candidates.push_back(a);
                            }
                        }
                    }
                    None => break Ok(()),
                },
                Some(addrs) = self.new_peers.recv() => {
                    for a in addrs {
                        if !connected.contains(&a) && !candidates.contains(&a) {
                            candidates.push_back(a);
                        }
                    }
                }
                acc = self.incoming.recv() => match acc {
                    Some(incoming) => {
                        let addr = incoming.addr;
                        let banned = shared.lock().banned.contains(&addr.ip());
                        // Checked before the handshake so a flood from one address costs
                        // an accept and a close, nothing more.
                        let from_ip = connected.iter().filter(|a| a.ip() == addr.ip()).count();
                        let per_ip = shared.max_connections_per_ip.load(Ordering::Relaxed);
                        if banned || tasks.len() >= shared.max_peers + 5 || from_ip >= per_ip {
                            debug!(%addr, banned, from_ip, "refusing incoming connection");
                        } else {
                            connected.insert(addr);
                            let s = shared.clone();
                            tasks.spawn(async move {
                                peer::run_incoming(s, incoming).await;
                                (addr, None)
                            });
                        }
                    }
                    // The session unregistered us: it is stopping this torrent.
                    None => break Ok(()),
                },
                Some(done) = tasks.join_next() => {
                    if let Ok((addr, dialled)) = done {
                        connected.remove(&addr);
                        if let Some(started) = dialled {
                            redial.ended(addr, Instant::now(), started.elapsed());
                        }
                    }
                }
                // Only armed while some address waits for a redial (no idle wake-ups).
                _ = tokio::time::sleep_until(next_redial.unwrap_or_else(Instant::now)), if next_redial.is_some() => {
                    for a in redial.take_due(Instant::now()) {
                        if candidates.len() < MAX_CANDIDATES && !connected.contains(&a) && !candidates.contains(&a) {
                            candidates.push_back(a);
                        }
                    }
                }
                _ = rechoke.tick(), if has_peers => {
                    // Rates over the last interval from the per-peer byte counters.
                    let st = shared.lock();
                    meter.sample(
                        last_rechoke.elapsed().as_secs_f64(),
                        st.peers.iter().map(|(k, e)| {
                            (*k, (e.stats.downloaded.load(Ordering::Relaxed), e.stats.uploaded.load(Ordering::Relaxed)))
                        }),
                    );
                    do_rechoke = true;
                }
                _ = requeue.tick(), if has_given_peers => {
                    for a in &self.initial_peers {
                        if !connected.contains(a) && !candidates.contains(a) {
                            candidates.push_back(*a);
                        }
                    }
                }
                _ = self.shutdown.changed() => break Ok(()),
            }
            if do_rechoke {
                last_rechoke = Instant::now();
                let seeding = shared.is_complete();
                let st = shared.lock();
                let snaps: Vec<PeerSnapshot> = st
                    .peers
                    .iter()
                    .map(|(k, e)| {
                        let (d, u) = meter.rates(*k);
                        PeerSnapshot {
                            key: *k,
                            interested: e.stats.peer_interested(),
                            download_rate: d,
                            upload_rate: u,
                        }
                    })
                    .collect();
                let next = choker.decide(Instant::now().into_std(), seeding, &snaps);
                for (k, e) in &st.peers {
                    match (unchoked.contains(k), next.contains(k)) {
                        (false, true) => drop(e.cmd.send(PeerCmd::Unchoke)),
                        (true, false) => drop(e.cmd.send(PeerCmd::Choke)),
                        _ => {}
                    }
                }
                unchoked = next;
            }
        };
        // Close every connection before returning so the caller sees a quiet torrent.
        tasks.shutdown().await;
        result
    }
}
