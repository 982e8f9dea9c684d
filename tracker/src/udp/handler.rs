//! One datagram in, at most one datagram out: translates BEP 15 requests into the same
//! store calls, limits, allowlist and passkey checks the HTTP handlers make.
//!
//! Order of checks for announce and scrape: the connection id first (it is what proves
//! the source address, so nothing below is charged to a spoofed one), then the rate
//! limit, then BEP 41 URL data and the passkey, then the request itself. Connects are
//! not rate-limited: they cost one MAC and a reply no larger than the request, and
//! charging them to the limiter would let spoofed connects fill its table of clients.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest, QueryError};
use kpbt_proto::udp::{self, ConnectionIdKey, OptionsError, PeerFamily, Request, TransactionId};
use kpbt_proto::InfoHash;

use crate::http::{check_passkey, Refusal, PASSKEY_REQUIRED, RATE_LIMITED};
use crate::metrics::{Outcome, Protocol};
use crate::AppState;

/// Sent when the connection id is not one we issued to this address in the last two
/// minutes; the client should connect again.
pub const BAD_CONNECTION_ID: &str = "connection id expired or invalid: connect again";
/// Sent when BEP 41 URL data names a path other than `/announce[/<passkey>]`.
pub const BAD_PATH: &str = "unknown announce path: use /announce or /announce/<passkey>";

/// Per-thread request handling, with buffers reused across datagrams.
pub(crate) struct Handler {
    state: Arc<AppState>,
    key: ConnectionIdKey,
    path: Vec<u8>,
    hashes: Vec<InfoHash>,
    /// The swarm store is async (Redis is remote); each socket thread drives its calls
    /// on its own current-thread runtime. The memory store's calls complete at once.
    rt: tokio::runtime::Runtime,
}

impl Handler {
    pub fn new(state: Arc<AppState>, key: ConnectionIdKey) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Handler {
            state,
            key,
            path: Vec::with_capacity(udp::MAX_DATAGRAM),
            hashes: Vec::with_capacity(udp::MAX_SCRAPE_HASHES),
            rt,
        })
    }

    /// Handles datagram `d` from `from` at `now_unix` (seconds since the epoch, for
    /// connection ids). Returns whether `out` holds a reply to send back.
    pub fn handle(&mut self, from: SocketAddr, d: &[u8], now_unix: u64, out: &mut Vec<u8>) -> bool {
        out.clear();
        let ip = from.ip().to_canonical();
        match udp::parse_request(d) {
            Ok(Request::Connect { transaction_id }) => {
                let id = self.key.issue(ip, now_unix);
                udp::encode_connect_response(out, transaction_id, id);
                self.state.metrics.udp_connects.inc();
            }
            Ok(Request::Announce(a)) => self.announce(&a, ip, now_unix, out),
            Ok(Request::Scrape(s)) => self.scrape(&s, ip, now_unix, out),
            Err(e) => {
                let Some(tid) = e.transaction_id() else {
                    self.state.metrics.udp_dropped.inc();
                    return false;
                };
                if is_announce(d) {
                    // The event is unknown when the announce does not parse.
                    let m = &self.state.metrics;
                    m.announce_via(Protocol::Udp, AnnounceEvent::None, Outcome::Failure);
                }
                self.refuse(out, tid, e.label(), &e.to_string());
            }
        }
        true
    }

    fn refuse(&self, out: &mut Vec<u8>, tid: TransactionId, label: &'static str, text: &str) {
        self.state.metrics.failure(label);
        tracing::debug!(reason = label, "udp request refused: {text}");
        udp::encode_error_response(out, tid, text);
    }

    fn fail_announce(
        &self,
        out: &mut Vec<u8>,
        a: &udp::AnnounceRequest<'_>,
        (label, text): (&'static str, &str),
    ) {
        let m = &self.state.metrics;
        m.announce_via(Protocol::Udp, a.event, Outcome::Failure);
        self.refuse(out, a.transaction_id, label, text);
    }

    fn announce(&mut self, a: &udp::AnnounceRequest<'_>, ip: IpAddr, now: u64, out: &mut Vec<u8>) {
        let state = &*self.state;
        if !self.key.check(a.connection_id, ip, now) {
            return self.fail_announce(out, a, ("bad_connection_id", BAD_CONNECTION_ID));
        }
        if let Err(r) = admit(state, ip) {
            return self.fail_announce(out, a, r);
        }
        if let Err(e) = udp::url_data(a.options, &mut self.path) {
            return self.fail_announce(out, a, (OptionsError::LABEL, &e.to_string()));
        }
        let Some(passkey) = announce_path(&self.path) else {
            return self.fail_announce(out, a, ("udp_bad_path", BAD_PATH));
        };
        if let Err(r) = check_passkey(state, passkey) {
            return self.fail_announce(out, a, r);
        }
        if let Some(list) = &state.allowlist {
            if !list.contains(&a.info_hash) {
                state.metrics.allowlist_rejections.inc();
                return self.fail_announce(out, a, ("not_allowlisted", "torrent not in allowlist"));
            }
        }
        let req = AnnounceRequest {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            port: a.port,
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: a.left,
            event: a.event,
            compact: true,
            no_peer_id: true,
            numwant: a.num_want,
            ip: a.ip.map(IpAddr::V4),
            // Neither front end uses the key (peers are identified by address and port).
            key: None,
            tracker_id: None,
        };
        // The claimed address only from a trusted source with `honor_ip_param`, by the
        // same resolver as HTTP's `ip` parameter (a datagram has no forwarding header).
        let peer_ip = state.addrs.resolve(Some(ip), None, req.ip).unwrap_or(ip);
        let announced = self.rt.block_on(state.store.announce(
            &req,
            SocketAddr::new(peer_ip, a.port),
            state.clock.now(),
        ));
        match announced {
            Ok(outcome) => {
                if outcome.counted_completion {
                    state.metrics.completed.inc();
                }
                state
                    .metrics
                    .announce_via(Protocol::Udp, a.event, Outcome::Ok);
                // BEP 15: the reply's peer format follows the family the request came in on.
                let family = PeerFamily::of(ip);
                udp::encode_announce_header(
                    out,
                    a.transaction_id,
                    state.config.announce_interval_secs,
                    outcome.incomplete,
                    outcome.complete,
                );
                let mut room = udp::max_reply_peers(family);
                let mut tally = state.peers_tally(peer_ip);
                for p in &outcome.peers {
                    if room == 0 {
                        break;
                    }
                    if udp::push_peer(out, family, p.addr) {
                        room -= 1;
                        tally.add(p.addr.ip());
                    }
                }
                tally.finish();
            }
            Err(e) => self.fail_announce(out, a, (e.label(), &e.to_string())),
        }
    }

    fn scrape(&mut self, s: &udp::ScrapeRequest<'_>, ip: IpAddr, now: u64, out: &mut Vec<u8>) {
        let state = &*self.state;
        let tid = s.transaction_id;
        state.metrics.scrape_via(Protocol::Udp);
        if !self.key.check(s.connection_id, ip, now) {
            return self.refuse(out, tid, "bad_connection_id", BAD_CONNECTION_ID);
        }
        if let Err((label, text)) = admit(state, ip) {
            return self.refuse(out, tid, label, text);
        }
        // A UDP scrape carries no URL data (BEP 41 only extends announces), so it cannot
        // present a passkey; HTTP refuses key-less scrapes too.
        if state.passkeys.is_some() {
            state.metrics.passkey_rejections.inc();
            return self.refuse(out, tid, "passkey_missing", PASSKEY_REQUIRED);
        }
        let max = state.config.max_scrape_hashes;
        if s.len() > max {
            let e = QueryError::TooManyHashes { max };
            return self.refuse(out, tid, e.label(), &e.to_string());
        }
        self.hashes.clear();
        self.hashes.extend(s.info_hashes());
        match self.rt.block_on(state.store.scrape(&self.hashes)) {
            Ok(files) => {
                udp::encode_scrape_header(out, tid);
                for (_, stats) in files {
                    udp::push_scrape_stats(out, &stats);
                }
            }
            Err(e) => self.refuse(out, tid, "store_unavailable", &e.to_string()),
        }
    }
}

