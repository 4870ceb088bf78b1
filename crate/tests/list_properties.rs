//! Property tests: random lists round-trip; random bytes never panic the decoder.

use proptest::prelude::*;
use shmkit_core::list::{python_eq, Item, Layout, OwnedItem as Owned};
use shmkit_core::segment::atomic_slice;

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        any::<i64>().prop_map(Owned::Int),
        any::<f64>().prop_map(Owned::Float),
        any::<bool>().prop_map(Owned::Bool),
        Just(Owned::None),
        // Trailing NULs are stripped on read, as CPython does; keep them out of round-trips.
        "\\PC{0,40}".prop_map(|s: String| Owned::Str(s.trim_end_matches('\0').to_owned())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|mut b| {
            while b.last() == Some(&0) {
                b.pop();
            }
            Owned::Bytes(b)
        }),
    ]
}

fn same(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Float(x), Item::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

proptest! {
    #[test]
    fn random_lists_round_trip(values in proptest::collection::vec(owned(), 0..30)) {
        let items: Vec<Item<'_>> = values.iter().map(Owned::item).collect();
        let layout = Layout::for_items(&items).unwrap();
        let mut bytes = vec![0u8; layout.total_len()];
        layout.write_all(&mut bytes, &items).unwrap();
        let read = Layout::read(&bytes).unwrap();
        prop_assert_eq!(&read, &layout);
        for (i, item) in items.iter().enumerate() {
            let got = read.get(&bytes, i).unwrap();
            prop_assert!(same(&got, item), "{:?} != {:?}", got, item);
            if !matches!(item, Item::Float(f) if f.is_nan()) {
                prop_assert!(python_eq(&got, item));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(layout) = Layout::read(&bytes) {
            for i in 0..layout.len() {
                let _ = layout.get(&bytes, i);
            }
            let _ = layout.format(&bytes);
        }
    }

    #[test]
    fn mutated_valid_lists_never_panic(
        values in proptest::collection::vec(owned(), 1..10),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let items: Vec<Item<'_>> = values.iter().map(Owned::item).collect();
        let layout = Layout::for_items(&items).unwrap();
        let mut bytes = vec![0u8; layout.total_len()];
        layout.write_all(&mut bytes, &items).unwrap();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        if let Ok(read) = Layout::read(&bytes) {
            for i in 0..read.len() {
                let _ = read.get(&bytes, i);
                let _ = read.set(atomic_slice(&mut bytes.clone()), i, &Item::Str("x"));
            }
        }
        // A layout validated earlier, used on bytes changed since, must not panic either.
        for i in 0..layout.len() {
            let _ = layout.get(&bytes, i);
        }
    }
}
