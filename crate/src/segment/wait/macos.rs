//! macOS: `os_sync_wait_on_address` / `os_sync_wake_by_address_*` with the shared flag
//! (macOS 14.4+), else `__ulock_wait` / `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED`
//! (what libc++ and the os_sync functions themselves sit on since macOS 10.12). Both are
//! looked up at run time, so one binary loads on every release; with neither, a poll.
//!
//! Sources: the os_sync functions are `API_AVAILABLE(macos(14.4), ios(17.4))` in
//! `<os/os_sync_wait_on_address.h>`; their timeout is relative, in nanoseconds of the given
//! clock; they return -1 with errno (ETIMEDOUT, EINTR, EFAULT; ENOENT from a wake with
//! nobody waiting) — https://developer.apple.com/documentation/os/os_sync_wait_on_address.
//! The `__ulock_*` operation and flag values and the microsecond timeout are in
//! https://github.com/apple-oss-distributions/xnu/blob/main/bsd/sys/ulock.h; that a zero
//! timeout means none, and the negative errno under `ULF_NO_ERRNO`, in bsd/kern/sys_ulock.c.

use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;
use std::time::Duration;

use super::Wake;

const OS_SYNC_SHARED: u32 = 0x1; // OS_SYNC_WAIT_ON_ADDRESS_SHARED, OS_SYNC_WAKE_BY_ADDRESS_SHARED
const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
const ULF_WAKE_ALL: u32 = 0x100;
const ULF_NO_ERRNO: u32 = 0x0100_0000;

type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

enum Backend {
    OsSync {
        wait: OsSyncWait,
        wake_any: OsSyncWake,
        wake_all: OsSyncWake,
    },
    Ulock {
        wait: UlockWait,
        wake: UlockWake,
    },
    Poll,
}

/// `dlsym(RTLD_DEFAULT, name)`.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the images already loaded.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!found.is_null()).then_some(found)
}

fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        if let (Some(wait), Some(wake_any), Some(wake_all)) = (
            symbol(c"os_sync_wait_on_address_with_timeout"),
            symbol(c"os_sync_wake_by_address_any"),
            symbol(c"os_sync_wake_by_address_all"),
        ) {
            // SAFETY: these symbols have exactly these C signatures (os/os_sync_wait_on_address.h).
            return unsafe {
                Backend::OsSync {
                    wait: std::mem::transmute::<*mut c_void, OsSyncWait>(wait),
                    wake_any: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_any),
                    wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_all),
                }
            };
        }
        if let (Some(wait), Some(wake)) = (symbol(c"__ulock_wait"), symbol(c"__ulock_wake")) {
            // SAFETY: these symbols have exactly these C signatures (xnu bsd/sys/ulock.h).
            return unsafe {
                Backend::Ulock {
                    wait: std::mem::transmute::<*mut c_void, UlockWait>(wait),
                    wake: std::mem::transmute::<*mut c_void, UlockWake>(wake),
                }
            };
        }
        Backend::Poll
    })
}

fn address(word: &AtomicU32) -> *mut c_void {
    word.as_ptr().cast()
}

/// `os_sync_wait_on_address_with_timeout` or `__ulock_wait`—sleeps while `*word == expected`.
///
/// # References
///  - [`os_sync_wait_on_address`](https://developer.apple.com/documentation/os/os_sync_wait_on_address)
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
    let result = match backend() {
        Backend::OsSync { wait, .. } => {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1);
            // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
            let r = unsafe {
                wait(
                    address(word),
                    u64::from(expected),
                    4,
                    OS_SYNC_SHARED,
                    OS_CLOCK_MACH_ABSOLUTE_TIME,
                    nanos,
                )
            };
            if r >= 0 {
                return Ok(Wake::Woken);
            }
            io::Error::last_os_error()
        }
        Backend::Ulock { wait, .. } => {
            // Zero means "forever" to __ulock_wait: at least 1 µs.
            let micros = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX).max(1);
            // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
            let r = unsafe {
                wait(
                    UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                    address(word),
                    u64::from(expected),
                    micros,
                )
            };
            if r >= 0 {
                return Ok(Wake::Woken);
            }
            io::Error::from_raw_os_error(-r)
        }
        Backend::Poll => return Ok(super::poll(word, expected, timeout)),
    };
    match result.raw_os_error() {
        Some(libc::ETIMEDOUT) | Some(libc::EINTR) | Some(libc::EFAULT) => Ok(Wake::TimedOut),
        _ => Err(result),
    }
}

/// `os_sync_wake_by_address_{any,all}` or `__ulock_wake`—wakes sleepers on `word` in any
/// process. macOS does not say how many it woke: 1 if it woke any, 0 if none slept.
pub(crate) fn wake(word: &AtomicU32, count: u32) -> io::Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let r = match backend() {
        Backend::OsSync { wake_any, wake_all, .. } => {
            let wake = if count == 1 { wake_any } else { wake_all };
            // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
            let r = unsafe { wake(address(word), 4, OS_SYNC_SHARED) };
            if r == 0 {
                0
            } else {
                -io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)
            }
        }
        Backend::Ulock { wake, .. } => {
            let all = if count == 1 { 0 } else { ULF_WAKE_ALL };
            // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
            unsafe { wake(UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO | all, address(word), 0) }
        }
        Backend::Poll => return Ok(0),
    };
    match r {
        0.. => Ok(1),
        r if -r == libc::ENOENT => Ok(0),
        r => Err(io::Error::from_raw_os_error(-r)),
    }
}

/// `kill(pid, 0)`—whether process `pid` exists (`EPERM`: it does, under another user).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}
