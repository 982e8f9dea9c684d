//! HTTP routes. Handlers only translate between HTTP and the store: they read the raw query
//! string (never actix's `Query` extractor, which would mangle binary info hashes), call
//! the swarm-store seam in [`crate::AppState`] (not knowing which store runs), and always
//! answer announce/scrape with HTTP 200 and a bencoded body, because a `failure reason` is
//! what BitTorrent clients read and show.
//!
//! Every request except `/health` first passes `admit`: the header-size cap, then the
//! per-client rate limit (announce/scrape answer a `failure reason`, the other endpoints
//! 431/429). Announce/scrape then check the passkey (when enabled) before looking at the
//! query.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kpbt_proto::announce::{
    encode_announce_reply, encode_failure, encode_scrape_reply, parse_announce_query_limited,
    parse_scrape_query, AnnounceEvent, AnnounceReply, PeerListFormat, QueryError,
};

use crate::metrics::{Endpoint, Outcome, Protocol};
use crate::passkeys::KeyStatus;
use crate::state::AppState;
use crate::store::Health;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/announce", web::get().to(announce))
        .route("/announce/{passkey}", web::get().to(announce_keyed))
        .route("/scrape", web::get().to(scrape))
        .route("/scrape/{passkey}", web::get().to(scrape_keyed))
        .route("/metrics", web::get().to(metrics))
        .route("/health", web::get().to(health))
        .route("/stats", web::get().to(stats))
        .route("/swarms/{info_hash}", web::get().to(swarm))
        .route("/swarms/{info_hash}/{passkey}", web::get().to(swarm_keyed));
}

/// Sent when a passkey is required but the URL has none.
pub const PASSKEY_REQUIRED: &str =
    "this tracker requires a passkey: use the announce URL you were given";
/// Sent to a client over the rate limit.
pub const RATE_LIMITED: &str = "rate limit exceeded";

/// A refusal before the query is looked at: the metrics label and the client's text.
pub(crate) type Refusal = (&'static str, &'static str);

/// The client's address through the one resolver ([`crate::clientaddr::AddrResolver`]):
/// the TCP peer, or what a trusted proxy says (its header, or `ip=` when `ip_param` is
/// given and allowed). Rate limiting passes `None`: the client must not pick its budget.
fn client_ip(state: &AppState, req: &HttpRequest, ip_param: Option<IpAddr>) -> Option<IpAddr> {
    let header = state
        .addrs
        .header()
        .and_then(|name| req.headers().get(name))
        .map(|v| v.as_bytes());
    state
        .addrs
        .resolve(req.peer_addr().map(|a| a.ip()), header, ip_param)
}

/// Sent when the request headers exceed `max_header_bytes`.
pub const HEADERS_TOO_LARGE: &str = "request headers too large";

/// Checks every request before its endpoint looks at it: header size, then the client's
/// rate limit (counted in metrics when exceeded).
fn admit(state: &AppState, req: &HttpRequest) -> Result<(), Refusal> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > state.config.max_header_bytes {
        return Err(("headers_too_large", HEADERS_TOO_LARGE));
    }
    let Some(limiter) = &state.limiter else {
        return Ok(());
    };
    let Some(ip) = client_ip(state, req, None) else {
        return Ok(());
    };
    if limiter.allow(ip, Instant::now()) {
        return Ok(());
    }
    state.metrics.rate_limited.inc();
    Err(("rate_limited", RATE_LIMITED))
}

