//! A list in a real mapped segment, raced: one thread rewrites random bytes of it (as a
//! hostile or broken peer process would) while another runs every list operation on it —
//! open (attach), get, set, toArray, count, index, format. Nothing may panic, hang or read
//! out of bounds, whatever the bytes are at any instant.
//!
//! Input: a byte giving the item count, one byte per item choosing its value, then
//! `(offset lo, offset hi, value)` triples for the mutator, which it applies in a loop until
//! the operations are done.
#![no_main]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shmkit_core::list::{Item, Layout};
use shmkit_core::Segment;

/// How long the rewriting thread races, then rests, in turn.
const BURST: Duration = Duration::from_millis(1);

const TEXTS: [&str; 4] = ["", "howdy", "héllo wörld", "a string of thirty-one bytes..."];

fn item(seed: u8) -> Item<'static> {
    match seed % 8 {
        0 => Item::Int(i64::from(seed) << 40),
        1 => Item::Float(f64::from(seed) / 3.0),
        2 => Item::Bool(seed & 0x10 != 0),
        3 => Item::None,
        4 => Item::Bytes(&[0, 1, 2, 0xff, 0]),
        n => Item::Str(TEXTS[usize::from(n) % TEXTS.len()]),
    }
}

/// Unlinks the segment however the run ends.
struct Unlink<'a>(&'a Segment);

impl Drop for Unlink<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlink();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16);
    if rest.len() < count {
        return;
    }
    let (seeds, script) = rest.split_at(count);
    let items: Vec<Item<'static>> = seeds.iter().map(|&s| item(s)).collect();
    let layout = Layout::for_items(&items).expect("small lists fit");
    let segment = match Segment::create(layout.total_len().max(1)) {
        Ok(segment) => segment,
        Err(_) => return, // /dev/shm full: nothing to fuzz
    };
    let _unlink = Unlink(&segment);
    let mem = segment.atomic_bytes();
    layout.fill(mem, &items).expect("the segment is large enough");
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let triples: Vec<&[u8]> = script.chunks_exact(3).collect();
            if triples.is_empty() {
                return;
            }
            // Bursts of rewriting with quiet gaps, as real peers pause between writes: every
            // operation still races a burst, and none waits out the reader's whole change limit
            // (1 s, what a peer that never pauses costs each access), which only slows the fuzzer.
            while !done.load(Ordering::Relaxed) {
                let burst_end = Instant::now() + BURST;
                while Instant::now() < burst_end {
                    for t in &triples {
                        let at = usize::from(u16::from_le_bytes([t[0], t[1]])) % mem.len();
                        mem[at].store(t[2], Ordering::Relaxed);
                        if t[2] == 0xff {
                            // A "busy" code left for good would make every access wait for a
                            // writer that does not exist (1 s each): keep it transient.
                            std::hint::spin_loop();
                            mem[at].store(0, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(BURST);
            }
        });
        operations(&segment, &layout, &items);
        done.store(true, Ordering::Relaxed);
    });
});

fn operations(segment: &Segment, created: &Layout, items: &[Item<'_>]) {
    let mem = segment.atomic_bytes();
    let mut scratch = Vec::new();
    for round in 0..4 {
        // Open: by name (a second mapping), then validate what is there now. A layout that
        // no longer validates is used as validated at create: later bytes are never trusted.
        let reopened = Segment::open(segment.name()).ok();
        let attached = reopened.as_ref().and_then(|s| Layout::attach(s.atomic_bytes()).ok());
        let layout = attached.as_ref().unwrap_or(created);
        let on = reopened.as_ref().map_or(mem, |s| s.atomic_bytes());
        for i in 0..layout.len() {
            let _ = layout.read_live(on, i, &mut scratch);
            if let Some(item) = items.get((i + round) % items.len().max(1)) {
                let _ = layout.set(on, i, item);
            }
            let _ = layout.set(on, i, &Item::Str("x"));
            let _ = layout.read_live(mem, i, &mut scratch);
        }
        // toArray
        for i in 0..layout.len() {
            let _ = layout.read_live(on, i, &mut scratch);
        }
        let _ = layout.format_live(on);
        let _ = layout.count(on, &Item::Int(1));
        let _ = layout.index_of(on, &Item::Str("howdy"));
        let _ = layout.position(-1);
    }
}
