//! `kpbt-client wait-ready`: wait until N peers hold the whole torrent, by polling a kpbt
//! tracker's `GET /swarms/{info_hash}?expect=N` (200 once the swarm has N seeders, 425
//! before). For deploy scripts: "roll out once 10 hosts have the build".
//!
//! Progress goes to stdout, one line each time the figures change ("3 of 10 complete
//! (2 leechers)"); exit 0 once ready. At the timeout it exits 1 with the last figures,
//! or with the reason the tracker could not be asked. An unreachable, busy or failing
//! tracker is retried until then (it may be restarting), and said so at once on stderr;
//! answers that asking again cannot change (a bad info hash, a refused passkey, a server
//! without `/swarms`) end the command at once.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kpbt_proto::redact;
use kpbt_proto::InfoHash;
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

/// `kpbt-client wait-ready` options.
#[derive(clap::Args)]
pub struct WaitReadyArgs {
    /// The tracker: its base URL (http://HOST:6969) or an announce URL from the torrent
    /// (http://HOST:6969/announce, or .../announce/PASSKEY on a passkey tracker).
    #[arg(long, value_name = "URL")]
    tracker: String,
    /// The torrent's info hash: 40 hex digits (as `kpbt-client info` prints it) or 32
    /// base32 characters.
    #[arg(long, value_name = "HASH", value_parser = parse_info_hash)]
    info_hash: InfoHash,
    /// Peers with the whole torrent (seeders) to wait for.
    #[arg(long, value_name = "N")]
    expect: u32,
    /// Give up after this many seconds, exiting 1 with the figures so far.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = parse_secs)]
    timeout: Duration,
    /// Seconds between polls (fractions allowed, e.g. 0.5).
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    interval: Duration,
}

/// Longest wait for one answer; a hung tracker must not hold a poll past this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn parse_info_hash(s: &str) -> Result<InfoHash, String> {
    kpbt_proto::magnet::parse_info_hash(s.trim())
        .map_err(|_| format!("{s:?} is not an info hash (40 hex digits or 32 base32 characters)"))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds, e.g. 30 or 0.5"))
}

/// Where to ask: the tracker's base URL and the passkey found in the announce URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    base: Url,
    passkey: Option<String>,
}

impl Target {
    /// From a base or announce URL: the query is dropped, then a trailing `announce` (or
    /// `scrape`) segment, with the passkey segment after it if there is one (kpbt-tracker
    /// serves `/announce/<passkey>`). A path before it (a proxy's prefix) stays.
    fn parse(url: &str) -> Result<Target> {
        let mut u = Url::parse(url.trim()).with_context(|| {
            format!(
                "--tracker {:?} is not a URL (e.g. http://tracker:6969)",
                redact::tracker_url(url)
            )
        })?;
        match u.scheme() {
            "http" | "https" => {}
            "udp" => bail!(
                "--tracker {}: readiness is asked over HTTP; give the tracker's http:// \
                 address (its UDP port does not serve /swarms)",
                redact::tracker_url(url)
            ),
            other => {
                bail!("--tracker: unsupported scheme {other}://, expected http:// or https://")
            }
        }
        u.set_query(None);
        u.set_fragment(None);
        let mut segs: Vec<String> = u
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let endpoint = |s: &str| matches!(s, "announce" | "scrape");
        let mut passkey = None;
        match segs.as_slice() {
            [.., last] if endpoint(last) => {
                segs.pop();
            }
            [.., ep, key] if endpoint(ep) => {
                passkey = Some(key.clone());
                segs.truncate(segs.len() - 2);
            }
            _ => {}
        }
        u.set_path("");
        if let Ok(mut p) = u.path_segments_mut() {
            p.clear().extend(&segs);
        }
        Ok(Target { base: u, passkey })
    }

