//! Linux: `futex(2)` without `FUTEX_PRIVATE_FLAG`, so the kernel keys a sleeper by the
//! shared page (inode and offset), not by this process's address space, and a wake from any
//! process that maps the segment reaches it. Safe wrappers from rustix.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use super::{Backend, Wake};

/// `futex(2)` on a shared word.
pub(super) struct Futex;

impl Backend for Futex {
    /// `futex(FUTEX_WAIT)`—sleeps while `*word == expected`, at most `timeout`.
    ///
    /// # References
    ///  - [Linux `futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html)
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
        let timeout = futex::Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        match futex::wait(word, futex::Flags::empty(), expected, Some(&timeout)) {
            Ok(()) => Ok(Wake::Woken),
            Err(Errno::AGAIN) => Ok(Wake::Mismatch),
            Err(Errno::TIMEDOUT) | Err(Errno::INTR) => Ok(Wake::TimedOut),
            Err(e) => Err(e.into()),
        }
    }

    /// `futex(FUTEX_WAKE)`—wakes up to `count` sleepers on `word` in any process; says how many.
    fn wake(&self, word: &AtomicU32, count: u32) -> io::Result<usize> {
        // The kernel takes the count as a signed int: i32::MAX already means "all".
        Ok(futex::wake(word, futex::Flags::empty(), count.min(i32::MAX as u32))?)
    }
}
