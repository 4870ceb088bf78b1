//! macOS: `os_sync_wait_on_address` / `os_sync_wake_by_address_*` with the shared flag
//! (macOS 14.4+), else `__ulock_wait` / `__ulock_wake` with `UL_COMPARE_AND_WAIT_SHARED`
//! (what libc++ and the os_sync functions themselves sit on since macOS 10.12). Both are
//! looked up at run time, so one binary loads on every release; with neither, a poll. The
//! choice is made once, in [`backend`].
//!
//! Sources: the os_sync functions are `API_AVAILABLE(macos(14.4), ios(17.4))` in
//! `<os/os_sync_wait_on_address.h>`; their timeout is relative, in nanoseconds of the given
//! clock; they return -1 with errno (ETIMEDOUT, EINTR, EFAULT; ENOENT from a wake with
//! nobody waiting) — https://developer.apple.com/documentation/os/os_sync_wait_on_address.
//! The `__ulock_*` operation and flag values and the microsecond timeout are in
//! https://github.com/apple-oss-distributions/xnu/blob/main/bsd/sys/ulock.h; that a zero
//! timeout means none, and the negative errno under `ULF_NO_ERRNO`, in bsd/kern/sys_ulock.c.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;
use std::time::Duration;

use super::poll::Poll;
use super::{Backend, Wake};

const OS_SYNC_SHARED: u32 = 0x1; // OS_SYNC_WAIT_ON_ADDRESS_SHARED, OS_SYNC_WAKE_BY_ADDRESS_SHARED
const OS_CLOCK_MACH_ABSOLUTE_TIME: u32 = 32;
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
const ULF_WAKE_ALL: u32 = 0x100;
const ULF_NO_ERRNO: u32 = 0x0100_0000;

type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

/// The best backend this macOS has, found once.
pub(super) fn backend() -> &'static dyn Backend {
    static CHOSEN: OnceLock<Box<dyn Backend + Send>> = OnceLock::new();
    &**CHOSEN.get_or_init(|| {
        if let Some(os_sync) = OsSync::find() {
            return Box::new(os_sync);
        }
        if let Some(ulock) = Ulock::find() {
            return Box::new(ulock);
        }
        Box::new(Poll)
    })
}

/// `dlsym(RTLD_DEFAULT, name)`.
fn symbol(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the images already loaded.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!found.is_null()).then_some(found)
}

fn address(word: &AtomicU32) -> *mut c_void {
    word.as_ptr().cast()
}

/// A wait that ended with an errno: a timeout, a signal or a fault is only a wake-up.
fn failed_wait(err: io::Error) -> io::Result<Wake> {
    match err.raw_os_error() {
        Some(libc::ETIMEDOUT) | Some(libc::EINTR) | Some(libc::EFAULT) => Ok(Wake::TimedOut),
        _ => Err(err),
    }
}

/// `os_sync_wait_on_address` and `os_sync_wake_by_address_{any,all}` (macOS 14.4+).
struct OsSync {
    wait: OsSyncWait,
    wake_any: OsSyncWake,
    wake_all: OsSyncWake,
}

impl OsSync {
    fn find() -> Option<OsSync> {
        let wait = symbol(c"os_sync_wait_on_address_with_timeout")?;
        let wake_any = symbol(c"os_sync_wake_by_address_any")?;
        let wake_all = symbol(c"os_sync_wake_by_address_all")?;
        // SAFETY: these symbols have exactly these C signatures (os/os_sync_wait_on_address.h).
        unsafe {
            Some(OsSync {
                wait: std::mem::transmute::<*mut c_void, OsSyncWait>(wait),
                wake_any: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_any),
                wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_all),
            })
        }
    }
}

impl Backend for OsSync {
    /// `os_sync_wait_on_address_with_timeout`—sleeps while `*word == expected`.
    ///
    /// # References
    ///  - [`os_sync_wait_on_address`](https://developer.apple.com/documentation/os/os_sync_wait_on_address)
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1);
        // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
        let r = unsafe {
            (self.wait)(
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
        failed_wait(io::Error::last_os_error())
    }

    /// `os_sync_wake_by_address_{any,all}`: 1 if it woke any, 0 if none slept (macOS does not
    /// say how many).
    fn wake(&self, word: &AtomicU32, count: u32) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let wake = if count == 1 { self.wake_any } else { self.wake_all };
        // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
        if unsafe { wake(address(word), 4, OS_SYNC_SHARED) } == 0 {
            return Ok(1);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT) => Ok(0),
            _ => Err(err),
        }
    }
}

/// `__ulock_wait` and `__ulock_wake` with the shared operation (macOS 10.12+).
struct Ulock {
    wait: UlockWait,
    wake: UlockWake,
}

impl Ulock {
    fn find() -> Option<Ulock> {
        let wait = symbol(c"__ulock_wait")?;
        let wake = symbol(c"__ulock_wake")?;
        // SAFETY: these symbols have exactly these C signatures (xnu bsd/sys/ulock.h).
        unsafe {
            Some(Ulock {
                wait: std::mem::transmute::<*mut c_void, UlockWait>(wait),
                wake: std::mem::transmute::<*mut c_void, UlockWake>(wake),
            })
        }
    }
}

impl Backend for Ulock {
    /// `__ulock_wait`—sleeps while `*word == expected`.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
        // Zero means "forever" to __ulock_wait: at least 1 µs.
        let micros = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX).max(1);
        // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
        let r = unsafe {
            (self.wait)(
                UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO,
                address(word),
                u64::from(expected),
                micros,
            )
        };
        if r >= 0 {
            return Ok(Wake::Woken);
        }
        failed_wait(io::Error::from_raw_os_error(-r))
    }

    /// `__ulock_wake`: 1 if it woke any, 0 if none slept.
    fn wake(&self, word: &AtomicU32, count: u32) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        let all = if count == 1 { 0 } else { ULF_WAKE_ALL };
        // SAFETY: the word is a live, aligned 4-byte location in a shared mapping.
        let r = unsafe { (self.wake)(UL_COMPARE_AND_WAIT_SHARED | ULF_NO_ERRNO | all, address(word), 0) };
        match r {
            0.. => Ok(1),
            r if -r == libc::ENOENT => Ok(0),
            r => Err(io::Error::from_raw_os_error(-r)),
        }
    }
}
