//! SharedQueue: exactly-once delivery across threads and processes, blocking, end of stream,
//! a process killed while it holds a slot, and hostile header and slot bytes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::Unlink;

use shmkit_core::queue::{SharedQueue, HEADER_BYTES, SLOT_HEADER_BYTES};
use shmkit_core::{Error, Segment, SegmentOptions};

const TAIL_AT: usize = 64;
const HEAD_AT: usize = 128;

fn queue(capacity: usize, max_message: usize) -> SharedQueue {
    SharedQueue::create(&SegmentOptions::new(), capacity, max_message).unwrap()
}

fn message(producer: u32, seq: u32) -> Vec<u8> {
    let mut bytes = producer.to_le_bytes().to_vec();
    bytes.extend_from_slice(&seq.to_le_bytes());
    // A varying length, so lengths are checked too.
    bytes.extend(std::iter::repeat_n((seq % 251) as u8, (seq % 40) as usize));
    bytes
}

fn parse(bytes: &[u8]) -> (u32, u32) {
    let producer = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let seq = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    assert_eq!(bytes, message(producer, seq), "payload intact");
    (producer, seq)
}

#[test]
fn many_threads_deliver_each_message_once_in_producer_order() {
    const PRODUCERS: u32 = 4;
    const CONSUMERS: usize = 4;
    const EACH: u32 = 20_000;
    let queue = Arc::new(queue(16, 64));
    let _cleanup = Unlink(queue.name().to_owned());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for seq in 0..EACH {
                    queue.put(1, &message(p, seq), None).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            // Each consumer maps the segment on its own, as another process would.
            let mine = SharedQueue::open(queue.name()).unwrap();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match mine.get(None) {
                        Ok(m) => {
                            assert_eq!(m.tag, 1);
                            got.push(parse(&m.bytes));
                        }
                        Err(Error::QueueEnded) => return got,
                        Err(e) => panic!("get failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    queue.end().unwrap();
    let mut seen: HashMap<u32, Vec<u32>> = HashMap::new();
    for c in consumers {
        let got = c.join().unwrap();
        // Within one consumer, each producer's messages come in the order they were put.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, seq) in &got {
            if let Some(&before) = last.get(&p) {
                assert!(seq > before, "producer {p}: {seq} after {before}");
            }
            last.insert(p, seq);
            seen.entry(p).or_default().push(seq);
        }
    }
    for p in 0..PRODUCERS {
        let mut seqs = seen.remove(&p).unwrap_or_default();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (0..EACH).collect::<Vec<_>>(),
            "producer {p}: every message exactly once"
        );
    }
    assert_eq!(queue.lost(), 0);
    assert!(queue.is_empty());
}

#[test]
fn timeouts_full_empty_and_end() {
    let queue = queue(3, 8);
    let _cleanup = Unlink(queue.name().to_owned());
    assert_eq!(queue.capacity(), 4, "rounded up to a power of two");
    let started = Instant::now();
    assert!(matches!(
        queue.get(Some(Duration::from_millis(30))),
        Err(Error::QueueEmpty)
    ));
    assert!(started.elapsed() >= Duration::from_millis(30));
    for i in 0..4u8 {
        queue.put(0, &[i], Some(Duration::ZERO)).unwrap();
    }
    assert!(queue.is_full());
    assert_eq!(queue.len(), 4);
    assert!(matches!(
        queue.put(0, &[9], Some(Duration::from_millis(20))),
        Err(Error::QueueFull)
    ));
    assert!(matches!(
        queue.put(0, &[0; 9], None),
        Err(Error::MessageTooLarge { needed: 9, max: 8 })
    ));
    queue.end().unwrap();
    assert!(matches!(queue.put(0, &[1], None), Err(Error::QueueEnded)));
    for i in 0..4u8 {
        assert_eq!(
            queue.get(None).unwrap().bytes,
            vec![i],
            "what was put before end() still comes"
        );
    }
    assert!(matches!(queue.get(None), Err(Error::QueueEnded)));
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_put_and_by_end() {
    let queue = Arc::new(queue(4, 16));
    let _cleanup = Unlink(queue.name().to_owned());
    let reader = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || (queue.get(None).map(|m| m.bytes), queue.get(None).map(|m| m.bytes)))
    };
    thread::sleep(Duration::from_millis(100));
    queue.put(7, b"late", None).unwrap();
    thread::sleep(Duration::from_millis(100));
    queue.end().unwrap();
    let (first, second) = reader.join().unwrap();
    assert_eq!(first.unwrap(), b"late");
    assert!(matches!(second, Err(Error::QueueEnded)));
}

