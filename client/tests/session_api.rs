//! The host agent in-process: sessions with many torrents behind the JSON API, one
//! peer listener per session, pause/resume/remove, restarts that trust saved state,
//! hostile input through the API, and file reads while a torrent downloads.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kpbt_client::session::{Session, SessionConfig};
use serde_json::Value;

struct Agent {
    session: Session,
    api: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Agent {
    async fn start(state_dir: &Path, token: Option<&str>) -> Agent {
        Self::start_with(SessionConfig::new(state_dir), token).await
    }

    async fn start_with(mut cfg: SessionConfig, token: Option<&str>) -> Agent {
        init_logs();
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.use_trackers = false;
        let session = Session::start(cfg).await.expect("session starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(kpbt_client::api::serve(
            listener,
            session.clone(),
            token.map(str::to_string),
            async {
                let _ = rx.await;
            },
        ));
        Agent {
            session,
            api,
            stop,
            task,
        }
    }

    fn peer_addr(&self) -> SocketAddr {
        SocketAddr::new([127, 0, 0, 1].into(), self.session.listen_addr().port())
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.session.shutdown().await;
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("JSON body");
    (status, body)
}

async fn add(api: &str, torrent: &[u8], dir: &Path, peers: &[SocketAddr]) -> (u16, Value) {
    let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    call(
        http()
            .post(format!("{api}/torrents"))
            .query(&[
                ("dir", dir.display().to_string()),
                ("peers", peers.join(",")),
            ])
            .body(torrent.to_vec()),
    )
    .await
}

async fn list(api: &str) -> Vec<Value> {
    let (status, v) = call(http().get(format!("{api}/torrents"))).await;
    assert_eq!(status, 200);
    v.as_array().expect("an array").clone()
}

async fn state_of(api: &str, ih: &str) -> String {
    let (status, v) = call(http().get(format!("{api}/torrents/{ih}"))).await;
    assert_eq!(status, 200, "{v}");
    v["state"].as_str().unwrap().to_string()
}

/// Polls until every listed torrent is in `state` (or fails after `secs`).
async fn wait_all(api: &str, ihs: &[String], state: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let all = list(api).await;
        let ok = ihs.iter().all(|ih| {
            all.iter()
                .any(|t| t["info_hash"] == ih.as_str() && t["state"] == state)
        });
        if ok {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("not all {state} after {secs} s: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` single-file torrents of a few pieces each under `dir`: (name, bytes, .torrent).
fn many_torrents(dir: &Path, n: usize) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let name = format!("artifact-{i:03}.bin");
            let content = data(40_000 + i * 777, i as u64 + 100);
            let (_, bytes) = single_file_torrent(&name, 16 * 1024, &content, dir, &[]);
            (name, content, bytes)
        })
        .collect()
}

fn info_hash_of(torrent: &[u8]) -> String {
    kpbt_proto::metainfo::Metainfo::from_bytes(torrent)
        .unwrap()
        .info_hash
        .to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_torrents_three_downloaded_over_one_listener_then_paused_resumed_removed() {
    let seed_data = tempfile::tempdir().unwrap();
    let seed_state = tempfile::tempdir().unwrap();
    let torrents = many_torrents(seed_data.path(), 50);
    let seeder = Agent::start(seed_state.path(), None).await;
    let mut ihs = Vec::new();
    for (name, _, bytes) in &torrents {
        let (status, v) = add(&seeder.api, bytes, seed_data.path(), &[]).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["name"], name.as_str());
        ihs.push(v["info_hash"].as_str().unwrap().to_string());
    }
    wait_all(&seeder.api, &ihs, "seeding", 60).await;
    // The same torrent again is a conflict, and changes nothing.
    let (status, v) = add(&seeder.api, &torrents[0].2, seed_data.path(), &[]).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already"), "{v}");
    assert_eq!(list(&seeder.api).await.len(), 50);

    // A second session fetches three of them, all from the seeder's one port.
    let leech_data = tempfile::tempdir().unwrap();
    let leech_state = tempfile::tempdir().unwrap();
    let leecher = Agent::start(leech_state.path(), None).await;
    let picked = [3usize, 17, 42];
    for &i in &picked {
        let (status, v) = add(
            &leecher.api,
            &torrents[i].2,
            leech_data.path(),
            &[seeder.peer_addr()],
        )
        .await;
        assert_eq!(status, 201, "{v}");
    }
    let picked_ihs: Vec<String> = picked.iter().map(|&i| ihs[i].clone()).collect();
    wait_all(&leecher.api, &picked_ihs, "seeding", 60).await;
    for &i in &picked {
        let (name, content, _) = &torrents[i];
        assert_eq!(
            &std::fs::read(leech_data.path().join(name)).unwrap(),
            content,
            "{name}"
        );
    }
    let (status, detail) = call(http().get(format!("{}/torrents/{}", leecher.api, ihs[3]))).await;
    assert_eq!(status, 200);
    assert_eq!(detail["progress"], 1.0);
    assert_eq!(detail["files"][0]["progress"], 1.0);
    assert_eq!(detail["downloaded"], torrents[3].1.len() as u64);

    // Pause, resume (no rehash needed: the resume file vouches), remove with data.
    let ih = &ihs[17];
    let (status, v) = call(http().post(format!("{}/torrents/{ih}/pause", leecher.api))).await;
    assert_eq!((status, v["state"].as_str()), (200, Some("paused")));
    assert_eq!(state_of(&leecher.api, ih).await, "paused");
    let (status, _) = call(http().post(format!("{}/torrents/{ih}/resume", leecher.api))).await;
    assert_eq!(status, 200);
    wait_all(&leecher.api, std::slice::from_ref(ih), "seeding", 30).await;
    let (status, v) = call(
        http()
            .delete(format!("{}/torrents/{ih}", leecher.api))
            .query(&[("delete_data", "true")]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        !leech_data.path().join(&torrents[17].0).exists(),
        "data deleted"
    );
    assert!(
        leech_data.path().join(&torrents[3].0).exists(),
        "other data kept"
    );
    let (status, v) = call(http().get(format!("{}/torrents/{ih}", leecher.api))).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(list(&leecher.api).await.len(), 2);
    leecher.stop().await;
    seeder.stop().await;
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_or_bad_requests_get_json_errors_and_change_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let agent = Agent::start(state.path(), Some("s3cret")).await;
    let torrents = many_torrents(data_dir.path(), 1);
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth("s3cret");
    // Without the token: 401, with a reason.
    let (status, v) = call(http().get(format!("{}/torrents", agent.api))).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("token"));
    // Health stays open for container healthchecks.
    let (status, v) = call(http().get(format!("{}/health", agent.api))).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")));
    let (status, v) = call(
        auth(http().post(format!("{}/torrents", agent.api)))
            .query(&[("dir", data_dir.path().display().to_string())])
            .body(torrents[0].2.clone()),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let ih = v["info_hash"].as_str().unwrap().to_string();
    // (Seeding, so only the torrent's own resume saves touch the state dir below.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while call(auth(http().get(format!("{}/torrents/{ih}", agent.api))))
        .await
        .1["state"]
        != "seeding"
    {
        assert!(tokio::time::Instant::now() < deadline, "never seeding");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let without_resume = |t: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        t.into_iter()
            .filter(|(p, _)| {
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("resume")
            })
            .collect()
    };
    let before_state = without_resume(tree(state.path()));
    let before_data = tree(data_dir.path());

    // A torrent whose file path escapes the target dir.
    let evil = kpbt_proto::metainfo::build_torrent(&kpbt_proto::metainfo::NewTorrent {
        name: "evil".into(),
        piece_length: 16384,
        piece_hashes: vec![[0; 20]],
        files: vec![(vec!["..".into(), "escape.txt".into()], 10)],
        ..Default::default()
    });
    let bad_bodies: Vec<(Vec<u8>, &str)> = vec![
        (evil, ""),
        (b"not bencode at all".to_vec(), ""),
        (b"d4:infod4:name1:xee".to_vec(), ""),
        (vec![b'l'; 100_000], ""),
    ];
    for (body, _) in bad_bodies {
        let (status, v) = call(
            auth(http().post(format!("{}/torrents", agent.api)))
                .query(&[("dir", data_dir.path().display().to_string())])
                .body(body),
        )
        .await;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("not a usable torrent"),
            "{v}"
        );
    }
    // Bad parameters.
    let cases = [
        (
            http()
                .post(format!("{}/torrents", agent.api))
                .body(torrents[0].2.clone()),
            400,
            "missing dir",
        ),
        (
            http()
                .post(format!("{}/torrents", agent.api))
                .query(&[("dir", "relative/dir")])
                .body(torrents[0].2.clone()),
            400,
            "absolute",
        ),
        (
            http().get(format!("{}/torrents/xyz", agent.api)),
            400,
            "not an info hash",
        ),
        (
            http().get(format!("{}/torrents/{}", agent.api, "ab".repeat(20))),
            404,
            "no torrent",
        ),
        (
            http().post(format!("{}/torrents/{}/pause", agent.api, "ab".repeat(20))),
            404,
            "no torrent",
        ),
        (
            http().get(format!("{}/nope", agent.api)),
            404,
            "no such endpoint",
        ),
        (
            http()
                .post(format!("{}/torrents", agent.api))
                .header("content-type", "application/json")
                .body("{\"url\": \"file:///etc/passwd\", \"dir\": \"/tmp\"}"),
            400,
            "must be http",
        ),
        (
            http().get(format!(
                "{}/torrents/{}/files/9",
                agent.api,
                info_hash_of(&torrents[0].2)
            )),
            400,
            "no file 9",
        ),
    ];
    for (req, want, text) in cases {
        let (status, v) = call(auth(req)).await;
        assert_eq!(status, want, "{v}");
        assert!(v["error"].as_str().unwrap().contains(text), "{text}: {v}");
    }
    assert_eq!(
        without_resume(tree(state.path())),
        before_state,
        "state dir unchanged"
    );
    assert_eq!(tree(data_dir.path()), before_data, "data unchanged");
    assert!(!data_dir
        .path()
        .parent()
        .unwrap()
        .join("escape.txt")
        .exists());
    let metrics = auth(http().get(format!("{}/metrics", agent.api)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kpbt_session_torrents{state=\"error\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kpbt_session_uploaded_bytes_total 0"),
        "{metrics}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_brings_every_torrent_back_in_its_state_without_rehashing() {
    let data_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let torrents = many_torrents(data_dir.path(), 5);
    let agent = Agent::start(state.path(), None).await;
    let mut ihs = Vec::new();
    for (_, _, bytes) in &torrents {
        ihs.push(
            add(&agent.api, bytes, data_dir.path(), &[]).await.1["info_hash"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    wait_all(&agent.api, &ihs, "seeding", 30).await;
    let (status, _) = call(http().post(format!("{}/torrents/{}/pause", agent.api, ihs[4]))).await;
    assert_eq!(status, 200);
    // Per-torrent limits are kept with the torrent.
    let (status, v) = call(
        http()
            .post(format!("{}/torrents/{}/limits", agent.api, ihs[1]))
            .body(r#"{"upload_limit": 65536, "download_limit": null}"#),
    )
    .await;
    assert_eq!(
        (status, v["upload_limit"].as_u64()),
        (200, Some(65536)),
        "{v}"
    );
    let (status, v) = call(
        http()
            .post(format!("{}/torrents/{}/limits", agent.api, ihs[1]))
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    agent.stop().await;

    // Flip one byte of torrent 0's data but keep its size and mtime: a session that
    // re-hashed would find the piece bad; one that trusts its saved state does not.
    let path = data_dir.path().join(&torrents[0].0);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // Damage torrent 3's saved state: it alone comes back in `error`.
    std::fs::write(
        state
            .path()
            .join("torrents")
            .join(&ihs[3])
            .join("state.json"),
        b"{garbage",
    )
    .unwrap();

    let agent = Agent::start(state.path(), None).await;
    wait_all(&agent.api, &ihs[..3], "seeding", 30).await;
    assert_eq!(state_of(&agent.api, &ihs[4]).await, "paused");
    let (_, v) = call(http().get(format!("{}/torrents/{}", agent.api, ihs[1]))).await;
    assert_eq!(
        v["upload_limit"], 65536,
        "limit kept across the restart: {v}"
    );
    let (_, v) = call(http().get(format!("{}/torrents/{}", agent.api, ihs[3]))).await;
    assert_eq!(v["state"], "error");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("state.json is corrupt"),
        "{v}"
    );
    let (_, v) = call(http().get(format!("{}/torrents/{}", agent.api, ihs[0]))).await;
    assert_eq!(v["progress"], 1.0, "trusted without rehashing: {v}");
    // A recheck hashes again and finds the flipped byte.
    let (status, _) = call(http().post(format!("{}/torrents/{}/recheck", agent.api, ihs[0]))).await;
    assert_eq!(status, 200);
    wait_all(&agent.api, &ihs[..1], "downloading", 30).await;
    let (_, v) = call(http().get(format!("{}/torrents/{}", agent.api, ihs[0]))).await;
    assert!(v["progress"].as_f64().unwrap() < 1.0, "{v}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_read_by_range_while_it_downloads() {
    let seed_data = tempfile::tempdir().unwrap();
    let content = data(4 * 1024 * 1024 + 333, 77);
    let (_, torrent) =
        single_file_torrent("stream.bin", 64 * 1024, &content, seed_data.path(), &[]);
    let seed_state = tempfile::tempdir().unwrap();
    let mut seed_cfg = SessionConfig::new(seed_state.path());
    // Slow enough that the reads below happen mid-download.
    seed_cfg.upload_limit = Some(1024 * 1024);
    let seeder = Agent::start_with(seed_cfg, None).await;
    let ih = add(&seeder.api, &torrent, seed_data.path(), &[]).await.1["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    wait_all(&seeder.api, std::slice::from_ref(&ih), "seeding", 30).await;

    let leech_data = tempfile::tempdir().unwrap();
    let leech_state = tempfile::tempdir().unwrap();
    let leecher = Agent::start(leech_state.path(), None).await;
    let (status, _) = add(
        &leecher.api,
        &torrent,
        leech_data.path(),
        &[seeder.peer_addr()],
    )
    .await;
    assert_eq!(status, 201);
    wait_all(&leecher.api, std::slice::from_ref(&ih), "downloading", 30).await;
    let url = format!("{}/torrents/{ih}/files/0", leecher.api);
    // The tail first (made urgent), then a span crossing a piece boundary.
    let len = content.len();
    for (range, want) in [
        ("bytes=-1000".to_string(), &content[len - 1000..]),
        (
            format!("bytes={}-{}", 65536 - 10, 65536 + 9),
            &content[65536 - 10..65536 + 10],
        ),
    ] {
        let resp = http()
            .get(&url)
            .header("range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 206, "{range}");
        let cr = resp.headers()["content-range"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cr.ends_with(&format!("/{len}")), "{cr}");
        let body = resp.bytes().await.unwrap();
        assert_eq!(&body[..], want, "{range}");
    }
    let (_, v) = call(http().get(format!("{}/torrents/{ih}", leecher.api))).await;
    assert!(
        v["progress"].as_f64().unwrap() < 1.0,
        "still downloading after the reads: {v}"
    );
    // The whole file, waiting for every piece.
    let body = http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], &content[..]);
    let resp = http()
        .get(&url)
        .header("range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 416);
    leecher.stop().await;
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_link_is_added_through_the_api() {
    let seed_data = tempfile::tempdir().unwrap();
    let seed_state = tempfile::tempdir().unwrap();
    let torrents = many_torrents(seed_data.path(), 1);
    let (name, content, bytes) = &torrents[0];
    let seeder = Agent::start(seed_state.path(), None).await;
    let ih = add(&seeder.api, bytes, seed_data.path(), &[]).await.1["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    wait_all(&seeder.api, std::slice::from_ref(&ih), "seeding", 30).await;
    let leech_data = tempfile::tempdir().unwrap();
    let leech_state = tempfile::tempdir().unwrap();
    let leecher = Agent::start(leech_state.path(), None).await;
    let link = format!("magnet:?xt=urn:btih:{ih}");
    let (status, v) = call(
        http()
            .post(format!("{}/torrents", leecher.api))
            .query(&[
                ("dir", leech_data.path().display().to_string()),
                ("peers", seeder.peer_addr().to_string()),
            ])
            .json(&serde_json::json!({ "magnet": link })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], name.as_str());
    wait_all(&leecher.api, std::slice::from_ref(&ih), "seeding", 30).await;
    assert_eq!(
        &std::fs::read(leech_data.path().join(name)).unwrap(),
        content
    );
    // The fetched .torrent is in the session's state, so a restart keeps it.
    let saved = std::fs::read(
        leech_state
            .path()
            .join("torrents")
            .join(&ih)
            .join("torrent.torrent"),
    )
    .unwrap();
    assert_eq!(info_hash_of(&saved), ih);
    // A magnet nobody serves: a clear error, nothing added.
    let (status, v) = call(
        http()
            .post(format!("{}/torrents", leecher.api))
            .query(&[("dir", leech_data.path().display().to_string())])
            .json(&serde_json::json!({ "magnet": format!("magnet:?xt=urn:btih:{}", "cd".repeat(20)) })),
    )
    .await;
    assert_eq!(status, 504, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no peer delivered the metadata"),
        "{v}"
    );
    assert_eq!(list(&leecher.api).await.len(), 1);
    leecher.stop().await;
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_given_through_the_api_serves_the_download_and_is_kept() {
    if !kpbt_testkit::require_binary("nginx", "nginx") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let origin_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let origin = kpbt_testkit::Nginx::serve(origin_dir.path()).expect("nginx");
    let content = data(700_001, 77);
    // Made without a url-list: the origin comes with the add.
    let (_, torrent) = single_file_torrent("o.bin", 16 * 1024, &content, origin_dir.path(), &[]);
    let ih = info_hash_of(&torrent);
    let agent = Agent::start(state.path(), None).await;
    let post = |query: Vec<(&'static str, String)>| {
        call(
            http()
                .post(format!("{}/torrents", agent.api))
                .query(&query)
                .body(torrent.clone()),
        )
    };
    let dir = ("dir", out.path().display().to_string());
    let (status, v) = post(vec![dir.clone(), ("origin", "ftp://o/x".into())]).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ftp://o/x"), "{v}");
    // Comma-separated and repeated; a dead one beside the good one; duplicates dropped.
    let dead = "http://127.0.0.1:1/files/".to_string();
    let (status, v) = post(vec![
        dir.clone(),
        ("origin", format!("{dead},{}", origin.url())),
        ("origin", origin.url()),
    ])
    .await;
    assert_eq!(status, 201, "{v}");
    wait_all(&agent.api, std::slice::from_ref(&ih), "seeding", 60).await;
    assert_eq!(std::fs::read(out.path().join("o.bin")).unwrap(), content);
    let (_, v) = call(http().get(format!("{}/torrents/{ih}", agent.api))).await;
    assert_eq!(v["origin_bytes"], content.len() as u64, "{v}");
    assert_eq!(v["peer_bytes"], 0, "{v}");
    let seeds = v["web_seeds"].as_array().expect("web_seeds");
    assert_eq!(seeds.len(), 2, "{v}");
    assert_eq!(seeds[0]["url"], dead.as_str());
    assert_eq!(seeds[0]["downloaded"], 0);
    assert_eq!(seeds[1]["downloaded"], content.len() as u64);
    let metrics = http()
        .get(format!("{}/metrics", agent.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = format!(
        "kpbt_client_origin_bytes_total{{torrent=\"o.bin\",info_hash=\"{ih}\"}} {}",
        content.len()
    );
    assert!(metrics.contains(&want), "{metrics}");
    assert!(
        metrics.contains("kpbt_client_peer_bytes_total{"),
        "{metrics}"
    );
    // Kept in the state dir, so a restart still knows the origin.
    let saved =
        std::fs::read_to_string(state.path().join(format!("torrents/{ih}/state.json"))).unwrap();
    let saved: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        saved["origins"],
        serde_json::json!([dead, origin.url()]),
        "{saved}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_only_torrent_restarts_without_rehashing_and_its_data_is_untouched() {
    let data_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let torrents = many_torrents(data_dir.path(), 1);
    let (name, _, bytes) = &torrents[0];
    let seed_only = |api: String| {
        let bytes = bytes.clone();
        let dir = data_dir.path().display().to_string();
        async move {
            call(
                http()
                    .post(format!("{api}/torrents"))
                    .query(&[("dir", dir), ("seed_only", "true".into())])
                    .body(bytes),
            )
            .await
        }
    };
    let agent = Agent::start(state.path(), None).await;
    let (status, v) = seed_only(agent.api.clone()).await;
    assert_eq!(status, 201, "{v}");
    let ih = v["info_hash"].as_str().unwrap().to_string();
    wait_all(&agent.api, std::slice::from_ref(&ih), "seeding", 30).await;
    agent.stop().await;
    let before = tree(data_dir.path());
    // Same size and mtime, one byte different: a re-hash would find the piece bad.
    let path = data_dir.path().join(name);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut content = std::fs::read(&path).unwrap();
    content[3] ^= 0xff;
    std::fs::write(&path, &content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let agent = Agent::start(state.path(), None).await;
    wait_all(&agent.api, std::slice::from_ref(&ih), "seeding", 30).await;
    agent.stop().await;
    // Nothing but the byte we flipped changed in the data folder.
    let after = tree(data_dir.path());
    assert_eq!(
        after.len(),
        before.len(),
        "no file added to the data folder"
    );
    assert_eq!(after[0].1, content);
}
