//! `kpbt-tracker` binary: command line and environment on top of the library's config, the
//! `keys` subcommands that manage the passkey file, and the `health` probe.
//!
//! Flags are `Option`s so that only what the user gave overrides the config file; the
//! defaults `--help` shows are filled in from `Config::default()` when the command is built
//! ([`command`]), and a value that came from such a default is never overlaid.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use kpbt_proto::cli_text::{error_line, use_colour};
use kpbt_tracker::labels::LabelsConfig;
use kpbt_tracker::passkeys::{KeyEntry, KeyFile, PasskeyError};
use kpbt_tracker::{probe, Config};

const LISTENING: &str = "Listening";
const REPLIES: &str = "Announce replies";
const SWARMS: &str = "Peers and swarms";
const LIMITS: &str = "Request limits";
const ACCESS: &str = "Access control";
const FILES: &str = "Config file and logging";

/// HTTP and UDP BitTorrent tracker for private swarms.
///
/// Settings come from defaults, then --config FILE (TOML), then KPBT_TRACKER_* environment
/// variables, then flags. `--print-config` prints every key with the value in effect, a
/// complete sample config file.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on (ip:port or host:port); repeat or comma-separate for several.
    #[arg(long, value_name = "ADDR", env = "KPBT_TRACKER_LISTEN", value_delimiter = ',',
          value_parser = parse_listen, help_heading = LISTENING)]
    listen: Vec<SocketAddr>,
    /// UDP tracker (BEP 15) address; repeat or comma-separate for several (none by default).
    #[arg(long, value_name = "ADDR", env = "KPBT_TRACKER_UDP_LISTEN", value_delimiter = ',',
          value_parser = parse_listen, help_heading = LISTENING)]
    udp_listen: Vec<SocketAddr>,
    /// Key for UDP connection ids (32 hex digits), the same on every instance behind one
    /// address; random per process when unset.
    #[arg(long, value_name = "HEX", env = "KPBT_TRACKER_UDP_CONNECTION_KEY",
          hide_env_values = true, help_heading = LISTENING)]
    udp_connection_key: Option<String>,
    /// HTTP worker threads, and threads per UDP socket (0 = one per CPU).
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_WORKERS", help_heading = LISTENING)]
    workers: Option<usize>,
    /// Close idle keep-alive connections after this many seconds (0 = no keep-alive).
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_KEEP_ALIVE", help_heading = LISTENING)]
    keep_alive: Option<u64>,
    /// A request head must arrive within this many milliseconds, else 408 and close.
    #[arg(long, value_name = "MS", env = "KPBT_TRACKER_CLIENT_REQUEST_TIMEOUT", help_heading = LISTENING)]
    client_request_timeout: Option<u64>,
    /// After a response, how long a client gets to close before it is dropped, ms.
    #[arg(long, value_name = "MS", env = "KPBT_TRACKER_CLIENT_DISCONNECT_TIMEOUT", help_heading = LISTENING)]
    client_disconnect_timeout: Option<u64>,
    /// Most concurrent connections per worker; more wait in the listen backlog.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_MAX_CONNECTIONS_PER_WORKER", help_heading = LISTENING)]
    max_connections_per_worker: Option<usize>,

    /// Announce interval sent to clients, seconds.
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_ANNOUNCE_INTERVAL", help_heading = REPLIES)]
    announce_interval: Option<u32>,
    /// Min interval sent to clients, seconds [default: half the announce interval].
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_MIN_INTERVAL", help_heading = REPLIES)]
    min_interval: Option<u32>,
    /// Peers returned when the client sends no `numwant`.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_NUMWANT_DEFAULT", help_heading = REPLIES)]
    numwant_default: Option<u32>,
    /// Most peers returned, whatever the client asks for.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_NUMWANT_MAX", help_heading = REPLIES)]
    numwant_max: Option<u32>,

    /// Drop peers not heard from for this long, seconds [default: 2 x announce interval +
    /// 300].
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_PEER_TIMEOUT", help_heading = SWARMS)]
    peer_timeout: Option<u32>,
    /// How often to drop timed-out peers, seconds.
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_REAP_INTERVAL", help_heading = SWARMS)]
    reap_interval: Option<u32>,
    /// Most torrents tracked at once; announces for new ones beyond it fail.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_MAX_TORRENTS", help_heading = SWARMS)]
    max_torrents: Option<usize>,
    /// Most peers per torrent; new peers beyond it fail.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_MAX_PEERS_PER_TORRENT", help_heading = SWARMS)]
    max_peers_per_torrent: Option<usize>,
    /// Most peers one IP address may hold in one swarm (loopback is exempt).
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_MAX_PEERS_PER_IP_PER_TORRENT", help_heading = SWARMS)]
    max_peers_per_ip_per_torrent: Option<usize>,
    /// Where swarm state lives: memory, redis://HOST:PORT[/DB], rediss://... (TLS), or
    /// redis-cluster://H1:P1,H2:P2,... (shared by several tracker instances).
    #[arg(long, value_name = "STORE", env = "KPBT_TRACKER_STORE", help_heading = SWARMS)]
    store: Option<String>,
    /// Store calls slower than this fail with "storage unavailable", milliseconds.
    #[arg(long, value_name = "MS", env = "KPBT_TRACKER_STORE_TIMEOUT_MS", help_heading = SWARMS)]
    store_timeout_ms: Option<u64>,
    /// Rack/zone label NAME=CIDR[,CIDR...]: replies list peers of the announcer's label
    /// first. Repeat (or separate with ';', as in the variable) for several; an address
    /// has the first that matches. Replaces the config file's [labels] [default: none].
    #[arg(long = "label", value_name = "NAME=CIDRS", env = "KPBT_TRACKER_LABELS",
          value_delimiter = ';', value_parser = parse_label, help_heading = SWARMS)]
    labels: Vec<(String, Vec<String>)>,

    /// Longest accepted announce/scrape query string, bytes.
    #[arg(long, value_name = "BYTES", env = "KPBT_TRACKER_MAX_QUERY_LEN", help_heading = LIMITS)]
    max_query_len: Option<usize>,
    /// Largest total size of request headers, bytes.
    #[arg(long, value_name = "BYTES", env = "KPBT_TRACKER_MAX_HEADER_BYTES", help_heading = LIMITS)]
    max_header_bytes: Option<usize>,
    /// Most info hashes in one scrape.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_MAX_SCRAPE_HASHES", help_heading = LIMITS)]
    max_scrape_hashes: Option<usize>,
    /// Requests per minute per client (IPv4 address or IPv6 /64); 0 = no rate limit.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_RATE_LIMIT_PER_MIN", help_heading = LIMITS)]
    rate_limit_per_min: Option<u32>,
    /// Requests a client may make in a burst after being idle.
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_RATE_LIMIT_BURST", help_heading = LIMITS)]
    rate_limit_burst: Option<u32>,
    /// Most clients the rate limiter tracks at once (~64 bytes each).
    #[arg(long, value_name = "N", env = "KPBT_TRACKER_RATE_LIMIT_MAX_CLIENTS", help_heading = LIMITS)]
    rate_limit_max_clients: Option<usize>,

    /// Require a passkey in announce/scrape URLs (needs a passkey file).
    #[arg(long, value_name = "BOOL", env = "KPBT_TRACKER_PASSKEYS", help_heading = ACCESS)]
    passkeys: Option<bool>,
    /// Passkey file (TOML; managed with `kpbt-tracker keys ...`) [default: none].
    #[arg(long, value_name = "FILE", env = "KPBT_TRACKER_PASSKEY_FILE", global = true, help_heading = ACCESS)]
    passkey_file: Option<PathBuf>,
    /// The tracker's URL as users reach it, e.g. http://tracker.example:6969; `keys add`
    /// prints the full announce URL with it [default: none].
    #[arg(long, visible_alias = "announce-url", value_name = "URL", env = "KPBT_TRACKER_PUBLIC_URL",
          global = true, help_heading = ACCESS)]
    public_url: Option<String>,
    /// File of allowed info hashes (hex, one a line); unset = every torrent [default: none].
    #[arg(long, value_name = "FILE", env = "KPBT_TRACKER_ALLOWLIST", help_heading = ACCESS)]
    allowlist: Option<PathBuf>,
    /// How often the allowlist and passkey files are checked for changes, seconds.
    #[arg(long, value_name = "SECS", env = "KPBT_TRACKER_ALLOWLIST_POLL", help_heading = ACCESS)]
    allowlist_poll: Option<u32>,
    /// Trust the client's `ip` parameter (lets a client point a swarm at any host).
    #[arg(long, value_name = "BOOL", env = "KPBT_TRACKER_HONOR_IP_PARAM", help_heading = ACCESS)]
    honor_ip_param: Option<bool>,
    /// Take the client address from this header, for requests from --trusted-proxies
    /// only [default: none].
    #[arg(long, value_name = "HEADER", env = "KPBT_TRACKER_REAL_IP_HEADER", help_heading = ACCESS)]
    real_ip_header: Option<String>,
    /// Networks (CIDRs) of proxies whose real-IP header / `ip=` is believed; repeat or
    /// comma-separate [default: none].
    #[arg(long, value_name = "CIDR", env = "KPBT_TRACKER_TRUSTED_PROXIES", value_delimiter = ',', help_heading = ACCESS)]
    trusted_proxies: Vec<String>,

    /// TOML config file (see `--print-config` for every key).
    #[arg(long, value_name = "FILE", env = "KPBT_TRACKER_CONFIG", global = true, help_heading = FILES)]
    config: Option<PathBuf>,
    /// Print the effective config as TOML (every key) and exit.
    #[arg(long, help_heading = FILES)]
    print_config: bool,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `kpbt_tracker=debug`.
    /// actix's per-connection parse errors are off by default: any client could flood
    /// the log with them. Colour only when stderr is a terminal and NO_COLOR is unset.
    #[arg(
        long,
        env = "KPBT_TRACKER_LOG",
        value_name = "FILTER",
        default_value = "info,actix_http::h1::dispatcher=off",
        help_heading = FILES
    )]
    log: String,

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
    /// Check that a tracker answers: GET URL, exit 0 on HTTP 2xx within 2 s, else print
    /// why and exit 1. For container health checks (the image has no shell or curl).
    Health {
        /// The health endpoint to probe.
        #[arg(default_value = probe::DEFAULT_URL)]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Generate a new random 32-character key; print it and the announce URL to hand out
    /// (set `--public-url` or `public_url` for the full URL). Creates the file (mode 0600).
    Add {
        /// Who or what the key is for (shown by `list`).
        #[arg(long)]
        note: Option<String>,
    },
    /// Print every key: key, status, created and revoked times (UTC), note.
    List,
    /// Revoke a key; announces with it are refused from the next reload on.
    Revoke {
        /// The key, or the announce URL that contains it.
        key: String,
    },
}

