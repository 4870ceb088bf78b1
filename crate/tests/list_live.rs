//! ShareableList access to live segments: attach racing a creator, lies in the header that
//! must not drive allocations, huge foreign slots, and readers that never write.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use shmkit_core::list::{Item, Layout, MAX_SLOT_LEN};
use shmkit_core::segment::{load_bytes, store_bytes};
use shmkit_core::{Segment, SegmentOptions, ShmName};

mod common;

use common::{unique, Unlink};

fn encode(items: &[Item<'_>]) -> (Layout, Vec<u8>) {
    let layout = Layout::for_items(items).unwrap();
    let mut bytes = vec![0u8; layout.total_len()];
    layout.write_all(&mut bytes, items).unwrap();
    (layout, bytes)
}

fn snapshot(mem: &[AtomicU8]) -> Vec<u8> {
    let mut out = vec![0u8; mem.len()];
    load_bytes(mem, &mut out);
    out
}

/// Attaches to `segment`'s list from a thread of its own (its own mapping), giving its length.
fn attach_in_thread(segment: &Segment) -> thread::JoinHandle<shmkit_core::Result<usize>> {
    let name = segment.name().to_owned();
    thread::spawn(move || {
        let attached = Segment::open(&name).unwrap();
        Layout::attach(attached.atomic_bytes()).map(|l| l.len())
    })
}

fn items(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("item {i}")).collect()
}

#[test]
fn attach_waits_for_a_creator_that_wrote_the_count_first() {
    // CPython's order: count and offsets, then data, formats and codes.
    let texts = items(50);
    let list: Vec<Item<'_>> = texts.iter().map(|s| Item::Str(s)).collect();
    let (layout, bytes) = encode(&list);
    let segment = Segment::create(bytes.len()).unwrap();
    let _guard = Unlink(segment.name().to_owned());
    let header = 8 * (list.len() + 2);
    store_bytes(&segment.atomic_bytes()[..header], &bytes[..header]);
    let attacher = attach_in_thread(&segment);
    thread::sleep(Duration::from_millis(30));
    store_bytes(&segment.atomic_bytes()[header..], &bytes[header..]);
    assert_eq!(attacher.join().unwrap().unwrap(), layout.len());
}

#[test]
fn attach_waits_for_a_creator_that_stores_the_count_last() {
    // shmkit's order where a list cannot be hidden until complete (macOS, Windows).
    let texts = items(20);
    let list: Vec<Item<'_>> = texts.iter().map(|s| Item::Str(s)).collect();
    let (layout, bytes) = encode(&list);
    let segment = Segment::create(bytes.len()).unwrap();
    let _guard = Unlink(segment.name().to_owned());
    store_bytes(&segment.atomic_bytes()[8..], &bytes[8..]);
    let attacher = attach_in_thread(&segment);
    thread::sleep(Duration::from_millis(30));
    store_bytes(&segment.atomic_bytes()[..8], &bytes[..8]);
    assert_eq!(attacher.join().unwrap().unwrap(), layout.len());
}

#[test]
fn a_segment_of_zeros_is_waited_for_briefly_then_taken_as_an_empty_list() {
    let segment = Segment::create(100).unwrap();
    let _guard = Unlink(segment.name().to_owned());
    assert!(Layout::attach(segment.atomic_bytes()).unwrap().is_empty());
}

#[cfg(target_os = "linux")]
#[test]
fn on_linux_a_list_gets_its_name_only_once_complete() {
    let name = unique("fill");
    let _guard = Unlink(name.clone());
    let texts = items(1000);
    let list: Vec<Item<'_>> = texts.iter().map(|s| Item::Str(s)).collect();
    let layout = Layout::for_items(&list).unwrap();
    let filling = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let opener = scope.spawn(|| {
            let mut seen_missing_while_filling = false;
            while !done.load(Ordering::SeqCst) {
                let during = filling.load(Ordering::SeqCst);
                match Segment::open(&name) {
                    Ok(segment) => {
                        // Whoever finds the name finds the whole list.
                        assert_eq!(Layout::attach(segment.atomic_bytes()).unwrap().len(), 1000);
                    }
                    Err(e) => {
                        assert_eq!(e.errno_name(), Some("ENOENT"), "{e}");
                        seen_missing_while_filling |= during;
                    }
                }
            }
            seen_missing_while_filling
        });
        let mut options = SegmentOptions::new();
        options.name(ShmName::new(&name).unwrap());
        let segment = options
            .create_filled(layout.total_len(), |mem| {
                filling.store(true, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(50));
                layout.fill(mem, &list)
            })
            .unwrap();
        thread::sleep(Duration::from_millis(20));
        done.store(true, Ordering::SeqCst);
        assert!(
            opener.join().unwrap(),
            "the opener never tried while the list was being written"
        );
        assert_eq!(Layout::attach(segment.atomic_bytes()).unwrap().len(), 1000);
        // A second create under the taken name is EEXIST, as with shm_open(O_EXCL).
        let again = options.create_filled(layout.total_len(), |mem| layout.fill(mem, &list));
        assert_eq!(again.unwrap_err().errno_name(), Some("EEXIST"));
    });
}

