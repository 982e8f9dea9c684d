//! Rack/zone labels end to end over HTTP: the config's `[labels]` reach the store, replies
//! list the announcer's own label first, and `/metrics` has peers per label and the
//! same-label counter. Client addresses come from `X-Forwarded-For` (loopback is a
//! trusted proxy), so one test plays hosts in several racks.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::*;
use kpbt_tracker::labels::LabelsConfig;

fn labelled_config() -> kpbt_tracker::Config {
    let c: kpbt_tracker::Config = toml::from_str(
        "real_ip_header = \"X-Forwarded-For\"\n\
         trusted_proxies = [\"127.0.0.0/8\"]\n\
         [labels]\n\
         rack-a = [\"10.1.0.0/16\"]\n\
         zone-eu = [\"10.2.0.0/16\", \"fd00::/8\"]\n",
    )
    .expect("config parses");
    kpbt_tracker::Config {
        listen: test_config().listen,
        workers: 1,
        ..c
    }
}

fn announce_as(t: &TestTracker, ip: &str, id: u8, numwant: u32) -> Dict {
    let path = announce_path(
        1,
        id,
        6000 + u16::from(id),
        5,
        &format!("&numwant={numwant}"),
    );
    let d = bget_at(t.addr(), &path, &[("X-Forwarded-For", ip)]);
    assert_eq!(failure(&d), None, "{ip}");
    d
}

fn peer(ip: &str, id: u8) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 6000 + u16::from(id))
}

/// The value of the one series `name{labels}` in a Prometheus text page.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[test]
fn replies_list_the_announcers_label_first_and_metrics_count_it() {
    let t = TestTracker::start(labelled_config());
    let hosts = [
        ("10.1.0.1", 1),
        ("10.1.0.2", 2),
        ("10.1.0.3", 3),
        ("10.2.0.1", 4),
        ("fd00::5", 5),
        ("192.0.2.6", 6),
        ("192.0.2.7", 7),
    ];
    for (ip, id) in hosts {
        announce_as(&t, ip, id, 0);
    }
    let rack_a: HashSet<SocketAddr> = [peer("10.1.0.2", 2), peer("10.1.0.3", 3)].into();
    // numwant 2: exactly the two other rack-a peers.
    let d = announce_as(&t, "10.1.0.1", 1, 2);
    assert_eq!(
        compact_peers(&d).into_iter().collect::<HashSet<_>>(),
        rack_a
    );
    // numwant 4: those two first, then two from elsewhere.
    let d = announce_as(&t, "10.1.0.1", 1, 4);
    let got = compact_peers(&d);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[..2].iter().copied().collect::<HashSet<_>>(), rack_a);
    assert!(got[2..]
        .iter()
        .all(|p| !rack_a.contains(p) && *p != peer("10.1.0.1", 1)));
    // zone-eu from IPv4: its IPv6 member first (in peers6), then the rest.
    let d = announce_as(&t, "10.2.0.1", 4, 1);
    assert_eq!(compact_peers6(&d), [peer("fd00::5", 5)]);
    assert_eq!(compact_peers(&d), Vec::<SocketAddr>::new());
    // Unlabelled: anyone, and not counted in the same-label counter.
    let d = announce_as(&t, "192.0.2.6", 6, 50);
    assert_eq!(compact_peers(&d).len() + compact_peers6(&d).len(), 6);

    let m = t.get("/metrics").text();
    for (label, n) in [("rack-a", 3.0), ("zone-eu", 2.0), ("none", 2.0)] {
        let series = format!("kpbt_tracker_peers_per_label{{label=\"{label}\"}}");
        assert_eq!(sample(&m, &series), n, "{label}");
    }
    // Same label: 2 + 2 (rack-a) + 1 (zone-eu); other: 2 (rack-a's numwant 4).
    let returned = |same| format!("kpbt_tracker_peers_returned_total{{same_label=\"{same}\"}}");
    assert_eq!(sample(&m, &returned("true")), 5.0);
    assert_eq!(sample(&m, &returned("false")), 2.0);
}

#[test]
fn without_labels_there_is_no_per_label_gauge_and_nothing_is_counted() {
    let t = TestTracker::start(test_config());
    t.bget(&announce_path(1, 1, 6001, 5, ""));
    t.bget(&announce_path(1, 2, 6002, 5, ""));
    let m = t.get("/metrics").text();
    assert!(!m.contains("kpbt_tracker_peers_per_label"), "{m}");
    // The counter's series exist at 0 (dashboards read them), and stay there.
    assert!(
        m.contains("kpbt_tracker_peers_returned_total{same_label=\"true\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("kpbt_tracker_peers_returned_total{same_label=\"false\"} 0"),
        "{m}"
    );
}

#[test]
fn bad_labels_stop_the_tracker_from_starting() {
    let c = kpbt_tracker::Config {
        labels: LabelsConfig(vec![("none".into(), vec!["10.0.0.0/8".into()])]),
        ..test_config()
    };
    let e = kpbt_tracker::background::BackgroundTracker::start_on_loopback(c)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("reserved"), "{e}");
}
