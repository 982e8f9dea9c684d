//! Progress reporting: an indicatif bar on a terminal, plain lines on change (with a
//! slow heartbeat) otherwise, or nothing with `--quiet`. What to print when is decided
//! by [`Reporter`], a pure state machine over counter samples and time.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::shared::Shared;
use crate::units::{count, format_bytes, format_duration, format_rate};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bar on a terminal (stderr), plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines when something changes (and a heartbeat).
    Plain,
    /// Nothing.
    Quiet,
}

/// How often the bar is redrawn.
const BAR_TICK: Duration = Duration::from_millis(250);
/// How often the counters are sampled for plain lines (printing is rarer, see below).
const PLAIN_TICK: Duration = Duration::from_secs(1);
/// Plain lines come at most this often, however fast things change.
const MIN_GAP: Duration = Duration::from_secs(5);
/// A plain line is printed at least this often, even when nothing changed, so a log
/// shows the client is alive.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// Rates are measured over this much recent history.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Bound on kept samples whatever the tick (10 s at 250 ms is 40).
const MAX_SAMPLES: usize = 64;
/// Below this both rates count as "idle" and are not a change worth a line.
const RATE_FLOOR: f64 = 1024.0;
/// A rate change by this factor (either way) is worth a line.
const RATE_FACTOR: f64 = 1.5;

/// The torrent's counters at one moment, the input of [`Reporter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Time since this run started (after the start-time check of existing data).
    pub at: Duration,
    /// Verified bytes on disk, resumed ones included (the bar's position).
    pub verified: u64,
    /// Verified bytes downloaded in this run (rates and ETA come from these).
    pub downloaded: u64,
    /// Bytes uploaded in this run.
    pub uploaded: u64,
    pub peers: usize,
    /// Of `downloaded`: from web seeds and origins (the rest came from peers).
    pub from_origin: u64,
}

/// What a status line shows, compared to decide whether a new line is worth printing.
#[derive(Clone, Debug, PartialEq)]
struct View {
    seeding: bool,
    verified: u64,
    peers: usize,
    down_rate: f64,
    up_rate: f64,
    status: Option<String>,
}

impl View {
    /// Whether `new` is worth a line after `self` was printed. (Seeding lines show no
    /// download figures, so those do not count then.)
    fn differs(&self, new: &View) -> bool {
        self.seeding != new.seeding
            || self.peers != new.peers
            || self.status != new.status
            || (!new.seeding
                && (self.verified != new.verified || rate_changed(self.down_rate, new.down_rate)))
            || rate_changed(self.up_rate, new.up_rate)
    }
}

/// True when two rates differ enough to tell a reader: by [`RATE_FACTOR`], unless both
/// are idle (under [`RATE_FLOOR`]).
fn rate_changed(old: f64, new: f64) -> bool {
    let (lo, hi) = if old < new { (old, new) } else { (new, old) };
    hi >= RATE_FLOOR && lo * RATE_FACTOR < hi
}