/// Defaults shown by `--help`, taken from `Config::default()` (the one place they live),
/// keyed by argument id. Flags for optional keys with a computed or no default say so in
/// their help instead.
fn defaults() -> Vec<(&'static str, String)> {
    let d = Config::default();
    let listen: Vec<String> = d.listen.iter().map(ToString::to_string).collect();
    vec![
        ("listen", listen.join(",")),
        ("workers", d.workers.to_string()),
        ("keep_alive", d.keep_alive_secs.to_string()),
        (
            "client_request_timeout",
            d.client_request_timeout_ms.to_string(),
        ),
        (
            "client_disconnect_timeout",
            d.client_disconnect_timeout_ms.to_string(),
        ),
        (
            "max_connections_per_worker",
            d.max_connections_per_worker.to_string(),
        ),
        ("announce_interval", d.announce_interval_secs.to_string()),
        ("numwant_default", d.numwant_default.to_string()),
        ("numwant_max", d.numwant_max.to_string()),
        ("reap_interval", d.reap_interval_secs.to_string()),
        ("max_torrents", d.max_torrents.to_string()),
        ("max_peers_per_torrent", d.max_peers_per_torrent.to_string()),
        (
            "max_peers_per_ip_per_torrent",
            d.max_peers_per_ip_per_torrent.to_string(),
        ),
        ("max_query_len", d.max_query_len.to_string()),
        ("max_header_bytes", d.max_header_bytes.to_string()),
        ("max_scrape_hashes", d.max_scrape_hashes.to_string()),
        ("rate_limit_per_min", d.rate_limit_per_min.to_string()),
        ("rate_limit_burst", d.rate_limit_burst.to_string()),
        (
            "rate_limit_max_clients",
            d.rate_limit_max_clients.to_string(),
        ),
        ("passkeys", d.passkeys.to_string()),
        ("allowlist_poll", d.allowlist_poll_secs.to_string()),
        ("honor_ip_param", d.honor_ip_param.to_string()),
    ]
}

