//! Other processes as a robust lock sees them: this process's id, and whether the process a
//! lock word names still runs.

/// This process's id, as stored in a lock word.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// `kill(pid, 0)`—whether process `pid` exists (`EPERM`: it does, under another user).
///
/// # References
///  - [POSIX `kill`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
#[cfg(unix)]
pub(crate) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

/// `OpenProcess(SYNCHRONIZE)` + `WaitForSingleObject(0)`—whether process `pid` still runs.
///
/// # References
///  - [`OpenProcess`](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-openprocess)
#[cfg(windows)]
#[allow(unsafe_code)]
pub(crate) fn alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, ERROR_ACCESS_DENIED, WAIT_TIMEOUT};
    use windows_sys::Win32::System::Threading::{OpenProcess, WaitForSingleObject, PROCESS_SYNCHRONIZE};
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
