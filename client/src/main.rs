//! `kpbt-client`: command-line front end (download, seed, create, info, demo) over the library.

mod cli_agent;
mod cli_create;
mod cli_origin;
mod wait_ready;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use kpbt_client::storage::WriteMode;
use kpbt_client::units::{count, format_bytes};
use kpbt_client::{Config, ProgressMode};
use kpbt_proto::cli_text::{error_line, use_colour};
use kpbt_proto::metainfo::Metainfo;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "kpbt-client",
    version,
    about = "BitTorrent client: download, seed, inspect .torrent files"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct PeerOpts {
    /// Port to accept peers on [default: the first free port of 6881-6889, else any free
    /// port]. A port given here must be free (0 = any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Address to accept peers on, for hosts with several interfaces; `::` takes IPv6
    /// and IPv4 together (IPv4 alone on hosts without IPv6).
    #[arg(long, value_name = "ADDR", default_value = "::")]
    listen: IpAddr,
    /// Extra peer to connect to, e.g. 127.0.0.1:6881 (repeatable; works without a tracker).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Don't contact the torrent's trackers (use --peer).
    #[arg(long)]
    no_trackers: bool,
    /// Maximum peer connections.
    #[arg(long, default_value_t = 50)]
    max_peers: usize,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (and /health), e.g. 0.0.0.0:9100.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Cap on piece data sent to all peers together, bytes/s (K/M/G = KiB/MiB/GiB), e.g. 20M.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    upload_limit: Option<u64>,
}