    /// `BASE/swarms/HASH[/PASSKEY]?expect=N` (the passkey as it was written in the
    /// announce URL, escapes included).
    fn swarm_url(&self, hash: &InfoHash, expect: u32) -> Result<Url> {
        let mut s = self.base.as_str().trim_end_matches('/').to_owned();
        s.push_str("/swarms/");
        s.push_str(&hash.to_hex());
        if let Some(k) = &self.passkey {
            s.push('/');
            s.push_str(k);
        }
        s.push_str(&format!("?expect={expect}"));
        Url::parse(&s).with_context(|| format!("cannot build the /swarms URL for {}", self.name()))
    }

    /// The tracker as messages name it (no passkey: it was split off).
    fn name(&self) -> String {
        redact::tracker_url(self.base.as_str().trim_end_matches('/'))
    }
}

/// The figures of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    seeders: u64,
    leechers: u64,
}

impl Figures {
    fn line(&self, expect: u32) -> String {
        let s = if self.leechers == 1 { "" } else { "s" };
        format!(
            "{} of {expect} complete ({} leecher{s})",
            self.seeders, self.leechers
        )
    }
}

/// What one poll found.
enum Poll {
    /// 200 (ready) or 425 (not yet), with the figures.
    Answer { ready: bool, figures: Figures },
    /// Worth asking again: unreachable, rate-limited, store down, a proxy's 5xx.
    Retry(String),
}

async fn poll(client: &reqwest::Client, url: &Url, t: &Target) -> Result<Poll> {
    let resp = match client.get(url.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Ok(Poll::Retry(format!(
                "cannot reach the tracker at {}: {}",
                t.name(),
                cause_of(e)
            )))
        }
    };
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Ok(Poll::Retry(format!(
                "reading the tracker's answer from {}: {}",
                t.name(),
                cause_of(e)
            )))
        }
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let error = json
        .as_ref()
        .and_then(|v| v["error"].as_str())
        .map(str::to_owned);
    let why = || {
        error
            .clone()
            .unwrap_or_else(|| format!("HTTP status {status}"))
    };
    match status.as_u16() {
        200 | 425 => {
            let count = |k: &str| json.as_ref().and_then(|v| v[k].as_u64());
            match (count("seeders"), count("leechers")) {
                (Some(seeders), Some(leechers)) => Ok(Poll::Answer {
                    ready: status == StatusCode::OK,
                    figures: Figures { seeders, leechers },
                }),
                _ => bail!(
                    "the tracker at {} answered HTTP {status} without swarm figures: is it \
                     kpbt-tracker?",
                    t.name()
                ),
            }
        }
        429 | 500..=599 => Ok(Poll::Retry(format!(
            "the tracker at {} cannot answer now: {}",
            t.name(),
            why()
        ))),
        403 => bail!(
            "the tracker at {} refused: {}{}",
            t.name(),
            why(),
            if t.passkey.is_none() {
                " (give the announce URL with your passkey as --tracker)"
            } else {
                ""
            }
        ),
        404 if error.is_none() => bail!(
            "the tracker at {} has no /swarms endpoint (HTTP 404): --tracker must be \
             kpbt-tracker's base or announce URL",
            t.name()
        ),
        _ => bail!("the tracker at {} refused the request: {}", t.name(), why()),
    }
}

