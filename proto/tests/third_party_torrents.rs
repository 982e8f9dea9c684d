//! Torrents made by mktorrent and transmission-create parse to what transmission-show
//! reports (trackers, BEP 19 web seeds, files).
//!
//! The fixtures and their `.expected` files are written by `fuzz/seed-corpus.sh`.

use std::path::Path;

use kpbt_proto::metainfo::Metainfo;

#[test]
fn third_party_torrents_match_transmission_show() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("torrent") {
            continue;
        }
        let meta = Metainfo::from_bytes(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected = std::fs::read_to_string(path.with_extension("torrent.expected")).unwrap();
        let mut trackers: Vec<Vec<String>> = Vec::new();
        let mut files = Vec::new();
        let mut web_seeds = Vec::new();
        for line in expected.lines() {
            let (key, value) = line.split_once('=').unwrap();
            match key {
                "name" => assert_eq!(meta.info.name, value),
                "hash" => assert_eq!(meta.info_hash.to_hex(), value, "{}", path.display()),
                "pieces" => assert_eq!(meta.info.piece_count().to_string(), value),
                "private" => assert_eq!(meta.info.private, value == "1"),
                "tracker" => {
                    let (tier, url) = value.split_once(' ').unwrap();
                    let tier: usize = tier.trim_start_matches('#').parse().unwrap();
                    trackers.resize(trackers.len().max(tier), Vec::new());
                    trackers[tier - 1].push(url.to_owned());
                }
                "file" => files.push(value.to_owned()),
                "webseed" => web_seeds.push(value.to_owned()),
                other => panic!("unknown key {other}"),
            }
        }
        assert_eq!(meta.trackers, trackers, "{}", path.display());
        assert_eq!(meta.web_seeds, web_seeds, "{}", path.display());
        let ours: Vec<String> = meta.info.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(ours, files, "{}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 6,
        "expected the six third-party fixtures, found {checked}"
    );
}