/// The clap command with the defaults filled in. Every argument is visited in declaration
/// order because `mut_arg` moves the argument to the end, and `--help` orders its headings
/// by where their first argument sits.
fn command() -> clap::Command {
    let cmd = Cli::command();
    let ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut defaults = defaults();
    ids.iter().fold(cmd, |cmd, id| {
        let default = defaults
            .iter()
            .position(|(d, _)| d == id)
            .map(|i| defaults.swap_remove(i).1);
        cmd.mut_arg(id, |a| match default {
            Some(v) => a.default_value(v),
            None => a,
        })
    })
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    kpbt_tracker::config::resolve_listen(s)
}

fn parse_label(s: &str) -> Result<(String, Vec<String>), String> {
    LabelsConfig::parse_arg(s)
}

impl Cli {
    /// Defaults < file < env < flags. `m` tells which values the user gave: those filled
    /// in from [`defaults`] must not override the config file.
    fn into_config(self, m: &ArgMatches) -> anyhow::Result<Config> {
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if given("listen") {
            c.listen = self.listen;
        }
        if given("udp_listen") {
            c.udp_listen = self.udp_listen;
        }
        macro_rules! overlay {
            ($($flag:ident => $field:ident),* $(,)?) => {
                $( if let (true, Some(v)) = (given(stringify!($flag)), self.$flag) {
                    c.$field = v;
                } )*
            };
        }
        overlay!(
            workers => workers,
            keep_alive => keep_alive_secs,
            client_request_timeout => client_request_timeout_ms,
            client_disconnect_timeout => client_disconnect_timeout_ms,
            max_connections_per_worker => max_connections_per_worker,
            announce_interval => announce_interval_secs,
            numwant_default => numwant_default,
            numwant_max => numwant_max,
            reap_interval => reap_interval_secs,
            max_torrents => max_torrents,
            max_peers_per_torrent => max_peers_per_torrent,
            max_peers_per_ip_per_torrent => max_peers_per_ip_per_torrent,
            max_query_len => max_query_len,
            max_header_bytes => max_header_bytes,
            max_scrape_hashes => max_scrape_hashes,
            rate_limit_per_min => rate_limit_per_min,
            rate_limit_burst => rate_limit_burst,
            rate_limit_max_clients => rate_limit_max_clients,
            passkeys => passkeys,
            allowlist_poll => allowlist_poll_secs,
            honor_ip_param => honor_ip_param,
            store => store,
            store_timeout_ms => store_timeout_ms,
        );
        if !self.trusted_proxies.is_empty() {
            c.trusted_proxies = self.trusted_proxies;
        }
        if !self.labels.is_empty() {
            c.labels = LabelsConfig(self.labels);
        }
        // Keys with no default: present only when given.
        macro_rules! overlay_optional {
            ($($flag:ident => $field:ident),* $(,)?) => {
                $( if self.$flag.is_some() { c.$field = self.$flag; } )*
            };
        }
        overlay_optional!(
            min_interval => min_interval_secs,
            peer_timeout => peer_timeout_secs,
            passkey_file => passkey_file,
            public_url => public_url,
            allowlist => allowlist,
            real_ip_header => real_ip_header,
            udp_connection_key => udp_connection_key,
        );
        c.validate()?;
        Ok(c)
    }
}

