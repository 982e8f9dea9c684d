//! The host-agent commands: `serve` (run a session with its API) and the verbs that
//! talk to a running session over that API (`add`, `list`, `status`, `pause`,
//! `resume`, `remove`, `publish`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kpbt_client::session::{Session, SessionConfig};
use kpbt_client::storage::WriteMode;
use kpbt_client::units::{format_bytes, format_rate};
use serde_json::Value;

/// Where the session's API is.
#[derive(Args, Clone)]
pub struct ApiOpts {
    /// The session's API.
    #[arg(long, env = "KPBT_API", default_value = "http://127.0.0.1:7070")]
    api: String,
    /// Bearer token, when the session was started with one.
    #[arg(long, env = "KPBT_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

#[derive(Args)]
pub struct ServeOpts {
    /// Where the session keeps each torrent's .torrent, state and resume data.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Address of the control API (keep it on loopback, or set --api-token).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on every API call but /health.
    #[arg(long, env = "KPBT_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Port for peers of every torrent [default: the first free of 6881-6889, else any].
    #[arg(long)]
    port: Option<u16>,
    /// Address to accept peers on; `::` takes IPv6 and IPv4 together (IPv4 alone on
    /// hosts without IPv6).
    #[arg(long, value_name = "ADDR", default_value = "::")]
    listen: std::net::IpAddr,
    /// Also serve /metrics and /health on this address (the API has them too).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Cap on piece data sent by the whole host, bytes/s (K/M/G), e.g. 50M.
    #[arg(long, value_name = "RATE", value_parser = crate::parse_size)]
    upload_limit: Option<u64>,
    /// Cap on piece data received by the whole host, bytes/s.
    #[arg(long, value_name = "RATE", value_parser = crate::parse_size)]
    download_limit: Option<u64>,
    /// Torrents downloading at once; more wait queued (seeding ones don't count).
    #[arg(long, default_value_t = 4)]
    max_active_downloads: usize,
    /// Peer connections per torrent.
    #[arg(long, default_value_t = 50)]
    max_peers: usize,
    /// Write through the page cache instead of with O_DIRECT.
    #[arg(long)]
    buffered_writes: bool,
    /// How web seeds and origins (`add --origin`) are used, for every torrent.
    #[command(flatten)]
    origin: crate::cli_origin::OriginPolicy,
}

pub async fn serve(o: ServeOpts, stop: impl std::future::Future<Output = ()>) -> Result<ExitCode> {
    let mut cfg = SessionConfig::new(&o.state_dir);
    cfg.listen = SocketAddr::new(o.listen, o.port.unwrap_or(crate::DEFAULT_PORT));
    cfg.listen_fallback = o.port.is_none();
    cfg.upload_limit = o.upload_limit;
    cfg.download_limit = o.download_limit;
    cfg.max_active_downloads = o.max_active_downloads.max(1);
    cfg.max_peers = o.max_peers;
    cfg.origin_min_rate = o.origin.origin_min_rate;
    cfg.origin_connections = o.origin.origin_connections;
    if o.buffered_writes {
        cfg.write_mode = WriteMode::Buffered;
    }
    if !o.api.ip().is_loopback() && o.api_token.as_deref().is_none_or(str::is_empty) {
        eprintln!(
            "warning: the API on {} accepts commands from anyone who can reach it; set --api-token (or KPBT_API_TOKEN)",
            o.api
        );
    }
    let api_listener = tokio::net::TcpListener::bind(o.api)
        .await
        .with_context(|| {
            format!(
                "cannot serve the API on {} (is another session running? pick another --api)",
                o.api
            )
        })?;
    let metrics_listener = match o.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot serve metrics on {a}"))?,
        ),
        None => None,
    };
    let api_addr = api_listener.local_addr().unwrap_or(o.api);
    let session = Session::start(cfg)
        .await
        .context("cannot start the session")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = tokio::spawn(kpbt_client::api::serve(
        api_listener,
        session.clone(),
        o.api_token.clone(),
        wait_stop(stop_rx.clone()),
    ));
    if let Some(l) = metrics_listener {
        tokio::spawn(kpbt_client::api::serve_router(
            l,
            kpbt_client::api::metrics_router(session.clone()),
            wait_stop(stop_rx.clone()),
        ));
    }
    let n = session.list().len();
    eprintln!(
        "kpbt-client session: {} from {}; API at http://{}; peers on port {}; Ctrl-C to stop",
        kpbt_client::units::count(n as u64, "torrent"),
        o.state_dir.display(),
        api_addr,
        session.listen_addr().port()
    );
    stop.await;
    eprintln!("stopping: announcing stopped and saving state for every torrent");
    let _ = stop_tx.send(true);
    session.shutdown().await;
    let _ = api.await;
    Ok(ExitCode::SUCCESS)
}