/// Options that only matter while data is being downloaded and written.
#[derive(Args)]
struct WriteOpts {
    /// Cap on piece data received from all peers together, bytes/s, e.g. 5M.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    download_limit: Option<u64>,
    /// Write downloaded pieces through the page cache instead of with O_DIRECT.
    #[arg(long)]
    buffered_writes: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download a torrent into DIR (single file: DIR/NAME; multi-file: DIR/NAME/...).
    /// Running it again resumes; it also completes or repairs data already in DIR.
    Download {
        /// The .torrent file, or a magnet link (the metadata is fetched from peers and saved as DIR/NAME.torrent).
        torrent: String,
        /// Output directory (created if missing); the torrent's NAME goes inside it.
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output: PathBuf,
        /// Keep seeding after the download completes, until Ctrl-C.
        #[arg(long)]
        seed: bool,
        #[command(flatten)]
        peer: PeerOpts,
        #[command(flatten)]
        write: WriteOpts,
        #[command(flatten)]
        origin: cli_origin::OriginOpts,
    },
    /// Serve the complete data in DIR (the folder that holds NAME, as written by
    /// `download -o DIR`) until Ctrl-C. Never writes: missing or corrupt data is an error.
    Seed {
        /// The .torrent file.
        torrent: String,
        /// The folder that holds the torrent's NAME.
        dir: PathBuf,
        #[command(flatten)]
        peer: PeerOpts,
    },
    /// Show what a .torrent file contains.
    Info {
        /// The .torrent file.
        torrent: String,
    },
    /// Make a .torrent for a file or a directory (pieces hashed on all cores).
    Create {
        /// The file or directory to share; its name becomes the torrent's name.
        path: PathBuf,
        /// Tracker announce URL (http://, https:// or udp://HOST:PORT); repeat for backups
        /// (each is its own BEP 12 tier).
        #[arg(long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
        /// Piece length (power of two, e.g. 256K, 1M) [default: at most 2,000 pieces,
        /// 16 KiB to 16 MiB; at least 64 KiB above 16 MiB, 256 KiB above 64 MiB].
        #[arg(long, value_parser = parse_piece_length)]
        piece_length: Option<u32>,
        /// Mark the torrent private (BEP 27): peers come from its trackers only.
        #[arg(long)]
        private: bool,
        /// Free-text comment stored in the torrent.
        #[arg(long)]
        comment: Option<String>,
        /// BEP 19 web seed: an http(s) URL serving the same data, the file itself or the
        /// folder holding NAME (ending in /); repeatable. Written as `url-list`.
        #[arg(long = "web-seed", value_name = "URL")]
        web_seeds: Vec<String>,
        /// Where to write the .torrent [default: NAME.torrent in the current directory].
        #[arg(short, long, value_name = "OUT.torrent")]
        output: Option<PathBuf>,
        /// Overwrite OUT.torrent if it exists.
        #[arg(long)]
        force: bool,
        /// Also print the torrent's magnet link (on stdout).
        #[arg(long)]
        magnet: bool,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write a deterministic demo payload DIR/demo/ and DIR/demo.torrent (for the compose swarm).
    Demo {
        /// Where to write demo/ and demo.torrent.
        dir: PathBuf,
        /// Total payload size, e.g. 256M.
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        size: u64,
        /// Tracker announce URL for demo.torrent (repeatable).
        #[arg(long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
    },
    /// Run the host agent: one process holding many torrents (one peer port, shared
    /// limits), controlled through a JSON API; state survives restarts.
    Serve(cli_agent::ServeOpts),
    /// Add a .torrent file or URL to a running session (`serve`).
    Add {
        /// The .torrent file, an http(s):// URL the session fetches it from, or a magnet
        /// link (the session gets the metadata from peers).
        torrent: String,
        /// The folder that holds (or will hold) the torrent's NAME.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Add it paused.
        #[arg(long)]
        paused: bool,
        /// Serve complete data read-only and never write (like `seed`).
        #[arg(long)]
        seed_only: bool,
        /// Exit 0 when the session already has this torrent (for scripts run again).
        #[arg(long)]
        exist_ok: bool,
        /// Extra peer to dial besides the trackers' (repeatable).
        #[arg(long = "peer", value_name = "ADDR")]
        peers: Vec<SocketAddr>,
        /// HTTP(S) URL serving the torrent's data, used like a BEP 19 web seed (the file,
        /// or the folder holding NAME ending in /); repeatable; kept with the torrent.
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// List the torrents of a running session.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Show one torrent of a running session: files, peers.
    Status {
        /// Info hash (40 hex digits).
        info_hash: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Pause a torrent of a running session.
    Pause {
        info_hash: String,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Resume a paused torrent of a running session.
    Resume {
        info_hash: String,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Remove a torrent from a running session (its data stays unless --delete-data).
    Remove {
        info_hash: String,
        /// Also delete its files (only inside its own folder).
        #[arg(long)]
        delete_data: bool,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Make a torrent of PATH and seed it from a running session at once (the data is
    /// hashed once, for the torrent); prints the info hash and the .torrent path.
    Publish {
        /// The file or directory to share.
        path: PathBuf,
        /// Tracker announce URL (repeatable).
        #[arg(long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
        /// Where to write the .torrent [default: NAME.torrent in the current directory].
        #[arg(short, long, value_name = "OUT.torrent")]
        output: Option<PathBuf>,
        /// Mark the torrent private (BEP 27).
        #[arg(long)]
        private: bool,
        /// BEP 19 web seed URL written into the torrent (repeatable), as for `create`.
        #[arg(long = "web-seed", value_name = "URL")]
        web_seeds: Vec<String>,
        /// Piece length (power of two) [default as for `create`].
        #[arg(long, value_parser = parse_piece_length)]
        piece_length: Option<u32>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        api: cli_agent::ApiOpts,
    },
    /// Wait until N peers have the whole torrent, by polling a kpbt tracker's
    /// /swarms/HASH?expect=N; prints "3 of 10 complete (2 leechers)" on each change,
    /// exits 0 once ready, 1 with the figures at the timeout.
    WaitReady(wait_ready::WaitReadyArgs),
    /// Exit 0 if URL answers with a 2xx status within 2 s (a container healthcheck: the
    /// images have no shell or curl).
    Health {
        /// The URL to probe.
        #[arg(default_value = "http://127.0.0.1:9100/health")]
        url: String,
    },
}

pub(crate) fn parse_size(text: &str) -> Result<u64, kpbt_client::units::ParseSizeError> {
    kpbt_client::units::parse_size(text)
}

fn parse_piece_length(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    u32::try_from(bytes).map_err(|_| format!("piece length {text} is too large"))
}

/// Reads and validates a .torrent named on the command line.
fn is_magnet(arg: &str) -> bool {
    arg.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("magnet:"))
}

/// How long a magnet download waits for some peer to deliver the metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(120);

/// Fetches a magnet link's metadata from its peers and trackers (and `--peer`), saves
/// the .torrent as `DIR/NAME.torrent`, and returns it with the peer id it used and
/// the link's peers.
async fn fetch_magnet(
    link: &str,
    p: &PeerOpts,
    output: &Path,
) -> Result<(Metainfo, kpbt_proto::PeerId, Vec<SocketAddr>, u16)> {
    let m = kpbt_proto::magnet::parse(link).context("cannot use this magnet link")?;
    let use_trackers = !p.no_trackers && !m.trackers.is_empty();
    if !use_trackers && m.peers.is_empty() && p.peers.is_empty() {
        bail!("no way to find peers: the magnet link names no tracker (tr=) and no peer (x.pe=), or --no-trackers was given; pass --peer ADDR");
    }
    let peer_id = kpbt_proto::PeerId::generate(rand::random());
    if !p.quiet {
        eprintln!(
            "fetching the metadata of {} from peers",
            m.name.as_deref().unwrap_or(&m.info_hash.to_hex())
        );
    }
    let link_peers = kpbt_client::magnet_fetch::resolve_peers(&m).await?;
    // Trackers must hear the port the download will listen on.
    let listen = SocketAddr::new(p.listen, p.port.unwrap_or(DEFAULT_PORT));
    let port = kpbt_client::engine::pick_listen_port(listen, p.port.is_none()).await?;
    let mut m = m;
    m.peers.clear(); // resolved above
    let cfg = kpbt_client::magnet_fetch::FetchConfig {
        peer_id,
        port,
        peers: p.peers.iter().chain(&link_peers).copied().collect(),
        use_trackers,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .context("cannot build an HTTP client")?,
        timeout: METADATA_TIMEOUT,
    };
    let bytes = kpbt_client::magnet_fetch::fetch(&m, cfg).await?;
    let meta =
        Metainfo::from_bytes(&bytes).context("the verified metadata is not a usable torrent")?;
    kpbt_client::storage::check_component(&meta.info.name)?;
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let path = output.join(format!("{}.torrent", meta.info.name));
    if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&path, &bytes).with_context(|| format!("cannot save {}", path.display()))?;
    }
    if !p.quiet {
        eprintln!(
            "metadata: {} ({}); saved {}",
            meta.info.name,
            format_bytes(meta.info.total_length),
            path.display()
        );
    }
    Ok((meta, peer_id, link_peers, port))
}

fn load(arg: &str) -> Result<Metainfo> {
    if is_magnet(arg) {
        let m = kpbt_proto::magnet::parse(arg).context("cannot use this magnet link")?;
        bail!(
            "this command needs the .torrent file, not a magnet link (info hash {}): \
             `kpbt-client download 'magnet:...'` fetches it and saves DIR/NAME.torrent",
            m.info_hash
        );
    }
    load_path(Path::new(arg))
}

fn load_path(path: &Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid .torrent file", path.display()))
}

/// The first port tried when `--port` is not given; the next eight are tried after it.
pub(crate) const DEFAULT_PORT: u16 = 6881;

fn config(dir: PathBuf, p: &PeerOpts) -> Config {
    let mut c = Config::new(dir);
    c.listen = SocketAddr::new(p.listen, p.port.unwrap_or(DEFAULT_PORT));
    c.listen_fallback = p.port.is_none();
    c.peers = p.peers.clone();
    c.use_trackers = !p.no_trackers;
    c.max_peers = p.max_peers;
    c.metrics_listen = p.metrics_listen;
    c.upload_limit = p.upload_limit;
    c.progress = if p.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    c
}

fn check_sources(meta: &Metainfo, p: &PeerOpts, origins: &[String]) -> Result<()> {
    let trackers = !p.no_trackers && !kpbt_client::tracker::usable_tiers(&meta.trackers).is_empty();
    let web = !meta.web_seeds.is_empty() || !origins.is_empty();
    if !trackers && p.peers.is_empty() && !web {
        bail!("no way to find peers: the torrent has no tracker this client can use (or --no-trackers was given) and no web seed; pass --peer ADDR or --origin URL");
    }
    Ok(())
}

/// `-o DIR` must be a directory or not exist yet (it is created).
fn check_output_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!(
            "{} is not a directory: -o takes the folder to download into (the torrent's NAME goes inside it)",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`docker stop`, systemd, kill), so either
/// stops cleanly: announce `stopped`, flush files.
async fn ctrl_c() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn info(meta: &Metainfo) {
    let i = &meta.info;
    println!("name:         {}", i.name);
    println!("info hash:    {}", meta.info_hash);
    println!(
        "size:         {} ({} bytes)",
        format_bytes(i.total_length),
        i.total_length
    );
    println!(
        "pieces:       {} of {}",
        count(u64::from(i.piece_count()), "piece"),
        format_bytes(u64::from(i.piece_length))
    );
    println!("private:      {}", if i.private { "yes" } else { "no" });
    if let Some(date) = meta.creation_date {
        println!("created:      {}", creation_date(date));
    }
    if let Some(c) = &meta.created_by {
        println!("created by:   {c}");
    }
    if let Some(c) = &meta.comment {
        println!("comment:      {c}");
    }
    if meta.trackers.is_empty() {
        println!("trackers:     none");
    }
    for (n, tier) in meta.trackers.iter().enumerate() {
        println!("tier {n}:       {}", tier.join(" "));
    }
    for url in &meta.web_seeds {
        println!("web seed:     {}", kpbt_proto::redact::web_url(url));
    }
    println!("magnet:       {}", magnet_of(meta));
    println!("files:        {}", count(i.files.len() as u64, "file"));
    for f in &i.files {
        println!(
            "  {:>10}  {}",
            format_bytes(f.length),
            f.relative_path().display()
        );
    }
}

/// The torrent's magnet link: info hash, name, every tracker and web seed.
fn magnet_of(meta: &Metainfo) -> String {
    kpbt_proto::magnet::Magnet {
        info_hash: meta.info_hash,
        name: Some(meta.info.name.clone()),
        trackers: meta.trackers.iter().flatten().cloned().collect(),
        peers: Vec::new(),
        web_seeds: meta.web_seeds.clone(),
    }
    .to_uri()
}

/// A torrent's `creation date` (unix seconds, untrusted) as an HTTP date in UTC.
fn creation_date(secs: i64) -> String {
    u64::try_from(secs)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .filter(|t| *t < std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
        .map(httpdate::fmt_http_date)
        .unwrap_or_else(|| format!("{secs} (not a valid date)"))
}

async fn health(url: &str) -> Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("cannot build an HTTP client")?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{url}: HTTP status {}", resp.status());
        Ok(ExitCode::FAILURE)
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Info { torrent } => {
            info(&load(&torrent)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Health { url } => health(&url).await,
        Cmd::Serve(o) => cli_agent::serve(o, ctrl_c()).await,
        Cmd::Add {
            torrent,
            dir,
            paused,
            seed_only,
            exist_ok,
            peers,
            origins,
            api,
        } => {
            cli_origin::check_origins(&origins)?;
            let how = cli_agent::AddHow {
                dir,
                paused,
                seed_only,
                exist_ok,
                peers,
                origins,
            };
            cli_agent::add(api, torrent, how).await
        }
        Cmd::List { json, api } => cli_agent::list(api, json).await,
        Cmd::Status {
            info_hash,
            json,
            api,
        } => cli_agent::status(api, info_hash, json).await,
        Cmd::Pause { info_hash, api } => cli_agent::action(api, info_hash, "pause").await,
        Cmd::Resume { info_hash, api } => cli_agent::action(api, info_hash, "resume").await,
        Cmd::Remove {
            info_hash,
            delete_data,
            api,
        } => cli_agent::remove(api, info_hash, delete_data).await,
        Cmd::Publish {
            path,
            trackers,
            output,
            private,
            web_seeds,
            piece_length,
            quiet,
            api,
        } => {
            let output = match output {
                Some(o) => o,
                None => default_torrent_path(&path)?,
            };
            let options = kpbt_client::create::CreateOptions {
                path,
                trackers: trackers.into_iter().map(|t| vec![t]).collect(),
                piece_length,
                private,
                comment: None,
                web_seeds,
            };
            cli_agent::publish(api, options, output, quiet).await
        }
        Cmd::WaitReady(args) => wait_ready::run(args).await,
        Cmd::Create {
            path,
            trackers,
            piece_length,
            private,
            comment,
            web_seeds,
            output,
            force,
            magnet,
            quiet,
        } => {
            let output = match output {
                Some(o) => o,
                None => default_torrent_path(&path)?,
            };
            if !force && output.exists() {
                bail!(
                    "{} exists: pass --force to overwrite it, or -o to write elsewhere",
                    output.display()
                );
            }
            if private && trackers.is_empty() {
                eprintln!(
                    "warning: a private torrent with no --tracker can only find peers given by --peer"
                );
            }
            let options = kpbt_client::create::CreateOptions {
                path,
                trackers: trackers.into_iter().map(|t| vec![t]).collect(),
                piece_length,
                private,
                comment,
                web_seeds,
            };
            let written = output.clone();
            tokio::task::spawn_blocking(move || {
                cli_create::create_torrent(options, &output, quiet)
            })
            .await??;
            if magnet {
                println!("{}", magnet_of(&load_path(&written)?));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo {
            dir,
            size,
            trackers,
        } => {
            let tiers = trackers.into_iter().map(|t| vec![t]).collect();
            tokio::task::spawn_blocking(move || cli_create::demo(&dir, size, tiers)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Download {
            torrent,
            output,
            seed,
            peer,
            write,
            origin,
        } => {
            check_output_dir(&output)?;
            cli_origin::check_origins(&origin.origins)?;
            let mut peer = peer;
            let (meta, peer_id) = if is_magnet(&torrent) {
                let (meta, id, link_peers, port) = fetch_magnet(&torrent, &peer, &output).await?;
                // The link's x.pe peers serve the data too; the port announced
                // during the fetch is the one to listen on.
                peer.peers.extend(link_peers);
                peer.port = Some(port);
                (meta, Some(id))
            } else {
                (load(&torrent)?, None)
            };
            check_sources(&meta, &peer, &origin.origins)?;
            let name = meta.info.name.clone();
            let mut cfg = config(output.clone(), &peer);
            cfg.peer_id = peer_id.or(cfg.peer_id);
            cfg.download_limit = write.download_limit;
            origin.apply(&mut cfg);
            cfg.write_mode = if write.buffered_writes {
                WriteMode::Buffered
            } else {
                WriteMode::Direct
            };
            let s = kpbt_client::download(meta, cfg, seed, ctrl_c())
                .await
                .context("download failed")?;
            if s.complete {
                if !peer.quiet {
                    eprintln!(
                        "done: {} ({} verified); downloaded {}{}, uploaded {}",
                        output.join(&name).display(),
                        count(u64::from(s.piece_count), "piece"),
                        amount(s.downloaded),
                        by_source(&s),
                        amount(s.uploaded)
                    );
                }
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "stopped before completing: {} of {} verified; downloaded {}, uploaded {}; run the same command again to resume",
                    s.pieces_verified,
                    count(u64::from(s.piece_count), "piece"),
                    format_bytes(s.downloaded),
                    format_bytes(s.uploaded)
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Seed { torrent, dir, peer } => {
            let meta = load(&torrent)?;
            let name = meta.info.name.clone();
            let mut cfg = config(dir.clone(), &peer);
            cfg.seed_only = true;
            let mut h = kpbt_client::start(meta, cfg)
                .await
                .with_context(|| format!("cannot seed {}", dir.join(&name).display()))?;
            if !peer.quiet {
                eprintln!(
                    "seeding {} on port {}; Ctrl-C to stop",
                    dir.join(&name).display(),
                    h.listen_addr().port()
                );
            }
            tokio::select! {
                r = async { h.wait_complete().await?; std::future::pending::<Result<(), kpbt_client::ClientError>>().await } => { r?; }
                _ = ctrl_c() => {}
            }
            let s = h.shutdown().await?;
            if !peer.quiet {
                eprintln!("stopped seeding; uploaded {}", format_bytes(s.uploaded));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// ` (X from peers, Y from origin)` when any bytes came from a web seed or origin.
fn by_source(s: &kpbt_client::Summary) -> String {
    if s.origin_bytes == 0 {
        return String::new();
    }
    format!(
        " ({} from peers, {} from origin)",
        format_bytes(s.peer_bytes),
        format_bytes(s.origin_bytes)
    )
}

/// A byte total in a final summary: human units, with the exact count for scripts.
fn amount(bytes: u64) -> String {
    if bytes < 1024 {
        format_bytes(bytes)
    } else {
        format!("{} ({bytes} bytes)", format_bytes(bytes))
    }
}

/// `create`'s default output: `NAME.torrent` in the current directory.
fn default_torrent_path(source: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(source)
        .with_context(|| format!("cannot resolve {}", source.display()))?;
    let name = absolute.file_name().with_context(|| {
        format!(
            "{} has no name to call the torrent by; pass -o",
            source.display()
        )
    })?;
    let mut file = name.to_os_string();
    file.push(".torrent");
    Ok(PathBuf::from(file))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .init();
    // Storage keeps descriptors in a bounded cache sized from this limit; raising the
    // soft limit to the hard one (often 1,024 → 524,288) lets that cache and the peer
    // sockets both grow on hosts that allow it.
    match kpbt_client::fd_cache::raise_nofile_limit() {
        Some(limit) => tracing::debug!(limit, "open file limit"),
        None => tracing::warn!("cannot read the open file limit"),
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
