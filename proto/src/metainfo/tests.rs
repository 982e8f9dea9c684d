//! Metainfo parsing, validation and layout tests over hand-built byte fixtures.

use super::*;

fn single(length: u64, piece_length: u32) -> NewTorrent {
    let pieces = length.div_ceil(u64::from(piece_length)) as usize;
    NewTorrent {
        name: "file.bin".into(),
        piece_length,
        piece_hashes: vec![[7u8; 20]; pieces],
        single_file_length: Some(length),
        trackers: vec![vec!["http://t1/announce".into()]],
        ..Default::default()
    }
}

fn multi(files: Vec<(Vec<&str>, u64)>, piece_length: u32) -> NewTorrent {
    let total: u64 = files.iter().map(|f| f.1).sum();
    NewTorrent {
        name: "root".into(),
        piece_length,
        piece_hashes: vec![[1u8; 20]; total.div_ceil(u64::from(piece_length)) as usize],
        files: files
            .into_iter()
            .map(|(p, l)| (p.into_iter().map(String::from).collect(), l))
            .collect(),
        ..Default::default()
    }
}

/// Builds a torrent whose info dict is given as raw bencode text.
fn with_raw_info(info: &str) -> Vec<u8> {
    format!("d8:announce9:http://t/4:info{info}e").into_bytes()
}

#[test]
fn single_file_round_trip() {
    let bytes = build_torrent(&single(100_000, 32_768));
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info.name, "file.bin");
    assert!(!m.info.multi_file);
    assert_eq!(m.info.total_length, 100_000);
    assert_eq!(m.info.piece_count(), 4);
    assert_eq!(m.info.piece_size(PieceIndex(0)), 32_768);
    assert_eq!(m.info.piece_size(PieceIndex(3)), 100_000 - 3 * 32_768);
    assert_eq!(m.info.files[0].relative_path(), PathBuf::from("file.bin"));
    assert_eq!(m.trackers, vec![vec!["http://t1/announce".to_string()]]);
    assert!(m.info.piece_index(4).is_none());
}

#[test]
fn info_hash_is_sha1_of_raw_info_bytes_even_when_not_canonical() {
    // Keys out of order inside info: a re-encoding would sort them and change the hash.
    let info =
        "d6:lengthi3e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee";
    let swapped =
        "d4:name1:a6:lengthi3e12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaa7:privatei1ee";
    let a = Metainfo::from_bytes(&with_raw_info(info)).unwrap();
    let b = Metainfo::from_bytes(&with_raw_info(swapped)).unwrap();
    assert_eq!(
        a.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(info.as_bytes()))
    );
    assert_eq!(
        b.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(swapped.as_bytes()))
    );
    assert_ne!(a.info_hash, b.info_hash);
    assert!(a.info.private);
}

#[test]
fn announce_list_tiers_take_precedence() {
    let mut t = single(10, 16);
    t.trackers = vec![
        vec!["http://a/".into(), "http://b/".into()],
        vec!["http://c/".into()],
    ];
    let m = Metainfo::from_bytes(&build_torrent(&t)).unwrap();
    assert_eq!(m.trackers, t.trackers);
}

#[test]
fn multi_file_layout_and_slices() {
    let t = multi(
        vec![
            (vec!["a.txt"], 10),
            (vec!["empty"], 0),
            (vec!["sub", "b.bin"], 25),
            (vec!["sub", "c"], 5),
        ],
        16,
    );
    let m = Metainfo::from_bytes(&build_torrent(&t)).unwrap();
    let info = &m.info;
    assert!(info.multi_file);
    assert_eq!(info.total_length, 40);
    assert_eq!(info.piece_count(), 3);
    assert_eq!(
        info.files[2].relative_path(),
        PathBuf::from("root/sub/b.bin")
    );
    assert_eq!(info.files[2].offset, 10);
    // Piece 0 (bytes 0..16) spans a.txt and the first 6 bytes of b.bin, skipping empty.
    assert_eq!(
        info.file_slices(0, 16),
        vec![
            FileSlice {
                file_index: 0,
                file_offset: 0,
                len: 10
            },
            FileSlice {
                file_index: 2,
                file_offset: 0,
                len: 6
            },
        ]
    );
    // The last piece is short and ends in c.
    assert_eq!(info.piece_size(PieceIndex(2)), 8);
    assert_eq!(
        info.file_slices(32, 8),
        vec![
            FileSlice {
                file_index: 2,
                file_offset: 22,
                len: 3
            },
            FileSlice {
                file_index: 3,
                file_offset: 0,
                len: 5
            },
        ]
    );
    assert_eq!(info.file_slices(40, 10), vec![]);
}

