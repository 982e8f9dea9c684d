//! Prometheus metrics of a session at `GET /metrics`: session-wide series (torrents
//! per state, peers, bytes) and, for at most `MAX_TORRENT_SERIES` running torrents
//! (oldest first), the same per-torrent `kpbt_client_*` series a one-shot client
//! exports, so the dashboards work for both and 10,000 torrents cannot explode the
//! series count. Rendered straight from the session at scrape time.

use std::fmt::Write;

use crate::session::{Session, TorrentSample};

/// Torrents that get their own series; the rest count in the session totals only.
pub(crate) const MAX_TORRENT_SERIES: usize = 100;

/// A label value with `\`, `"` and newlines escaped as the text format asks.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The text exposition format of the session's metrics.
pub(crate) fn render(session: &Session) -> String {
    let t = session.totals();
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "kpbt_session_torrents",
        "gauge",
        "Torrents in the session by state",
    );
    for (state, n) in &t.by_state {
        let _ = writeln!(out, "kpbt_session_torrents{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "kpbt_session_peers",
        "gauge",
        "Open peer connections over all torrents",
    );
    let _ = writeln!(out, "kpbt_session_peers {}", t.peers);
    family(
        &mut out,
        "kpbt_session_downloaded_bytes_total",
        "counter",
        "Verified payload bytes downloaded by all torrents",
    );
    let _ = writeln!(out, "kpbt_session_downloaded_bytes_total {}", t.downloaded);
    family(
        &mut out,
        "kpbt_session_uploaded_bytes_total",
        "counter",
        "Payload bytes sent to peers by all torrents",
    );
    let _ = writeln!(out, "kpbt_session_uploaded_bytes_total {}", t.uploaded);

    let samples = session.samples(MAX_TORRENT_SERIES);
    type Field = fn(&TorrentSample) -> u64;
    let series: [(&str, &str, &str, Field); 10] = [
        (
            "kpbt_client_downloaded_bytes_total",
            "counter",
            "Verified payload bytes downloaded since the torrent started",
            |s| s.downloaded,
        ),
        (
            "kpbt_client_uploaded_bytes_total",
            "counter",
            "Payload bytes sent to peers since the torrent started",
            |s| s.uploaded,
        ),
        (
            "kpbt_client_peer_bytes_total",
            "counter",
            "Verified payload bytes that came from peers since the torrent started",
            |s| s.peer_bytes,
        ),
        (
            "kpbt_client_origin_bytes_total",
            "counter",
            "Verified payload bytes that came from web seeds and origins since the torrent started",
            |s| s.origin_bytes,
        ),
        ("kpbt_client_peers", "gauge", "Open peer connections", |s| {
            s.peers as u64
        }),
        (
            "kpbt_client_pieces",
            "gauge",
            "Pieces in the torrent",
            |s| u64::from(s.pieces),
        ),
        (
            "kpbt_client_pieces_have",
            "gauge",
            "Pieces verified and on disk",
            |s| u64::from(s.pieces_have),
        ),
        (
            "kpbt_client_pieces_verified_total",
            "counter",
            "Downloaded pieces that passed their SHA-1 check",
            |s| s.pieces_verified,
        ),
        (
            "kpbt_client_hash_failures_total",
            "counter",
            "Downloaded pieces that failed their SHA-1 check",
            |s| s.hash_failures,
        ),
        (
            "kpbt_client_peers_banned_total",
            "counter",
            "Peer addresses banned for sending corrupt data",
            |s| s.peers_banned,
        ),
    ];
    for (name, kind, help, field) in series {
        family(&mut out, name, kind, help);
        for s in &samples {
            let _ = writeln!(
                out,
                "{name}{{torrent=\"{}\",info_hash=\"{}\"}} {}",
                label(&s.name),
                s.info_hash,
                field(s)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
