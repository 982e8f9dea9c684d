//! The UDP front end over real sockets on port 0: connect/announce/scrape (BEP 15) from
//! IPv4 and IPv6, BEP 41 passkeys, the shared store/limits/allowlist/metrics with HTTP,
//! error replies, and garbage that is dropped. Datagrams are built and read byte by byte
//! here, independently of kpbt-proto's encoder and decoder.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use kpbt_proto::udp::ConnectionIdKey;
use kpbt_tracker::background::BackgroundTracker;
use kpbt_tracker::passkeys::KeyFile;
use kpbt_tracker::Config;

const MAGIC: u64 = 0x41727101980;

struct Udp {
    tracker: BackgroundTracker,
}

impl Udp {
    fn start(config: Config) -> Self {
        Self::start_on(config, "127.0.0.1:0")
    }

    fn start_on(config: Config, udp: &str) -> Self {
        let tracker = BackgroundTracker::start_with_udp(
            config,
            vec![std::net::TcpListener::bind("127.0.0.1:0").unwrap()],
            vec![UdpSocket::bind(udp).unwrap()],
        )
        .expect("tracker starts");
        // The socket is bound before start returns, so datagrams queue from now on.
        Udp { tracker }
    }

    fn addr(&self) -> SocketAddr {
        self.tracker.udp_addrs()[0]
    }

    fn client(&self) -> Client {
        let local = if self.addr().is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let s = UdpSocket::bind(local).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.connect(self.addr()).unwrap();
        Client { s, tid: 100 }
    }

    fn http_get(&self, path: &str) -> Reply {
        get(self.tracker.addr(), path, &[]).expect("HTTP request")
    }

    /// The Prometheus text, read in-process (an HTTP /metrics request would itself count
    /// against the rate limit some tests set).
    fn metrics(&self) -> String {
        String::from_utf8(self.tracker.state().metrics.render()).unwrap()
    }
}

fn udp_config() -> Config {
    Config {
        announce_interval_secs: 900,
        ..test_config()
    }
}

struct Client {
    s: UdpSocket,
    tid: u32,
}

/// One announce's variable fields.
#[derive(Clone, Copy)]
struct Ann {
    hash: u8,
    id: u8,
    port: u16,
    left: u64,
    event: u32,
    ip: u32,
    num_want: i32,
}

fn ann(hash: u8, id: u8, port: u16, left: u64) -> Ann {
    Ann {
        hash,
        id,
        port,
        left,
        event: 2,
        ip: 0,
        num_want: -1,
    }
}

impl Client {
    fn next_tid(&mut self) -> u32 {
        self.tid += 1;
        self.tid
    }

    fn send(&self, d: &[u8]) {
        self.s.send(d).unwrap();
    }

    fn recv(&self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let n = self.s.recv(&mut buf).expect("a reply");
        buf[..n].to_vec()
    }

    /// Sends and returns the reply, checking it echoes the transaction id.
    fn call(&mut self, mut d: Vec<u8>) -> Vec<u8> {
        let tid = self.next_tid();
        d[12..16].copy_from_slice(&tid.to_be_bytes());
        self.send(&d);
        let r = self.recv();
        assert!(r.len() >= 8, "reply too short: {r:?}");
        assert_eq!(u32_at(&r, 4), tid, "transaction id echoed");
        r
    }

    fn connect(&mut self) -> u64 {
        let r = self.call(connect_datagram());
        assert_eq!((r.len(), u32_at(&r, 0)), (16, 0), "connect reply: {r:?}");
        u64::from_be_bytes(r[8..16].try_into().unwrap())
    }

    fn announce(&mut self, cid: u64, a: Ann, options: &[u8]) -> Vec<u8> {
        self.call(announce_datagram(cid, a, options))
    }