#[test]
fn a_sleeper_arms_the_epoch_and_only_the_first_commit_after_it_wakes() {
    const DATA_EPOCH_AT: usize = 200;
    const DATA_SLEEPERS_AT: usize = 204;
    let queue = Arc::new(queue(8, 16));
    let _cleanup = Unlink(queue.name().to_owned());
    let epoch = |queue: &SharedQueue| queue.segment().word(DATA_EPOCH_AT).unwrap().load(Ordering::SeqCst);
    let sleepers = |queue: &SharedQueue| queue.segment().word(DATA_SLEEPERS_AT).unwrap().load(Ordering::SeqCst);
    // A real sleeper: it arms the epoch (bit 0) before it sleeps.
    queue.set_spin(Duration::ZERO);
    let reader = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || queue.get(None).map(|m| m.bytes))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleepers(&queue) == 0 {
        assert!(Instant::now() < deadline, "the reader never slept");
        thread::sleep(Duration::from_millis(1));
    }
    let armed = epoch(&queue);
    assert_eq!(armed & 1, 1, "a sleeper arms the epoch");
    queue.put(1, b"wake", None).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"wake");
    assert_eq!(
        epoch(&queue),
        (armed & !1) + 2,
        "the wake bumps the epoch and disarms it"
    );

    // A sleepers count left non-zero (a sleeper woken but not yet running): with the epoch
    // disarmed, commits leave it alone (no system call); armed again, the next commit wakes.
    write32(queue.segment(), DATA_SLEEPERS_AT, 1);
    let disarmed = epoch(&queue);
    queue.put(1, b"a", None).unwrap();
    queue.put(1, b"b", None).unwrap();
    assert_eq!(epoch(&queue), disarmed, "no wake while nobody armed the epoch");
    write32(queue.segment(), DATA_EPOCH_AT, disarmed | 1);
    queue.put(1, b"c", None).unwrap();
    assert_eq!(epoch(&queue), disarmed + 2);
    write32(queue.segment(), DATA_SLEEPERS_AT, 0);
}

#[test]
fn closing_the_segment_ends_a_blocked_get() {
    let queue = Arc::new(queue(4, 16));
    let _cleanup = Unlink(queue.name().to_owned());
    let reader = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || queue.get(None))
    };
    thread::sleep(Duration::from_millis(50));
    queue.segment().retire();
    assert!(matches!(reader.join().unwrap(), Err(Error::Closed(_))));
}

#[test]
fn a_panicking_writer_or_reader_frees_its_slot() {
    let queue = queue(2, 16);
    let _cleanup = Unlink(queue.name().to_owned());
    let writing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        queue.put_with(0, 4, None, |_| panic!("writer fails")).unwrap();
    }));
    assert!(writing.is_err());
    queue.put(0, b"next", None).unwrap();
    let reading = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        queue.get_with(None, |_, _| -> () { panic!("reader fails") }).unwrap();
    }));
    assert!(reading.is_err());
    assert_eq!(queue.lost(), 2);
    queue.put(0, b"after", None).unwrap();
    assert_eq!(queue.get(None).unwrap().bytes, b"after");
}