#[test]
fn unsafe_paths_are_refused() {
    for bad in [
        vec![".."],
        vec!["sub", "..", "x"],
        vec!["."],
        vec![""],
        vec!["/etc/passwd"],
        vec!["a/b"],
        vec!["a\\b"],
        vec!["C:evil"],
    ] {
        let t = multi(vec![(bad.clone(), 4)], 16);
        assert!(
            matches!(
                Metainfo::from_bytes(&build_torrent(&t)),
                Err(MetainfoError::UnsafePath(_))
            ),
            "{bad:?} should be refused"
        );
    }
    let mut t = single(4, 16);
    t.name = "..".into();
    assert!(matches!(
        Metainfo::from_bytes(&build_torrent(&t)),
        Err(MetainfoError::UnsafePath(_))
    ));
    let empty_path = multi(vec![(vec![], 4)], 16);
    assert!(Metainfo::from_bytes(&build_torrent(&empty_path)).is_err());
}

#[test]
fn duplicate_and_colliding_paths_are_refused() {
    let dup = multi(vec![(vec!["a"], 1), (vec!["a"], 1)], 16);
    assert!(matches!(
        Metainfo::from_bytes(&build_torrent(&dup)),
        Err(MetainfoError::DuplicatePath(_))
    ));
    let collide = multi(vec![(vec!["a"], 1), (vec!["a", "b"], 1)], 16);
    assert!(matches!(
        Metainfo::from_bytes(&build_torrent(&collide)),
        Err(MetainfoError::FileDirCollision(_))
    ));
}

#[test]
fn piece_geometry_errors() {
    let zero = "d6:lengthi3e4:name1:a12:piece lengthi0e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    assert_eq!(
        Metainfo::from_bytes(&with_raw_info(zero)),
        Err(MetainfoError::PieceLength(0))
    );
    let negative = "d6:lengthi3e4:name1:a12:piece lengthi-5e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    assert_eq!(
        Metainfo::from_bytes(&with_raw_info(negative)),
        Err(MetainfoError::PieceLength(-5))
    );
    let ragged = "d6:lengthi3e4:name1:a12:piece lengthi4e6:pieces19:aaaaaaaaaaaaaaaaaaae";
    assert_eq!(
        Metainfo::from_bytes(&with_raw_info(ragged)),
        Err(MetainfoError::PiecesLength(19))
    );
    let too_few = "d6:lengthi9e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    assert!(matches!(
        Metainfo::from_bytes(&with_raw_info(too_few)),
        Err(MetainfoError::PieceCount {
            hashes: 1,
            total: 9,
            ..
        })
    ));
    let negative_len = "d6:lengthi-1e4:name1:a12:piece lengthi4e6:pieces0:e";
    assert_eq!(
        Metainfo::from_bytes(&with_raw_info(negative_len)),
        Err(MetainfoError::FileLength(-1))
    );
    let both = "d5:filesle6:lengthi1e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    assert!(Metainfo::from_bytes(&with_raw_info(both)).is_err());
}

#[test]
fn zero_length_single_file_has_no_pieces() {
    let m = Metainfo::from_bytes(&build_torrent(&single(0, 16))).unwrap();
    assert_eq!(m.info.piece_count(), 0);
    assert_eq!(m.info.file_slices(0, 100), vec![]);
}

#[test]
fn structural_errors_are_clear() {
    assert_eq!(Metainfo::from_bytes(b"le"), Err(MetainfoError::NotADict));
    assert_eq!(Metainfo::from_bytes(b"de"), Err(MetainfoError::MissingInfo));
    assert!(matches!(
        Metainfo::from_bytes(b"d4:infoi1ee"),
        Err(MetainfoError::Field("info"))
    ));
    assert!(matches!(
        Metainfo::from_bytes(b"d4:info"),
        Err(MetainfoError::Bencode(_))
    ));
}

#[test]
fn default_piece_length_is_sensible() {
    assert_eq!(default_piece_length(1_000), 16 * 1024);
    assert_eq!(default_piece_length(1 << 30), 1 << 20);
    // 17 MB: 64 KiB (260 pieces), not 16 KiB; just over 64 MiB: 256 KiB, not 64 KiB.
    assert_eq!(default_piece_length(17_000_000), 64 * 1024);
    assert_eq!(default_piece_length((64 << 20) + 1), 256 * 1024);
    assert_eq!(default_piece_length(16 << 20), 16 * 1024);
    for total in [1u64, 5 << 20, 100 << 20, 3 << 30, 200 << 30] {
        let len = default_piece_length(total);
        assert!(len.is_power_of_two() && (16 << 10..=16 << 20).contains(&len));
        assert!(total / u64::from(len) <= 2000 || len == 16 << 20, "{total}");
    }
    assert_eq!(default_piece_length(1 << 50), 16 << 20);
}

#[test]
fn built_torrent_decodes_with_serde_bencode() {
    let bytes = build_torrent(&multi(vec![(vec!["x"], 3)], 16));
    let v: serde_bencode::value::Value = serde_bencode::from_bytes(&bytes).unwrap();
    assert_eq!(
        serde_bencode::to_bytes(&v).unwrap(),
        bytes,
        "output is canonical"
    );
}

