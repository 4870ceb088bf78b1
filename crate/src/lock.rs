//! A robust mutex that lives in one 32-bit word of a segment, usable from any process (and
//! any thread) that maps it.
//!
//! The word: `0` when free; otherwise the holder's process id in bits 0–30, with bit 31 set
//! when someone may be asleep waiting for it. So:
//! - uncontended lock and unlock are one compare-and-swap / swap each, no system call;
//! - a waiter sleeps on the word (`futex` on Linux) and `unlock` wakes one only if bit 31 says
//!   someone sleeps;
//! - a holder that died is recognised by its pid (`kill(pid, 0)` says there is no such process,
//!   or the word holds [`ABANDONED`]): the next locker takes the lock over in one CAS and is
//!   told [`Locked::OwnerDied`], so it can repair what the dead holder left half-written.
//!
//! Ownership belongs to a [`ShmLock`] handle: the process id is what other processes see,
//! the handle is what stops this process unlocking a lock it did not take. Dropping a handle
//! that holds the lock marks it [`ABANDONED`], as if its process had died (a worker thread
//! that ends while holding it, for example).
//!
//! Limits: a process id reused by a new process before anyone noticed the death keeps the
//! lock "held" (timeouts are the way out); processes in different pid namespaces (containers)
//! sharing a segment cannot check each other's liveness and must not rely on robustness.
//!
//! ```
//! # fn main() -> Result<(), shmkit_core::Error> {
//! use std::sync::Arc;
//! use shmkit_core::{Segment, lock::{Locked, ShmLock}};
//!
//! let segment = Arc::new(Segment::create(4096)?);
//! let lock = ShmLock::create(Arc::clone(&segment), 0)?;
//! assert_eq!(lock.lock(None)?, Locked::Acquired);
//! // ... touch the data the lock guards ...
//! lock.unlock()?;
//! segment.unlink()?;
//! # Ok(())
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::futex::{self, Wake, WAIT_SLICE};
use crate::process::{self, current_pid};
use crate::waiter::{AsyncWait, Sleep, Step};
use crate::{Closed, Error, Result, Segment};

/// Bit 31: a waiter may be asleep on the word; `unlock` must wake one.
const WAITERS: u32 = 1 << 31;
/// The owner field of a lock whose holder went away without unlocking (its handle was
/// dropped while its process lives on).
pub const ABANDONED: u32 = WAITERS - 1;
/// Compare-and-swap attempts before a contended `lock` goes to sleep.
const SPINS: u32 = 100;

/// Bytes a lock takes in a segment.
pub const LOCK_BYTES: usize = 4;

/// What `lock`/`try_lock` achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// The lock is now held by this handle.
    Acquired,
    /// The lock is now held by this handle, taken over from a holder that died: the data it
    /// guards may be half-written.
    OwnerDied,
    /// Someone else holds it (`try_lock`) or the timeout passed (`lock`).
    NotAcquired,
}

/// This handle's relation to the lock, in [`ShmLock::handle_state`].
pub const IDLE: u32 = 0;
/// The handle is taking the lock (a `lock` in progress, maybe on another thread).
pub const ACQUIRING: u32 = 1;
/// The handle holds the lock.
pub const HOLDING: u32 = 2;
/// The handle was closed: every use but `is_held` fails with [`Error::Closed`].
pub const CLOSED: u32 = 3;

/// A handle on a robust lock in a segment; see the module docs.
#[derive(Debug)]
pub struct ShmLock {
    segment: Arc<Segment>,
    offset: usize,
    me: u32,
    state: AtomicU32,
}

impl ShmLock {
    /// Makes a new, free lock at `offset` (a multiple of 4): writes 0 to the word. Do this
    /// once, before other processes [`ShmLock::open`] it.
    ///
    /// # Errors
    /// As [`Segment::word`]; [`Error::Closed`] after [`Segment::retire`].
    pub fn create(segment: Arc<Segment>, offset: usize) -> Result<ShmLock> {
        let lock = ShmLock::open(segment, offset)?;
        lock.word()?.store(0, Ordering::SeqCst);
        Ok(lock)
    }

