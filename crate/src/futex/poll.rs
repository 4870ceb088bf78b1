//! A wait with no kernel help, where the OS cannot sleep on shared memory across processes:
//! the waiter spins briefly, then sleeps in growing steps (up to 1 ms) until the word changes
//! or the timeout passes. `wake` has nothing to do: a change of the word is the wake-up.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, Wake};

/// Polling with a bounded back-off.
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
