//! The session's control API: JSON over HTTP on `--api` (add, list, inspect, pause,
//! resume, recheck, remove torrents, read their files, health and metrics), with an
//! optional bearer token. Errors are `{"error": "..."}` with the fitting status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kpbt_proto::metainfo::MAX_TORRENT_BYTES;
use serde::Deserialize;
use serde_json::json;

use crate::api_common::{bad_request, parse_info_hash, ApiError, ApiState};
use crate::api_files;
use crate::session::{AddOptions, Session, SessionError};

/// A .torrent fetched for `POST /torrents {"url": ...}` must arrive within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the API's routes over `session`.
pub fn router(session: Session, token: Option<String>) -> Router {
    let http = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("kpbt/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let state = Arc::new(ApiState {
        session,
        token: token.filter(|t| !t.is_empty()),
        http,
    });
    Router::new()
        .route("/torrents", get(list).post(add))
        .route("/torrents/{ih}", get(detail).delete(remove))
        .route("/torrents/{ih}/pause", post(pause))
        .route("/torrents/{ih}/resume", post(resume))
        .route("/torrents/{ih}/recheck", post(recheck))
        .route("/torrents/{ih}/limits", post(limits))
        .route("/torrents/{ih}/files/{index}", get(api_files::read))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorise))
        // Health stays open: container healthchecks carry no token.
        .route("/health", get(health))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint; see /torrents".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_TORRENT_BYTES))
        .with_state(state)
}

/// Only `/health` and `/metrics`, without a token: for `--metrics-listen`, where
/// Prometheus scrapes.
pub fn metrics_router(session: Session) -> Router {
    let state = Arc::new(ApiState {
        session,
        token: None,
        http: reqwest::Client::new(),
    });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "only /metrics and /health here".into(),
            )
        })
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}

/// Serves the API on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    session: Session,
    token: Option<String>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(session, token))
        .with_graceful_shutdown(stop)
        .await
}

async fn authorise(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API token: send Authorization: Bearer <token> (--api-token, KPBT_API_TOKEN)".into(),
            ));
        }
    }
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(state): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    let t = state.session.totals();
    Json(json!({ "status": "ok", "torrents": t.torrents, "peers": t.peers }))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let body = crate::api_metrics::render(&state.session);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn list(State(state): State<Arc<ApiState>>) -> Response {
    Json(state.session.list()).into_response()
}

async fn detail(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    Ok(Json(state.session.detail(ih)?).into_response())
}

#[derive(Deserialize, Default)]
struct AddQuery {
    dir: Option<PathBuf>,
    paused: Option<bool>,
    /// Comma-separated peer addresses to dial besides the trackers'.
    peers: Option<String>,
    /// The caller hashed this data itself a moment ago (`publish`): seed at once.
    verified: Option<bool>,
    /// Serve read-only, never write (`seed`).
    seed_only: Option<bool>,
}

#[derive(Deserialize)]
struct AddJson {
    /// Fetch the .torrent from here ...
    url: Option<String>,
    /// ... or get its metadata from peers (BEP 9).
    magnet: Option<String>,
    dir: Option<PathBuf>,
    paused: Option<bool>,
    /// Web seed/origin URLs, as `origin=` in the query.
    #[serde(default)]
    origins: Vec<String>,
}