    /// A handle on the lock that some process made at `offset` with [`ShmLock::create`]
    /// (a zero-filled word is a free lock too).
    ///
    /// # Errors
    /// As [`Segment::word`]; [`Error::Closed`] after [`Segment::retire`].
    pub fn open(segment: Arc<Segment>, offset: usize) -> Result<ShmLock> {
        segment.live_word(offset)?;
        let me = current_pid();
        if me == 0 || me >= ABANDONED {
            return Err(Error::OutOfRange(format!("process id {me} does not fit a lock word")));
        }
        Ok(ShmLock {
            segment,
            offset,
            me,
            state: AtomicU32::new(IDLE),
        })
    }

    /// The segment the lock lives in.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The lock's byte offset in its segment.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether this handle holds the lock.
    pub fn is_held(&self) -> bool {
        self.state.load(Ordering::SeqCst) == HOLDING
    }

    /// This handle's state word ([`IDLE`], [`ACQUIRING`], [`HOLDING`]), for a binding that runs
    /// the uncontended path itself, where a call into Rust would cost more than the lock
    /// (the Node binding does, from JS). That path must follow the protocol exactly:
    /// - lock: CAS the state `IDLE` → `ACQUIRING`; CAS the lock word `0` → [`ShmLock::pid`];
    ///   on success store `HOLDING`, else store `IDLE` back and call [`ShmLock::lock`];
    /// - unlock: CAS the state `HOLDING` → `IDLE`, else call [`ShmLock::unlock`]; swap the word
    ///   to `0`; if the old word had bit 31 set, call [`ShmLock::wake_waiter`].
    pub fn handle_state(&self) -> &AtomicU32 {
        &self.state
    }

    /// The holder id this handle writes into the lock word: this process's id.
    pub fn pid(&self) -> u32 {
        self.me
    }

    /// `futex(FUTEX_WAKE, 1)`—wakes one waiter; the second half of an unlock done outside Rust
    /// (see [`ShmLock::handle_state`]). Harmless when nobody waits.
    ///
    /// # Errors
    /// As [`Segment::word`], or the OS's.
    pub fn wake_waiter(&self) -> Result<()> {
        let word = self.segment.word(self.offset)?;
        futex::wake(word, 1).map_err(|e| Error::os("unlock", self.segment.name(), e))?;
        Ok(())
    }

    /// The process id the word names as holder (0: free; [`ABANDONED`]: its holder's handle
    /// was dropped), for diagnostics.
    ///
    /// # Errors
    /// As [`Segment::word`].
    pub fn holder(&self) -> Result<u32> {
        Ok(self.segment.word(self.offset)?.load(Ordering::SeqCst) & !WAITERS)
    }

    fn word(&self) -> Result<&AtomicU32> {
        self.segment.live_word(self.offset)
    }