#[test]
fn huge_file_counts_are_refused() {
    // One more file than the limit, each as small as bencode allows: refused by a
    // limit (file count or bencode item count) rather than parsed into a million paths.
    let entry = b"d6:lengthi0e4:pathl1:aee";
    let mut raw = b"d4:infod5:filesl".to_vec();
    raw.reserve(entry.len() * (MAX_FILES + 1) + 64);
    for _ in 0..=MAX_FILES {
        raw.extend_from_slice(entry);
    }
    raw.extend_from_slice(b"e4:name1:x12:piece lengthi16384e6:pieces0:ee");
    let err = Metainfo::from_bytes(&raw).unwrap_err();
    assert!(
        matches!(
            err,
            MetainfoError::TooManyFiles | MetainfoError::Bencode(BencodeError::TooManyItems(_))
        ),
        "{err:?}"
    );
}

/// A torrent whose root carries `url_list` (raw bencode) after a minimal info dict.
fn with_url_list(url_list: &str) -> Vec<u8> {
    format!("d4:infod6:lengthi3e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae8:url-list{url_list}e").into_bytes()
}

#[test]
fn url_list_as_one_string_or_a_list() {
    let one = Metainfo::from_bytes(&with_url_list("18:http://o/files/a.b")).unwrap();
    assert_eq!(one.web_seeds, vec!["http://o/files/a.b".to_string()]);
    let many = Metainfo::from_bytes(&with_url_list("l9:http://a/10:https://b/e")).unwrap();
    assert_eq!(many.web_seeds, vec!["http://a/", "https://b/"]);
    let none = Metainfo::from_bytes(&with_raw_info(
        "d6:lengthi3e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
    ))
    .unwrap();
    assert!(none.web_seeds.is_empty());
}

#[test]
fn unusable_url_list_entries_are_skipped_not_errors() {
    // Wrong types, other schemes, no host, whitespace, a duplicate, bytes that are not
    // UTF-8, an empty string: only the two good URLs remain.
    let mut list =
        b"li7ed1:ai1ee7:ftp://h7:http://9:http:///x11:http://a\tb/9:http://a/9:http://a/".to_vec();
    list.extend_from_slice(b"2:\xff\xfe0:10:HTTPS://B/e");
    let mut raw = with_url_list("");
    raw.truncate(raw.len() - 1);
    raw.extend_from_slice(&list);
    raw.push(b'e');
    let m = Metainfo::from_bytes(&raw).unwrap();
    assert_eq!(m.web_seeds, vec!["http://a/", "HTTPS://B/"]);
    for bad in ["i1e", "de", "le", "0:", "5:ftp:/"] {
        let m = Metainfo::from_bytes(&with_url_list(bad)).unwrap();
        assert!(m.web_seeds.is_empty(), "{bad}");
    }
}

#[test]
fn url_list_is_bounded_in_count_and_length() {
    let mut list = String::from("l");
    for i in 0..(MAX_WEB_SEEDS + 10) {
        let url = format!("http://h/{i}");
        list.push_str(&format!("{}:{url}", url.len()));
    }
    let long = format!("http://h/{}", "x".repeat(MAX_WEB_SEED_LEN));
    let list = format!("{}:{long}{}e", long.len(), &list[1..]);
    let m = Metainfo::from_bytes(&with_url_list(&format!("l{list}"))).unwrap();
    assert_eq!(m.web_seeds.len(), MAX_WEB_SEEDS);
    assert_eq!(m.web_seeds[0], "http://h/0", "the over-long URL is skipped");
}

#[test]
fn build_writes_url_list_as_mktorrent_does() {
    let mut t = single(3, 4);
    t.trackers.clear();
    t.piece_hashes = vec![*b"aaaaaaaaaaaaaaaaaaaa"];
    t.name = "a".into();
    t.web_seeds = vec!["http://o/a".into()];
    let info = "4:infod6:lengthi3e4:name1:a12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    assert_eq!(
        String::from_utf8(build_torrent(&t)).unwrap(),
        format!("d{info}8:url-list10:http://o/ae")
    );
    t.web_seeds = vec!["http://o/".into(), "https://p/x/".into()];
    t.comment = Some("c".into());
    // Keys sorted: comment < info < url-list.
    assert_eq!(
        String::from_utf8(build_torrent(&t)).unwrap(),
        format!("d7:comment1:c{info}8:url-listl9:http://o/12:https://p/x/ee")
    );
    let m = Metainfo::from_bytes(&build_torrent(&t)).unwrap();
    assert_eq!(m.web_seeds, t.web_seeds);
    t.web_seeds.clear();
    assert!(!String::from_utf8(build_torrent(&t))
        .unwrap()
        .contains("url-list"));
}