/// The plain-HTTP answer to a refusal on a non-tracker endpoint: 429 or 431.
fn refused(state: &AppState, (label, text): Refusal) -> HttpResponse {
    state.metrics.failure(label);
    let mut r = if label == "rate_limited" {
        let mut r = HttpResponse::TooManyRequests();
        r.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
        r
    } else {
        HttpResponse::build(actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    };
    r.insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
        .body(text)
}

/// Checks the URL's passkey (`None`: plain `/announce` or `/scrape`) against the config.
pub(crate) fn check_passkey(state: &AppState, key: Option<&str>) -> Result<(), Refusal> {
    let refused = match (&state.passkeys, key) {
        (None, None) => return Ok(()),
        (None, Some(_)) => (
            "passkey_unexpected",
            "this tracker does not use passkeys: announce to /announce",
        ),
        (Some(_), None) => ("passkey_missing", PASSKEY_REQUIRED),
        (Some(keys), Some(k)) => match keys.get().status(k) {
            KeyStatus::Active => return Ok(()),
            KeyStatus::Unknown => ("passkey_unknown", "unknown passkey"),
            KeyStatus::Revoked => ("passkey_revoked", "passkey revoked"),
        },
    };
    if refused.0 != "passkey_unexpected" {
        state.metrics.passkey_rejections.inc();
    }
    Err(refused)
}

fn bencoded(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
        .body(body)
}

async fn announce(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    announce_with(&req, &state, None).await
}

/// The key is taken raw from the path (not via `web::Path<String>`, whose decoding would
/// turn a non-UTF-8 escape into a 404 instead of a bencoded "unknown passkey").
async fn announce_keyed(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let key = req.match_info().get("passkey").unwrap_or("");
    announce_with(&req, &state, Some(key)).await
}

/// The request target as it may appear in logs: a passkey in the path becomes `<key>` and
/// the query is reduced to its length. Passkeys are secrets, and queries can carry
/// key-like parameters (`passkey=`, `key=`) from clients built for other trackers.
pub fn loggable_target(path: &str, query: &str) -> String {
    let mut out = match path.split_once('/').map(|(_, rest)| rest.split_once('/')) {
        Some(Some((endpoint, _key))) if endpoint == "announce" || endpoint == "scrape" => {
            format!("/{endpoint}/<key>")
        }
        _ if path.len() > 64 => {
            let cut = (0..=64)
                .rev()
                .find(|&i| path.is_char_boundary(i))
                .unwrap_or(0);
            format!("{}…", &path[..cut])
        }
        _ => path.to_owned(),
    };
    if !query.is_empty() {
        out.push_str(&format!("?<{} bytes>", query.len()));
    }
    out
}

async fn announce_with(req: &HttpRequest, state: &AppState, key: Option<&str>) -> HttpResponse {
    let started = Instant::now();
    let mut body = Vec::with_capacity(256);
    match admit(state, req).and_then(|()| check_passkey(state, key)) {
        // The event is unknown before the query is parsed; count it under "none".
        Err((label, text)) => {
            tracing::debug!(
                request = %loggable_target(req.path(), req.query_string()),
                "refused before the query was read"
            );
            fail(state, &mut body, AnnounceEvent::None, label, text)
        }
        Ok(()) => announce_body(state, req, &mut body).await,
    }
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

async fn announce_body(state: &AppState, req: &HttpRequest, out: &mut Vec<u8>) {
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
    let Some(ip) = client_ip(state, req, parsed.ip) else {
        return fail(
            state,
            out,
            event,
            "bad_client_address",
            "cannot determine client address",
        );
    };
    state.note_client_addr(ip);
    let now = state.clock.now();
    match state
        .store
        .announce(&parsed, SocketAddr::new(ip, parsed.port), now)
        .await
    {
        Ok(outcome) => {
            if outcome.counted_completion {
                state.metrics.completed.inc();
            }
            state.metrics.announce(event, Outcome::Ok);
            let mut tally = state.peers_tally(ip);
            for p in &outcome.peers {
                tally.add(p.addr.ip());
            }
            tally.finish();
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

async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    scrape_with(&req, &state, None).await
}

/// The key is taken raw from the path (not via `web::Path<String>`, whose decoding would
/// turn a non-UTF-8 escape into a 404 instead of a bencoded "unknown passkey").
async fn scrape_keyed(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let key = req.match_info().get("passkey").unwrap_or("");
    scrape_with(&req, &state, Some(key)).await
}

async fn scrape_with(req: &HttpRequest, state: &AppState, key: Option<&str>) -> HttpResponse {
    let started = Instant::now();
    let mut body = Vec::with_capacity(256);
    state.metrics.scrape_via(Protocol::Http);
    if let Err((label, text)) = admit(state, req).and_then(|()| check_passkey(state, key)) {
        state.metrics.failure(label);
        encode_failure(&mut body, text);
        return bencoded(body);
    }
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
        Ok(hashes) => match state.store.scrape(&hashes).await {
            Ok(files) => encode_scrape_reply(&mut body, &files),
            Err(e) => {
                state.metrics.failure("store_unavailable");
                encode_failure(&mut body, &e.to_string());
            }
        },
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

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(r) = admit(&state, &req) {
        return refused(&state, r);
    }
    // A failing store leaves the gauges at their last values; the error counter says why.
    let _ = state.refresh_gauges().await;
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(state.metrics.render())
}

/// `GET /`: what this server is, for someone who opens the bare URL in a browser.
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ))
        .body(INDEX)
}

/// The `GET /` page.
pub const INDEX: &str = concat!(
    "kpbt-tracker ",
    env!("CARGO_PKG_VERSION"),
    ": a BitTorrent tracker.\n\n",
    "GET /announce           announce (BEP 3; /announce/<passkey> when passkeys are on)\n",
    "GET /scrape             scrape (BEP 48; /scrape/<passkey> when passkeys are on)\n",
    "GET /stats              totals as JSON\n",
    "GET /swarms/<hash>      one swarm as JSON; ?expect=N: 200 once N seeders, else 425\n",
    "                        (/swarms/<hash>/<passkey> when passkeys are on)\n",
    "GET /metrics            Prometheus metrics\n",
    "GET /health             \"ok\" while serving (503 while the swarm store fails)\n",
);

/// Not rate-limited: load balancers probe it from one address. `ok`, or 503 with the
/// reason when the swarm store does not answer (so a balancer can route around it).
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let text = HeaderValue::from_static("text/plain");
    match state.store.health().await {
        Health::Ok => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, text))
            .body("ok\n"),
        Health::Unhealthy(why) => HttpResponse::ServiceUnavailable()
            .insert_header((CONTENT_TYPE, text))
            .body(format!("unhealthy: {} store: {why}\n", state.store.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_target;

    #[test]
    fn logged_targets_hide_keys_and_queries() {
        let key = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        for (path, query, want) in [
            (
                format!("/announce/{key}"),
                "info_hash=x&passkey=y",
                "/announce/<key>?<21 bytes>",
            ),
            (format!("/scrape/{key}/more"), "", "/scrape/<key>"),
            ("/announce".into(), "k=v", "/announce?<3 bytes>"),
            ("/stats".into(), "", "/stats"),
        ] {
            assert_eq!(loggable_target(&path, query), want);
        }
        let long = format!("/{}", "é".repeat(40));
        assert!(loggable_target(&long, "").ends_with('…'));
    }
}

#[derive(serde::Serialize)]
struct Stats {
    /// `memory`, `redis` or `redis-cluster`: for a shared store, the swarm figures are
    /// those of every instance together; the request counters are this instance's.
    store: &'static str,
    torrents: u64,
    seeders: u64,
    leechers: u64,
    announces: u64,
    scrapes: u64,
    completed: u64,
    uptime_secs: u32,
}

async fn stats(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(r) = admit(&state, &req) {
        return refused(&state, r);
    }
    let s = match state.refresh_gauges().await {
        Ok(s) => s,
        Err(e) => {
            return HttpResponse::ServiceUnavailable()
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/plain")))
                .body(format!("{e}\n"))
        }
    };
    let body = Stats {
        store: state.store.kind(),
        torrents: s.torrents,
        seeders: s.seeders,
        leechers: s.leechers,
        announces: state.metrics.announces_total(),
        scrapes: state.metrics.scrapes_total(),
        completed: state.metrics.completed.get(),
        uptime_secs: state.clock.uptime(),
    };
    HttpResponse::Ok().json(body)
}

/// Keys of `peers_per_label`: the configured labels in config order, then "none".
struct PerLabel<'a> {
    labels: &'a crate::labels::Labels,
    counts: &'a [u32],
}

