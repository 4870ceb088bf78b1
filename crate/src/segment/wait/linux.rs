//! Linux: `futex(2)` without `FUTEX_PRIVATE_FLAG`, so the kernel keys a sleeper by the
//! shared page (inode and offset), not by this process's address space, and a wake from any
//! process that maps the segment reaches it. Safe wrappers from rustix.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use super::Wake;

/// `futex(FUTEX_WAIT)`—sleeps while `*word == expected`, at most `timeout`.
///
/// # References
///  - [Linux `futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
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

/// `futex(FUTEX_WAKE)`—wakes up to `count` sleepers on `word` in any process; returns how many.
pub(crate) fn wake(word: &AtomicU32, count: u32) -> io::Result<usize> {
    // The kernel takes the count as a signed int: i32::MAX already means "all".
    Ok(futex::wake(word, futex::Flags::empty(), count.min(i32::MAX as u32))?)
}

/// `kill(pid, 0)`—whether process `pid` exists (`EPERM`: it does, under another user).
///
/// # References
///  - [Linux `kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html)
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}
