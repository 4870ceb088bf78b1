//! Linux: `futex(2)` without `FUTEX_PRIVATE_FLAG`, so the kernel keys a sleeper by the
//! shared page (inode and offset), not by this process's address space, and a wake from any
//! process that maps the segment reaches it. Safe wrappers from rustix.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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

    /// `futex_waitv(2)` takes at most 128 words (`FUTEX_WAITV_MAX`); without it (Linux before
    /// 5.16), the polling default has no limit.
    fn wait_any_limit(&self) -> usize {
        if WAITV_MISSING.load(Ordering::Relaxed) {
            usize::MAX
        } else {
            WAITV_MAX
        }
    }

    /// `futex_waitv(2)` (Linux 5.16+)—sleeps on up to 128 shared words at once, until any is
    /// woken or differs; says which was woken. Where the kernel lacks it (`ENOSYS`, noted once),
    /// polls instead.
    ///
    /// # References
    ///  - [Linux `futex_waitv(2)`](https://docs.kernel.org/userspace-api/futex2.html)
    fn wait_any(&self, words: &[(&AtomicU32, u32)], timeout: Duration) -> io::Result<Option<usize>> {
        if words.len() > WAITV_MAX || WAITV_MISSING.load(Ordering::Relaxed) {
            return super::poll::wait_any(words, timeout);
        }
        let waiters: Vec<futex::Wait> = words
            .iter()
            .map(|(word, expected)| {
                let mut wait = futex::Wait::new();
                wait.val = u64::from(*expected);
                wait.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
                // Not FUTEX2_PRIVATE: the words are shared with other processes.
                wait.flags = futex::WaitFlags::SIZE_U32;
                wait
            })
            .collect();
        // futex_waitv's timeout is absolute, on the clock it is given.
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = i128::from(now.tv_nsec) + i128::from(timeout.subsec_nanos());
        let deadline = futex::Timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(timeout.as_secs().try_into().unwrap_or(i64::MAX))
                .saturating_add((nanos / 1_000_000_000) as i64),
            tv_nsec: (nanos % 1_000_000_000) as _,
        };
        match futex::waitv(
            &waiters,
            futex::WaitvFlags::empty(),
            Some(&deadline),
            futex::ClockId::Monotonic,
        ) {
            Ok(index) => Ok(Some(index)),
            Err(Errno::AGAIN) | Err(Errno::TIMEDOUT) | Err(Errno::INTR) => Ok(None),
            Err(Errno::NOSYS) => {
                WAITV_MISSING.store(true, Ordering::Relaxed);
                super::poll::wait_any(words, timeout)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the kernel has `futex_waitv`: asked once with no words, which it refuses with
    /// `EINVAL` when it has the call and `ENOSYS` when it does not (before 5.16, and under
    /// valgrind or qemu-user, which do not emulate it).
    fn wait_any_sleeps(&self) -> bool {
        if WAITV_MISSING.load(Ordering::Relaxed) {
            return false;
        }
        let asked = futex::waitv(&[], futex::WaitvFlags::empty(), None, futex::ClockId::Monotonic);
        if asked == Err(Errno::NOSYS) {
            WAITV_MISSING.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// `FUTEX_WAITV_MAX`: the most words one `futex_waitv` takes.
const WAITV_MAX: usize = 128;

/// Set once `futex_waitv` answered `ENOSYS` (a kernel before 5.16, or a seccomp filter).
static WAITV_MISSING: AtomicBool = AtomicBool::new(false);