    /// Takes the lock, sleeping while another process or thread holds it, for at most
    /// `timeout` (`None`: as long as it takes). A dead holder is noticed within 50 ms.
    ///
    /// # Errors
    /// [`Error::AlreadyHeld`] if this handle holds (or is acquiring) it already;
    /// [`Error::Closed`] if the segment is retired, also while waiting.
    pub fn lock(&self, timeout: Option<Duration>) -> Result<Locked> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.acquire(|| deadline.map(|d| d.saturating_duration_since(Instant::now())))
    }

    /// Takes the lock if it is free or its holder died; never sleeps.
    ///
    /// # Errors
    /// As [`ShmLock::lock`].
    pub fn try_lock(&self) -> Result<Locked> {
        self.acquire(|| Some(Duration::ZERO))
    }

    fn acquire(&self, remaining: impl Fn() -> Option<Duration>) -> Result<Locked> {
        self.begin()?;
        let outcome = self.word().and_then(|word| self.take(word, remaining));
        self.settle(outcome)
    }

    /// The handle's state `IDLE` → `ACQUIRING`, which a lock attempt holds until [`Self::settle`].
    fn begin(&self) -> Result<()> {
        match self
            .state
            .compare_exchange(IDLE, ACQUIRING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Ok(()),
            Err(CLOSED) => Err(self.closed()),
            Err(_) => Err(Error::AlreadyHeld),
        }
    }

    /// Ends a lock attempt: the handle's state `ACQUIRING` → `HOLDING` or `IDLE`.
    fn settle(&self, outcome: Result<Locked>) -> Result<Locked> {
        let taken = matches!(outcome, Ok(Locked::Acquired | Locked::OwnerDied));
        let state = if taken { HOLDING } else { IDLE };
        if self
            .state
            .compare_exchange(ACQUIRING, state, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // Closed on another thread meanwhile: let go of what we just took.
            if taken {
                self.release_word(0)?;
            }
            return Err(self.closed());
        }
        outcome
    }

    /// A short spin of compare-and-swaps: `Some` if it took the lock, `None` once contended.
    fn spin(&self, word: &AtomicU32) -> Option<Locked> {
        for _ in 0..SPINS {
            match word.compare_exchange_weak(0, self.me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(Locked::Acquired),
                Err(current) if current != 0 && current & WAITERS != 0 => break,
                Err(_) => std::hint::spin_loop(),
            }
        }
        None
    }

    fn take(&self, word: &AtomicU32, remaining: impl Fn() -> Option<Duration>) -> Result<Locked> {
        if let Some(locked) = self.spin(word) {
            return Ok(locked);
        }
        // Contended. From here on take the lock with WAITERS set: others may still sleep.
        let mut check_owner = true;
        loop {
            let (expected, slice) = match self.attempt(word, check_owner, &remaining) {
                Attempt::Done(locked) => return Ok(locked),
                Attempt::Sleep { expected, slice } => (expected, slice),
            };
            let woke = futex::wait(word, expected, slice).map_err(|e| Error::os("lock", self.segment.name(), e))?;
            self.segment.live()?;
            // Only a full slice without a wake-up makes the holder's liveness worth a syscall.
            check_owner = woke == Wake::TimedOut;
        }
    }

    /// One contended attempt, never sleeping: takes the lock if it is free or its holder died
    /// (checked when `check_owner`), else says what to sleep on (bit 31 set first).
    fn attempt(&self, word: &AtomicU32, mut check_owner: bool, remaining: &impl Fn() -> Option<Duration>) -> Attempt {
        let me = self.me;
        loop {
            let current = word.load(Ordering::Relaxed);
            if current == 0 {
                if word
                    .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Attempt::Done(Locked::Acquired);
                }
                continue;
            }
            let owner = current & !WAITERS;
            if owner == ABANDONED || (check_owner && !process::alive(owner)) {
                if word
                    .compare_exchange(current, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Attempt::Done(Locked::OwnerDied);
                }
                continue;
            }
            let slice = match remaining() {
                Some(left) if left.is_zero() => return Attempt::Done(Locked::NotAcquired),
                Some(left) => left.min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            if current & WAITERS == 0
                && word
                    .compare_exchange(current, current | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                check_owner = true;
                continue;
            }
            return Attempt::Sleep {
                expected: current | WAITERS,
                slice,
            };
        }
    }

    /// Releases the lock and wakes one waiter if any sleeps. Works after the segment was
    /// retired too, so a holder can always let go.
    ///
    /// # Errors
    /// [`Error::NotHeld`] if this handle does not hold the lock.
    pub fn unlock(&self) -> Result<()> {
        self.release(0)
    }

    /// Unlocks if this handle holds the lock, then refuses every later use with
    /// [`Error::Closed`] (a `lock` in progress on another thread gives the lock back and fails).
    ///
    /// # Errors
    /// As [`ShmLock::unlock`]'s OS errors.
    pub fn close(&self) -> Result<()> {
        match self.state.swap(CLOSED, Ordering::SeqCst) {
            HOLDING => self.release_word(0),
            _ => Ok(()),
        }
    }

    fn closed(&self) -> Error {
        Error::Closed(Closed::Lock(self.offset))
    }

    fn release(&self, leave: u32) -> Result<()> {
        match self
            .state
            .compare_exchange(HOLDING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => self.release_word(leave),
            Err(CLOSED) => Err(self.closed()),
            Err(_) => Err(Error::NotHeld),
        }
    }

    fn release_word(&self, leave: u32) -> Result<()> {
        let word = self.segment.word(self.offset)?;
        let previous = word.swap(leave, Ordering::Release);
        if previous & WAITERS != 0 {
            self.wake_waiter()?;
        }
        Ok(())
    }
}

