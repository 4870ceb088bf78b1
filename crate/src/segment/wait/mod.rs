//! Sleeping on a 32-bit word of shared memory until another process changes it, and waking
//! such sleepers: the one primitive that [`super::Segment::wait`] and [`crate::lock`] build on.
//!
//! Each backend offers the same four functions, with Linux semantics:
//! - `wait(word, expected, timeout)` sleeps while `*word == expected`, for at most `timeout`
//!   (always finite: callers wait in slices so that they can notice a closed segment or a
//!   dead lock holder); it may return early for no reason, so callers re-check the word;
//! - `wake(word, count)` wakes up to `count` sleepers in any process, returning how many it
//!   woke where the OS says so;
//! - `process_alive(pid)` tells whether a process still runs (for the robust lock);
//! - `current_pid()`.
//!
//! Backends: Linux `futex` (shared, not `FUTEX_PRIVATE_FLAG`), macOS `os_sync_wait_on_address`
//! with the shared flag (14.4+) or `__ulock_wait` with the shared operation before that,
//! Windows a bounded back-off poll (`WaitOnAddress` only wakes within one process).
#![allow(unsafe_code)]

#[cfg_attr(any(target_os = "linux", target_os = "android"), path = "linux.rs")]
#[cfg_attr(target_vendor = "apple", path = "macos.rs")]
#[cfg_attr(windows, path = "windows.rs")]
mod os;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub(crate) use os::{process_alive, wait, wake};

/// How one OS wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken by a `wake`, or by the word changing (which is what callers wait for).
    Woken,
    /// The word did not hold `expected` when the wait began.
    Mismatch,
    /// The timeout ran out, or a signal or spurious wake-up ended the wait.
    TimedOut,
}

/// This process's id, as stored in a lock word.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// A wait with no kernel help: spins briefly, then sleeps in growing steps (up to 1 ms)
/// until the word changes or `timeout` passes. Used where the OS cannot sleep on shared
/// memory across processes; `wake` is then a no-op and a change of the word is the wake-up.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn poll(word: &AtomicU32, expected: u32, timeout: Duration) -> Wake {
    const SPINS: u32 = 64;
    const MAX_NAP: Duration = Duration::from_millis(1);
    if word.load(Ordering::SeqCst) != expected {
        return Wake::Mismatch;
    }
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(5);
    for round in 0.. {
        if word.load(Ordering::SeqCst) != expected {
            return Wake::Woken;
        }
        let now = Instant::now();
        if now >= deadline {
            return Wake::TimedOut;
        }
        if round < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(MAX_NAP);
        }
    }
    unreachable!("the loop only ends by returning")
}
