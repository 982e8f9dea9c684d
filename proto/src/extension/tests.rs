//! Byte fixtures, round trips, split points and hostile payloads for `extension`.

use super::*;

/// An extension handshake in the shape libtorrent 2.0 sends (key set and order as in
/// its captures; values of this test's own).
const LIBTORRENT_HS: &[u8] = b"d1:ei0e4:ipv616:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x011:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5012e1:pi6881e4:reqqi500e11:upload_onlyi0e1:v16:libtorrent/2.0.86:yourip4:\x7f\x00\x00\x01e";
/// The shape Transmission 4 sends.
const TRANSMISSION_HS: &[u8] = b"d1:ei0e4:ipv44:\x7f\x00\x00\x011:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei1234e1:pi51413e4:reqqi512e11:upload_onlyi1e1:v18:Transmission 4.0.56:yourip4:\x0a\x00\x00\x05e";

#[test]
fn third_party_handshakes_decode() {
    let lt = ExtendedHandshake::decode(LIBTORRENT_HS).unwrap();
    assert_eq!(lt.id_of("ut_metadata"), Some(2));
    assert_eq!(lt.id_of("ut_pex"), Some(1));
    assert_eq!(lt.id_of("lt_donthave"), Some(7));
    assert_eq!(lt.id_of("nope"), None);
    assert_eq!(lt.metadata_size, Some(5012));
    assert_eq!(lt.listen_port, Some(6881));
    assert_eq!(lt.request_queue, Some(500));
    assert_eq!(lt.client.as_deref(), Some("libtorrent/2.0.8"));
    assert_eq!(lt.your_ip, Some("127.0.0.1".parse().unwrap()));

    let tr = ExtendedHandshake::decode(TRANSMISSION_HS).unwrap();
    assert_eq!(tr.id_of("ut_metadata"), Some(3));
    assert_eq!(tr.listen_port, Some(51413));
    assert_eq!(tr.your_ip, Some("10.0.0.5".parse().unwrap()));
}

#[test]
fn handshake_round_trips_and_disabled_extensions_read_as_absent() {
    let hs = ExtendedHandshake {
        extensions: vec![("ut_metadata".into(), 3), ("ut_pex".into(), 0)],
        client: Some("kpbt/0.1".into()),
        listen_port: Some(6881),
        request_queue: Some(250),
        metadata_size: Some(40_000),
        your_ip: Some("::1".parse().unwrap()),
    };
    let bytes = hs.encode();
    assert_eq!(
        &bytes[..],
        &b"d1:md11:ut_metadatai3e6:ut_pexi0ee13:metadata_sizei40000e1:pi6881e4:reqqi250e1:v8:kpbt/0.16:yourip16:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01e"[..]
    );
    let back = ExtendedHandshake::decode(&bytes).unwrap();
    assert_eq!(back, hs);
    assert_eq!(back.id_of("ut_pex"), None, "id 0 disables an extension");
}

#[test]
fn odd_handshake_fields_are_ignored_and_bad_ones_refused() {
    // m entries that are not ids, a port out of range, a 7-byte yourip: all ignored.
    let hs = ExtendedHandshake::decode(b"d1:md1:ai300e1:b3:xyz1:ci5ee1:pi70000e6:yourip7:abcdefge")
        .unwrap();
    assert_eq!(hs.extensions, vec![("c".to_string(), 5)]);
    assert_eq!((hs.listen_port, hs.your_ip), (None, None));
    assert_eq!(
        ExtendedHandshake::decode(b"d13:metadata_sizei999999999ee"),
        Err(ExtensionError::MetadataSize(999_999_999))
    );
    assert_eq!(
        ExtendedHandshake::decode(b"le"),
        Err(ExtensionError::NotADict)
    );
    assert!(matches!(
        ExtendedHandshake::decode(b"d1:m"),
        Err(ExtensionError::Bencode(_))
    ));
}

