use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use kpbt_proto::announce::AnnounceEvent;
use kpbt_proto::udp::Request;
use kpbt_proto::PeerId;
use kpbt_tracker::background::BackgroundTracker;

use super::*;
use crate::tracker::{announce_tiers, AnnounceError};

fn request(id: u8, port: u16, left: u64) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([0x42; 20]),
        peer_id: PeerId([id; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: AnnounceEvent::Started,
        compact: true,
        no_peer_id: true,
        numwant: Some(10),
        ip: None,
        key: None,
        tracker_id: None,
    }
}

fn kpbt_tracker(config: kpbt_tracker::Config) -> BackgroundTracker {
    BackgroundTracker::start_on_loopback_with_udp(kpbt_tracker::Config {
        workers: 1,
        announce_interval_secs: 600,
        ..config
    })
    .expect("tracker starts")
}

const FAST: Retry = Retry {
    first_timeout: Duration::from_millis(200),
    tries: 3,
};

#[test]
fn urls_are_taken_apart() {
    let u = UdpUrl::parse("udp://tracker.example:6969/announce/KEY?x=1#frag").unwrap();
    assert_eq!(
        u,
        UdpUrl {
            host: "tracker.example".into(),
            port: 6969,
            path_and_query: "/announce/KEY?x=1".into()
        }
    );
    let u = UdpUrl::parse("udp://[::1]:80").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path_and_query.as_str()),
        ("::1", 80, "")
    );
    assert_eq!(UdpUrl::parse("udp://h:1?a").unwrap().path_and_query, "?a");
    for bad in [
        "http://h:1/",
        "udp://h",
        "udp://h:0",
        "udp://:5",
        "udp://h:x",
        "udp://[::1]/a",
    ] {
        assert!(UdpUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn retransmission_timeouts_double_up_to_the_bep_cap() {
    let r = Retry::DEFAULT;
    let secs: Vec<u64> = (0..10).map(|n| r.timeout(n).as_secs()).collect();
    assert_eq!(secs, [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 3840]);
    assert_eq!(r.tries, 2, "a dead tracker costs 45 s, not an hour");
}

#[tokio::test]
async fn announces_to_kpbt_reuse_the_connection_id_and_scrape() {
    let t = kpbt_tracker(kpbt_tracker::Config::default());
    let url = t.udp_announce_url();
    let mut c = UdpClient::new(FAST);
    let r = c.announce(&url, &request(1, 7001, 10)).await.unwrap();
    assert_eq!((r.interval, r.incomplete, r.peers.len()), (600, Some(1), 0));
    let mut other = UdpClient::new(FAST);
    let r = other.announce(&url, &request(2, 7002, 0)).await.unwrap();
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(r.peers, vec!["127.0.0.1:7001".parse().unwrap()]);
    // A second announce within the minute needs no new connect.
    c.announce(&url, &request(1, 7001, 10)).await.unwrap();
    assert_eq!(
        t.state().metrics.udp_connects.get(),
        2,
        "one connect per client"
    );
    let stats = c
        .scrape(&url, &[InfoHash([0x42; 20]), InfoHash([0; 20])])
        .await
        .unwrap();
    assert_eq!(stats[0].complete, 1);
    assert_eq!(stats[0].incomplete, 1);
    assert_eq!(stats[1], ScrapeStats::default());
}

#[tokio::test]
async fn bep41_passkey_paths_reach_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let mut f = kpbt_tracker::passkeys::KeyFile::default();
    let key = f.add(None);
    f.write(&path).unwrap();
    let t = kpbt_tracker(kpbt_tracker::Config {
        passkeys: true,
        passkey_file: Some(path),
        ..kpbt_tracker::Config::default()
    });
    let addr = t.udp_addrs()[0];
    let mut c = UdpClient::new(FAST);
    let r = c
        .announce(
            &format!("udp://{addr}/announce/{}", key.as_str()),
            &request(1, 7001, 5),
        )
        .await
        .unwrap();
    assert_eq!(r.incomplete, Some(1));
    let e = c
        .announce(&format!("udp://{addr}/announce"), &request(1, 7001, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, UdpTrackerError::Refused(m) if m == kpbt_tracker::http::PASSKEY_REQUIRED),
        "{e}"
    );
}

/// A UDP tracker that ignores the first `drop_first` datagrams, sends a stray reply with
/// a wrong transaction id before each real one, and counts what it received.
async fn flaky_tracker(drop_first: u32) -> (SocketAddr, Arc<AtomicU32>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            if count.fetch_add(1, Ordering::SeqCst) < drop_first {
                continue;
            }
            let mut out = Vec::new();
            let tid = match udp::parse_request(&buf[..n]).unwrap() {
                Request::Connect { transaction_id } => {
                    udp::encode_connect_response(&mut out, transaction_id, ConnectionId(77));
                    transaction_id
                }
                Request::Announce(a) => {
                    assert_eq!(a.connection_id, ConnectionId(77));
                    udp::encode_announce_header(&mut out, a.transaction_id, 60, 1, 2);
                    udp::push_peer(&mut out, PeerFamily::V4, "10.0.0.1:5".parse().unwrap());
                    a.transaction_id
                }
                Request::Scrape(_) => unreachable!(),
            };
            let mut stray = Vec::new();
            udp::encode_error_response(&mut stray, TransactionId(tid.0 ^ 1), "not yours");
            s.send_to(&stray, from).await.unwrap();
            s.send_to(&out, from).await.unwrap();
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn lost_datagrams_are_retransmitted_and_strays_ignored() {
    let (addr, seen) = flaky_tracker(2).await;
    let mut c = UdpClient::new(FAST);
    let r = c
        .announce(&format!("udp://{addr}"), &request(1, 1, 1))
        .await
        .unwrap();
    assert_eq!(r.peers, vec!["10.0.0.1:5".parse().unwrap()]);
    assert_eq!(
        (r.interval, r.complete, r.incomplete),
        (60, Some(2), Some(1))
    );
    // Connect sent three times (two lost), then the announce once.
    assert_eq!(seen.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_silent_tracker_costs_exactly_the_bounded_tries() {
    let (addr, seen) = flaky_tracker(u32::MAX).await;
    let mut c = UdpClient::new(Retry {
        first_timeout: Duration::from_millis(50),
        tries: 2,
    });
    let e = c
        .announce(&format!("udp://{addr}"), &request(1, 1, 1))
        .await
        .unwrap_err();
    assert!(matches!(e, UdpTrackerError::Timeout(2)), "{e}");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

/// A loopback UDP port with nothing bound: the kernel answers with port unreachable.
fn closed_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn mixed_tiers_fall_through_udp_and_http_both_ways() {
    let t = kpbt_tracker(kpbt_tracker::Config::default());
    let dead_udp = format!("udp://127.0.0.1:{}/announce", closed_udp_port());
    let dead_http = "http://127.0.0.1:1/announce".to_string();
    let http = reqwest::Client::new();
    let mut udp = UdpClient::new(Retry::DEFAULT);
    // The closed port fails at once (ICMP), not after 45 s, so the HTTP tracker answers.
    let mut tiers = vec![vec![dead_udp.clone(), t.announce_url()]];
    let r = announce_tiers(&http, &mut udp, &mut tiers, &request(1, 7001, 5))
        .await
        .unwrap();
    assert_eq!(r.incomplete, Some(1));
    assert_eq!(tiers[0], vec![t.announce_url(), dead_udp.clone()]);
    let mut tiers = vec![vec![dead_http], vec![t.udp_announce_url()]];
    let r = announce_tiers(&http, &mut udp, &mut tiers, &request(2, 7002, 5))
        .await
        .unwrap();
    assert_eq!(r.peers, vec!["127.0.0.1:7001".parse().unwrap()]);
    let e = announce_tiers(
        &http,
        &mut udp,
        &mut [vec![dead_udp.clone()]],
        &request(3, 3, 5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, AnnounceError::Unreachable { tracker, .. } if *tracker == dead_udp),
        "{e}"
    );
    // A UDP refusal is a refusal like an HTTP one: a bad passkey backs off for long.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    kpbt_tracker::passkeys::KeyFile::default()
        .write(&keys)
        .unwrap();
    let keyed = kpbt_tracker(kpbt_tracker::Config {
        passkeys: true,
        passkey_file: Some(keys),
        ..kpbt_tracker::Config::default()
    });
    let url = format!(
        "udp://{}/announce/0123456789abcdef0123456789abcdef",
        keyed.udp_addrs()[0]
    );
    let e = announce_tiers(&http, &mut udp, &mut [vec![url]], &request(4, 4, 5))
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        !e.to_string().contains("0123456789abcdef"),
        "passkey redacted: {e}"
    );
}
