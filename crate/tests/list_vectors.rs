//! The spec's byte vectors, taken from CPython 3.9 – 3.13: shmkit writes exactly those bytes
//! and reads CPython's bytes back to the same values.

use shmkit_core::list::{Item, Layout};
use shmkit_core::segment::atomic_slice;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encode(items: &[Item<'_>]) -> Vec<u8> {
    let layout = Layout::for_items(items).unwrap();
    let mut bytes = vec![0u8; layout.total_len()];
    layout.write_all(&mut bytes, items).unwrap();
    bytes
}

fn read_all(bytes: &[u8]) -> Vec<Item<'_>> {
    let layout = Layout::read(bytes).unwrap();
    (0..layout.len()).map(|i| layout.get(bytes, i).unwrap()).collect()
}

const MIXED: &str = "06000000000000000000000000000000080000000000000010000000000000001800000000000000200000000000000028000000000000003000000000000000010000000000000000000000000004400000000000000001000000000000000068c3a96c6c6f0000627974657300000071000000000000006400000000000000787878787878783f7878787878783f7838730000000000003873000000000000000000030102";
const NINE_A: &str =
    "01000000000000000000000000000000100000000000000061616161616161616100000000000000313673000000000001";
const NINE_A_THEN_7: &str =
    "01000000000000000000000000000000100000000000000007000000000000006100000000000000710000000000000000";
const NINE_A_THEN_XY: &str =
    "01000000000000000000000000000000100000000000000078790000000000000000000000000000313673000000000001";
const NINE_A_THEN_NONE: &str =
    "010000000000000000000000000000001000000000000000000000000000000061000000000000007878787878783f7803";
const HOWDY: &str = "070000000000000000000000000000000800000000000000100000000000000018000000000000002000000000000000280000000000000030000000000000003800000000000000686f776479000000486f5764590000005839b4c8761271c06400000000000000000000000000000000000000000000012a0000000000000038730000000000003873000000000000640000000000000071000000000000007878787878783f78787878787878783f710000000000000001020000030000";
const HOWDY_CHANGED: &str = "070000000000000000000000000000000800000000000000100000000000000018000000000000002000000000000000280000000000000030000000000000003800000000000000686f776479000000486f5764590000005839b4c8761271c02a00000000000000736f6d650000000000000000000000012a0000000000000038730000000000003873000000000000640000000000000071000000000000003873000000000000787878787878783f710000000000000001020000010000";
const EDGES: &str = "0800000000000000000000000000000008000000000000001000000000000000180000000000000020000000000000002800000000000000300000000000000038000000000000004800000000000000ffffffffffffffffffffffffffffff7f00000000000000800000000000000000000000000000000000000000000000000000000000000000616263646566676800000000000000007100000000000000710000000000000071000000000000006400000000000000787878787878783f3873000000000000387300000000000031367300000000000000000000010201";

fn howdy() -> Vec<Item<'static>> {
    vec![
        Item::Str("howdy"),
        Item::Bytes(b"HoWdY"),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ]
}

#[test]
fn mixed_list_matches_cpython() {
    let items = [
        Item::Int(1),
        Item::Float(2.5),
        Item::Bool(true),
        Item::None,
        Item::Str("héllo"),
        Item::Bytes(b"bytes\0"),
    ];
    let bytes = encode(&items);
    assert_eq!(bytes, hex(MIXED));
    assert_eq!(bytes.len(), 166);
    let cpython = hex(MIXED);
    let layout = Layout::read(&cpython).unwrap();
    assert_eq!(layout.format(&cpython).unwrap(), "qdxxxxxxx?xxxxxx?x8s8s");
    assert_eq!(
        read_all(&cpython),
        vec![
            Item::Int(1),
            Item::Float(2.5),
            Item::Bool(true),
            Item::None,
            Item::Str("héllo"),
            Item::Bytes(b"bytes")
        ]
    );
}

#[test]
fn empty_list_matches_cpython() {
    assert_eq!(encode(&[]), hex("00000000000000000000000000000000"));
}

#[test]
fn nine_a_and_its_assignments_match_cpython() {
    let mut bytes = encode(&[Item::Str("aaaaaaaaa")]);
    assert_eq!(bytes, hex(NINE_A));
    let layout = Layout::read(&bytes).unwrap();
    assert_eq!(layout.format(&bytes).unwrap(), "16s");

    let mut seven = bytes.clone();
    layout.set(atomic_slice(&mut seven), 0, &Item::Int(7)).unwrap();
    assert_eq!(seven, hex(NINE_A_THEN_7));
    assert_eq!(layout.format(&seven).unwrap(), "q");

    let mut xy = bytes.clone();
    layout.set(atomic_slice(&mut xy), 0, &Item::Str("xy")).unwrap();
    assert_eq!(xy, hex(NINE_A_THEN_XY));

    layout.set(atomic_slice(&mut bytes), 0, &Item::None).unwrap();
    assert_eq!(bytes, hex(NINE_A_THEN_NONE));
    assert_eq!(layout.format(&bytes).unwrap(), "xxxxxx?x");
    assert_eq!(read_all(&bytes), vec![Item::None]);
}