#[test]
fn metadata_messages_round_trip_with_trailing_data() {
    let data = vec![0xab; 1000];
    for m in [
        MetadataMessage::Request { piece: 2 },
        MetadataMessage::Reject { piece: 7 },
        MetadataMessage::Data {
            piece: 1,
            total_size: 17_384,
            data: &data,
        },
    ] {
        let bytes = m.encode();
        assert_eq!(MetadataMessage::decode(&bytes).unwrap(), m);
    }
    // BEP 9's own example of a request.
    assert_eq!(
        MetadataMessage::decode(b"d8:msg_typei0e5:piecei0ee").unwrap(),
        MetadataMessage::Request { piece: 0 }
    );
}

#[test]
fn hostile_metadata_messages_are_refused() {
    let cases: [(&[u8], ExtensionError); 4] = [
        (
            b"d8:msg_typei9e5:piecei0ee",
            ExtensionError::UnknownMetadataType(9),
        ),
        (b"d8:msg_typei0ee", ExtensionError::MissingField("piece")),
        (
            b"d8:msg_typei0e5:piecei-1ee",
            ExtensionError::MissingField("piece"),
        ),
        (
            b"d8:msg_typei1e5:piecei0e10:total_sizei99999999eexx",
            ExtensionError::MetadataSize(99_999_999),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(MetadataMessage::decode(bytes), Err(want));
    }
}

#[test]
fn metadata_piece_geometry() {
    assert_eq!(metadata_piece_count(1), 1);
    assert_eq!(metadata_piece_count(16_384), 1);
    assert_eq!(metadata_piece_count(16_385), 2);
    assert_eq!(metadata_piece_len(16_385, 0), Some(16_384));
    assert_eq!(metadata_piece_len(16_385, 1), Some(1));
    assert_eq!(metadata_piece_len(16_385, 2), None);
    assert_eq!(metadata_piece_len(16_385, u32::MAX), None);
}

#[test]
fn pex_round_trips_both_families_with_flags() {
    let msg = PexMessage {
        added: vec![
            ("10.0.0.1:6881".parse().unwrap(), PEX_FLAG_SEED),
            ("10.0.0.2:51413".parse().unwrap(), 0),
            ("[2001:db8::1]:6881".parse().unwrap(), PEX_FLAG_ENCRYPTION),
        ],
        dropped: vec![
            "10.0.0.9:1".parse().unwrap(),
            "[2001:db8::9]:2".parse().unwrap(),
        ],
    };
    assert_eq!(PexMessage::decode(&msg.encode()).unwrap(), msg);
    // Flags missing for some peers read as 0.
    let short_flags =
        b"d5:added12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe17:added.f1:\x02e";
    let m = PexMessage::decode(short_flags).unwrap();
    assert_eq!(m.added[0].1, PEX_FLAG_SEED);
    assert_eq!(m.added[1].1, 0);
}

#[test]
fn pex_floods_and_ragged_lists_are_refused() {
    let mut flood = b"d5:added".to_vec();
    let list = vec![1u8; 6 * (MAX_PEX_PEERS + 1)];
    flood.extend_from_slice(format!("{}:", list.len()).as_bytes());
    flood.extend_from_slice(&list);
    flood.push(b'e');
    assert_eq!(
        PexMessage::decode(&flood),
        Err(ExtensionError::PexFlood("added"))
    );
    assert_eq!(
        PexMessage::decode(b"d7:dropped5:abcdee"),
        Err(ExtensionError::BadPexList("dropped"))
    );
}

#[test]
fn every_split_point_of_a_truncated_payload_is_an_error_not_a_panic() {
    for payload in [LIBTORRENT_HS, TRANSMISSION_HS] {
        for cut in 0..payload.len() {
            assert!(ExtendedHandshake::decode(&payload[..cut]).is_err(), "{cut}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = ExtendedHandshake::decode(&bytes);
        let _ = MetadataMessage::decode(&bytes);
        let _ = PexMessage::decode(&bytes);
    }
}