/// Child half of the killed-process tests: opens the queue, then stops inside a put
/// (`QUEUE_CHILD=put`) or a get (`get`) and says so, until it is killed.
#[test]
#[ignore = "child half of a_process_killed_holding_a_slot_loses_one_message"]
fn child_holds_a_slot_until_killed() {
    let (Ok(name), Ok(mode)) = (std::env::var("QUEUE_NAME"), std::env::var("QUEUE_CHILD")) else {
        return;
    };
    let queue = SharedQueue::open(&name).unwrap();
    let stop = || {
        println!("\nHOLDING");
        loop {
            thread::sleep(Duration::from_secs(60));
        }
    };
    if mode == "reserve" {
        let queue = Arc::new(queue);
        let slot = queue.reserve(8, None).unwrap();
        slot.bytes()[0].store(b'r', Ordering::Relaxed);
        stop();
    } else if mode == "borrow" {
        let queue = Arc::new(queue);
        let _slot = queue.borrow(None).unwrap();
        stop();
    } else if mode == "put" {
        queue
            .put_with(3, 8, None, |slot| {
                slot[0].store(b'h', Ordering::Relaxed);
                stop()
            })
            .unwrap();
    } else {
        queue.get_with(None, |_, _| stop()).unwrap();
    }
}

fn run_child_until_holding(name: &str, mode: &str) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_holds_a_slot_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("QUEUE_NAME", name)
        .env("QUEUE_CHILD", mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "HOLDING" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    child
}

