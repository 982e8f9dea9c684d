//! `kpbt-client`: command-line front end (download, seed, create, info, demo) over the library.

mod cli_create;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use kpbt_client::storage::WriteMode;
use kpbt_client::{Config, ProgressMode};
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
    /// Port to accept peers on (0 = any free port).
    #[arg(long, default_value_t = 6881)]
    port: u16,
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
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 0.0.0.0:9100.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Cap on piece data sent to all peers together, bytes/s (K/M/G = KiB/MiB/GiB), e.g. 20M.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    upload_limit: Option<u64>,
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
    Download {
        torrent: PathBuf,
        /// Output directory.
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output: PathBuf,
        /// Keep seeding after the download completes, until Ctrl-C.
        #[arg(long)]
        seed: bool,
        #[command(flatten)]
        peer: PeerOpts,
    },
    /// Verify the data in DIR (as written by `download -o DIR`) and seed it until Ctrl-C.
    Seed {
        torrent: PathBuf,
        dir: PathBuf,
        #[command(flatten)]
        peer: PeerOpts,
    },
    /// Show what a .torrent file contains.
    Info { torrent: PathBuf },
    /// Make a .torrent for a file or a directory (pieces hashed on all cores).
    Create {
        /// The file or directory to share; its name becomes the torrent's name.
        path: PathBuf,
        /// Tracker announce URL; repeat for backups (each is its own BEP 12 tier).
        #[arg(long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
        /// Piece length in bytes (power of two, e.g. 256K, 1M); default: about 1,000-2,000 pieces.
        #[arg(long, value_parser = parse_piece_length)]
        piece_length: Option<u32>,
        /// Mark the torrent private (BEP 27): peers come from its trackers only.
        #[arg(long)]
        private: bool,
        #[arg(long)]
        comment: Option<String>,
        /// Where to write the .torrent.
        #[arg(short, long, value_name = "OUT.torrent")]
        output: PathBuf,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write a deterministic demo payload DIR/demo/ and DIR/demo.torrent (for the compose swarm).
    Demo {
        dir: PathBuf,
        /// Total payload size, e.g. 256M.
        #[arg(long, default_value = "256M", value_parser = parse_size)]
        size: u64,
        #[arg(long = "tracker", value_name = "URL")]
        trackers: Vec<String>,
    },
}

fn parse_size(text: &str) -> Result<u64, kpbt_client::units::ParseSizeError> {
    kpbt_client::units::parse_size(text)
}

fn parse_piece_length(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    u32::try_from(bytes).map_err(|_| format!("piece length {text} is too large"))
}

fn load(path: &Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid .torrent file", path.display()))
}

fn config(dir: PathBuf, p: &PeerOpts) -> Config {
    let mut c = Config::new(dir);
    c.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p.port);
    c.peers = p.peers.clone();
    c.use_trackers = !p.no_trackers;
    c.max_peers = p.max_peers;
    c.metrics_listen = p.metrics_listen;
    c.upload_limit = p.upload_limit;
    c.download_limit = p.download_limit;
    c.write_mode = if p.buffered_writes {
        WriteMode::Buffered
    } else {
        WriteMode::Direct
    };
    c.progress = if p.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    c
}

fn check_sources(meta: &Metainfo, p: &PeerOpts) -> Result<()> {
    let trackers = !p.no_trackers && !kpbt_client::tracker::usable_tiers(&meta.trackers).is_empty();
    if !trackers && p.peers.is_empty() {
        bail!("no way to find peers: the torrent has no HTTP(S) tracker (or --no-trackers was given); pass --peer ADDR");
    }
    Ok(())
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
    println!("size:         {} bytes", i.total_length);
    println!(
        "piece length: {} bytes ({} pieces)",
        i.piece_length,
        i.piece_count()
    );
    println!("private:      {}", if i.private { "yes" } else { "no" });
    if let Some(c) = &meta.comment {
        println!("comment:      {c}");
    }
    if let Some(c) = &meta.created_by {
        println!("created by:   {c}");
    }
    if meta.trackers.is_empty() {
        println!("trackers:     none");
    }
    for (n, tier) in meta.trackers.iter().enumerate() {
        println!("tier {n}:       {}", tier.join(" "));
    }
    println!("files:        {}", i.files.len());
    for f in &i.files {
        println!("  {:>14}  {}", f.length, f.relative_path().display());
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Info { torrent } => {
            info(&load(&torrent)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Create {
            path,
            trackers,
            piece_length,
            private,
            comment,
            output,
            quiet,
        } => {
            let options = kpbt_client::create::CreateOptions {
                path,
                trackers: trackers.into_iter().map(|t| vec![t]).collect(),
                piece_length,
                private,
                comment,
            };
            tokio::task::spawn_blocking(move || {
                cli_create::create_torrent(options, &output, quiet)
            })
            .await??;
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
        } => {
            let meta = load(&torrent)?;
            check_sources(&meta, &peer)?;
            let name = meta.info.name.clone();
            let s = kpbt_client::download(meta, config(output.clone(), &peer), seed, ctrl_c())
                .await
                .context("download failed")?;
            if s.complete {
                if !peer.quiet {
                    eprintln!(
                        "done: {} ({} pieces verified) in {}, {:.1} MiB/s; downloaded {} bytes, uploaded {} bytes",
                        output.join(&name).display(),
                        s.piece_count,
                        humantime(s.elapsed),
                        s.downloaded as f64 / 1048576.0 / s.elapsed.as_secs_f64().max(0.001),
                        s.downloaded,
                        s.uploaded
                    );
                }
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "stopped before completing: {}/{} pieces verified; run the same command again to resume",
                    s.pieces_verified, s.piece_count
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Seed { torrent, dir, peer } => {
            let meta = load(&torrent)?;
            let mut h = kpbt_client::start(meta, config(dir.clone(), &peer))
                .await
                .context("cannot start seeding")?;
            let s = h.summary();
            if !s.complete {
                eprintln!(
                    "warning: only {}/{} pieces in {} verified; the rest will be downloaded while seeding",
                    s.pieces_verified,
                    s.piece_count,
                    dir.display()
                );
            }
            if !peer.quiet {
                eprintln!("seeding on {}; Ctrl-C to stop", h.listen_addr());
            }
            tokio::select! {
                r = async { h.wait_complete().await?; std::future::pending::<Result<(), kpbt_client::ClientError>>().await } => { r?; }
                _ = ctrl_c() => {}
            }
            let s = h.shutdown().await?;
            if !peer.quiet {
                eprintln!("stopped; uploaded {} bytes", s.uploaded);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn humantime(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
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
        .init();
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