/// `secs` since the Unix epoch as RFC 3339 UTC, e.g. `2026-12-01T09:24:38Z`.
fn utc_rfc3339(secs: u64) -> String {
    // Days to civil date: Howard Hinnant's `civil_from_days` (proleptic Gregorian).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The `keys list` table: a header, then one row per key, columns two spaces apart.
fn key_table(keys: &[KeyEntry]) -> String {
    let mut out = format!(
        "{:<32}  {:<7}  {:<20}  {:<20}  NOTE\n",
        "KEY", "STATUS", "CREATED", "REVOKED"
    );
    for e in keys {
        let status = if e.revoked.is_some() {
            "revoked"
        } else {
            "active"
        };
        let revoked = e.revoked.map_or_else(|| "-".to_owned(), utc_rfc3339);
        let note = e.note.as_deref().unwrap_or("").replace(['\n', '\t'], " ");
        let row = format!(
            "{:<32}  {status:<7}  {:<20}  {revoked:<20}  {note}",
            e.key,
            utc_rfc3339(e.created)
        );
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

/// `revoke` takes the key or an announce/scrape URL that ends in it.
fn key_argument(arg: &str) -> &str {
    let no_query = arg.split(['?', '#']).next().unwrap_or(arg);
    match no_query
        .rsplit_once("/announce/")
        .or_else(|| no_query.rsplit_once("/scrape/"))
    {
        Some((_, key)) => key.trim_end_matches('/'),
        None => arg,
    }
}

/// `kpbt-tracker keys ...`: read-modify-write of the key file (written atomically). Two
/// concurrent edits may lose one of them; keys are managed by one operator at a time.
fn keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    let path = config.passkey_file.as_deref().context(
        "no passkey file: give --passkey-file FILE or set passkey_file in the --config file",
    )?;
    let reload_note = format!(
        "a running tracker picks the change up within {} s (allowlist_poll_secs), or at \
         once on SIGHUP",
        config.allowlist_poll_secs
    );
    match action {
        KeysAction::Add { note } => {
            let mut file = KeyFile::read(path)?;
            let key = file.add(note);
            file.write(path)?;
            println!("key           {key}");
            let url = config.announce_url(key.as_str());
            if config.public_url.is_some() {
                println!("announce URL  {url}");
            } else {
                println!("announce path {url}");
                eprintln!(
                    "note: hand out the tracker's URL followed by this path, e.g. \
                     http://HOST:6969{url}; set public_url in the config (or --public-url \
                     http://HOST:PORT) to have the full URL printed"
                );
            }
            eprintln!("added to {}; {reload_note}", path.display());
        }
        KeysAction::List => {
            let file = KeyFile::read_existing(path)?;
            print!("{}", key_table(&file.keys));
            if file.keys.is_empty() {
                eprintln!(
                    "no keys in {}; add one with `kpbt-tracker keys add`",
                    path.display()
                );
            }
        }
        KeysAction::Revoke { key } => {
            let key = key_argument(&key);
            let mut file = KeyFile::read_existing(path)?;
            match file.revoke(key) {
                Ok(()) => {}
                Err(PasskeyError::NoSuchKey) => anyhow::bail!(
                    "no such key in {} (`kpbt-tracker keys list` shows them)",
                    path.display()
                ),
                Err(PasskeyError::AlreadyRevoked) => {
                    anyhow::bail!("key {key} in {} is already revoked", path.display())
                }
                Err(e) => return Err(e.into()),
            }
            file.write(path)?;
            println!("revoked {key}");
            eprintln!("{reload_note}");
        }
    }
    Ok(())
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    let mut cli = cli;
    let command = cli.command.take();
    if let Some(Command::Health { url }) = &command {
        // Before the config: a probe must not depend on the tracker's settings.
        let status = probe::check(url)?;
        println!("ok: {url} answered HTTP {status}");
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .with_context(|| format!("bad --log filter {:?}", cli.log))?;
    // Logs go to stderr (stdout is for --print-config and `keys`).
    let colour = use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let print = cli.print_config;
    let config = cli.into_config(matches)?;
    if let Some(Command::Keys { action }) = command {
        return keys(&config, action);
    }
    if print {
        print!("{}", config.to_toml());
        return Ok(());
    }
    actix_web::rt::System::new().block_on(kpbt_tracker::run(config))?;
    Ok(())
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        // A user error: the message once, no backtrace (anyhow's Debug would print one
        // under RUST_BACKTRACE=1), and no "Caused by" repeating it.
        Err(e) => {
            eprintln!("kpbt-tracker: error: {}", error_line(e.as_ref()).trim_end());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_described_and_defaults_match_config() {
        let cmd = command();
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(a.get_help().is_some(), "--{id} has no description");
            assert!(a.get_help_heading().is_some(), "--{id} has no heading");
        }
        // A default for every flag that overlays a config key with one.
        let with_default: Vec<&str> = cmd
            .get_arguments()
            .filter(|a| !a.get_default_values().is_empty())
            .map(|a| a.get_id().as_str())
            .collect();
        for (id, _) in defaults() {
            assert!(with_default.contains(&id), "{id}");
        }
        let m = command().try_get_matches_from(["kpbt-tracker"]).unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert_eq!(cli.into_config(&m).unwrap(), Config::default());
    }

    #[test]
    fn defaults_do_not_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "announce_interval_secs = 600\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let m = command()
            .try_get_matches_from(["kpbt-tracker", "--config", file.to_str().unwrap()])
            .unwrap();
        let c = Cli::from_arg_matches(&m).unwrap().into_config(&m).unwrap();
        assert_eq!(c.announce_interval_secs, 600);
        assert_eq!(c.listen, ["127.0.0.1:1".parse().unwrap()]);
    }

    #[test]
    fn labels_from_flags_replace_the_file_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "[labels]\nold = [\"10.9.0.0/16\"]\n").unwrap();
        let path = file.to_str().unwrap();
        let cfg = |args: &[&str]| {
            let m = command()
                .try_get_matches_from(["kpbt-tracker", "--config", path].iter().chain(args))
                .unwrap();
            Cli::from_arg_matches(&m).unwrap().into_config(&m)
        };
        let names =
            |c: &Config| -> Vec<String> { c.labels.0.iter().map(|l| l.0.clone()).collect() };
        assert_eq!(names(&cfg(&[]).unwrap()), ["old"]);
        let c = cfg(&[
            "--label",
            "zone-eu=10.2.0.0/16,fd00::/8",
            "--label",
            "rack-a=10.1.0.0/16;rack-b=10.3.0.0/16",
        ])
        .unwrap();
        assert_eq!(names(&c), ["zone-eu", "rack-a", "rack-b"]);
        assert_eq!(c.labels.0[0].1, ["10.2.0.0/16", "fd00::/8"]);
        let bad = command().try_get_matches_from(["kpbt-tracker", "--label", "rack-a"]);
        assert!(bad.unwrap_err().to_string().contains("NAME=CIDR"));
    }

    #[test]
    fn rfc3339_times() {
        for (t, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(utc_rfc3339(t), want);
        }
    }

    #[test]
    fn revoke_takes_a_key_or_its_url() {
        let k = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        assert_eq!(key_argument(k), k);
        assert_eq!(key_argument(&format!("http://t:6969/announce/{k}")), k);
        assert_eq!(key_argument(&format!("/announce/{k}?info_hash=x")), k);
        assert_eq!(key_argument(&format!("https://t/x/scrape/{k}/")), k);
    }
}