#[test]
fn a_process_killed_holding_a_slot_loses_one_message() {
    let queue = queue(2, 16);
    let _cleanup = Unlink(queue.name().to_owned());

    // A producer killed between claiming its slot and committing it.
    let mut child = run_child_until_holding(queue.name(), "put");
    queue.put(0, b"after-writer", None).unwrap();
    // The consumer at the dead writer's position waits while the writer lives...
    assert!(matches!(
        queue.get(Some(Duration::from_millis(120))),
        Err(Error::QueueEmpty)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    // ...then skips its slot: the next message comes, and the half-written one is lost.
    let started = Instant::now();
    assert_eq!(queue.get(Some(Duration::from_secs(5))).unwrap().bytes, b"after-writer");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "recovered in {:?}",
        started.elapsed()
    );
    assert_eq!(queue.lost(), 1);

    // A consumer killed while it reads: a producer that needs the slot frees it.
    queue.put(0, b"taken", None).unwrap();
    let mut child = run_child_until_holding(queue.name(), "get");
    queue.put(0, b"one", None).unwrap();
    assert!(matches!(
        queue.put(0, b"two", Some(Duration::from_millis(120))),
        Err(Error::QueueFull)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    queue.put(0, b"two", Some(Duration::from_secs(5))).unwrap();
    assert_eq!(queue.lost(), 2);
    assert_eq!(queue.get(None).unwrap().bytes, b"one");
    assert_eq!(queue.get(None).unwrap().bytes, b"two");
    assert!(queue.is_empty());
}

fn write32(segment: &Segment, at: usize, value: u32) {
    segment.word(at).unwrap().store(value, Ordering::SeqCst);
}

#[test]
fn hostile_headers_are_refused_at_open() {
    let cases: [(usize, u32, &str); 5] = [
        (0, 0x1234_5678, "magic"),
        (4, 1, "version"),
        (8, 3, "capacity"),
        (8, 1 << 30, "capacity"),
        (12, 4096, "slot size"),
    ];
    for (at, value, what) in cases {
        let queue = queue(4, 64);
        let _cleanup = Unlink(queue.name().to_owned());
        write32(queue.segment(), at, value);
        match SharedQueue::open(queue.name()) {
            Err(e @ Error::QueueCorrupt(_)) => {
                assert!(e.to_string().contains(what), "{what}: {e}");
            }
            other => panic!("{what}: expected QueueCorrupt, got {other:?}"),
        }
    }
    // A max message size that makes the slots overflow the segment.
    let queue = queue(4, 64);
    let _cleanup = Unlink(queue.name().to_owned());
    write32(queue.segment(), 16, 1 << 20);
    write32(queue.segment(), 12, ((16 + (1 << 20)) as u32).div_ceil(64) * 64);
    assert!(matches!(SharedQueue::open(queue.name()), Err(Error::QueueCorrupt(_))));
    // Too short to be a queue at all.
    let tiny = SegmentOptions::new().create(64).unwrap();
    let _tiny = Unlink(tiny.name().to_owned());
    assert!(matches!(SharedQueue::open(tiny.name()), Err(Error::QueueCorrupt(_))));
}

#[test]
fn hostile_slot_words_are_corrupt_errors() {
    let queue = queue(4, 64);
    let _cleanup = Unlink(queue.name().to_owned());
    let segment = queue.segment();
    // A sequence no state explains.
    segment
        .word64(HEADER_BYTES)
        .unwrap()
        .store(0xdead_beef, Ordering::SeqCst);
    assert!(matches!(queue.get(Some(Duration::ZERO)), Err(Error::QueueCorrupt(_))));
    assert!(matches!(
        queue.put(0, b"x", Some(Duration::ZERO)),
        Err(Error::QueueCorrupt(_))
    ));
    segment.word64(HEADER_BYTES).unwrap().store(0, Ordering::SeqCst);

    // A length beyond the maximum: that message is dropped (counted lost), the next comes.
    queue.put(0, b"first", None).unwrap();
    queue.put(0, b"second", None).unwrap();
    write32(segment, HEADER_BYTES + 8, u32::MAX);
    assert!(matches!(queue.get(None), Err(Error::QueueCorrupt(_))));
    assert_eq!(queue.lost(), 1);
    assert_eq!(queue.get(None).unwrap().bytes, b"second");
}

#[test]
fn random_garbage_never_hangs_or_panics() {
    let queue = queue(8, 32);
    let _cleanup = Unlink(queue.name().to_owned());
    let segment = queue.segment();
    let slot_bytes = (SLOT_HEADER_BYTES + 32).div_ceil(64) * 64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = Instant::now();
    for round in 0..2_000 {
        // Garbage in the positions and some slot words, sometimes near-valid values.
        let small = |v: u64| {
            if v.is_multiple_of(3) {
                (v >> 8) as u32 % 24
            } else {
                (v >> 8) as u32
            }
        };
        write32(segment, TAIL_AT, small(next()));
        write32(segment, HEAD_AT, small(next()));
        for _ in 0..3 {
            let slot = (next() % 8) as usize;
            let control = u64::from(small(next()))
                | if next().is_multiple_of(2) {
                    0
                } else {
                    u64::from(std::process::id()) << 32
                };
            segment
                .word64(HEADER_BYTES + slot * slot_bytes)
                .unwrap()
                .store(control, Ordering::SeqCst);
            write32(segment, HEADER_BYTES + slot * slot_bytes + 8, small(next()));
        }
        let _ = queue.put(round as u8, b"payload", Some(Duration::ZERO));
        if let Ok(m) = queue.get(Some(Duration::ZERO)) {
            assert!(m.bytes.len() <= 32);
        }
        let _ = (queue.len(), queue.is_full(), queue.lost());
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

fn load(bytes: &[std::sync::atomic::AtomicU8]) -> Vec<u8> {
    bytes.iter().map(|b| b.load(Ordering::Relaxed)).collect()
}

#[test]
fn reserve_commit_borrow_release_round_trip() {
    let queue = Arc::new(queue(4, 1 << 20));
    let _cleanup = Unlink(queue.name().to_owned());
    let mut slot = queue.reserve(1 << 20, None).unwrap();
    assert_eq!(slot.bytes().len(), 1 << 20);
    for (i, b) in slot.bytes().iter().enumerate() {
        b.store((i % 251) as u8, Ordering::Relaxed);
    }
    // Nothing is visible before the commit.
    assert!(matches!(queue.get(Some(Duration::ZERO)), Err(Error::QueueEmpty)));
    // A commit longer than the reservation changes nothing.
    assert!(matches!(slot.commit(2, (1 << 20) + 1), Err(Error::OutOfRange(_))));
    assert!(slot.is_open());
    slot.commit(2, 1 << 20).unwrap();
    assert!(matches!(slot.commit(2, 1), Err(Error::SlotFinished(_))));
    assert!(matches!(slot.abort(), Err(Error::SlotFinished(_))));
    drop(slot);

    let mut lent = queue.borrow(None).unwrap();
    assert_eq!((lent.tag(), lent.len()), (2, 1 << 20));
    assert!(load(lent.bytes())
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    lent.release().unwrap();
    assert!(matches!(lent.release(), Err(Error::SlotFinished(_))));

    // A shorter commit, then get() sees exactly those bytes.
    let mut slot = queue.reserve(16, None).unwrap();
    for b in &slot.bytes()[..5] {
        b.store(b'x', Ordering::Relaxed);
    }
    slot.commit(1, 5).unwrap();
    assert_eq!(queue.get(None).unwrap().bytes, b"xxxxx");

    // Too large for the queue; an abort puts nothing and loses nothing; a dropped borrow is
    // released; a dropped reservation is aborted.
    assert!(matches!(
        queue.reserve((1 << 20) + 1, None),
        Err(Error::MessageTooLarge { .. })
    ));
    let mut slot = queue.reserve(4, None).unwrap();
    queue.put(0, b"behind", None).unwrap();
    slot.abort().unwrap();
    drop(queue.reserve(4, None).unwrap());
    queue.put(0, b"next", None).unwrap();
    drop(queue.borrow(None).unwrap());
    assert_eq!(queue.get(None).unwrap().bytes, b"next");
    assert_eq!(queue.lost(), 0);
    assert!(queue.is_empty());
    // Laps keep working after all of that.
    for i in 0..20u8 {
        let mut slot = queue.reserve(1, None).unwrap();
        slot.bytes()[0].store(i, Ordering::Relaxed);
        slot.commit(2, 1).unwrap();
        let mut lent = queue.borrow(None).unwrap();
        assert_eq!(load(lent.bytes()), [i]);
        lent.release().unwrap();
    }
}

#[test]
fn a_process_killed_holding_a_reservation_or_a_borrow_loses_one_message() {
    let queue = Arc::new(queue(2, 16));
    let _cleanup = Unlink(queue.name().to_owned());

    let mut child = run_child_until_holding(queue.name(), "reserve");
    queue.put(0, b"after-reserve", None).unwrap();
    assert!(matches!(
        queue.get(Some(Duration::from_millis(120))),
        Err(Error::QueueEmpty)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(queue.get(Some(Duration::from_secs(5))).unwrap().bytes, b"after-reserve");
    assert_eq!(queue.lost(), 1);

    queue.put(0, b"lent", None).unwrap();
    let mut child = run_child_until_holding(queue.name(), "borrow");
    queue.put(0, b"one", None).unwrap();
    assert!(matches!(
        queue.put(0, b"two", Some(Duration::from_millis(120))),
        Err(Error::QueueFull)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    queue.put(0, b"two", Some(Duration::from_secs(5))).unwrap();
    assert_eq!(queue.lost(), 2);
    assert_eq!(queue.get(None).unwrap().bytes, b"one");
    assert_eq!(queue.get(None).unwrap().bytes, b"two");
}

#[test]
fn a_hostile_length_is_never_lent() {
    let queue = Arc::new(queue(4, 64));
    let _cleanup = Unlink(queue.name().to_owned());
    queue.put(0, b"first", None).unwrap();
    queue.put(0, b"second", None).unwrap();
    write32(queue.segment(), HEADER_BYTES + 8, 65);
    assert!(matches!(queue.borrow(None), Err(Error::QueueCorrupt(_))));
    assert_eq!(queue.lost(), 1);
    let lent = queue.borrow(None).unwrap();
    assert_eq!(load(lent.bytes()), b"second");
    assert!(lent.payload_offset() + lent.len() <= queue.segment().len());
}
