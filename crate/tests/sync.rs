//! wait/notify and the robust lock, across threads that each map the segment separately (so
//! the OS sees different addresses, as in different processes). The Node suite repeats the
//! important cases across real processes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use shmkit_core::lock::{Locked, ShmLock, ABANDONED};
use shmkit_core::{Error, Segment, Waited};

struct Scratch(Arc<Segment>);

impl Scratch {
    fn new() -> Scratch {
        Scratch(Arc::new(Segment::create(4096).unwrap()))
    }
    fn attach(&self) -> Arc<Segment> {
        Arc::new(Segment::open(self.0.name()).unwrap())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.0.unlink();
    }
}

#[test]
fn wait_reports_not_equal_and_timeout() {
    let s = Scratch::new();
    assert_eq!(s.0.wait(0, 1, Some(Duration::ZERO)).unwrap(), Waited::NotEqual);
    let started = Instant::now();
    assert_eq!(
        s.0.wait(0, 0, Some(Duration::from_millis(120))).unwrap(),
        Waited::TimedOut
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
}

#[test]
fn notify_wakes_a_waiter_on_another_mapping() {
    let s = Scratch::new();
    let other = s.attach();
    let waiter = thread::spawn(move || loop {
        // On Windows the word changes (see below), possibly before this thread waits: then
        // the wait reports NotEqual, and it waits again on the value it sees now.
        let seen = other.word(8).unwrap().load(Ordering::SeqCst);
        match other.wait(8, seen, Some(Duration::from_secs(10))).unwrap() {
            Waited::NotEqual => continue,
            outcome => return outcome,
        }
    });
    // Notify until the waiter sleeps in the kernel and is woken (notify reports it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut woken = 0;
    while woken == 0 && !waiter.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
        if cfg!(windows) {
            // Windows waiters poll the word: a change is their wake-up.
            s.0.word(8).unwrap().fetch_add(1, Ordering::SeqCst);
        }
        woken = s.0.notify(8, u32::MAX).unwrap();
    }
    assert_eq!(waiter.join().unwrap(), Waited::Ok);
    if cfg!(target_os = "linux") {
        assert_eq!(woken, 1);
    }
}

#[test]
fn bad_offsets_are_refused() {
    let s = Scratch::new();
    assert!(matches!(s.0.wait(2, 0, None), Err(Error::InvalidArgument(_))));
    assert!(matches!(s.0.notify(4096, 1), Err(Error::OutOfRange(_))));
    assert!(matches!(s.0.word(4094), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        ShmLock::create(Arc::clone(&s.0), 4093),
        Err(Error::InvalidArgument(_))
    ));
    assert!(s.0.word(4092).is_ok());
}

#[test]
fn retire_ends_a_wait_in_progress() {
    let s = Scratch::new();
    let segment = Arc::clone(&s.0);
    let waiter = thread::spawn(move || segment.wait(0, 0, None));
    thread::sleep(Duration::from_millis(30));
    let retired_at = Instant::now();
    s.0.retire();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed(_))));
    assert!(retired_at.elapsed() < Duration::from_millis(500));
    assert!(matches!(s.0.notify(0, 1), Err(Error::Closed(_))));
}

#[test]
fn lock_counts_exactly_across_threads() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    let s = Scratch::new();
    ShmLock::create(Arc::clone(&s.0), 0).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let segment = s.attach();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let lock = ShmLock::open(Arc::clone(&segment), 0).unwrap();
                barrier.wait();
                for _ in 0..ROUNDS {
                    assert_eq!(lock.lock(None).unwrap(), Locked::Acquired);
                    // A plain read-modify-write, protected only by the lock.
                    let mut counter = [0u8; 8];
                    segment.read_at(8, &mut counter);
                    let next = u64::from_le_bytes(counter) + 1;
                    segment.write_at(8, &next.to_le_bytes());
                    lock.unlock().unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let mut counter = [0u8; 8];
    s.0.read_at(8, &mut counter);
    assert_eq!(u64::from_le_bytes(counter), (THREADS * ROUNDS) as u64);
}

#[test]
fn lock_misuse_is_refused() {
    let s = Scratch::new();
    let lock = ShmLock::create(Arc::clone(&s.0), 0).unwrap();
    assert!(matches!(lock.unlock(), Err(Error::NotHeld)));
    assert_eq!(lock.try_lock().unwrap(), Locked::Acquired);
    assert!(matches!(lock.lock(None), Err(Error::AlreadyHeld)));
    let other = ShmLock::open(s.attach(), 0).unwrap();
    assert_eq!(other.try_lock().unwrap(), Locked::NotAcquired);
    let started = Instant::now();
    assert_eq!(
        other.lock(Some(Duration::from_millis(80))).unwrap(),
        Locked::NotAcquired
    );
    assert!(started.elapsed() >= Duration::from_millis(80));
    assert_eq!(lock.holder().unwrap(), std::process::id());
    lock.unlock().unwrap();
    assert_eq!(lock.holder().unwrap(), 0);
}

#[test]
fn a_dead_holder_is_taken_over() {
    let s = Scratch::new();
    // Any program that exits at once; Windows has no `true`.
    #[cfg(unix)]
    let mut child = std::process::Command::new("true").spawn().unwrap();
    #[cfg(windows)]
    let mut child = std::process::Command::new("cmd").args(["/C", "exit"]).spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    s.0.word(0).unwrap().store(dead, Ordering::SeqCst);
    let lock = ShmLock::open(Arc::clone(&s.0), 0).unwrap();
    assert_eq!(lock.lock(Some(Duration::from_secs(5))).unwrap(), Locked::OwnerDied);
    lock.unlock().unwrap();
    assert_eq!(lock.lock(None).unwrap(), Locked::Acquired);
    lock.unlock().unwrap();
}

#[test]
fn a_dropped_holder_abandons_and_wakes_the_waiter() {
    let s = Scratch::new();
    let holder = ShmLock::create(Arc::clone(&s.0), 0).unwrap();
    assert_eq!(holder.lock(None).unwrap(), Locked::Acquired);
    let segment = s.attach();
    let waiter = thread::spawn(move || {
        let lock = ShmLock::open(segment, 0).unwrap();
        let outcome = lock.lock(Some(Duration::from_secs(10))).unwrap();
        lock.unlock().unwrap();
        outcome
    });
    thread::sleep(Duration::from_millis(30));
    drop(holder);
    assert_eq!(waiter.join().unwrap(), Locked::OwnerDied);
    assert_eq!(s.0.word(0).unwrap().load(Ordering::SeqCst) & ABANDONED, 0);
}

#[test]
fn retire_ends_a_lock_wait() {
    let s = Scratch::new();
    let holder = ShmLock::create(Arc::clone(&s.0), 0).unwrap();
    holder.lock(None).unwrap();
    let waiter_segment = s.attach();
    let waiter_handle = Arc::clone(&waiter_segment);
    let waiter = thread::spawn(move || ShmLock::open(waiter_handle, 0).unwrap().lock(None));
    thread::sleep(Duration::from_millis(30));
    waiter_segment.retire();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed(_))));
    holder.unlock().unwrap();
}

#[test]
fn close_unlocks_and_refuses_later_use() {
    let s = Scratch::new();
    let lock = ShmLock::create(Arc::clone(&s.0), 0).unwrap();
    lock.lock(None).unwrap();
    lock.close().unwrap();
    assert!(!lock.is_held());
    assert_eq!(lock.holder().unwrap(), 0);
    assert!(matches!(lock.lock(None), Err(Error::Closed(_))));
    assert!(matches!(lock.unlock(), Err(Error::Closed(_))));
    lock.close().unwrap();
}
