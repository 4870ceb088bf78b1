//! POSIX backend on rustix: `shm_open`, `ftruncate`, `fallocate`, `fstat`, `mmap`, `munmap`,
//! `shm_unlink`. One small function per OS call.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;

use super::{SegmentImpl, SegmentOptions};
use crate::ShmName;

/// How long `open` waits for a creator that has `shm_open`ed but not yet `ftruncate`d.
const SIZING_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct SegmentInner {
    ptr: NonNull<u8>,
    len: usize,
}

impl SegmentImpl for SegmentInner {
    fn create(name: &ShmName, len: usize, options: &SegmentOptions) -> io::Result<Self> {
        let fd = shm_open(
            name,
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            options.mode_bits(),
        )?;
        // From here on the name exists: any failure must remove it again, or it leaks.
        let sized = set_mode(&fd, options.mode_bits())
            .and_then(|()| size_object(&fd, len, options.reserves()))
            .and_then(|()| map(&fd, len));
        if sized.is_err() {
            let _ = shm_unlink(name);
        }
        sized
    }

    fn open(name: &ShmName) -> io::Result<Self> {
        let fd = shm_open(name, shm::OFlags::RDWR, 0)?;
        let deadline = Instant::now() + SIZING_GRACE;
        loop {
            let len = object_size(&fd)?;
            if len > 0 {
                return map(&fd, len);
            }
            // A creator sits between O_CREAT and ftruncate; give it a moment.
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("segment '{name}' has size 0 (its creator never sized it)"),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn unlink(name: &ShmName) -> io::Result<()> {
        shm_unlink(name)
    }

    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }

    #[cfg(target_os = "linux")]
    fn create_linked(
        len: usize,
        options: &SegmentOptions,
        fill: &mut dyn FnMut(&Self) -> bool,
        names: &mut dyn FnMut() -> Option<ShmName>,
    ) -> Option<io::Result<(Self, ShmName)>> {
        linked::create(len, options, fill, names)
    }
}

fn size_object(fd: &OwnedFd, len: usize, reserve: bool) -> io::Result<()> {
    ftruncate(fd, len)?;
    if reserve {
        reserve_memory(fd, len)?;
    }
    Ok(())
}

/// `shm_open`—opens or creates the object `/name`.
fn shm_open(name: &ShmName, flags: shm::OFlags, mode: u32) -> io::Result<OwnedFd> {
    Ok(shm::open(name.os_name(), flags, Mode::from_raw_mode(mode as _))?)
}

/// `shm_unlink`—removes the name `/name`.
fn shm_unlink(name: &ShmName) -> io::Result<()> {
    Ok(shm::unlink(name.os_name())?)
}

/// `fchmod`—applies a mode other than the default exactly: the umask applied at `shm_open`
/// would otherwise quietly take back permissions granted on purpose.
fn set_mode(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    if mode == 0o600 {
        return Ok(());
    }
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode as _))?)
}

/// `ftruncate`—sets the object's size. macOS allows this once per object.
fn ftruncate(fd: &OwnedFd, len: usize) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len as u64)?)
}

/// `fallocate`—allocates the pages now, so a full tmpfs is ENOSPC here and not SIGBUS at
/// the first write (CPython and shm-typed-array die of SIGBUS there).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn reserve_memory(fd: &OwnedFd, len: usize) -> io::Result<()> {
    Ok(rustix::fs::fallocate(
        fd,
        rustix::fs::FallocateFlags::empty(),
        0,
        len as u64,
    )?)
}

/// macOS commits shm objects at `ftruncate`; nothing to reserve.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn reserve_memory(_fd: &OwnedFd, _len: usize) -> io::Result<()> {
    Ok(())
}

/// `fstat`—the object's size in bytes.
fn object_size(fd: &OwnedFd) -> io::Result<usize> {
    let size = rustix::fs::fstat(fd)?.st_size;
    usize::try_from(size).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment size out of range"))
}

