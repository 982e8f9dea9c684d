//! `kpbt-tracker` binary: command line and environment on top of the library's config, and
//! the `keys` subcommands that manage the passkey file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kpbt_tracker::passkeys::{KeyFile, PasskeyError};
use kpbt_tracker::Config;

/// HTTP BitTorrent tracker for private swarms.
///
/// Settings come from defaults, then --config FILE (TOML), then KPBT_TRACKER_* environment
/// variables, then flags. `--print-config` shows the result.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// TOML config file (see `--print-config` for every key).
    #[arg(long, env = "KPBT_TRACKER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Passkey file (TOML; managed with `kpbt-tracker keys ...`).
    #[arg(long, env = "KPBT_TRACKER_PASSKEY_FILE", global = true)]
    passkey_file: Option<PathBuf>,
    /// Require a passkey in announce/scrape URLs (needs a passkey file).
    #[arg(long, env = "KPBT_TRACKER_PASSKEYS")]
    passkeys: Option<bool>,
    /// Requests per minute per client (0 = no rate limit).
    #[arg(long, env = "KPBT_TRACKER_RATE_LIMIT_PER_MIN")]
    rate_limit_per_min: Option<u32>,
    /// Most peers one IP address may hold in one swarm.
    #[arg(long, env = "KPBT_TRACKER_MAX_PEERS_PER_IP_PER_TORRENT")]
    max_peers_per_ip_per_torrent: Option<usize>,
    /// Address to listen on; repeat (or comma-separate) for several.
    #[arg(long, env = "KPBT_TRACKER_LISTEN", value_delimiter = ',')]
    listen: Vec<SocketAddr>,
    /// Announce interval sent to clients, seconds.
    #[arg(long, env = "KPBT_TRACKER_ANNOUNCE_INTERVAL")]
    announce_interval: Option<u32>,
    /// Min interval sent to clients, seconds.
    #[arg(long, env = "KPBT_TRACKER_MIN_INTERVAL")]
    min_interval: Option<u32>,
    /// Drop peers not heard from for this long, seconds.
    #[arg(long, env = "KPBT_TRACKER_PEER_TIMEOUT")]
    peer_timeout: Option<u32>,
    /// How often to reap timed-out peers, seconds.
    #[arg(long, env = "KPBT_TRACKER_REAP_INTERVAL")]
    reap_interval: Option<u32>,
    #[arg(long, env = "KPBT_TRACKER_NUMWANT_DEFAULT")]
    numwant_default: Option<u32>,
    #[arg(long, env = "KPBT_TRACKER_NUMWANT_MAX")]
    numwant_max: Option<u32>,
    #[arg(long, env = "KPBT_TRACKER_MAX_TORRENTS")]
    max_torrents: Option<usize>,
    #[arg(long, env = "KPBT_TRACKER_MAX_PEERS_PER_TORRENT")]
    max_peers_per_torrent: Option<usize>,
    /// Trust the client's `ip` parameter.
    #[arg(long, env = "KPBT_TRACKER_HONOR_IP_PARAM")]
    honor_ip_param: Option<bool>,
    /// Take the client address from this header (behind a reverse proxy only).
    #[arg(long, env = "KPBT_TRACKER_REAL_IP_HEADER")]
    real_ip_header: Option<String>,
    /// File of allowed info hashes (hex, one a line).
    #[arg(long, env = "KPBT_TRACKER_ALLOWLIST")]
    allowlist: Option<PathBuf>,
    #[arg(long, env = "KPBT_TRACKER_MAX_QUERY_LEN")]
    max_query_len: Option<usize>,
    /// HTTP worker threads (0 = one per CPU).
    #[arg(long, env = "KPBT_TRACKER_WORKERS")]
    workers: Option<usize>,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `kpbt_tracker=debug`.
    /// actix's per-connection parse errors are off by default: any client could flood
    /// the log with them.
    #[arg(
        long,
        env = "KPBT_TRACKER_LOG",
        default_value = "info,actix_http::h1::dispatcher=off"
    )]
    log: String,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage passkeys in the passkey file (`--passkey-file`, or `passkey_file` in
    /// `--config`). A running tracker picks changes up within `allowlist_poll_secs`, or
    /// at once on SIGHUP.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Generate a new random 32-character key and print it.
    Add {
        /// Who or what the key is for (shown by `list`).
        #[arg(long)]
        note: Option<String>,
    },
    /// Print every key: key, status, created (unix seconds), note.
    List,
    /// Revoke a key; announces with it are refused from the next reload on.
    Revoke { key: String },
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            c.listen = self.listen;
        }
        macro_rules! overlay {
            ($($flag:ident => $field:ident),* $(,)?) => {
                $( if let Some(v) = self.$flag { c.$field = v; } )*
            };
        }
        overlay!(
            announce_interval => announce_interval_secs,
            reap_interval => reap_interval_secs,
            numwant_default => numwant_default,
            numwant_max => numwant_max,
            max_torrents => max_torrents,
            max_peers_per_torrent => max_peers_per_torrent,
            honor_ip_param => honor_ip_param,
            max_query_len => max_query_len,
            workers => workers,
            passkeys => passkeys,
            rate_limit_per_min => rate_limit_per_min,
            max_peers_per_ip_per_torrent => max_peers_per_ip_per_torrent,
        );
        if self.passkey_file.is_some() {
            c.passkey_file = self.passkey_file;
        }
        if self.min_interval.is_some() {
            c.min_interval_secs = self.min_interval;
        }
        if self.peer_timeout.is_some() {
            c.peer_timeout_secs = self.peer_timeout;
        }
        if self.real_ip_header.is_some() {
            c.real_ip_header = self.real_ip_header;
        }
        if self.allowlist.is_some() {
            c.allowlist = self.allowlist;
        }
        c.validate()?;
        Ok(c)
    }
}

/// `kpbt-tracker keys ...`: read-modify-write of the key file (written atomically). Two
/// concurrent edits may lose one of them; keys are managed by one operator at a time.
fn keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    let path = config.passkey_file.as_deref().context(
        "no passkey file: give --passkey-file FILE or set passkey_file in the --config file",
    )?;
    let mut file = KeyFile::read(path)?;
    match action {
        KeysAction::Add { note } => {
            let key = file.add(note);
            file.write(path)?;
            println!("{key}");
        }
        KeysAction::List => {
            for e in &file.keys {
                let status = if e.revoked.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let note = e.note.as_deref().unwrap_or("").replace(['\n', '\t'], " ");
                println!("{}\t{status}\t{}\t{note}", e.key, e.created);
            }
        }
        KeysAction::Revoke { key } => {
            match file.revoke(&key) {
                Ok(()) => {}
                Err(PasskeyError::NoSuchKey) => anyhow::bail!("no such key in {}", path.display()),
                Err(e) => return Err(e.into()),
            }
            file.write(path)?;
            println!("revoked {key}");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .with_context(|| format!("bad --log filter {:?}", cli.log))?;
    // Logs go to stderr (stdout is for --print-config); colours only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let print = cli.print_config;
    let config = cli.into_config()?;
    if let Some(Command::Keys { action }) = command {
        return keys(&config, action);
    }
    if print {
        print!("{}", config.to_toml());
        return Ok(());
    }
    actix_web::rt::System::new()
        .block_on(kpbt_tracker::run(config))
        .context("tracker failed")
}