/// The innermost cause of a reqwest error ("connection refused"), without the URL.
fn cause_of(e: reqwest::Error) -> String {
    kpbt_client::tracker::request_error_cause(e, REQUEST_TIMEOUT)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// Runs `wait-ready`: `Ok(0)` once ready, `Ok(1)` with the figures at the timeout, `Err`
/// for what waiting cannot fix (or a tracker that never answered).
pub async fn run(a: WaitReadyArgs) -> Result<ExitCode> {
    let target = Target::parse(&a.tracker)?;
    let url = target.swarm_url(&a.info_hash, a.expect)?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("kpbt/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build an HTTP client")?;
    let deadline = Instant::now() + a.timeout;
    let mut shown: Option<Figures> = None;
    let mut last_retry: Option<String> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let polled = match tokio::time::timeout(
            left.max(Duration::from_millis(100)),
            poll(&client, &url, &target),
        )
        .await
        {
            Ok(p) => p?,
            Err(_) => Poll::Retry(format!("no answer from the tracker at {}", target.name())),
        };
        match polled {
            Poll::Answer { ready, figures } => {
                last_retry = None;
                if shown != Some(figures) {
                    println!("{}", figures.line(a.expect));
                    shown = Some(figures);
                }
                if ready {
                    println!("ready: {} of {} complete", figures.seeders, a.expect);
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Poll::Retry(why) => {
                if last_retry.as_deref() != Some(why.as_str()) {
                    eprintln!("{why}; retrying until the timeout");
                }
                last_retry = Some(why);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(a.interval.min(deadline - now)).await;
    }
    match (shown, last_retry) {
        (Some(f), None) => {
            eprintln!("not ready after {}: {}", secs(a.timeout), f.line(a.expect));
            Ok(ExitCode::FAILURE)
        }
        (Some(f), Some(why)) => {
            eprintln!(
                "not ready after {}: last seen {}; then {why}",
                secs(a.timeout),
                f.line(a.expect)
            );
            Ok(ExitCode::FAILURE)
        }
        (None, why) => bail!(
            "not ready after {}: {}",
            secs(a.timeout),
            why.unwrap_or_else(|| format!("no answer from the tracker at {}", target.name()))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (String, Option<String>) {
        let t = Target::parse(url).unwrap();
        (t.base.to_string(), t.passkey)
    }

    #[test]
    fn announce_urls_become_the_base_and_the_passkey() {
        for (url, base, key) in [
            ("http://t:6969", "http://t:6969/", None),
            ("http://t:6969/", "http://t:6969/", None),
            ("http://t:6969/announce", "http://t:6969/", None),
            ("http://t:6969/announce?x=1#f", "http://t:6969/", None),
            (
                "http://t:6969/announce/KEY123",
                "http://t:6969/",
                Some("KEY123"),
            ),
            (
                "https://t/prefix/announce/K/",
                "https://t/prefix",
                Some("K"),
            ),
            ("http://t:6969/scrape", "http://t:6969/", None),
            ("http://t/tracker/", "http://t/tracker", None),
        ] {
            assert_eq!(
                target(url),
                (base.to_string(), key.map(str::to_owned)),
                "{url}"
            );
        }
        for bad in ["tracker:6969", "udp://t:6969/announce", "ftp://t/"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let e = Target::parse("udp://t:1/announce").unwrap_err().to_string();
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn the_swarm_url_carries_the_hash_the_key_and_expect() {
        let h = InfoHash([0xab; 20]);
        let hex = "ab".repeat(20);
        for (url, want) in [
            (
                "http://t:6969/announce",
                format!("http://t:6969/swarms/{hex}?expect=3"),
            ),
            (
                "http://t:6969/announce/K%2F1",
                format!("http://t:6969/swarms/{hex}/K%2F1?expect=3"),
            ),
            (
                "https://t/p/announce",
                format!("https://t/p/swarms/{hex}?expect=3"),
            ),
        ] {
            assert_eq!(
                Target::parse(url)
                    .unwrap()
                    .swarm_url(&h, 3)
                    .unwrap()
                    .as_str(),
                want
            );
        }
        // The passkey never appears in messages.
        let t = Target::parse("http://t:6969/announce/SECRETKEY0123456789").unwrap();
        assert!(!t.name().contains("SECRET"), "{}", t.name());
    }

    #[test]
    fn progress_lines_and_arguments() {
        let f = |seeders, leechers| Figures { seeders, leechers };
        assert_eq!(f(3, 2).line(10), "3 of 10 complete (2 leechers)");
        assert_eq!(f(0, 1).line(2), "0 of 2 complete (1 leecher)");
        assert_eq!(f(0, 0).line(2), "0 of 2 complete (0 leechers)");
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert!(parse_secs("-1").is_err() && parse_secs("soon").is_err());
        assert_eq!(secs(Duration::from_secs(30)), "30 s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5 s");
        let b32 = "VOV2XK5LVOV2XK5LVOV2XK5LVOV2XK5L";
        assert_eq!(parse_info_hash(b32), Ok(InfoHash([0xab; 20])));
        assert!(parse_info_hash("abc")
            .unwrap_err()
            .contains("40 hex digits"));
    }
}