/// `mmap(MAP_SHARED, PROT_READ|PROT_WRITE)`—maps the whole object. The fd can be closed
/// afterwards: the mapping keeps the object alive.
fn map(fd: &OwnedFd, len: usize) -> io::Result<SegmentInner> {
    // SAFETY: a fresh mapping at an address the kernel picks aliases no Rust object;
    // `len > 0` (checked by the callers) and the fd is open for reading and writing.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )?
    };
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
    let inner = SegmentInner { ptr, len };
    keep_out_of_forks(&inner);
    Ok(inner)
}

/// `madvise(MADV_DONTFORK)` (Linux), `minherit(VM_INHERIT_NONE)` (macOS)—a forked child, such as
/// the tracking helper, does not inherit the mapping and so never pins the segment's memory.
/// (`child_process` execs, so Node children are unaffected.) Failure only costs that guarantee.
fn keep_out_of_forks(inner: &SegmentInner) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the range is exactly our own mapping.
    let _ = unsafe { rustix::mm::madvise(inner.ptr.as_ptr().cast(), inner.len, rustix::mm::Advice::LinuxDontFork) };
    #[cfg(target_vendor = "apple")]
    // SAFETY: the range is exactly our own mapping.
    let _ = unsafe { libc::minherit(inner.ptr.as_ptr().cast(), inner.len, libc::VM_INHERIT_NONE) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    let _ = inner;
}

impl Drop for SegmentInner {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and this is their only unmap.
        let result = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        // munmap of a mapping we own cannot fail in a correct program.
        debug_assert!(result.is_ok(), "munmap failed: {result:?}");
    }
}

// SAFETY: the mapping is process-wide memory, not tied to the thread that made it.
unsafe impl Send for SegmentInner {}
// SAFETY: `&SegmentInner` only exposes the pointer and length; access through the pointer is
// governed by the type-level contract in `segment/mod.rs`, as for memory other processes share.
unsafe impl Sync for SegmentInner {}

/// Linux: a segment built with no name and linked into place once complete, so that an open
/// racing its creator finds nothing or the finished segment. No temporary name ever exists,
/// so a creator that dies half-way leaves nothing behind.
#[cfg(target_os = "linux")]
mod linked {
    use std::io;
    use std::os::fd::AsRawFd;

    use rustix::fs::{AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    use super::{map, set_mode, size_object, SegmentInner, SegmentOptions};
    use crate::ShmName;

    /// Where glibc's and rustix's `shm_open` keep their objects.
    const SHM_DIR: &str = "/dev/shm";

    /// `open(O_TMPFILE)` + `ftruncate` + `fallocate` + `mmap`, `fill`, then `linkat` through
    /// `/proc/self/fd` (unprivileged, unlike `AT_EMPTY_PATH`) under the first free name. `None`
    /// when the kernel or `/dev/shm` has no `O_TMPFILE`, or `/proc` is missing.
    pub(super) fn create(
        len: usize,
        options: &SegmentOptions,
        fill: &mut dyn FnMut(&SegmentInner) -> bool,
        names: &mut dyn FnMut() -> Option<ShmName>,
    ) -> Option<io::Result<(SegmentInner, ShmName)>> {
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        let fd = rustix::fs::open(SHM_DIR, flags, Mode::from_raw_mode(options.mode_bits() as _)).ok()?;
        let mapped = set_mode(&fd, options.mode_bits())
            .and_then(|()| size_object(&fd, len, options.reserves()))
            .and_then(|()| map(&fd, len));
        let inner = match mapped {
            Ok(inner) => inner,
            Err(e) => return Some(Err(e)),
        };
        if !fill(&inner) {
            return Some(Err(io::Error::other("the segment's contents could not be written")));
        }
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let mut last = None;
        while let Some(name) = names() {
            let target = format!("{SHM_DIR}{}", name.os_name());
            match rustix::fs::linkat(CWD, &source, CWD, &target, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => return Some(Ok((inner, name))),
                Err(Errno::EXIST) => last = Some(Errno::EXIST),
                // No /proc: the caller creates by name instead (the object here just goes).
                Err(Errno::NOENT) if last.is_none() => return None,
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Err(last.unwrap_or(Errno::EXIST).into()))
    }
}