#[test]
fn howdy_list_and_its_assignments_match_cpython() {
    let mut bytes = encode(&howdy());
    assert_eq!(bytes, hex(HOWDY));
    let layout = Layout::read(&bytes).unwrap();
    assert_eq!(layout.format(&bytes).unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
    assert_eq!(read_all(&hex(HOWDY)), howdy());
    layout.set(atomic_slice(&mut bytes), 3, &Item::Int(42)).unwrap();
    layout.set(atomic_slice(&mut bytes), 4, &Item::Str("some")).unwrap();
    assert_eq!(bytes, hex(HOWDY_CHANGED));
    assert_eq!(layout.format(&bytes).unwrap(), "8s8sdq8sxxxxxxx?q");
    // CPython's test: 'encodés' (8 bytes) fits an 8-byte slot, 'encodées' (9) does not.
    layout.set(atomic_slice(&mut bytes), 0, &Item::Str("encodés")).unwrap();
    assert!(layout.set(atomic_slice(&mut bytes), 0, &Item::Str("encodées")).is_err());
    assert_eq!(layout.get(&bytes, 0).unwrap(), Item::Str("encodés"));
    // No spill into the next slot.
    assert_eq!(layout.get(&bytes, 1).unwrap(), Item::Bytes(b"HoWdY"));
}

#[test]
fn integer_edges_and_empty_strings_match_cpython() {
    let items = [
        Item::Int(-1),
        Item::Int(i64::MAX),
        Item::Int(i64::MIN),
        Item::Float(0.0),
        Item::Bool(false),
        Item::Str(""),
        Item::Bytes(b""),
        Item::Str("abcdefgh"),
    ];
    let bytes = encode(&items);
    assert_eq!(bytes, hex(EDGES));
    assert_eq!(bytes.len(), 224);
    assert_eq!(
        Layout::read(&bytes).unwrap().format(&bytes).unwrap(),
        "qqqdxxxxxxx?8s8s16s"
    );
    assert_eq!(read_all(&hex(EDGES)), items.to_vec());
}

#[test]
fn cpython_38_layout_is_refused_by_name() {
    // CPython 3.8.18: ShareableList([1, 'ab', None]).
    let legacy = hex("0300000000000000080000000000000008000000000000000800000000000000010000000000000061620000000000000000000000000000710000000000000038730000000000007878787878783f78000103");
    let err = Layout::read(&legacy).unwrap_err();
    assert!(matches!(err, shmkit_core::Error::Corrupt(_)));
    assert!(err.to_string().contains("CPython 3.8"), "{err}");
}

#[test]
fn corrupt_segments_are_refused_with_a_reason() {
    let good = encode(&howdy());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short", good[..5].to_vec()),
        ("negative count", {
            let mut b = good.clone();
            b[7] = 0x80;
            b
        }),
        ("huge count", {
            let mut b = good.clone();
            b[0..8].copy_from_slice(&(1i64 << 40).to_ne_bytes());
            b
        }),
        ("offset past the end", {
            let mut b = good.clone();
            b[8 + 8 * 7..8 + 8 * 8].copy_from_slice(&10_000i64.to_ne_bytes());
            b
        }),
        ("decreasing offsets", {
            let mut b = good.clone();
            b[8 + 8 * 2..8 + 8 * 3].copy_from_slice(&4i64.to_ne_bytes());
            b
        }),
        ("lying format", {
            let mut b = good.clone();
            let f = 8 * 9 + 56;
            b[f..f + 8].copy_from_slice(b"99s\0\0\0\0\0");
            b
        }),
        ("unknown format", {
            let mut b = good.clone();
            let f = 8 * 9 + 56 + 16;
            b[f..f + 8].copy_from_slice(b"Q\0\0\0\0\0\0\0");
            b
        }),
        ("bad code", {
            let mut b = good.clone();
            let c = good.len() - 7;
            b[c] = 9;
            b
        }),
        ("truncated", good[..good.len() - 1].to_vec()),
    ];
    for (what, bytes) in cases {
        let err = Layout::read(&bytes).unwrap_err();
        assert!(matches!(err, shmkit_core::Error::Corrupt(_)), "{what}: {err}");
    }
}

#[test]
fn a_format_changed_after_attach_is_caught_on_access() {
    let mut bytes = encode(&howdy());
    let layout = Layout::read(&bytes).unwrap();
    let f = 8 * 9 + 56;
    bytes[f..f + 8].copy_from_slice(b"64s\0\0\0\0\0");
    assert!(matches!(
        layout.get(&bytes, 0).unwrap_err(),
        shmkit_core::Error::Corrupt(_)
    ));
    assert_eq!(layout.get(&bytes, 1).unwrap(), Item::Bytes(b"HoWdY"));
}