impl Drop for ShmLock {
    /// A handle dropped while holding the lock leaves it [`ABANDONED`]: the next locker
    /// takes it over and is told the owner died, as if this process had.
    fn drop(&mut self) {
        // WAITERS set, so the release wakes anyone asleep, and they see the abandonment.
        let _ = self.release(ABANDONED | WAITERS);
    }
}

/// One contended lock attempt's result.
enum Attempt {
    Done(Locked),
    /// Sleep while the word holds `expected`, at most `slice`.
    Sleep {
        expected: u32,
        slice: Duration,
    },
}

/// [`ShmLock::lock`] as an [`AsyncWait`], for [`crate::waiter::submit`]: the same protocol
/// (spin, set bit 31, sleep on the word, check the holder's liveness after a quiet 50 ms),
/// with the sleeping left to a shared waiter thread.
#[derive(Debug)]
pub struct LockWait {
    lock: Arc<ShmLock>,
    deadline: Option<Instant>,
    /// Whether the handle's state is `ACQUIRING` on this wait's behalf.
    acquiring: bool,
    /// Whether the first step (with its spin) ran.
    started: bool,
}

impl LockWait {
    /// A lock attempt of `lock` lasting at most `timeout` (`None`: as long as it takes).
    pub fn new(lock: Arc<ShmLock>, timeout: Option<Duration>) -> LockWait {
        LockWait {
            lock,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            acquiring: false,
            started: false,
        }
    }

    fn attempt(&mut self, woken: bool) -> Result<Step<Locked>> {
        let lock = &self.lock;
        let word = lock.word()?;
        let check_owner = if self.started {
            // As the blocking lock: a step with no wake (a quiet slice) checks the holder.
            !woken
        } else {
            self.started = true;
            if let Some(locked) = lock.spin(word) {
                return Ok(Step::Done(locked));
            }
            true
        };
        let deadline = self.deadline;
        let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match lock.attempt(word, check_owner, &remaining) {
            Attempt::Done(locked) => Ok(Step::Done(locked)),
            Attempt::Sleep { expected, .. } => {
                Sleep::new(Arc::clone(&lock.segment), lock.offset, expected, deadline).map(Step::Sleep)
            }
        }
    }
}

impl AsyncWait for LockWait {
    type Output = Locked;

    fn step(&mut self, woken: bool) -> Result<Step<Locked>> {
        if !self.acquiring {
            self.lock.begin()?;
            self.acquiring = true;
        }
        let outcome = match self.attempt(woken) {
            Ok(Step::Sleep(sleep)) => return Ok(Step::Sleep(sleep)),
            Ok(Step::Done(locked)) => Ok(locked),
            Err(e) => Err(e),
        };
        self.acquiring = false;
        self.lock.settle(outcome).map(Step::Done)
    }
}

impl Drop for LockWait {
    /// An attempt dropped midway gives the handle back its `IDLE` state.
    fn drop(&mut self) {
        if self.acquiring {
            let _ = self.lock.settle(Ok(Locked::NotAcquired));
        }
    }
}
