//! The `--origin`, `--origin-min-rate` and `--origin-connections` options (web seeds and
//! origins, BEP 19), shared by `download` and `serve`, and their checks.

use anyhow::Result;
use clap::builder::TypedValueParser;
use clap::Args;
use kpbt_client::webseed::DEFAULT_ORIGIN_CONNECTIONS;

/// How web seeds and origins are used.
#[derive(Args, Clone)]
pub struct OriginPolicy {
    /// Below this many bytes/s from peers (K/M/G), web seeds and origins take over every
    /// missing piece; above it they only fetch pieces no connected peer has. 0: never
    /// take over. With no peer connected they always run at full speed.
    // "1M" is DEFAULT_ORIGIN_MIN_RATE, shown the way it is typed.
    #[arg(long, value_name = "RATE", default_value = "1M", value_parser = crate::parse_size)]
    pub origin_min_rate: u64,
    /// Concurrent HTTP requests to web seeds and origins, per torrent; in `serve`, also
    /// for all the session's torrents together.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ORIGIN_CONNECTIONS, value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    pub origin_connections: usize,
}

/// `download`'s origin options: extra URLs plus the policy.
#[derive(Args, Clone)]
pub struct OriginOpts {
    /// HTTP(S) URL that serves the torrent's data, used like a BEP 19 web seed: the file
    /// itself (single-file torrents), or the folder holding NAME, ending in / (repeatable).
    /// For torrents made without --web-seed; peers still come first.
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
    #[command(flatten)]
    pub policy: OriginPolicy,
}

/// Checks `--origin` URLs, naming the bad one and the form wanted.
pub fn check_origins(urls: &[String]) -> Result<()> {
    for url in urls {
        kpbt_client::create::check_web_seed_url(url)
            .map_err(|e| anyhow::anyhow!("--origin: {e}"))?;
    }
    Ok(())
}

impl OriginOpts {
    /// Puts the options into a torrent's config.
    pub fn apply(&self, cfg: &mut kpbt_client::Config) {
        cfg.origins = self.origins.clone();
        cfg.origin_min_rate = self.policy.origin_min_rate;
        cfg.origin_connections = self.policy.origin_connections;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shown_default_is_the_library_default() {
        assert_eq!(
            crate::parse_size("1M").unwrap(),
            kpbt_client::webseed::DEFAULT_ORIGIN_MIN_RATE
        );
    }
}
