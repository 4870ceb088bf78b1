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
///
/// Not on Apple, where it is neither needed nor possible: XNU's `shm_open` stores the mode
/// as given (`cmode &= ALLPERMS`, no umask), and `fchmod` accepts only vnode descriptors,
/// so it fails with EINVAL on a shm object (`pshm_open` in
/// https://github.com/apple-oss-distributions/xnu/blob/main/bsd/kern/posix_shm.c;
/// `fchmod1` → `file_vnode` in bsd/vfs/vfs_syscalls.c and bsd/kern/kern_descrip.c there).
fn set_mode(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    if mode == 0o600 || cfg!(target_vendor = "apple") {
        return Ok(());
    }
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode as _))?)
}

/// `ftruncate`—sets the object's size. macOS allows this once per object (EINVAL after:
/// "We only allow one ftruncate() per lifetime of the shm object") and rounds the size up to
/// whole pages, which `fstat` then reports (`pshm_truncate`, `pshm_stat` in
/// https://github.com/apple-oss-distributions/xnu/blob/main/bsd/kern/posix_shm.c).
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

/// Elsewhere (macOS) nothing to reserve: `ftruncate` backs a shm object with anonymous VM
/// memory (`mach_make_memory_entry_64(MAP_MEM_NAMED_CREATE)` in `pshm_truncate`,
/// https://github.com/apple-oss-distributions/xnu/blob/main/bsd/kern/posix_shm.c), paged
/// like any other, not with a size-limited filesystem that could fill up as tmpfs does.
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
/// macOS has no MADV_DONTFORK (bsd/sys/mman.h); VM_INHERIT_NONE leaves the range "absent
/// from child" (osfmk/mach/vm_inherit.h), both in https://github.com/apple-oss-distributions/xnu.
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
