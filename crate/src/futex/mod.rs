//! Futex-style waiting on a 32-bit word of shared memory, across processes: sleep while the
//! word holds an expected value, until another process or thread changes it and wakes the
//! sleepers. The one primitive that [`crate::Segment::wait`] and [`crate::lock`] build on.
//!
//! The contract is [`Backend`]'s, with Linux semantics; each OS has one struct per way it can
//! sleep on shared memory (the shape of parking_lot_core's `thread_parker`), and the choice
//! among them is made once, by [`backend`]:
//! - Linux: [`linux::Futex`], `futex(2)` without `FUTEX_PRIVATE_FLAG`;
//! - macOS: `os_sync_wait_on_address` with the shared flag (14.4+), else `__ulock_wait` with
//!   the shared operation, else [`poll::Poll`];
//! - Windows: [`poll::Poll`] (`WaitOnAddress` only wakes within one process).

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(target_vendor = "apple")]
mod macos;
mod poll;

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// The longest a wait sleeps in the OS before its caller looks again at the world: this
/// bounds how long a waiter takes to notice a retired segment (and a lock holder's death).
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

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

/// One way to sleep on a word of shared memory, with Linux semantics.
pub(crate) trait Backend: Sync {
    /// Sleeps while `*word == expected`, for at most `timeout` (always finite: callers wait in
    /// slices of at most [`WAIT_SLICE`] so that they notice a closed segment or a dead lock
    /// holder). It may return early for no reason, so callers check the word again.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake>;

    /// Wakes up to `count` sleepers on `word` in any process, returning how many it woke where
    /// the OS says so (else 1 if it may have woken any, 0 if none slept or it cannot tell).
    fn wake(&self, word: &AtomicU32, count: u32) -> io::Result<usize>;

    /// How many words one [`Backend::wait_any`] may take; beyond it, callers split the words
    /// among several sleepers. `usize::MAX` when the backend polls and has no limit.
    fn wait_any_limit(&self) -> usize {
        usize::MAX
    }

    /// Sleeps while every `words[i].0` holds `words[i].1`, for at most `timeout`: until a
    /// [`Backend::wake`] of any of them or a change of any. Returns the index of a word that was
    /// woken when the OS says which (`None`: timed out, a word differed, or it cannot tell), so
    /// callers look at every word's value again. May return early for no reason.
    /// The default polls the words with a bounded back-off, as [`poll::Poll`] does.
    fn wait_any(&self, words: &[(&AtomicU32, u32)], timeout: Duration) -> io::Result<Option<usize>> {
        poll::wait_any(words, timeout)
    }

    /// Whether [`Backend::wait_any`] sleeps in the OS, so that a [`Backend::wake`] that leaves
    /// every word unchanged still ends it; `false` where it polls the words, which sees only
    /// changes.
    fn wait_any_sleeps(&self) -> bool {
        false
    }
}

/// This OS's backend, chosen once.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn backend() -> &'static dyn Backend {
    &linux::Futex
}

/// This OS's backend, chosen once.
#[cfg(target_vendor = "apple")]
fn backend() -> &'static dyn Backend {
    macos::backend()
}

/// This OS's backend, chosen once.
#[cfg(windows)]
fn backend() -> &'static dyn Backend {
    &poll::Poll
}

/// [`Backend::wait`] on this OS.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
    backend().wait(word, expected, timeout)
}

/// [`Backend::wait_any`] on this OS.
pub(crate) fn wait_any(words: &[(&AtomicU32, u32)], timeout: Duration) -> io::Result<Option<usize>> {
    backend().wait_any(words, timeout)
}

/// [`Backend::wait_any_limit`] on this OS.
pub(crate) fn wait_any_limit() -> usize {
    backend().wait_any_limit()
}

/// [`Backend::wait_any_sleeps`] on this OS.
pub(crate) fn wait_any_sleeps() -> bool {
    backend().wait_any_sleeps()
}

/// [`Backend::wait_any`] by polling, on any OS: for words beyond what the OS can sleep on.
pub(crate) fn poll_any(words: &[(&AtomicU32, u32)], timeout: Duration) -> io::Result<Option<usize>> {
    poll::wait_any(words, timeout)
}

/// [`Backend::wake`] on this OS.
pub(crate) fn wake(word: &AtomicU32, count: u32) -> io::Result<usize> {
    backend().wake(word, count)
}