impl serde::Serialize for PerLabel<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = |i: usize| self.counts.get(i).copied().unwrap_or(0);
        let named = self.labels.names().iter().enumerate();
        s.collect_map(
            named
                .map(|(i, name)| (name.as_str(), n(i + 1)))
                .chain(std::iter::once((crate::labels::NONE, n(0)))),
        )
    }
}

#[derive(serde::Serialize)]
struct SwarmBody<'a> {
    info_hash: String,
    seeders: u32,
    leechers: u32,
    completed: u32,
    peers_per_label: PerLabel<'a>,
    /// Unix seconds of the last counted completion.
    last_completed: Option<u32>,
    /// Echoed with `?expect=N`, with whether the swarm has that many seeders.
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<bool>,
}

fn json_error(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": text }))
}

/// `?expect=N` (other parameters are ignored); `Err` for a value that is not a count.
fn expect_param(query: &str) -> Result<Option<u32>, String> {
    match query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "expect")
    {
        None => Ok(None),
        Some((_, v)) => v
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("expect must be a number of seeders, e.g. ?expect=3 (got {v:?})")),
    }
}

async fn swarm(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    swarm_with(&req, &state, None).await
}

async fn swarm_keyed(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let key = req.match_info().get("passkey").unwrap_or("");
    swarm_with(&req, &state, Some(key)).await
}