/// `42.3%`, rounded down so an incomplete torrent never shows `100.0%`.
fn percent(verified: u64, total: u64) -> String {
    if total == 0 {
        return "100.0%".into();
    }
    let tenths = (u128::from(verified.min(total)) * 1000 / u128::from(total)) as u64;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// `NAME: resuming: N of M pieces on disk` when some but not all pieces are there.
pub(crate) fn resume_line(name: &str, have: u32, piece_count: u32) -> Option<String> {
    (have > 0 && have < piece_count).then(|| {
        format!(
            "{name}: resuming: {have} of {} on disk",
            count(u64::from(piece_count), "piece")
        )
    })
}

/// Decides and formats what the progress output says, from samples and their times
/// only (no clock, no terminal), so every decision is testable.
pub(crate) struct Reporter {
    name: String,
    total_len: u64,
    seed_after: bool,
    seeding: bool,
    /// Recent samples, oldest first, spanning about [`RATE_WINDOW`].
    window: VecDeque<Sample>,
    /// When the last plain line was printed and what it showed.
    last: (Duration, View),
}

impl Reporter {
    /// `complete` means the torrent was complete when the run started (nothing to
    /// download: the output is about seeding from the start). The first sample prints
    /// nothing; it is the baseline later lines are compared with.
    pub(crate) fn new(
        name: impl Into<String>,
        total_len: u64,
        seed_after: bool,
        complete: bool,
        first: Sample,
    ) -> Reporter {
        let mut r = Reporter {
            name: name.into(),
            total_len,
            seed_after,
            seeding: complete,
            window: VecDeque::new(),
            last: (Duration::ZERO, View::idle()),
        };
        r.observe(first);
        r.last = (first.at, r.view(&first, None));
        r
    }

    fn observe(&mut self, s: Sample) {
        self.window.push_back(s);
        while self.window.len() > 2
            && (self.window.len() > MAX_SAMPLES
                || s.at.saturating_sub(self.window[1].at) >= RATE_WINDOW)
        {
            self.window.pop_front();
        }
    }

    /// (download, upload) bytes per second over the window; None until two samples
    /// span some time.
    fn rates(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.window.front()?, self.window.back()?);
        let secs = b.at.saturating_sub(a.at).as_secs_f64();
        (secs > 0.0).then(|| {
            (
                b.downloaded.saturating_sub(a.downloaded) as f64 / secs,
                b.uploaded.saturating_sub(a.uploaded) as f64 / secs,
            )
        })
    }

    fn view(&self, s: &Sample, status: Option<&str>) -> View {
        let rates = self.rates().unwrap_or((0.0, 0.0));
        View {
            seeding: self.seeding,
            verified: s.verified,
            peers: s.peers,
            down_rate: rates.0,
            up_rate: rates.1,
            status: status.map(str::to_owned),
        }
    }

    /// The status text without the name: the bar's message, and plain lines after
    /// `NAME: `. Downloading: percent, sizes, this run's rate, ETA (`-` until there is
    /// a rate), peers. Seeding: upload rate, uploaded total, peers.
    pub(crate) fn text(&self, s: &Sample, status: Option<&str>) -> String {
        let (down, up) = self.rates().unwrap_or((0.0, 0.0));
        let peers = count(s.peers as u64, "peer");
        let mut t = if self.seeding {
            format!(
                "seeding, up {}, {} uploaded, {peers}",
                format_rate(up),
                format_bytes(s.uploaded)
            )
        } else {
            let left = self.total_len.saturating_sub(s.verified);
            let eta = (down > 0.0)
                .then(|| Duration::try_from_secs_f64(left as f64 / down).ok())
                .flatten()
                .map_or_else(|| "-".to_owned(), format_duration);
            let mut t = format!(
                "{} ({} of {}), {}, ETA {eta}, {peers}",
                percent(s.verified, self.total_len),
                format_bytes(s.verified),
                format_bytes(self.total_len),
                format_rate(down),
            );
            if up > 0.0 {
                t.push_str(&format!(", up {}", format_rate(up)));
            }
            t.push_str(&by_source(s));
            t
        };
        if let Some(st) = status {
            t.push_str(" | ");
            t.push_str(st);
        }
        t
    }

    /// The plain line to print for this sample, if any: when what it shows changed
    /// meaningfully (progress, peers, upload rate, tracker status) and the last line is
    /// at least [`MIN_GAP`] old, or when the last line is [`HEARTBEAT`] old.
    pub(crate) fn plain_line(&mut self, s: Sample, status: Option<&str>) -> Option<String> {
        self.observe(s);
        let view = self.view(&s, status);
        let gap = s.at.saturating_sub(self.last.0);
        let due = gap >= HEARTBEAT || (gap >= MIN_GAP && self.last.1.differs(&view));
        due.then(|| {
            self.last = (s.at, view);
            format!("{}: {}", self.name, self.text(&s, status))
        })
    }

    /// The line for the moment the download completed (`s` taken then): time and rate
    /// of this run, and whether seeding goes on. Later lines are about seeding.
    pub(crate) fn completion_line(&mut self, s: Sample, status: Option<&str>) -> String {
        self.observe(s);
        self.seeding = true;
        self.last = (s.at, self.view(&s, status));
        let rate = s.downloaded as f64 / s.at.as_secs_f64().max(0.001);
        format!(
            "{}: complete in {} ({}){}{}",
            self.name,
            format_duration(s.at),
            format_rate(rate),
            by_source(&s),
            if self.seed_after { ", now seeding" } else { "" }
        )
    }
}

