//! Windows: `WaitOnAddress` wakes only threads of one process, so waits poll the word with a
//! bounded back-off (spin, then naps growing to 1 ms) and `wake` has nothing to do: a change of
//! the word is what wakes a waiter. Liveness of a lock holder comes from its process handle.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, ERROR_ACCESS_DENIED, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{OpenProcess, WaitForSingleObject, PROCESS_SYNCHRONIZE};

use super::Wake;

/// Polls until `*word != expected` or `timeout` passes.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<Wake> {
    Ok(super::poll(word, expected, timeout))
}

/// Nothing to do: polling waiters see the word change. Reports 0 woken.
pub(crate) fn wake(_word: &AtomicU32, _count: u32) -> io::Result<usize> {
    Ok(0)
}

/// `OpenProcess(SYNCHRONIZE)` + `WaitForSingleObject(0)`—whether process `pid` still runs.
///
/// # References
///  - [`OpenProcess`](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-openprocess)
pub(crate) fn process_alive(pid: u32) -> bool {
    // SAFETY: plain call; a null result is handled below.
    let handle = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, pid) };
    if handle.is_null() {
        // Access denied means it exists under another account; anything else (invalid
        // parameter) means no such process.
        // SAFETY: plain call, straight after the failing one.
        return unsafe { GetLastError() } == ERROR_ACCESS_DENIED;
    }
    // SAFETY: `handle` is the process handle just opened.
    let running = unsafe { WaitForSingleObject(handle, 0) } == WAIT_TIMEOUT;
    // SAFETY: `handle` is ours and closed only here.
    let closed = unsafe { CloseHandle(handle) };
    debug_assert!(closed != 0, "CloseHandle failed");
    running
}