/// `GET /swarms/{info_hash}[/{passkey}][?expect=N]`: one swarm's figures as JSON, for
/// deploy scripts waiting until N peers hold the whole torrent. Without `expect`: 200, or
/// 404 for a swarm with no peers. With it: 200 once `seeders >= N`, else 425 Too Early
/// with the same body (zeros for a swarm nobody has announced to yet: scripts start
/// polling before the first announce). Rate-limited like `/stats`; on a passkey tracker
/// the key is required as for scrapes (an info hash alone must not reveal a swarm), and a
/// torrent outside the allowlist reads as unknown.
async fn swarm_with(req: &HttpRequest, state: &AppState, key: Option<&str>) -> HttpResponse {
    if let Err(r) = admit(state, req) {
        return refused(state, r);
    }
    if let Err((label, text)) = check_passkey(state, key) {
        state.metrics.failure(label);
        return json_error(StatusCode::FORBIDDEN, text);
    }
    let raw = req.match_info().get("info_hash").unwrap_or("");
    let Ok(hash) = kpbt_proto::magnet::parse_info_hash(raw) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the info hash must be 40 hex digits (or 32 base32 characters)",
        );
    };
    let expect = match expect_param(req.query_string()) {
        Ok(e) => e,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, &why),
    };
    let allowed = state.allowlist.as_ref().is_none_or(|l| l.contains(&hash));
    let info = if allowed {
        match state.store.swarm(&hash).await {
            Ok(i) => i,
            Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    } else {
        None
    };
    if info.is_none() && expect.is_none() {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown swarm: no peers have announced this info hash",
        );
    }
    if let (true, Some(n)) = (allowed, expect) {
        state.watched.ask(hash, n, std::time::Instant::now());
    }
    let info = info.unwrap_or_default();
    let ready = expect.map(|n| info.seeders >= n);
    let body = SwarmBody {
        info_hash: hash.to_hex(),
        seeders: info.seeders,
        leechers: info.leechers,
        completed: info.completed,
        peers_per_label: PerLabel {
            labels: state.labels(),
            counts: &info.per_label,
        },
        last_completed: info.last_completed,
        expect,
        ready,
    };
    let status = match ready {
        Some(false) => StatusCode::from_u16(425).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        _ => StatusCode::OK,
    };
    HttpResponse::build(status).json(body)
}
