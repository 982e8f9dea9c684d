#!/usr/bin/env python3
"""Writes the Grafana dashboards in this folder (swarm-health.json, transfer.json) and
their panel-by-panel description, docs/dashboards.md.

The JSON files are generated so that panel ids stay unique, every target uses the
`${datasource}` variable (no hard-coded datasource uid), and the PromQL lives in one
readable place. Edit here, run `python3 dashboards/generate.py`, commit both.
`python3 dashboards/generate.py ROOT` writes ROOT/dashboards/ and ROOT/docs/ instead
(integration/tests/dashboards_json.rs uses that to check the committed files are current).
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def panel(title, description, exprs, unit="short", kind="timeseries", legend=None, stack=False):
    return {
        "title": title,
        "description": description,
        "type": kind,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": {"stacking": {"mode": "normal" if stack else "none"}}},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"datasource": DS, "expr": expr, "legendFormat": fmt, "refId": chr(ord("A") + i)}
            for i, (expr, fmt) in enumerate(exprs)
        ],
    }


def dashboard(uid, title, description, panels):
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8}
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["kpbt", "bittorrent"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "panels": panels,
    }


swarm = dashboard(
    "kpbt-swarm-health",
    "kpbt swarm health",
    "Tracker view of the private swarm: torrents, seeders and leechers, announce traffic, errors, latency.",
    [
        panel("Torrents", "Torrents with at least one live peer on the tracker.",
              [("sum(kpbt_tracker_torrents)", "torrents")]),
        panel("Seeders vs leechers", "Live peers that have the whole torrent (seeders) or not yet (leechers).",
              [("sum(kpbt_tracker_seeders)", "seeders"), ("sum(kpbt_tracker_leechers)", "leechers")], stack=True),
        panel("Announce rate by event", "Announces per second, split by event (started, completed, stopped, none).",
              [(f"sum by (event) (rate(kpbt_tracker_announces_total[{RATE}]))", "{{event}}")], unit="reqps"),
        panel("Error rate by reason", "Requests answered with a failure reason, per second, by reason.",
              [(f"sum by (reason) (rate(kpbt_tracker_failures_total[{RATE}]))", "{{reason}}")], unit="reqps"),
        panel("Announce latency p50 / p99", "Time to answer an announce, from the request histogram.",
              [(f'histogram_quantile(0.5, sum by (le) (rate(kpbt_tracker_request_duration_seconds_bucket{{endpoint="announce"}}[{RATE}])))', "p50"),
               (f'histogram_quantile(0.99, sum by (le) (rate(kpbt_tracker_request_duration_seconds_bucket{{endpoint="announce"}}[{RATE}])))', "p99")],
              unit="s"),
        panel("Completed downloads", "Completed events seen by the tracker since it started (peers that finished a download).",
              [("sum(kpbt_tracker_completed_total)", "completed")]),
        panel("Scrape rate", "Scrape requests per second.",
              [(f"sum(rate(kpbt_tracker_scrapes_total[{RATE}]))", "scrapes")], unit="reqps"),
        panel("Peers reaped and allowlist rejections", "Peers expired for not re-announcing, and announces refused by the allowlist.",
              [("sum(kpbt_tracker_peers_reaped_total)", "reaped"),
               ("sum(kpbt_tracker_allowlist_rejections_total)", "allowlist rejections")]),
        panel("Passkey and rate-limit rejections", "Requests refused per second for a missing, unknown or revoked passkey, and by the per-client rate limit.",
              [(f"sum(rate(kpbt_tracker_passkey_rejections_total[{RATE}]))", "passkey"),
               (f"sum(rate(kpbt_tracker_rate_limited_total[{RATE}]))", "rate limited")], unit="reqps"),
        panel("Same-label share of returned peers", "Of the peers listed in replies to announcers that have a rack/zone label (`[labels]` in the tracker config), the share that have the announcer's own label. Low while racks are still filling; no data without labels.",
              [(f'sum(rate(kpbt_tracker_peers_returned_total{{same_label="true"}}[{RATE}])) / sum(rate(kpbt_tracker_peers_returned_total[{RATE}]))', "same label")],
              unit="percentunit"),
        panel("Deploy readiness: seeders vs expected", "For each torrent a deploy is waiting on (polled with `GET /swarms/HASH?expect=N` in the last hour, at most 16): the seeders it has now against the N expected. Ready when the two lines meet; `kpbt-client wait-ready` polls the same URL. No data while no deploy waits.",
              [("max by (info_hash) (kpbt_tracker_readiness_seeders)", "{{info_hash}} seeders"),
               ("max by (info_hash) (kpbt_tracker_readiness_expected_seeders)", "{{info_hash}} expected")]),
        panel("Peers per label", "Live peers by rack/zone label (the first configured label whose networks hold the peer's address; `none` for the rest). Only with `[labels]` configured.",
              [("sum by (label) (kpbt_tracker_peers_per_label)", "{{label}}")], stack=True),
    ],
)

transfer = dashboard(
    "kpbt-transfer",
    "kpbt transfer",
    "Client view: per-client download and upload rates, peers, verification and bans.",
    [
        panel("Download rate per client", "Verified payload bytes received per second, per client and torrent.",
              [(f"sum by (instance, torrent) (rate(kpbt_client_downloaded_bytes_total[{RATE}]))", "{{instance}} {{torrent}}")],
              unit="Bps"),
        panel("Upload rate per client", "Payload bytes sent to peers per second, per client and torrent.",
              [(f"sum by (instance, torrent) (rate(kpbt_client_uploaded_bytes_total[{RATE}]))", "{{instance}} {{torrent}}")],
              unit="Bps"),
        panel("Connected peers", "Open peer connections per client and torrent.",
              [("sum by (instance, torrent) (kpbt_client_peers)", "{{instance}} {{torrent}}")]),
        panel("Completion", "Share of pieces verified on disk, per client and torrent.",
              [("sum by (instance, torrent) (kpbt_client_pieces_have) / sum by (instance, torrent) (kpbt_client_pieces)", "{{instance}} {{torrent}}")],
              unit="percentunit"),
        panel("Pieces verified rate", "Pieces that passed their SHA-1 check, per second.",
              [(f"sum by (instance) (rate(kpbt_client_pieces_verified_total[{RATE}]))", "{{instance}}")]),
        panel("Hash failures and banned peers", "Pieces that failed their SHA-1 check, and peer addresses banned for sending them (totals since the client started).",
              [("sum by (instance) (kpbt_client_hash_failures_total)", "{{instance}} hash failures"),
               ("sum by (instance) (kpbt_client_peers_banned_total)", "{{instance}} banned")]),
        panel("Data moved", "Payload bytes downloaded and uploaded over the last hour, per client and torrent (rates are rate() of these counters; the client exports no rate gauges).",
              [("sum by (instance, torrent) (increase(kpbt_client_downloaded_bytes_total[1h]))", "{{instance}} {{torrent}} down"),
               ("sum by (instance, torrent) (increase(kpbt_client_uploaded_bytes_total[1h]))", "{{instance}} {{torrent}} up")],
              unit="bytes"),
        panel("Pieces left", "Pieces not yet verified on disk, per client and torrent (0 once seeding).",
              [("sum by (instance, torrent) (kpbt_client_pieces - kpbt_client_pieces_have)", "{{instance}} {{torrent}}")]),
        panel("P2P offload", "Share of verified payload bytes that did not come from the origin (web seeds, `--origin`): 1 means peers delivered everything, 0 that the origin did. Over all clients, and per torrent. No data while nothing downloads.",
              [(f"sum(rate(kpbt_client_peer_bytes_total[{RATE}])) / (sum(rate(kpbt_client_peer_bytes_total[{RATE}])) + sum(rate(kpbt_client_origin_bytes_total[{RATE}])))", "all clients"),
               (f"sum by (torrent) (rate(kpbt_client_peer_bytes_total[{RATE}])) / (sum by (torrent) (rate(kpbt_client_peer_bytes_total[{RATE}])) + sum by (torrent) (rate(kpbt_client_origin_bytes_total[{RATE}])))", "{{torrent}}")],
              unit="percentunit"),
        panel("Download rate by source", "Verified payload bytes per second from peers and from the origin (web seeds, `--origin`), over all clients: what the origin serves is what the swarm did not.",
              [(f"sum(rate(kpbt_client_peer_bytes_total[{RATE}]))", "from peers"),
               (f"sum(rate(kpbt_client_origin_bytes_total[{RATE}]))", "from origin")],
              unit="Bps", stack=True),
    ],
)

CLIENT_METRICS = [
    ("kpbt_client_downloaded_bytes_total", "counter", "verified payload bytes downloaded this session"),
    ("kpbt_client_uploaded_bytes_total", "counter", "payload bytes sent to peers this session"),
    ("kpbt_client_peer_bytes_total", "counter", "of the downloaded bytes, those that came from peers"),
    ("kpbt_client_origin_bytes_total", "counter", "of the downloaded bytes, those that came from web seeds and origins (`url-list`, `--origin`)"),
    ("kpbt_client_peers", "gauge", "open peer connections"),
    ("kpbt_client_pieces", "gauge", "pieces in the torrent"),
    ("kpbt_client_pieces_have", "gauge", "pieces verified and on disk"),
    ("kpbt_client_pieces_verified_total", "counter", "downloaded pieces that passed their SHA-1 check"),
    ("kpbt_client_hash_failures_total", "counter", "downloaded pieces that failed their SHA-1 check"),
    ("kpbt_client_peers_banned_total", "counter", "peer addresses banned for sending corrupt data"),
]


def markdown(boards):
    """docs/dashboards.md: what every panel shows and the PromQL behind it."""
    out = [
        "# Grafana dashboards",
        "",
        "Generated by `dashboards/generate.py` (edit that, then run `python3 dashboards/generate.py`).",
        "Grafana provisioning: `dashboards/provisioning/` (mounted by `docker/compose.yml`).",
        "Every query uses the `${datasource}` variable; `$__rate_interval` is Grafana's rate window.",
        "`integration/tests/prometheus_dashboards.rs` evaluates every expression below against a",
        "real Prometheus scraping a tracker and two clients during a transfer.",
        "",
        "## Where the metrics come from",
        "",
        "- Tracker: `GET /metrics` on its listen address (`kpbt_tracker_*`, see `tracker/src/metrics.rs`).",
        "- Client: `kpbt-client download|seed ... --metrics-listen 0.0.0.0:9100` serves `GET /metrics`",
        "  (`client/src/metrics.rs`), sampled from the torrent once a second. Every client metric has",
        "  one label, `torrent` (the torrent's name; one torrent per process). There are no rate",
        "  gauges: rates are `rate()` of the `_bytes_total` counters, as Prometheus conventions ask.",
        "  `GET /health` on the same listener answers 200 `ok` while the client runs (compose",
        "  healthchecks probe it with `kpbt-client health URL`):",
        "",
    ]
    out += [f"  - `{name}` ({kind}): {help}" for name, kind, help in CLIENT_METRICS]
    out.append("")
    for file, b in boards:
        out += [f"## {b['title']} (`dashboards/{file}`, uid `{b['uid']}`)", "", b["description"], ""]
        for p in b["panels"]:
            unit = p["fieldConfig"]["defaults"]["unit"]
            out += [f"### {p['id']}. {p['title']}", "", f"{p['description']} Unit: `{unit}`.", ""]
            for t in p["targets"]:
                out.append(f"- `{t['legendFormat']}`: `{t['expr']}`")
            out.append("")
    return "\n".join(out)


root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent
(root / "dashboards").mkdir(parents=True, exist_ok=True)
(root / "docs").mkdir(parents=True, exist_ok=True)
boards = [("swarm-health.json", swarm), ("transfer.json", transfer)]
for name, board in boards:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    (root / "dashboards" / name).write_text(json.dumps(board, indent=2) + "\n")
(root / "docs" / "dashboards.md").write_text(markdown(boards))
