//! HTTP routes. Handlers only translate between HTTP and the store: they read the raw query
//! string (never actix's `Query` extractor, which would mangle binary info hashes), call
//! into [`crate::AppState`], and always answer announce/scrape with HTTP 200 and a bencoded
//! body, because a `failure reason` is what BitTorrent clients read and show.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use kpbt_proto::announce::{
    encode_announce_reply, encode_failure, encode_scrape_reply, parse_announce_query_limited,
    parse_scrape_query, AnnounceEvent, AnnounceReply, AnnounceRequest, PeerListFormat, QueryError,
};

use crate::metrics::{Endpoint, Outcome};
use crate::AppState;

/// Registers every route. Passkey paths (`/announce/{passkey}`) can be added here as more
/// resources pointing at the same handlers.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/announce", web::get().to(announce))
        .route("/scrape", web::get().to(scrape))
        .route("/metrics", web::get().to(metrics))
        .route("/health", web::get().to(health))
        .route("/stats", web::get().to(stats));
}

fn bencoded(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
        .body(body)
}

async fn announce(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let mut body = Vec::with_capacity(256);
    announce_body(&state, &req, &mut body);
    state
        .metrics
        .observe(Endpoint::Announce, started.elapsed().as_secs_f64());
    bencoded(body)
}

/// A refusal: counted under a fixed `reason` label, with `text` sent to the client.
fn fail(
    state: &AppState,
    out: &mut Vec<u8>,
    event: AnnounceEvent,
    label: &'static str,
    text: &str,
) {
    state.metrics.failure(label);
    state.metrics.announce(event, Outcome::Failure);
    tracing::debug!(reason = label, "announce refused: {text}");
    encode_failure(out, text);
}

fn announce_body(state: &AppState, req: &HttpRequest, out: &mut Vec<u8>) {
    let raw = req.query_string().as_bytes();
    let parsed = match parse_announce_query_limited(raw, state.config.max_query_len) {
        Ok(r) => r,
        // The event is unknown when the query does not parse; count it under "none".
        Err(e) => return fail(state, out, AnnounceEvent::None, e.label(), &e.to_string()),
    };
    let event = parsed.event;
    if let Some(list) = &state.allowlist {
        if !list.contains(&parsed.info_hash) {
            state.metrics.allowlist_rejections.inc();
            return fail(
                state,
                out,
                event,
                "not_allowlisted",
                "torrent not in allowlist",
            );
        }
    }
    let Some(ip) = client_ip(state, req, &parsed) else {
        return fail(
            state,
            out,
            event,
            "bad_client_address",
            "cannot determine client address",
        );
    };
    let now = state.clock.now();
    match state
        .store
        .announce(&parsed, SocketAddr::new(ip, parsed.port), now)
    {
        Ok(outcome) => {
            if outcome.counted_completion {
                state.metrics.completed.inc();
            }
            state.metrics.announce(event, Outcome::Ok);
            let reply = AnnounceReply {
                complete: outcome.complete,
                incomplete: outcome.incomplete,
                interval: state.config.announce_interval_secs,
                min_interval: Some(state.config.min_interval()),
                tracker_id: None,
                warning: None,
            };
            encode_announce_reply(
                out,
                &reply,
                &outcome.peers,
                PeerListFormat::for_request(&parsed),
            );
        }
        Err(e) => fail(state, out, event, e.label(), &e.to_string()),
    }
}

/// The address other peers should connect to: the `ip` parameter if allowed, else the
/// configured real-IP header (last entry: the one our own proxy appended), else the TCP peer.
fn client_ip(state: &AppState, req: &HttpRequest, parsed: &AnnounceRequest) -> Option<IpAddr> {
    if state.config.honor_ip_param {
        if let Some(ip) = parsed.ip {
            return Some(ip);
        }
    }
    if let Some(name) = &state.real_ip_header {
        let value = req.headers().get(name)?.to_str().ok()?;
        let last = value.rsplit(',').next()?.trim();
        return last
            .parse::<IpAddr>()
            .ok()
            .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()));
    }
    req.peer_addr().map(|a| a.ip())
}

async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let mut body = Vec::with_capacity(256);
    state.metrics.scrapes.inc();
    let raw = req.query_string().as_bytes();
    let hashes = if raw.len() > state.config.max_query_len {
        Err(QueryError::TooLong {
            len: raw.len(),
            max: state.config.max_query_len,
        })
    } else {
        parse_scrape_query(raw, state.config.max_scrape_hashes)
    };
    match hashes {
        Ok(hashes) => encode_scrape_reply(&mut body, &state.store.scrape(&hashes)),
        Err(e) => {
            state.metrics.failure(e.label());
            encode_failure(&mut body, &e.to_string());
        }
    }
    state
        .metrics
        .observe(Endpoint::Scrape, started.elapsed().as_secs_f64());
    bencoded(body)
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.set_store_gauges(state.store.stats());
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        ))
        .body(state.metrics.render())
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
        .body("ok\n")
}

#[derive(serde::Serialize)]
struct Stats {
    torrents: u64,
    seeders: u64,
    leechers: u64,
    announces: u64,
    scrapes: u64,
    completed: u64,
    uptime_secs: u32,
}

async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let s = state.store.stats();
    let body = Stats {
        torrents: s.torrents,
        seeders: s.seeders,
        leechers: s.leechers,
        announces: state.metrics.announces_total(),
        scrapes: state.metrics.scrapes.get(),
        completed: state.metrics.completed.get(),
        uptime_secs: state.clock.now(),
    };
    HttpResponse::Ok().json(body)
}
