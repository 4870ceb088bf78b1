//! `shmkit_core::waiter`: many async waits on few threads, with the outcomes of the blocking
//! waits they stand for. Real segments in /dev/shm, real threads.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmkit_core::lock::{LockWait, Locked, ShmLock};
use shmkit_core::waiter::{self, AsyncWait, Outcome, Panicked, Step, WordWait};
use shmkit_core::{Error, Segment, Waited};

/// A segment unlinked when the test ends, however it ends.
struct Scratch(Arc<Segment>);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.0.unlink();
    }
}

fn scratch(size: usize) -> Scratch {
    Scratch(Arc::new(Segment::create(size).expect("create")))
}

fn submit<W: AsyncWait>(wait: W) -> Receiver<Outcome<W::Output>> {
    let (tx, rx) = mpsc::channel();
    waiter::submit(wait, move |outcome| {
        let _ = tx.send(outcome);
    });
    rx
}

fn outcome<T>(rx: &Receiver<Outcome<T>>) -> Outcome<T> {
    rx.recv_timeout(Duration::from_secs(10)).expect("the wait settled")
}

#[test]
fn word_waits_answer_like_segment_wait() {
    let shm = scratch(4096);
    let segment = &shm.0;
    segment.word(4).unwrap().store(7, Ordering::SeqCst);
    let not_equal = submit(WordWait::new(Arc::clone(segment), 4, 0, None).unwrap());
    assert!(matches!(outcome(&not_equal), Ok(Ok(Waited::NotEqual))));
    let started = Instant::now();
    let timed_out = submit(WordWait::new(Arc::clone(segment), 4, 7, Some(Duration::from_millis(30))).unwrap());
    assert!(matches!(outcome(&timed_out), Ok(Ok(Waited::TimedOut))));
    assert!(started.elapsed() >= Duration::from_millis(30));
    // A notify that leaves the word unchanged still wakes it where the waiter threads sleep in
    // the OS; where they poll the word (Windows, macOS, Linux without futex_waitv: before 5.16,
    // under valgrind, under qemu-user), only a change wakes them (README).
    let woken = submit(WordWait::new(Arc::clone(segment), 8, 0, None).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    if !waiter::sleeps_in_os() {
        segment.word(8).unwrap().store(1, Ordering::SeqCst);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut settled = woken.try_recv();
    while settled.is_err() && Instant::now() < deadline {
        segment.notify(8, u32::MAX).unwrap();
        settled = woken
            .recv_timeout(Duration::from_millis(5))
            .map_err(|_| mpsc::TryRecvError::Empty);
    }
    assert!(matches!(settled.expect("woken"), Ok(Ok(Waited::Ok))));
    assert!(matches!(
        WordWait::new(Arc::clone(segment), 4094, 0, None),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn thousands_of_waits_on_hundreds_of_words_share_few_threads_and_end_on_retire() {
    let shm = scratch(4096);
    let segment = &shm.0;
    let (tx, rx) = mpsc::channel();
    for i in 0..3000usize {
        let tx = tx.clone();
        let wait = WordWait::new(Arc::clone(segment), (i % 600) * 4, 0, None).unwrap();
        waiter::submit(wait, move |outcome| {
            let _ = tx.send(outcome);
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    let threads = waiter::thread_count();
    assert!(
        (1..=waiter::MAX_GROUPS + 1).contains(&threads),
        "{threads} waiter threads"
    );
    // Half the words move: their waits end with Ok; then the segment is retired: the rest
    // end with Closed.
    for word in 0..300 {
        segment.word(word * 4).unwrap().store(1, Ordering::SeqCst);
        segment.notify(word * 4, u32::MAX).unwrap();
    }
    let woken = (0..1500).filter(|_| matches!(outcome(&rx), Ok(Ok(Waited::Ok)))).count();
    assert_eq!(woken, 1500);
    segment.retire();
    let closed = (0..1500)
        .filter(|_| matches!(outcome(&rx), Ok(Err(Error::Closed(_)))))
        .count();
    assert_eq!(closed, 1500);
}

#[test]
fn lock_waits_take_the_lock_in_turn_and_see_an_abandoned_holder() {
    let shm = scratch(4096);
    let segment = &shm.0;
    let holder = ShmLock::create(Arc::clone(segment), 0).unwrap();
    assert_eq!(holder.lock(None).unwrap(), Locked::Acquired);
    let handles: Vec<Arc<ShmLock>> = (0..8)
        .map(|_| Arc::new(ShmLock::open(Arc::clone(segment), 0).unwrap()))
        .collect();
    let waits: Vec<_> = handles
        .iter()
        .map(|lock| submit(LockWait::new(Arc::clone(lock), Some(Duration::from_secs(10)))))
        .collect();
    // One more with a short timeout times out while the lock is held.
    let impatient = Arc::new(ShmLock::open(Arc::clone(segment), 0).unwrap());
    let timed_out = submit(LockWait::new(Arc::clone(&impatient), Some(Duration::from_millis(20))));
    assert!(matches!(outcome(&timed_out), Ok(Ok(Locked::NotAcquired))));
    assert!(!impatient.is_held());
    holder.unlock().unwrap();
    let mut remaining: Vec<usize> = (0..handles.len()).collect();
    while !remaining.is_empty() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let taken = loop {
            if let Some(at) = remaining.iter().position(|&i| handles[i].is_held()) {
                break remaining.remove(at);
            }
            assert!(Instant::now() < deadline, "a lock wait took the lock");
            std::thread::yield_now();
        };
        assert!(matches!(outcome(&waits[taken]), Ok(Ok(Locked::Acquired))));
        handles[taken].unlock().unwrap();
    }
    // A holder dropped while holding leaves it abandoned: the next async locker is told.
    let dropped = ShmLock::open(Arc::clone(segment), 0).unwrap();
    assert_eq!(dropped.lock(None).unwrap(), Locked::Acquired);
    let next = submit(LockWait::new(Arc::clone(&handles[0]), None));
    std::thread::sleep(Duration::from_millis(20));
    drop(dropped);
    assert!(matches!(outcome(&next), Ok(Ok(Locked::OwnerDied))));
    handles[0].unlock().unwrap();
}

#[test]
fn a_panicking_step_is_reported_not_propagated() {
    struct Panics(Arc<Segment>, bool);
    impl AsyncWait for Panics {
        type Output = ();
        fn step(&mut self, _woken: bool) -> shmkit_core::Result<Step<()>> {
            if self.1 {
                panic!("second step");
            }
            self.1 = true;
            Ok(Step::Sleep(waiter::Sleep::new(Arc::clone(&self.0), 0, 0, None)?))
        }
    }
    let shm = scratch(4096);
    let segment = &shm.0;
    let rx = submit(Panics(Arc::clone(segment), false));
    segment.word(0).unwrap().store(1, Ordering::SeqCst);
    segment.notify(0, 1).unwrap();
    assert!(matches!(outcome(&rx), Err(Panicked(message)) if message == "second step"));
}
