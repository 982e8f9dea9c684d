//! Progress reporting: an indicatif bar (percent, rate, ETA, peers) on a terminal,
//! plain periodic lines otherwise (logs, CI), or nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::torrent::Shared;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bar on a terminal (stderr), plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines every few seconds.
    Plain,
    /// Nothing.
    Quiet,
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mode: ProgressMode,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
    let bar = match mode {
        ProgressMode::Quiet => return,
        ProgressMode::Auto if std::io::stderr().is_terminal() => {
            let b = ProgressBar::new(shared.total_len);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30.cyan/blue}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(name.clone());
            Some(b)
        }
        _ => None,
    };
    let period = if bar.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(period);
    let mut last = (
        Instant::now(),
        shared.verified_bytes.load(Ordering::Relaxed),
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let done = shared.verified_bytes.load(Ordering::Relaxed);
        let peers = shared.peer_count.load(Ordering::Relaxed);
        let up = shared.uploaded.load(Ordering::Relaxed);
        let status = shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut msg = format!("{peers} peers, up {}", human(up as f64));
        if let Some(s) = &status {
            msg.push_str(" | ");
            msg.push_str(s);
        }
        match &bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(msg);
            }
            None => {
                let now = Instant::now();
                let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64().max(0.001);
                last = (now, done);
                let pct = if shared.total_len == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / shared.total_len as f64
                };
                let eta = if rate > 0.0 && done < shared.total_len {
                    format!("{:.0}s", (shared.total_len - done) as f64 / rate)
                } else {
                    "-".into()
                };
                eprintln!(
                    "{name}: {pct:5.1}% {}/{} {}/s ETA {eta} {msg}",
                    human(done as f64),
                    human(shared.total_len as f64),
                    human(rate)
                );
            }
        }
    }
    if let Some(b) = bar {
        b.set_position(shared.verified_bytes.load(Ordering::Relaxed));
        b.finish();
    }
}