#[test]
fn a_failed_fill_leaves_no_segment_behind() {
    let name = unique("nofill");
    let _guard = Unlink(name.clone());
    let mut options = SegmentOptions::new();
    options.name(ShmName::new(&name).unwrap());
    let err = options
        .create_filled(64, |_| Err(shmkit_core::Error::Corrupt("refused".into())))
        .unwrap_err();
    assert!(matches!(err, shmkit_core::Error::Corrupt(_)));
    assert_eq!(Segment::open(&name).unwrap_err().errno_name(), Some("ENOENT"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_lying_count_in_a_huge_sparse_segment_allocates_nothing() {
    // 256 GiB, sparse: the count may claim up to 2^38 / 25 items; 2^33 of them would need
    // 64 GiB of offsets if the count sized an allocation. Where the address space is smaller
    // (qemu-user maps less; so do arm64 kernels with 39-bit addresses), the largest that maps,
    // with the count scaled alike (a 32nd of the size).
    let (segment, size) = (32..=38)
        .rev()
        .find_map(|bits| {
            let size = 1usize << bits;
            SegmentOptions::new()
                .reserve(false)
                .create(size)
                .ok()
                .map(|s| (s, size))
        })
        .unwrap();
    let _guard = Unlink(segment.name().to_owned());
    store_bytes(&segment.atomic_bytes()[..8], &((size / 32) as i64).to_ne_bytes());
    let started = Instant::now();
    let err = Layout::attach(segment.atomic_bytes()).unwrap_err();
    assert!(matches!(err, shmkit_core::Error::Corrupt(_)));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A list of one item whose slot is `slot` bytes, holding int 5, as another program might
/// write it (CPython cannot: its format for such a slot would not fit 8 bytes).
fn foreign_list(slot: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; 8 * 3 + slot + 9];
    bytes[..8].copy_from_slice(&1i64.to_ne_bytes());
    bytes[16..24].copy_from_slice(&(slot as i64).to_ne_bytes());
    bytes[24..32].copy_from_slice(&5i64.to_ne_bytes());
    bytes[24 + slot..32 + slot].copy_from_slice(b"q\0\0\0\0\0\0\0");
    bytes
}

#[test]
fn a_foreign_slot_of_ten_megabytes_takes_text_up_to_what_a_format_can_say() {
    let slot = 10_000_000;
    let mut bytes = foreign_list(slot);
    let mem = shmkit_core::segment::atomic_slice(&mut bytes);
    let layout = Layout::attach(mem).unwrap();
    let mut scratch = Vec::new();
    assert_eq!(layout.read_live(mem, 0, &mut scratch).unwrap(), Item::Int(5));
    layout.set(mem, 0, &Item::Str("x")).unwrap();
    assert_eq!(layout.format_live(mem).unwrap(), format!("{MAX_SLOT_LEN}s"));
    assert_eq!(layout.read_live(mem, 0, &mut scratch).unwrap(), Item::Str("x"));
    let too_long = vec![b'a'; MAX_SLOT_LEN + 1];
    let err = layout.set(mem, 0, &Item::Bytes(&too_long)).unwrap_err();
    assert!(matches!(err, shmkit_core::Error::ValueTooLarge { .. }));
    assert_eq!(layout.read_live(mem, 0, &mut scratch).unwrap(), Item::Str("x"));
}

#[test]
fn readers_leave_every_byte_as_it_was() {
    let (_, mut bytes) = encode(&[Item::Int(1), Item::Str("howdy"), Item::None, Item::Bytes(b"raw")]);
    let before = bytes.clone();
    let mem = shmkit_core::segment::atomic_slice(&mut bytes);
    let layout = Layout::attach(mem).unwrap();
    let mut scratch = Vec::new();
    for i in 0..layout.len() {
        layout.read_live(mem, i, &mut scratch).unwrap();
    }
    layout.format_live(mem).unwrap();
    layout.count(mem, &Item::Int(1)).unwrap();
    layout.index_of(mem, &Item::Str("x")).unwrap();
    assert_eq!(snapshot(mem), before);
}

#[test]
fn threads_writing_and_reading_one_item_never_see_a_torn_or_mispaired_value() {
    let (_, mut bytes) = encode(&[Item::Int(0), Item::Str("abcdefgh")]);
    let mem = shmkit_core::segment::atomic_slice(&mut bytes);
    let layout = Layout::attach(mem).unwrap();
    let stop = AtomicBool::new(false);
    // Every byte of a pattern is equal, so a torn int is not a pattern.
    let pattern = |k: u8| i64::from_ne_bytes([k; 8]);
    thread::scope(|scope| {
        for who in 0..2u8 {
            let (layout, stop) = (&layout, &stop);
            scope.spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    let value = match i % 4 {
                        0 => Item::Int(pattern((i % 100) as u8 + who)),
                        1 => Item::Float(1.5),
                        2 => Item::Str("abcdefghijklmno"),
                        _ => Item::None,
                    };
                    layout.set(mem, 1, &value).unwrap();
                    // What a call from JS costs between two writes (about a microsecond).
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let mut scratch = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut reads = 0u64;
        let mut failed = None;
        while Instant::now() < deadline && failed.is_none() {
            let read = match layout.read_live(mem, 1, &mut scratch) {
                Ok(read) => read,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let fine = match read {
                Item::Int(v) => v.to_ne_bytes().iter().all(|&b| b == v.to_ne_bytes()[0]),
                Item::Float(f) => f == 1.5,
                Item::Str(s) => s == "abcdefgh" || s == "abcdefghijklmno",
                Item::None => true,
                _ => false,
            };
            if !fine {
                failed = Some(shmkit_core::Error::Corrupt(format!("never written: {read:?}")));
            }
            reads += 1;
        }
        stop.store(true, Ordering::Relaxed);
        assert!(failed.is_none(), "{failed:?} after {reads} reads");
        assert!(reads > 100);
    });
}
