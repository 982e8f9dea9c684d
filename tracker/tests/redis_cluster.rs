//! The Redis Cluster store against a local cluster of six `redis-server` processes on
//! loopback (three masters, three replicas). A master that stops answering is replaced
//! by its replica, and the store must follow by itself within seconds: announces fail
//! meanwhile with "storage unavailable" within the timeout, never hang.
//!
//! The master is frozen (SIGSTOP), not killed: its sockets stay open and nothing is
//! answered, as with a killed container or a dead host, where no TCP reset ever comes.
//! That is the case the cluster client does not recover from by itself (calls just time
//! out against the dead node); a refused connection is the easy case.
//!
//! A planned failover (`CLUSTER FAILOVER`) moves slots with no node down: the old master
//! answers MOVED, and no announce may fail for it.
//!
//! A missing `redis-server` fails the test loudly, unless `KPBT_SKIP_REDIS=1`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use kpbt_proto::announce::{AnnounceEvent, AnnounceRequest};
use kpbt_proto::{InfoHash, PeerId};
use kpbt_testkit::{free_port, require_redis, RedisServer};
use kpbt_tracker::store::{AnnounceError, Health, StoreLimits, StoreSpec, SwarmStore};

const T0: u32 = 1_800_000_000;
/// The announcing peer's address, and the other peer's in every swarm.
const PEER: &str = "10.0.0.1:1000";
const OTHER: &str = "10.0.0.2:1000";
const TIMEOUT: Duration = Duration::from_millis(500);
/// Node timeout 1 s, the replica's election, then the store's reconnect.
const RECOVER_WITHIN: Duration = Duration::from_secs(20);

fn limits() -> StoreLimits {
    StoreLimits {
        max_torrents: 10_000,
        max_peers_per_torrent: 100,
        max_peers_per_ip: 10,
        numwant_default: 50,
        numwant_max: 200,
        peer_timeout_secs: 1000,
    }
}

fn req(hash: u16, id: u8) -> AnnounceRequest {
    let mut h = [0x44; 20];
    h[..2].copy_from_slice(&hash.to_be_bytes());
    AnnounceRequest {
        info_hash: InfoHash(h),
        peer_id: PeerId([id; 20]),
        port: 1,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: AnnounceEvent::None,
        compact: true,
        no_peer_id: false,
        numwant: None,
        ip: None,
        key: None,
        tracker_id: None,
    }
}