    fn scrape(&mut self, cid: u64, hashes: &[u8]) -> Vec<u8> {
        let mut d = header(cid, 2);
        for &h in hashes {
            d.extend_from_slice(&[h; 20]);
        }
        self.call(d)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn header(cid: u64, action: u32) -> Vec<u8> {
    let mut d = cid.to_be_bytes().to_vec();
    d.extend_from_slice(&action.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes()); // transaction id, set by `call`
    d
}

fn connect_datagram() -> Vec<u8> {
    header(MAGIC, 0)
}

fn announce_datagram(cid: u64, a: Ann, options: &[u8]) -> Vec<u8> {
    let mut d = header(cid, 1);
    d.extend_from_slice(&[a.hash; 20]);
    d.extend_from_slice(&[a.id; 20]);
    d.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    d.extend_from_slice(&a.left.to_be_bytes());
    d.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    d.extend_from_slice(&a.event.to_be_bytes());
    d.extend_from_slice(&a.ip.to_be_bytes());
    d.extend_from_slice(&0x1234u32.to_be_bytes()); // key
    d.extend_from_slice(&a.num_want.to_be_bytes());
    d.extend_from_slice(&a.port.to_be_bytes());
    d.extend_from_slice(options);
    assert_eq!(d.len(), 98 + options.len());
    d
}

/// BEP 41 URLData for `path` (one option; paths in these tests are short).
fn url_data(path: &str) -> Vec<u8> {
    let mut o = vec![2, path.len() as u8];
    o.extend_from_slice(path.as_bytes());
    o
}

/// (interval, leechers, seeders, peers) from an announce reply with `peer_len`-byte peers.
fn announce_reply(r: &[u8], peer_len: usize) -> (u32, u32, u32, Vec<SocketAddr>) {
    assert_eq!(u32_at(r, 0), 1, "announce reply, got {:?}", error_text(r));
    assert_eq!((r.len() - 20) % peer_len, 0);
    let peers = r[20..]
        .chunks(peer_len)
        .map(|c| {
            let ip = if peer_len == 6 {
                IpAddr::from(<[u8; 4]>::try_from(&c[..4]).unwrap())
            } else {
                IpAddr::from(<[u8; 16]>::try_from(&c[..16]).unwrap())
            };
            SocketAddr::new(ip, u16::from_be_bytes([c[peer_len - 2], c[peer_len - 1]]))
        })
        .collect();
    (u32_at(r, 8), u32_at(r, 12), u32_at(r, 16), peers)
}

fn error_text(r: &[u8]) -> Option<String> {
    (u32_at(r, 0) == 3).then(|| String::from_utf8_lossy(&r[8..]).into_owned())
}

fn expect_error(r: &[u8], text: &str) {
    assert_eq!(error_text(r).as_deref(), Some(text), "reply {r:?}");
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn connect_announce_and_scrape_over_ipv4_share_the_store_with_http() {
    let t = Udp::start(udp_config());
    let mut c = t.client();
    let cid = c.connect();
    let r = c.announce(cid, ann(1, 1, 7001, 100), &[]);
    assert_eq!(announce_reply(&r, 6), (900, 1, 0, vec![]));
    // A second peer, a seeder, gets the first; a peer announced over HTTP is seen too.
    let d = t.tracker_http_announce(announce_path(1, 3, 7003, 10, ""));
    assert_eq!(int(&d, "incomplete"), 2);
    let mut c2 = t.client();
    let cid2 = c2.connect();
    let (interval, leechers, seeders, mut peers) =
        announce_reply(&c2.announce(cid2, ann(1, 2, 7002, 0), &[]), 6);
    peers.sort();
    assert_eq!((interval, leechers, seeders), (900, 2, 1));
    assert_eq!(
        peers,
        vec![
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7003".parse().unwrap()
        ]
    );
    // The HTTP side sees the UDP peers.
    let d = t.tracker_http_announce(announce_path(1, 4, 7004, 10, "&numwant=10"));
    assert_eq!(int(&d, "complete"), 1);
    assert_eq!(compact_peers(&d).len(), 3);

    // Scrape: request order, zeros for an unknown torrent.
    let r = c.scrape(cid, &[9, 1]);
    assert_eq!(u32_at(&r, 0), 2);
    assert_eq!(r.len(), 8 + 2 * 12);
    assert_eq!(&r[8..20], &[0; 12]);
    assert_eq!(
        (u32_at(&r, 20), u32_at(&r, 24), u32_at(&r, 28)),
        (1, 0, 3),
        "seeders, completed, leechers"
    );

    // `stopped` removes the peer; `completed` counts once.
    let mut done = ann(1, 1, 7001, 0);
    done.event = 1;
    assert_eq!(announce_reply(&c.announce(cid, done, &[]), 6).2, 2);
    let mut stop = ann(1, 1, 7001, 0);
    stop.event = 3;
    assert_eq!(announce_reply(&c.announce(cid, stop, &[]), 6).1, 2);

    let stats = t.http_get("/stats").text();
    assert!(stats.contains("\"announces\":6"), "{stats}");
    assert!(stats.contains("\"scrapes\":1"), "{stats}");
    assert!(stats.contains("\"completed\":1"), "{stats}");
    let m = t.metrics();
    for line in [
        "kpbt_tracker_announces_total{event=\"started\",outcome=\"ok\",protocol=\"udp\"} 2",
        "kpbt_tracker_announces_total{event=\"none\",outcome=\"ok\",protocol=\"http\"} 2",
        "kpbt_tracker_announces_total{event=\"completed\",outcome=\"ok\",protocol=\"udp\"} 1",
        "kpbt_tracker_announces_total{event=\"stopped\",outcome=\"ok\",protocol=\"udp\"} 1",
        "kpbt_tracker_scrapes_total{protocol=\"udp\"} 1",
        "kpbt_tracker_udp_connects_total 2",
    ] {
        assert!(m.contains(line), "missing {line}");
    }
}

impl Udp {
    fn tracker_http_announce(&self, path: String) -> Dict {
        bget_at(self.tracker.addr(), &path, &[])
    }
}

#[test]
fn ipv6_clients_get_18_byte_peers() {
    let t = Udp::start_on(udp_config(), "[::1]:0");
    let mut a = t.client();
    let cid = a.connect();
    announce_reply(&a.announce(cid, ann(2, 1, 8001, 5), &[]), 18);
    let mut b = t.client();
    let cid = b.connect();
    let (_, leechers, _, peers) = announce_reply(&b.announce(cid, ann(2, 2, 8002, 5), &[]), 18);
    assert_eq!(leechers, 2);
    assert_eq!(peers, vec!["[::1]:8001".parse().unwrap()]);
}

#[test]
fn num_want_default_and_cap_are_those_of_http() {
    let t = Udp::start(Config {
        numwant_default: 2,
        numwant_max: 3,
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    for id in 1..=5 {
        c.announce(cid, ann(3, id, 9000 + u16::from(id), 5), &[]);
    }
    let peers = |want: i32, c: &mut Client| {
        let mut a = ann(3, 9, 9009, 5);
        a.num_want = want;
        announce_reply(&c.announce(cid, a, &[]), 6).3.len()
    };
    assert_eq!(peers(-1, &mut c), 2, "default");
    assert_eq!(peers(100, &mut c), 3, "cap");
    assert_eq!(peers(0, &mut c), 0);
}

#[test]
fn the_ip_field_is_honoured_only_when_configured() {
    // Honoured only with honor_ip_param and from a trusted source (loopback here).
    for (honor, trusted, expect) in [
        (false, vec![], "127.0.0.1:9101"),
        (true, vec!["127.0.0.0/8".to_string()], "10.1.2.3:9101"),
        (false, vec!["127.0.0.0/8".to_string()], "127.0.0.1:9101"),
    ] {
        let t = Udp::start(Config {
            honor_ip_param: honor,
            trusted_proxies: trusted,
            ..udp_config()
        });
        let mut c = t.client();
        let cid = c.connect();
        let mut a = ann(4, 1, 9101, 5);
        a.ip = u32::from(std::net::Ipv4Addr::new(10, 1, 2, 3));
        c.announce(cid, a, &[]);
        let peers = announce_reply(&c.announce(cid, ann(4, 2, 9102, 5), &[]), 6).3;
        assert_eq!(
            peers,
            vec![expect.parse().unwrap()],
            "honor_ip_param={honor}"
        );
    }
}

/// BEP 15's `started` (event 2) with `left=0` is a magnet client's first announce (or a
/// seeder starting): leechers first, then seeders to fill num_want. The same peer's
/// `none` (0) and `completed` (1) announces get leechers only.
#[test]
fn left0_started_gets_leechers_then_seeders() {
    let t = Udp::start(udp_config());
    let mut c = t.client();
    let cid = c.connect();
    let mut seeder = |id: u8| {
        let mut a = ann(5, id, 9200 + u16::from(id), 0);
        a.event = 1;
        a.num_want = 0;
        c.announce(cid, a, &[]);
    };
    seeder(1);
    seeder(2);
    for id in [3u8, 4] {
        let mut a = ann(5, id, 9200 + u16::from(id), 50);
        a.num_want = 0;
        c.announce(cid, a, &[]);
    }
    let at = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let sorted = |mut v: Vec<SocketAddr>| {
        v.sort();
        v
    };
    let magnet = |event: u32, num_want: i32, c: &mut Client| {
        let mut a = ann(5, 9, 9209, 0);
        a.event = event;
        a.num_want = num_want;
        announce_reply(&c.announce(cid, a, &[]), 6)
    };
    let (_, leechers, seeders, peers) = magnet(2, 3, &mut c);
    assert_eq!((leechers, seeders), (2, 3));
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert_eq!(sorted(peers[..2].to_vec()), [at(9203), at(9204)]);
    assert!([at(9201), at(9202)].contains(&peers[2]), "{peers:?}");
    let (_, _, _, peers) = magnet(2, -1, &mut c);
    assert_eq!(
        sorted(peers),
        [at(9201), at(9202), at(9203), at(9204)],
        "everyone with the default num_want"
    );
    for event in [0, 1] {
        let (_, _, _, peers) = magnet(event, -1, &mut c);
        assert_eq!(sorted(peers), [at(9203), at(9204)], "event {event}");
    }
}

/// Labels apply to UDP announces too (the store picks the peers), by the address the
/// peer is recorded under (here the `ip` field, believed from loopback).
#[test]
fn labelled_announcers_get_their_rack_first_over_udp() {
    let labels =
        kpbt_tracker::labels::LabelsConfig(vec![("rack-a".into(), vec!["10.1.0.0/16".into()])]);
    let t = Udp::start(Config {
        honor_ip_param: true,
        trusted_proxies: vec!["127.0.0.0/8".into()],
        labels,
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    let from = |id: u8, ip: [u8; 4], num_want: i32, c: &mut Client| {
        let mut a = ann(6, id, 9300 + u16::from(id), 5);
        a.ip = u32::from_be_bytes(ip);
        a.num_want = num_want;
        announce_reply(&c.announce(cid, a, &[]), 6).3
    };
    for (id, ip) in [
        (1, [10, 1, 0, 1]),
        (2, [10, 1, 0, 2]),
        (3, [192, 0, 2, 3]),
        (4, [192, 0, 2, 4]),
    ] {
        from(id, ip, 0, &mut c);
    }
    let rack = SocketAddr::from(([10, 1, 0, 2], 9302));
    for _ in 0..5 {
        assert_eq!(from(1, [10, 1, 0, 1], 1, &mut c), [rack]);
    }
    let peers = from(1, [10, 1, 0, 1], 3, &mut c);
    assert_eq!(peers.len(), 3);
    assert_eq!(peers[0], rack);
    let m = t.metrics();
    assert!(
        m.contains("kpbt_tracker_peers_returned_total{same_label=\"true\"} 6"),
        "{m}"
    );
    assert!(
        m.contains("kpbt_tracker_peers_returned_total{same_label=\"false\"} 2"),
        "{m}"
    );
}

#[test]
fn bad_and_expired_connection_ids_get_an_error_reply() {
    let key = "000102030405060708090a0b0c0d0e0f";
    let t = Udp::start(Config {
        udp_connection_key: Some(key.into()),
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    expect_error(
        &c.announce(cid ^ 1, ann(5, 1, 9201, 5), &[]),
        kpbt_tracker::udp::BAD_CONNECTION_ID,
    );
    expect_error(
        &c.scrape(cid ^ 1, &[5]),
        kpbt_tracker::udp::BAD_CONNECTION_ID,
    );
    // An id this key issued to us 121 s ago has expired; one from 119 s ago has not.
    let k = ConnectionIdKey::from_hex(key).unwrap();
    let me = c.s.local_addr().unwrap().ip();
    let old = k.issue(me, now_unix() - 125).0;
    expect_error(
        &c.announce(old, ann(5, 1, 9201, 5), &[]),
        kpbt_tracker::udp::BAD_CONNECTION_ID,
    );
    let recent = k.issue(me, now_unix() - 110).0;
    announce_reply(&c.announce(recent, ann(5, 1, 9201, 5), &[]), 6);
    // Another instance with the same key accepts our id.
    let t2 = Udp::start(Config {
        udp_connection_key: Some(key.into()),
        ..udp_config()
    });
    let mut c2 = t2.client();
    // Same source address (127.0.0.1), so the first tracker's id is valid here.
    announce_reply(&c2.announce(cid, ann(5, 2, 9202, 5), &[]), 6);
    let m = t.metrics();
    assert!(m.contains("kpbt_tracker_failures_total{reason=\"bad_connection_id\"} 3"));
}

#[test]
fn garbage_is_dropped_and_malformed_requests_get_error_replies() {
    let t = Udp::start(udp_config());
    let mut c = t.client();
    // Dropped: too short, wrong magic, oversized. The next reply must be the connect's.
    c.send(&[1, 2, 3]);
    let mut wrong_magic = connect_datagram();
    wrong_magic[7] ^= 1;
    c.send(&wrong_magic);
    c.send(&vec![0u8; 3000]);
    c.send(&[]);
    let cid = c.connect();

    let mut unknown = header(cid, 9);
    unknown.extend_from_slice(&[0; 20]);
    expect_error(&c.call(unknown), "unknown action 9");
    let short = announce_datagram(cid, ann(6, 1, 9301, 5), &[])[..60].to_vec();
    expect_error(
        &c.call(short),
        "announce is 60 bytes, shorter than the 98 BEP 15 requires",
    );
    let mut bad_event = ann(6, 1, 9301, 5);
    bad_event.event = 7;
    expect_error(&c.announce(cid, bad_event, &[]), "unknown event 7");
    expect_error(
        &c.announce(cid, ann(6, 1, 0, 5), &[]),
        "port must be 1..=65535, got 0",
    );
    let mut partial = header(cid, 2);
    partial.extend_from_slice(&[1; 30]);
    expect_error(
        &c.call(partial),
        "scrape data is not a whole number of 20-byte info hashes",
    );
    // BEP 41: a length running past the end is an error; an unknown type is skipped.
    let r = c.announce(cid, ann(6, 1, 9301, 5), &[2, 40, b'/', b'a']);
    assert!(
        error_text(&r).unwrap().contains("runs past the end"),
        "{r:?}"
    );
    let r = c.announce(cid, ann(6, 1, 9301, 5), &[1, 0x77, 2, 0xff, 0xff, 0]);
    announce_reply(&r, 6);
    expect_error(
        &c.announce(cid, ann(6, 1, 9301, 5), &url_data("/scrape")),
        kpbt_tracker::udp::BAD_PATH,
    );
    let m = t.metrics();
    assert!(m.contains("kpbt_tracker_udp_dropped_total 4"), "{m}");
    assert!(m.contains("kpbt_tracker_failures_total{reason=\"udp_bad_options\"} 1"));
    assert!(m.contains("kpbt_tracker_failures_total{reason=\"udp_bad_action\"} 1"));
}

#[test]
fn scrape_limits() {
    let t = Udp::start(Config {
        max_scrape_hashes: 3,
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    assert_eq!(c.scrape(cid, &[1, 2, 3]).len(), 8 + 36);
    expect_error(
        &c.scrape(cid, &[1, 2, 3, 4]),
        "too many info_hash values (at most 3)",
    );
    // Beyond BEP 15's 74 the datagram itself is refused, whatever the config says.
    let t = Udp::start(Config {
        max_scrape_hashes: 1000,
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    assert_eq!(c.scrape(cid, &[7; 74]).len(), 8 + 74 * 12);
    expect_error(
        &c.scrape(cid, &[7; 75]),
        "too many info hashes in one scrape (at most 74)",
    );
}

#[test]
fn bep41_passkeys_are_checked_like_the_http_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.toml");
    let mut f = KeyFile::default();
    let good = f.add(None);
    let revoked = f.add(None);
    f.revoke(revoked.as_str()).unwrap();
    f.write(&path).unwrap();
    let t = Udp::start(Config {
        passkeys: true,
        passkey_file: Some(path),
        ..udp_config()
    });
    let mut c = t.client();
    let cid = c.connect();
    let a = ann(7, 1, 9401, 5);
    expect_error(
        &c.announce(cid, a, &[]),
        kpbt_tracker::http::PASSKEY_REQUIRED,
    );
    expect_error(
        &c.announce(cid, a, &url_data("/announce")),
        kpbt_tracker::http::PASSKEY_REQUIRED,
    );
    let ok = c.announce(cid, a, &url_data(&format!("/announce/{}", good.as_str())));
    assert_eq!(announce_reply(&ok, 6).1, 1);
    // A key split over two URLData options, as BEP 41 allows, with a query after it.
    let full = format!("/announce/{}?x=1", good.as_str());
    let (head, tail) = full.split_at(12);
    let mut split = url_data(head);
    split.push(1); // NOP
    split.extend_from_slice(&url_data(tail));
    announce_reply(&c.announce(cid, a, &split), 6);
    expect_error(
        &c.announce(
            cid,
            a,
            &url_data(&format!("/announce/{}", revoked.as_str())),
        ),
        "passkey revoked",
    );
    expect_error(
        &c.announce(cid, a, &url_data("/announce/nope")),
        "unknown passkey",
    );
    // Scrapes carry no URL data, so they cannot present a key.
    expect_error(&c.scrape(cid, &[7]), kpbt_tracker::http::PASSKEY_REQUIRED);

    // A tracker without passkeys refuses a keyed path, as over HTTP.
    let t = Udp::start(udp_config());
    let mut c = t.client();
    let cid = c.connect();
    let r = c.announce(cid, a, &url_data("/announce/abc"));
    assert!(error_text(&r).unwrap().contains("does not use passkeys"));
}

#[test]
fn allowlist_and_rate_limit_apply() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allow.txt");
    std::fs::write(&list, format!("{}\n", hex::encode([8u8; 20]))).unwrap();
    let t = Udp::start(Config {
        allowlist: Some(list),
        rate_limit_per_min: 1,
        rate_limit_burst: 3,
        ..udp_config()
    });
    let mut c = t.client();
    // Connects are never rate-limited (they cost nothing and are spoofable).
    for _ in 0..10 {
        c.connect();
    }
    let cid = c.connect();
    announce_reply(&c.announce(cid, ann(8, 1, 9501, 5), &[]), 6);
    expect_error(
        &c.announce(cid, ann(9, 1, 9501, 5), &[]),
        "torrent not in allowlist",
    );
    c.scrape(cid, &[8]);
    expect_error(
        &c.announce(cid, ann(8, 1, 9501, 5), &[]),
        kpbt_tracker::http::RATE_LIMITED,
    );
    let m = t.metrics();
    assert!(m.contains("kpbt_tracker_allowlist_rejections_total 1"));
    assert!(m.contains("kpbt_tracker_rate_limited_total 1"));
}

#[test]
fn a_flood_of_connects_leaves_no_state_behind() {
    let t = Udp::start(Config {
        rate_limit_per_min: 60,
        ..udp_config()
    });
    let state = t.tracker.state().clone();
    let mut c = t.client();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..2000 {
        ids.insert(c.connect());
    }
    // Ids depend on time and address only: nothing per request to remember.
    assert!(ids.len() <= 3, "{} distinct ids", ids.len());
    assert_eq!(state.limiter.as_ref().unwrap().tracked(), 0);
    assert_eq!(block_on(state.store.stats()).unwrap().torrents, 0);
}

#[test]
fn stopping_the_tracker_releases_the_udp_port() {
    let t = Udp::start(udp_config());
    let addr = t.addr();
    drop(t);
    // Dropping joined every socket thread, so nothing holds the port.
    UdpSocket::bind(addr).expect("port free again");
}