/// How long `POST /torrents {"magnet": ...}` waits for a peer to deliver the metadata.
const MAGNET_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST /torrents?dir=DIR[&paused=true][&origin=URL...]` with the .torrent as the
/// body, or with `{"url": ...}` (JSON) to fetch it first.
async fn add(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<AddQuery>, axum::extract::rejection::QueryRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(mut q) = query.map_err(|e| bad_request(format!("bad query: {}", e.body_text())))?;
    let mut origins = query_origins(raw.as_deref());
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let torrent = if is_json {
        let req: AddJson = serde_json::from_slice(&body).map_err(|e| {
            bad_request(format!(
                "bad JSON body (want {{\"url\": \"http://...\"}}): {e}"
            ))
        })?;
        q.dir = q.dir.or(req.dir);
        q.paused = q.paused.or(req.paused);
        origins.extend(req.origins);
        match (req.url, req.magnet) {
            (Some(url), None) => fetch_torrent(&state.http, &url).await?,
            (None, Some(link)) => {
                let peers = parse_peers(q.peers.as_deref())?;
                fetch_magnet(&state, &link, peers).await?
            }
            _ => return Err(bad_request("give one of \"url\" or \"magnet\"")),
        }
    } else {
        body
    };
    let dir = q.dir.ok_or_else(|| {
        bad_request("missing dir=DIR: where the torrent's data goes (absolute path)")
    })?;
    let peers = parse_peers(q.peers.as_deref())?;
    let session = state.session.clone();
    let opts = AddOptions {
        dir,
        paused: q.paused.unwrap_or(false),
        peers,
        seed_only: q.seed_only.unwrap_or(false),
        verified: q.verified.unwrap_or(false),
        origins,
    };
    let view = off_async(move || session.add(&torrent, opts)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Runs a session call that writes (and syncs) the state dir on a blocking thread, so
/// the API's async threads stay free for other requests.
async fn off_async<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??)
}

/// Every `origin=` value of the query (repeated, or comma-separated), decoded. They are
/// checked by `Session::add`.
fn query_origins(raw: Option<&str>) -> Vec<String> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Vec::new();
    };
    let Ok(url) = reqwest::Url::parse(&format!("http://query.invalid/?{raw}")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (_, v) in url.query_pairs().filter(|(k, _)| k == "origin") {
        for o in v.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if !out.iter().any(|x| x == o) {
                out.push(o.to_owned());
            }
        }
    }
    out
}

fn parse_peers(s: Option<&str>) -> Result<Vec<SocketAddr>, ApiError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    s.split(',')
        .map(|p| {
            p.trim().parse().map_err(|_| {
                bad_request(format!("peers: {p:?} is not an address like 10.0.0.5:6881"))
            })
        })
        .collect()
}

/// Gets a magnet link's metadata from its peers and trackers as the session's peer.
async fn fetch_magnet(
    state: &ApiState,
    link: &str,
    peers: Vec<SocketAddr>,
) -> Result<Bytes, ApiError> {
    let m = kpbt_proto::magnet::parse(link)
        .map_err(|e| bad_request(format!("not a usable magnet link: {e}")))?;
    let cfg = crate::magnet_fetch::FetchConfig {
        peer_id: state.session.peer_id(),
        port: state.session.listen_addr().port(),
        peers,
        use_trackers: state.session.uses_trackers(),
        http: state.http.clone(),
        timeout: MAGNET_TIMEOUT,
    };
    let torrent = crate::magnet_fetch::fetch(&m, cfg)
        .await
        .map_err(|e| ApiError(StatusCode::GATEWAY_TIMEOUT, e.to_string()))?;
    Ok(Bytes::from(torrent))
}

/// Fetches a .torrent over HTTP(S), refusing anything larger than a torrent may be.
async fn fetch_torrent(http: &reqwest::Client, url: &str) -> Result<Bytes, ApiError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad_request(format!(
            "url {url:?} must be http:// or https://"
        )));
    }
    let gateway = |msg: String| ApiError(StatusCode::BAD_GATEWAY, msg);
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| gateway(format!("cannot fetch {url}: {}", e.without_url())))?;
    if !resp.status().is_success() {
        return Err(gateway(format!(
            "fetching {url}: HTTP status {}",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| gateway(format!("fetching {url}: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_TORRENT_BYTES {
            return Err(bad_request(format!(
                "{url} is larger than the {MAX_TORRENT_BYTES}-byte limit for a .torrent"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

async fn pause(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    Ok(Json(state.session.pause(ih).await?).into_response())
}

async fn resume(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    let session = state.session.clone();
    Ok(Json(off_async(move || session.resume(ih)).await?).into_response())
}

async fn recheck(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    Ok(Json(state.session.recheck(ih).await?).into_response())
}

/// `POST /torrents/{ih}/limits` with `{"upload_limit": B/s or null, "download_limit": ...}`.
#[derive(Deserialize)]
struct Limits {
    upload_limit: Option<u64>,
    download_limit: Option<u64>,
}

async fn limits(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    let l: Limits = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "bad JSON body (want {{\"upload_limit\": 1048576, \"download_limit\": null}}): {e}"
        ))
    })?;
    let session = state.session.clone();
    Ok(
        Json(off_async(move || session.set_limits(ih, l.upload_limit, l.download_limit)).await?)
            .into_response(),
    )
}

#[derive(Deserialize)]
struct RemoveQuery {
    delete_data: Option<bool>,
}

async fn remove(
    State(state): State<Arc<ApiState>>,
    Path(ih): Path<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let ih = parse_info_hash(&ih)?;
    let Query(q) = query.map_err(|e| bad_request(format!("bad query: {}", e.body_text())))?;
    let delete_data = q.delete_data.unwrap_or(false);
    state.session.remove(ih, delete_data).await?;
    Ok(Json(json!({ "removed": ih.to_hex(), "data_deleted": delete_data })).into_response())
}
