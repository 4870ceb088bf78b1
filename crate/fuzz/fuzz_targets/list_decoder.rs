//! Any bytes as a ShareableList segment: attach-time validation, then every read, write and
//! format of every item. Nothing may panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit_core::list::{Item, Layout};
use shmkit_core::segment::atomic_slice;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let Ok(layout) = Layout::read(&bytes) else { return };
    // An item marked mid-write (code 0xff) makes locked accesses wait 1 s for a writer
    // that does not exist: decode it as it stands, then clear the mark so fuzzing stays fast.
    let codes = layout.total_len() - layout.len();
    for i in 0..layout.len() {
        let _ = layout.get(&bytes, i);
        if bytes[codes + i] == 0xff {
            bytes[codes + i] = 0;
        }
    }
    let _ = layout.format(&bytes);
    let mut scratch = Vec::new();
    for i in 0..layout.len() {
        let _ = layout.get(&bytes, i);
        let _ = layout.read_live(atomic_slice(&mut bytes), i, &mut scratch);
        let _ = layout.item_format(&bytes, i);
    }
    let _ = layout.format_live(atomic_slice(&mut bytes));
    let _ = layout.count(atomic_slice(&mut bytes), &Item::Int(1));
    if !layout.is_empty() {
        let last = layout.len() - 1;
        let _ = layout.set(atomic_slice(&mut bytes), last, &Item::Str("fuzz"));
        let _ = layout.set(atomic_slice(&mut bytes), 0, &Item::Bytes(b"\0\xff"));
        let _ = layout.get(&bytes, last);
    }
    let _ = Layout::for_items(&[Item::Bytes(data)]);
});