/// A thin client of the session API.
struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(o: &ApiOpts) -> Result<Api> {
        Ok(Api {
            base: o.api.trim_end_matches('/').to_string(),
            token: o.api_token.clone().filter(|t| !t.is_empty()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("cannot build an HTTP client")?,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends the request; a non-2xx reply becomes an error carrying the API's message.
    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let (status, body) = self.send_status(r).await?;
        Self::check(status, body)
    }

    fn check(status: reqwest::StatusCode, body: Value) -> Result<Value> {
        if !status.is_success() {
            let msg = body["error"].as_str().unwrap_or("no reason given");
            bail!("the session refused ({status}): {msg}");
        }
        Ok(body)
    }

    /// Sends the request; the reply's status and JSON body, whatever the status.
    async fn send_status(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let resp = r.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "no kpbt-client session answers at {} (start one with `kpbt-client serve --state-dir DIR`, or point --api / KPBT_API at it)",
                    self.base
                )
            } else {
                anyhow!("{}: {}", self.base, e.without_url())
            }
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// What `add` asks of the session.
pub struct AddHow {
    pub dir: PathBuf,
    pub paused: bool,
    pub seed_only: bool,
    /// "Already in the session" counts as success.
    pub exist_ok: bool,
    pub peers: Vec<SocketAddr>,
    /// Web seed/origin URLs kept with the torrent (`--origin`).
    pub origins: Vec<String>,
}

pub async fn add(api: ApiOpts, torrent: String, how: AddHow) -> Result<ExitCode> {
    let AddHow {
        dir,
        paused,
        seed_only,
        exist_ok,
        peers,
        origins,
    } = how;
    let api = Api::new(&api)?;
    let dir = absolute(&dir)?;
    let mut query = vec![
        ("dir", dir.display().to_string()),
        ("paused", paused.to_string()),
        ("seed_only", seed_only.to_string()),
    ];
    if !peers.is_empty() {
        let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
        query.push(("peers", list.join(",")));
    }
    query.extend(origins.into_iter().map(|o| ("origin", o)));
    let req = api
        .request(reqwest::Method::POST, "/torrents")
        .query(&query);
    let req = if torrent.starts_with("http://") || torrent.starts_with("https://") {
        req.json(&serde_json::json!({ "url": torrent }))
    } else if torrent
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("magnet:"))
    {
        eprintln!("the session is fetching the metadata from peers (up to 2 minutes)");
        req.json(&serde_json::json!({ "magnet": torrent }))
            .timeout(Duration::from_secs(180))
    } else {
        let bytes = std::fs::read(&torrent).with_context(|| format!("cannot read {torrent}"))?;
        req.header("content-type", "application/x-bittorrent")
            .body(bytes)
    };
    let v = match api.send_status(req).await? {
        (reqwest::StatusCode::CONFLICT, v) if exist_ok => {
            println!(
                "already in the session: {}",
                v["error"].as_str().unwrap_or("")
            );
            return Ok(ExitCode::SUCCESS);
        }
        (status, v) => Api::check(status, v)?,
    };
    println!(
        "added {} ({}): {}",
        v["name"].as_str().unwrap_or("?"),
        v["info_hash"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

fn line(t: &TorrentViewJson) -> String {
    format!(
        "{}  {:<11} {:>5.1}%  {:>10}  down {:>10}  up {:>10}  {:>3} peers  {}{}",
        t.info_hash,
        t.state,
        t.progress * 100.0,
        format_bytes(t.size),
        format_rate(t.download_rate as f64),
        format_rate(t.upload_rate as f64),
        t.peers,
        t.name,
        t.error
            .as_deref()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default()
    )
}

/// The API's torrent summary, as the verbs read it back.
#[derive(serde::Deserialize)]
struct TorrentViewJson {
    info_hash: String,
    name: String,
    state: String,
    progress: f64,
    size: u64,
    download_rate: u64,
    upload_rate: u64,
    peers: usize,
    error: Option<String>,
}

pub async fn list(api: ApiOpts, json: bool) -> Result<ExitCode> {
    let api = Api::new(&api)?;
    let v = api
        .send(api.request(reqwest::Method::GET, "/torrents"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list: Vec<TorrentViewJson> =
        serde_json::from_value(v).context("unexpected reply from the session")?;
    if list.is_empty() {
        println!("no torrents in the session (add one with `kpbt-client add T.torrent --dir DIR`)");
    }
    for t in &list {
        println!("{}", line(t));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(api: ApiOpts, ih: String, json: bool) -> Result<ExitCode> {
    let api = Api::new(&api)?;
    let v = api
        .send(api.request(reqwest::Method::GET, &format!("/torrents/{ih}")))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let t: TorrentViewJson =
        serde_json::from_value(v.clone()).context("unexpected reply from the session")?;
    println!("{}", line(&t));
    println!("dir: {}", v["dir"].as_str().unwrap_or("?"));
    for f in v["files"].as_array().into_iter().flatten() {
        println!(
            "  file {}: {} ({}, {:.1}%)",
            f["index"],
            f["path"].as_str().unwrap_or("?"),
            format_bytes(f["size"].as_u64().unwrap_or(0)),
            f["progress"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    for p in v["peer_list"].as_array().into_iter().flatten() {
        println!(
            "  peer {} {}: down {}, up {}",
            p["address"].as_str().unwrap_or("?"),
            p["client"].as_str().unwrap_or(""),
            format_bytes(p["downloaded"].as_u64().unwrap_or(0)),
            format_bytes(p["uploaded"].as_u64().unwrap_or(0))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `pause`, `resume`: POST /torrents/IH/ACTION and print the new state.
pub async fn action(api: ApiOpts, ih: String, action: &str) -> Result<ExitCode> {
    let api = Api::new(&api)?;
    let v = api
        .send(api.request(reqwest::Method::POST, &format!("/torrents/{ih}/{action}")))
        .await?;
    let t: TorrentViewJson =
        serde_json::from_value(v).context("unexpected reply from the session")?;
    println!("{}", line(&t));
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(api: ApiOpts, ih: String, delete_data: bool) -> Result<ExitCode> {
    let api = Api::new(&api)?;
    api.send(
        api.request(reqwest::Method::DELETE, &format!("/torrents/{ih}"))
            .query(&[("delete_data", delete_data)]),
    )
    .await?;
    println!(
        "removed {ih}{}",
        if delete_data { " and its data" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Makes the torrent (hashing once) and adds it to the session as seeding, trusted
/// without a second hash.
pub async fn publish(
    api: ApiOpts,
    options: kpbt_client::create::CreateOptions,
    output: PathBuf,
    quiet: bool,
) -> Result<ExitCode> {
    let api_client = Api::new(&api)?;
    let source = absolute(&options.path)?;
    let dir = source
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no parent folder to seed from", source.display()))?;
    let out = output.clone();
    let info_hash = tokio::task::spawn_blocking(move || {
        crate::cli_create::create_torrent(options, &out, quiet)
    })
    .await??;
    let bytes =
        std::fs::read(&output).with_context(|| format!("cannot read back {}", output.display()))?;
    let req = api_client
        .request(reqwest::Method::POST, "/torrents")
        .query(&[
            ("dir", dir.display().to_string()),
            ("verified", "true".into()),
        ])
        .header("content-type", "application/x-bittorrent")
        .body(bytes);
    api_client.send(req).await?;
    println!("{info_hash} {}", output.display());
    Ok(ExitCode::SUCCESS)
}