/// `, 40.0 MiB from peers, 24.0 MiB from origin` once any byte came from a web seed or
/// origin; nothing before (a plain peer download reads as it always did).
fn by_source(s: &Sample) -> String {
    if s.from_origin == 0 {
        return String::new();
    }
    format!(
        ", {} from peers, {} from origin",
        format_bytes(s.downloaded.saturating_sub(s.from_origin)),
        format_bytes(s.from_origin)
    )
}

impl View {
    fn idle() -> View {
        View {
            seeding: false,
            verified: 0,
            peers: 0,
            down_rate: 0.0,
            up_rate: 0.0,
            status: None,
        }
    }
}

/// Writes one line to stderr; a closed stderr must not take the client down.
fn emit(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn sample(shared: &Shared, started: Instant) -> Sample {
    Sample {
        at: started.elapsed(),
        verified: shared.verified_bytes.load(Ordering::Relaxed),
        downloaded: shared.downloaded.load(Ordering::Relaxed),
        uploaded: shared.uploaded.load(Ordering::Relaxed),
        peers: shared.peer_count.load(Ordering::Relaxed),
        from_origin: shared.origin_bytes.load(Ordering::Relaxed),
    }
}

fn status(shared: &Shared) -> Option<String> {
    shared
        .status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The download bar over `total` bytes, or (`None`: seeding) a one-line status.
fn new_bar(name: &str, total: Option<u64>) -> ProgressBar {
    let (b, template) = match total {
        Some(len) => (ProgressBar::new(len), "{prefix} [{bar:30.cyan/blue}] {msg}"),
        None => (ProgressBar::new_spinner(), "{prefix}: {msg}"),
    };
    b.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(name.to_owned());
    b
}

/// Reports progress until `stop` changes. `complete` is the torrent's completion
/// watch; `seed_after` says whether the torrent keeps running (seeding) once complete.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mode: ProgressMode,
    name: String,
    seed_after: bool,
    mut complete: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let terminal = match mode {
        ProgressMode::Quiet => return,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
        ProgressMode::Plain => false,
    };
    let started = Instant::now();
    // Pieces there before this run: those verified minus those downloaded since start
    // (both read under the state lock, which guards their updates).
    let have_at_start = {
        let st = shared.lock();
        let this_run = shared.pieces_verified.load(Ordering::Relaxed);
        st.picker.have_count().saturating_sub(this_run as u32)
    };
    let complete_at_start = have_at_start == shared.piece_count;
    if let Some(line) = resume_line(&name, have_at_start, shared.piece_count) {
        emit(&line);
    }
    let mut reporter = Reporter::new(
        name.clone(),
        shared.total_len,
        seed_after,
        complete_at_start,
        sample(&shared, started),
    );
    let mut bar = terminal.then(|| {
        let b = new_bar(&name, (!complete_at_start).then_some(shared.total_len));
        b.set_position(shared.verified_bytes.load(Ordering::Relaxed));
        b
    });
    // Completion is reported once; true from the start when nothing is to download.
    let mut reported = complete_at_start;
    let mut tick = tokio::time::interval(if terminal { BAR_TICK } else { PLAIN_TICK });
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Completion first: a shutdown right after it must not hide the line.
            biased;
            done = async { complete.wait_for(|c| *c).await.is_ok() }, if !reported => {
                reported = true;
                if done {
                    let line = reporter.completion_line(sample(&shared, started), status(&shared).as_deref());
                    if let Some(b) = bar.take() {
                        b.finish_and_clear();
                    }
                    emit(&line);
                    if terminal && seed_after {
                        bar = Some(new_bar(&name, None));
                    }
                }
            }
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let s = sample(&shared, started);
                let st = status(&shared);
                match &bar {
                    Some(b) => {
                        reporter.observe(s);
                        b.set_position(s.verified);
                        b.set_message(reporter.text(&s, st.as_deref()));
                    }
                    None => {
                        if let Some(line) = reporter.plain_line(s, st.as_deref()) {
                            emit(&line);
                        }
                    }
                }
            }
        }
    }
    if !reported && *complete.borrow() {
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        emit(&reporter.completion_line(sample(&shared, started), status(&shared).as_deref()));
    }
    // Stopped before completing (Ctrl-C) or while seeding: leave the bar as it was
    // last drawn. (`finish` would jump to 100 % and redraw the rate.)
    if let Some(b) = bar {
        b.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(secs: u64, verified: u64, downloaded: u64, uploaded: u64, peers: usize) -> Sample {
        Sample {
            at: Duration::from_secs(secs),
            verified,
            downloaded,
            uploaded,
            peers,
            from_origin: 0,
        }
    }

    #[test]
    fn percent_rounds_down_and_handles_empty() {
        assert_eq!(percent(0, 100), "0.0%");
        assert_eq!(percent(999, 1000), "99.9%");
        assert_eq!(percent(9999, 10000), "99.9%");
        assert_eq!(percent(10000, 10000), "100.0%");
        assert_eq!(percent(5, 0), "100.0%");
        assert_eq!(percent(u64::MAX, u64::MAX), "100.0%");
    }

    #[test]
    fn resume_line_only_for_partial_data() {
        assert_eq!(
            resume_line("a.iso", 512, 1059).as_deref(),
            Some("a.iso: resuming: 512 of 1059 pieces on disk")
        );
        assert_eq!(resume_line("a.iso", 0, 1059), None);
        assert_eq!(resume_line("a.iso", 1059, 1059), None);
    }

    #[test]
    fn resumed_bytes_do_not_count_as_rate_and_eta_waits_for_one() {
        // 10 of 20 MiB on disk at start, nothing moved yet: 0 B/s and no ETA, not an
        // absurd rate from the resumed position.
        let mut r = Reporter::new("r", 20 * MIB, false, false, at(0, 10 * MIB, 0, 0, 1));
        assert_eq!(
            r.text(&at(0, 10 * MIB, 0, 0, 1), None),
            "50.0% (10.0 MiB of 20.0 MiB), 0 B/s, ETA -, 1 peer"
        );
        let s = at(1, 10 * MIB, 0, 0, 1);
        r.observe(s);
        assert_eq!(
            r.text(&s, None),
            "50.0% (10.0 MiB of 20.0 MiB), 0 B/s, ETA -, 1 peer"
        );
        // 2 MiB in 2 s: 1 MiB/s from this run's bytes; 8 MiB left is 8 s.
        let s = at(2, 12 * MIB, 2 * MIB, 0, 2);
        r.observe(s);
        assert_eq!(
            r.text(&s, Some("tracker: connection refused")),
            "60.0% (12.0 MiB of 20.0 MiB), 1.0 MiB/s, ETA 8.0 s, 2 peers | tracker: connection refused"
        );
    }

    #[test]
    fn rates_cover_only_the_recent_window() {
        let mut r = Reporter::new("w", 100 * MIB, true, false, at(0, 0, 0, 0, 1));
        // 10 MiB/s for 10 s, then nothing for 10 s: the rate falls to 0, not 5 MiB/s.
        for t in 1..=10 {
            r.observe(at(t, t * 10 * MIB, t * 10 * MIB, 0, 1));
        }
        assert_eq!(r.rates().unwrap().0, 10.0 * MIB as f64);
        for t in 11..=21 {
            r.observe(at(t, 100 * MIB - 1, 100 * MIB - 1, 0, 1));
        }
        assert_eq!(r.rates().unwrap().0, 0.0);
        for t in 22..500 {
            r.observe(at(t, 0, 0, 0, 1));
        }
        assert!(r.window.len() <= MAX_SAMPLES);
    }

    #[test]
    fn completion_line_uses_this_runs_bytes_and_time() {
        let mut r = Reporter::new("d.bin", 20 * MIB, true, false, at(0, 4 * MIB, 0, 0, 0));
        // 16 MiB in 8 s = 2 MiB/s (the 4 MiB on disk at start do not count).
        assert_eq!(
            r.completion_line(at(8, 20 * MIB, 16 * MIB, MIB, 1), None),
            "d.bin: complete in 8.0 s (2.0 MiB/s), now seeding"
        );
        let mut r = Reporter::new("d.bin", 20 * MIB, false, false, at(0, 0, 0, 0, 0));
        assert_eq!(
            r.completion_line(at(200, 20 * MIB, 20 * MIB, 0, 1), None),
            "d.bin: complete in 3 min 20 s (102.4 KiB/s)"
        );
    }

    #[test]
    fn bytes_from_the_origin_are_shown_beside_the_peers_once_there_are_any() {
        let mut r = Reporter::new("o.bin", 100 * MIB, false, false, at(0, 0, 0, 0, 0));
        let plain = at(5, 10 * MIB, 10 * MIB, 0, 1);
        assert!(
            !r.text(&plain, None).contains("origin"),
            "{}",
            r.text(&plain, None)
        );
        let mixed = Sample {
            from_origin: 24 * MIB,
            ..at(10, 64 * MIB, 64 * MIB, 0, 1)
        };
        r.observe(mixed);
        assert!(
            r.text(&mixed, None)
                .ends_with(", 1 peer, 40.0 MiB from peers, 24.0 MiB from origin"),
            "{}",
            r.text(&mixed, None)
        );
        let done = Sample {
            from_origin: 100 * MIB,
            ..at(20, 100 * MIB, 100 * MIB, 0, 0)
        };
        assert_eq!(
            r.completion_line(done, None),
            "o.bin: complete in 20.0 s (5.0 MiB/s), 0 B from peers, 100.0 MiB from origin"
        );
    }

    /// Feeds `samples` to `plain_line` and returns (second, line) for each line printed.
    fn lines_of(r: &mut Reporter, samples: impl IntoIterator<Item = Sample>) -> Vec<(u64, String)> {
        samples
            .into_iter()
            .filter_map(|s| r.plain_line(s, None).map(|l| (s.at.as_secs(), l)))
            .collect()
    }

    #[test]
    fn a_quiet_seeder_prints_on_change_and_at_the_heartbeat_only() {
        let mut r = Reporter::new("s", 8 * MIB, true, true, at(0, 8 * MIB, 0, 0, 0));
        // Nothing happens for 59 s: silence; then the heartbeat at 60 s.
        let lines = lines_of(&mut r, (1..=60).map(|t| at(t, 8 * MIB, 0, 0, 0)));
        assert_eq!(
            lines,
            [(60, "s: seeding, up 0 B/s, 0 B uploaded, 0 peers".to_owned())]
        );
        // A peer arrives at 61 s and is served at 1 MiB/s: a line 5 s after the last
        // one (not before), another while the 10 s rate climbs, then nothing new until
        // the heartbeat: a steady upload is not news.
        let lines = lines_of(
            &mut r,
            (61..=130).map(|t| at(t, 8 * MIB, 0, (t - 61) * MIB, 1)),
        );
        let times: Vec<u64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(times, [65, 70, 130], "{lines:?}");
        assert_eq!(
            lines[0].1,
            "s: seeding, up 409.6 KiB/s, 4.0 MiB uploaded, 1 peer"
        );
        assert_eq!(
            lines[2].1,
            "s: seeding, up 1.0 MiB/s, 69.0 MiB uploaded, 1 peer"
        );
        // The peer leaves: a line for that, one when the rate reaches 0, then silence.
        let lines = lines_of(&mut r, (131..=180).map(|t| at(t, 8 * MIB, 0, 69 * MIB, 0)));
        assert_eq!(
            lines,
            [
                (
                    135,
                    "s: seeding, up 512.0 KiB/s, 69.0 MiB uploaded, 0 peers".to_owned()
                ),
                (
                    140,
                    "s: seeding, up 0 B/s, 69.0 MiB uploaded, 0 peers".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_download_prints_every_few_seconds_while_moving_and_rarely_when_stalled() {
        let mut r = Reporter::new("d", 100 * MIB, false, false, at(0, 0, 0, 0, 1));
        let lines = lines_of(&mut r, (1..=20).map(|t| at(t, t * MIB, t * MIB, 0, 1)));
        let times: Vec<u64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(times, [5, 10, 15, 20]);
        assert_eq!(
            lines[3].1,
            "d: 20.0% (20.0 MiB of 100.0 MiB), 1.0 MiB/s, ETA 1 min 20 s, 1 peer"
        );
        // Stalled at 20 MiB with the same peer: lines while the rate falls to 0, then
        // only the heartbeat.
        let lines = lines_of(&mut r, (21..=100).map(|t| at(t, 20 * MIB, 20 * MIB, 0, 1)));
        let times: Vec<u64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(times, [25, 30, 90], "{lines:?}");
        assert_eq!(
            lines[1].1,
            "d: 20.0% (20.0 MiB of 100.0 MiB), 0 B/s, ETA -, 1 peer"
        );
        // A tracker message is a change.
        assert_eq!(
            r.plain_line(at(95, 20 * MIB, 20 * MIB, 0, 1), Some("tracker: timed out"))
                .as_deref(),
            Some("d: 20.0% (20.0 MiB of 100.0 MiB), 0 B/s, ETA -, 1 peer | tracker: timed out")
        );
    }

    #[test]
    fn after_completion_lines_are_about_seeding() {
        let mut r = Reporter::new("x", 4 * MIB, true, false, at(0, 0, 0, 0, 1));
        assert!(r.plain_line(at(1, MIB, MIB, 0, 1), None).is_none());
        r.completion_line(at(4, 4 * MIB, 4 * MIB, 0, 1), None);
        // Nothing new right after the completion line.
        assert_eq!(r.plain_line(at(9, 4 * MIB, 4 * MIB, 0, 1), None), None);
        // A second peer is a change; the line shows upload figures, no download rate.
        let l = r.plain_line(at(10, 4 * MIB, 4 * MIB, 0, 2), None).unwrap();
        assert_eq!(l, "x: seeding, up 0 B/s, 0 B uploaded, 2 peers");
    }

    #[test]
    fn rate_changes_that_matter() {
        assert!(!rate_changed(0.0, 1000.0), "both idle");
        assert!(rate_changed(0.0, 2048.0));
        assert!(rate_changed(2048.0, 0.0));
        assert!(!rate_changed(MIB as f64, 1.2 * MIB as f64));
        assert!(rate_changed(MIB as f64, 1.6 * MIB as f64));
        assert!(rate_changed(MIB as f64, 0.5 * MIB as f64));
    }

    #[test]
    fn eta_of_a_crawl_does_not_overflow() {
        let mut r = Reporter::new("c", u64::MAX, false, false, at(0, 0, 0, 0, 1));
        let s = Sample {
            at: Duration::from_secs(1_000_000),
            verified: 1,
            downloaded: 1,
            uploaded: 0,
            peers: 1,
            from_origin: 0,
        };
        r.observe(s);
        assert!(
            r.text(&s, None).contains(", ETA -, "),
            "{}",
            r.text(&s, None)
        );
    }
}