/// The per-client rate limit, as for HTTP (counted in metrics when exceeded).
fn admit(state: &AppState, ip: IpAddr) -> Result<(), Refusal> {
    let Some(limiter) = &state.limiter else {
        return Ok(());
    };
    if limiter.allow(ip, Instant::now()) {
        return Ok(());
    }
    state.metrics.rate_limited.inc();
    Err(("rate_limited", RATE_LIMITED))
}

/// The passkey in BEP 41 URL data: `None` for no path, `/` or `/announce`, the segment
/// after `/announce/` otherwise (taken raw, like the HTTP path; not UTF-8 means a key
/// that cannot exist). The query, if any, is ignored. `None` at the outer level: a path
/// the tracker does not serve.
fn announce_path(url: &[u8]) -> Option<Option<&str>> {
    let path = url.split(|&b| b == b'?').next().unwrap_or_default();
    match path {
        b"" | b"/" | b"/announce" => Some(None),
        _ => {
            let key = path.strip_prefix(b"/announce/")?;
            if key.contains(&b'/') {
                return None;
            }
            Some(Some(std::str::from_utf8(key).unwrap_or("\u{fffd}")))
        }
    }
}

/// Whether a datagram that failed to parse claims to be an announce (for metrics).
fn is_announce(d: &[u8]) -> bool {
    d.get(8..12) == Some(&udp::Action::Announce.code().to_be_bytes()[..])
}

#[cfg(test)]
mod tests {
    use super::announce_path;

    #[test]
    fn announce_paths() {
        assert_eq!(announce_path(b""), Some(None));
        assert_eq!(announce_path(b"/"), Some(None));
        assert_eq!(announce_path(b"/announce"), Some(None));
        assert_eq!(announce_path(b"/announce?x=1"), Some(None));
        assert_eq!(announce_path(b"/announce/abc"), Some(Some("abc")));
        assert_eq!(announce_path(b"/announce/abc?x=1"), Some(Some("abc")));
        assert_eq!(announce_path(b"/announce/\xff"), Some(Some("\u{fffd}")));
        assert_eq!(announce_path(b"/announce/a/b"), None);
        assert_eq!(announce_path(b"/scrape"), None);
        assert_eq!(announce_path(b"/announcex"), None);
    }
}
