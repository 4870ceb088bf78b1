//! A wait with no kernel help, where the OS cannot sleep on shared memory across processes:
//! the waiter spins briefly, then sleeps in growing steps (up to 1 ms) until the word changes
//! or the timeout passes. `wake` has nothing to do: a change of the word is the wake-up.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, Wake};

/// Polling with a bounded back-off.
#[cfg_attr(not(any(windows, target_vendor = "apple")), allow(dead_code))]
pub(super) struct Poll;

impl Backend for Poll {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
        const SPINS: u32 = 64;
        const MAX_NAP: Duration = Duration::from_millis(1);
        if word.load(Ordering::SeqCst) != expected {
            return Ok(Wake::Mismatch);
        }
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(5);
        for round in 0.. {
            if word.load(Ordering::SeqCst) != expected {
                return Ok(Wake::Woken);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wake::TimedOut);
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

    /// Nothing to do: polling waiters see the word change. Reports 0 woken.
    fn wake(&self, _word: &AtomicU32, _count: u32) -> io::Result<usize> {
        Ok(0)
    }
}

/// [`super::Backend::wait_any`] by polling: looks at every word, spinning briefly, then sleeping
/// in growing steps (up to 1 ms) until one differs from its expected value or `timeout` passes.
/// A wake that leaves a word unchanged is invisible here, as with [`Poll::wait`].
pub(super) fn wait_any(words: &[(&AtomicU32, u32)], timeout: Duration) -> io::Result<Option<usize>> {
    const SPINS: u32 = 64;
    const MAX_NAP: Duration = Duration::from_millis(1);
    let now = Instant::now();
    let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(3600));
    let mut nap = Duration::from_micros(5);
    for round in 0.. {
        if let Some(changed) = words
            .iter()
            .position(|(word, expected)| word.load(Ordering::SeqCst) != *expected)
        {
            return Ok(Some(changed));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback of `wait_any` where the OS has no multi-word sleep (or Linux before 5.16).
    #[test]
    fn wait_any_by_polling_sees_a_change_and_times_out() {
        let words = [AtomicU32::new(0), AtomicU32::new(5)];
        let list = [(&words[0], 0), (&words[1], 5)];
        let started = Instant::now();
        assert_eq!(wait_any(&list, Duration::from_millis(20)).unwrap(), None);
        assert!(started.elapsed() >= Duration::from_millis(20));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(10));
                words[1].store(6, Ordering::SeqCst);
            });
            assert_eq!(wait_any(&list, Duration::from_secs(5)).unwrap(), Some(1));
        });
        assert_eq!(wait_any(&list, Duration::from_secs(5)).unwrap(), Some(1));
    }
}