fn text(r: std::io::Result<Vec<u8>>) -> String {
    r.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Announces for `hashes` hashes at once; returns how many failed, all of them with
/// "storage unavailable" and within twice the timeout.
async fn round(s: &SwarmStore, hashes: u16, id: u8) -> usize {
    let calls = (0..hashes).map(|h| async move {
        let started = Instant::now();
        let r = s.announce(&req(h, id), PEER.parse().unwrap(), T0).await;
        let took = started.elapsed();
        assert!(took < TIMEOUT * 2, "announce took {took:?}");
        r
    });
    let results = futures_util::future::join_all(calls).await;
    results
        .iter()
        .filter(|r| match r {
            Ok(_) => false,
            Err(e) => {
                assert_eq!(*e, AnnounceError::Unavailable);
                true
            }
        })
        .count()
}

/// Six `redis-server`s on loopback made into a cluster of three masters with a replica
/// each, every node reporting `cluster_state:ok`.
fn start_cluster() -> Vec<RedisServer> {
    let extra = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        // A replica's first sync starts at once, not after the default 5 s wait.
        "--repl-diskless-sync-delay",
        "0",
    ];
    let nodes: Vec<RedisServer> = (0..6)
        .map(|_| {
            // The bus port is the client port + 10000 unless given: past 65535 for some.
            let bus = free_port().to_string();
            let mut args = extra.to_vec();
            args.extend(["--cluster-port", &bus]);
            RedisServer::start_with(free_port(), &args).expect("start redis-server")
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in &nodes {
        while !text(n.cmd(&["CLUSTER", "INFO"])).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes
}

/// The store on `nodes`, seeded with the first three.
fn cluster_store(nodes: &[RedisServer]) -> SwarmStore {
    let seeds: Vec<String> = nodes[..3].iter().map(|n| n.addr().to_string()).collect();
    let spec: StoreSpec = format!("redis-cluster://{}", seeds.join(","))
        .parse()
        .unwrap();
    SwarmStore::open(&spec, limits(), TIMEOUT).unwrap()
}

fn has_role(n: &RedisServer, role: &str) -> bool {
    text(n.cmd(&["ROLE"])).contains(role)
}

/// Waits until every replica's link to its master is up: a replica not yet synced
/// refuses to take over ("disconnected from master for longer than allowed").
fn wait_for_replication(nodes: &[RedisServer]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in nodes.iter().filter(|n| has_role(n, "slave")) {
        while !text(n.cmd(&["INFO", "replication"])).contains("master_link_status:up") {
            assert!(Instant::now() < deadline, "a replica never synced");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// EVALSHA calls over all nodes so far.
fn script_calls(nodes: &[RedisServer]) -> u64 {
    nodes
        .iter()
        .map(|n| n.command_calls("evalsha").expect("INFO commandstats"))
        .sum()
}

/// Re-announces peer id 1 from [`PEER`] into swarm `h` at `now`; asserts that it
/// succeeds and finds only the other peer.
async fn reannounce_finds_the_other(s: &SwarmStore, h: u16, now: u32) {
    let o = s
        .announce(&req(h, 1), PEER.parse().unwrap(), now)
        .await
        .unwrap_or_else(|e| panic!("swarm {h}: {e:?}"));
    let got: Vec<SocketAddr> = o.peers.iter().map(|p| p.addr).collect();
    assert_eq!(
        (got, o.incomplete),
        (vec![OTHER.parse().unwrap()], 2),
        "swarm {h}"
    );
}

/// A cluster with peer id 1 from [`PEER`] and peer id 3 from [`OTHER`] in each of
/// `hashes` swarms (their hash tags spread over all three masters' slots), every replica
/// synced. Asserts on the way that id 1's re-announces ran no script.
async fn cluster_with_two_peers_per_swarm(hashes: u16) -> (Vec<RedisServer>, SwarmStore) {
    let nodes = start_cluster();
    let s = cluster_store(&nodes);
    assert_eq!(
        round(&s, hashes, 1).await,
        0,
        "failures on a healthy cluster"
    );
    assert_eq!(s.health().await, Health::Ok);
    for h in 0..hashes {
        s.announce(&req(h, 3), OTHER.parse().unwrap(), T0)
            .await
            .unwrap();
    }
    let before = script_calls(&nodes);
    for h in 0..hashes {
        reannounce_finds_the_other(&s, h, T0 + 1).await;
    }
    assert_eq!(script_calls(&nodes), before, "re-announces ran the script");
    wait_for_replication(&nodes);
    (nodes, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_follows_a_failover_away_from_a_frozen_master() {
    if !require_redis() {
        return;
    }
    let hashes = 60;
    let (nodes, s) = cluster_with_two_peers_per_swarm(hashes).await;
    let masters: Vec<&RedisServer> = nodes.iter().filter(|n| has_role(n, "master")).collect();
    assert_eq!(masters.len(), 3);
    let victim = masters[0];
    let keys = text(victim.cmd(&["DBSIZE"]));
    assert!(keys.trim() != ":0", "the victim holds no keys: {keys}");
    victim.freeze().unwrap();
    let frozen = Instant::now();

    let mut failed_rounds = 0;
    loop {
        let failed = round(&s, hashes, 2).await;
        if failed == 0 {
            break;
        }
        failed_rounds += 1;
        assert!(
            frozen.elapsed() < RECOVER_WITHIN,
            "{failed} announces still failing {:?} after the master froze",
            frozen.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "announces succeed again {:.1}s after the master froze ({failed_rounds} failing rounds)",
        frozen.elapsed().as_secs_f64()
    );
    assert!(failed_rounds > 0, "no announce ever failed: nothing proved");
    // The frozen node is out of the slot map: PING reaches the three masters serving.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.health().await != Health::Ok {
        assert!(Instant::now() < deadline, "not healthy after the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A planned failover (`CLUSTER FAILOVER` on a replica) costs no announce: the old
/// master answers MOVED, which the cluster client does not follow inside the
/// re-announce's transaction, so the store hands such a re-announce to the script, whose
/// call follows the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_announces_follow_a_planned_failover_without_failing() {
    if !require_redis() {
        return;
    }
    let hashes = 60;
    let (nodes, s) = cluster_with_two_peers_per_swarm(hashes).await;
    let replica = nodes.iter().find(|n| has_role(n, "slave")).unwrap();
    assert_eq!(text(replica.cmd(&["CLUSTER", "FAILOVER"])).trim(), "+OK");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_role(replica, "master")
        || nodes.iter().filter(|n| has_role(n, "master")).count() != 3
        || !nodes
            .iter()
            .all(|n| text(n.cmd(&["CLUSTER", "INFO"])).contains("cluster_state:ok"))
    {
        assert!(
            Instant::now() < deadline,
            "the planned failover never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let scripts_before = replica.command_calls("evalsha").unwrap();
    let moved = text(replica.cmd(&["DBSIZE"]));
    assert!(
        moved.trim() != ":0",
        "the new master holds no keys: {moved}"
    );
    // One at a time: each re-announce for the moved master's slots would meet the stale
    // slot map, had an earlier one's redirect not refreshed it.
    for h in 0..hashes {
        reannounce_finds_the_other(&s, h, T0 + 2).await;
    }
    assert!(
        replica.command_calls("evalsha").unwrap() > scripts_before,
        "no re-announce was handed to the script on the new master"
    );
}
