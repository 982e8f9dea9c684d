//! Web seed URL building, range planning, hostile `Content-Range` values and responses,
//! and piece assembly.

use super::*;
use crate::storage::FileSpec;

fn layout(piece_len: u32, files: &[u64]) -> Layout {
    let mut offset = 0;
    let files: Vec<FileSpec> = files
        .iter()
        .enumerate()
        .map(|(i, &length)| {
            let f = FileSpec {
                components: vec!["t".into(), format!("f{i}")],
                length,
                offset,
            };
            offset += length;
            f
        })
        .collect();
    Layout {
        piece_len,
        total_len: offset,
        hashes: vec![[0; 20]; offset.div_ceil(u64::from(piece_len)) as usize],
        files,
    }
}

#[test]
fn urls_follow_bep_19_and_escape_each_component() {
    let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Single file: a folder URL gets the name; a file URL is used as it is.
    assert_eq!(
        file_url("http://o/files/", "app 1.0.iso", false, &[]),
        "http://o/files/app%201.0.iso"
    );
    assert_eq!(
        file_url("http://o/any/thing.iso", "app.iso", false, &[]),
        "http://o/any/thing.iso"
    );
    // Multi-file: name and path appended, each component escaped (not the slashes).
    assert_eq!(
        file_url(
            "https://o:8443/pub/",
            "set",
            true,
            &p(&["sub dir", "a#?%.bin"])
        ),
        "https://o:8443/pub/set/sub%20dir/a%23%3F%25.bin"
    );
    // Multi-file without the slash: libtorrent's rule, `/NAME/PATH` appended.
    assert_eq!(
        file_url("http://o/pub", "set", true, &p(&["x"])),
        "http://o/pub/set/x"
    );
    // Non-ASCII names are escaped byte by byte (UTF-8).
    assert_eq!(file_url("http://o/", "ü", false, &[]), "http://o/%C3%BC");
    // Queries (presigned URLs) stay at the end; fragments are never sent.
    assert_eq!(
        file_url("http://o/f/?sig=a/b", "n", true, &p(&["x"])),
        "http://o/f/n/x?sig=a/b"
    );
    assert_eq!(
        file_url("http://o/file.iso?sig=1#frag", "n", false, &[]),
        "http://o/file.iso?sig=1"
    );
    assert_eq!(escape_component("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(escape_component("../x"), "..%2Fx");
}

#[test]
fn adjacent_pieces_coalesce_and_pieces_spanning_files_split() {
    // Files of 10, 0, 25 and 5 bytes in pieces of 16.
    let l = layout(16, &[10, 0, 25, 5]);
    let r = |file, first, last| RangeRequest { file, first, last };
    // Piece 0 spans f0 and the start of f2 (the empty f1 is skipped).
    assert_eq!(plan_requests(&l, 0..1), vec![r(0, 0, 9), r(2, 0, 5)]);
    // Pieces 1 and 2 (the short last one) in one run: the rest of f2, then f3.
    assert_eq!(plan_requests(&l, 1..3), vec![r(2, 6, 24), r(3, 0, 4)]);
    assert_eq!(
        plan_requests(&l, 0..3),
        vec![r(0, 0, 9), r(2, 0, 24), r(3, 0, 4)]
    );
    assert_eq!(plan_requests(&l, 2..2), vec![]);
    // One file, many pieces: one request.
    let one = layout(4, &[100]);
    assert_eq!(plan_requests(&one, 3..9), vec![r(0, 12, 35)]);
    assert_eq!(r(0, 12, 35).header(), "bytes=12-35");
    assert_eq!(r(0, 12, 35).len(), 24);
}

#[test]
fn content_range_parsing_rejects_hostile_values() {
    assert_eq!(
        parse_content_range("bytes 0-99/1000"),
        Some(ContentRange {
            first: 0,
            last: 99,
            total: Some(1000)
        })
    );
    assert_eq!(
        parse_content_range(" Bytes 5-5/*"),
        Some(ContentRange {
            first: 5,
            last: 5,
            total: None
        })
    );
    let max = u64::MAX;
    assert_eq!(
        parse_content_range(&format!("bytes 0-{}/{max}", max - 1)).map(|c| c.last),
        Some(max - 1)
    );
    for bad in [
        "",
        "bytes",
        "bytes */1000",
        "bytes 0-99",
        "bytes 99-0/1000",
        "bytes 0-1000/1000",
        "bytes -1-5/10",
        "bytes +1-5/10",
        "bytes 1 -5/10",
        "bytes 0x1-5/10",
        "bytes 0-18446744073709551616/*",
        "bytes 0-99999999999999999999999/*",
        "items 0-1/2",
        "bytes 0-1/",
        "bytes 0-1/2/3",
        "bytes 0--1/2",
        "bytes ٣-٤/10",
    ] {
        assert_eq!(parse_content_range(bad), None, "{bad:?}");
    }
}

#[test]
fn responses_must_answer_the_request() {
    let req = RangeRequest {
        file: 0,
        first: 100,
        last: 199,
    };
    let ok = check_response(&req, 1000, 206, Some("bytes 100-199/1000"), Some(100), None);
    assert_eq!(ok, Ok(100));
    assert_eq!(
        check_response(
            &req,
            1000,
            206,
            Some("bytes 100-199/*"),
            None,
            Some("identity")
        ),
        Ok(100)
    );
    let err = |status, cr, len, enc| {
        check_response(&req, 1000, status, cr, len, enc)
            .unwrap_err()
            .to_string()
    };
    assert!(err(206, None, None, None).contains("without a Content-Range"));
    assert!(err(206, Some("bytes 0-99/1000"), None, None).contains("asked for bytes 100-199"));
    assert!(err(206, Some("bytes 100-199/999"), None, None).contains("999 bytes there"));
    assert!(err(206, Some("garbage"), None, None).contains("unusable Content-Range"));
    assert!(err(206, Some("bytes 100-199/1000"), Some(5), None).contains("Content-Length 5"));
    assert!(err(206, Some("bytes 100-199/1000"), None, Some("gzip")).contains("gzip"));
    assert!(err(200, None, Some(1000), None).contains("ignored the Range header"));
    assert!(err(404, None, None, None).contains("HTTP status 404"));
    assert!(err(416, Some("bytes */1000"), None, None).contains("416"));
    let long = "x".repeat(10_000);
    assert!(
        err(206, Some(&long), None, None).len() < 200,
        "untrusted text clipped"
    );
    // A 200 is fine when the request was for the whole file.
    let whole = RangeRequest {
        file: 0,
        first: 0,
        last: 999,
    };
    assert_eq!(
        check_response(&whole, 1000, 200, None, Some(1000), None),
        Ok(1000)
    );
    assert!(check_response(&whole, 1000, 200, None, Some(2000), None).is_err());
}

#[test]
fn assembler_cuts_bytes_into_pieces_across_chunk_and_request_boundaries() {
    let data: Vec<u8> = (0..40u8).collect();
    // Pieces 2..5 of 16, 16 and 8 bytes, fed in odd-sized chunks.
    let mut a = Assembler::new(2..5, vec![16, 16, 8]);
    let mut new_buf = |n: usize| {
        let mut b = PieceBuffer::default();
        b.reset(n);
        b
    };
    let mut done = Vec::new();
    for chunk in data.chunks(7) {
        a.push(chunk, &mut new_buf, &mut done).unwrap();
    }
    let got: Vec<(u32, Vec<u8>)> = done
        .iter()
        .map(|(p, b)| (*p, b.as_slice().to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, data[..16].to_vec()),
            (3, data[16..32].to_vec()),
            (4, data[32..].to_vec())
        ]
    );
    assert_eq!(a.next_piece(), None);
    assert!(
        a.push(b"x", &mut new_buf, &mut done).is_err(),
        "one byte too many"
    );
    let mut short = Assembler::new(0..1, vec![4]);
    short.push(b"ab", &mut new_buf, &mut done).unwrap();
    assert_eq!(
        short.next_piece(),
        Some(0),
        "incomplete piece still pending"
    );
}
