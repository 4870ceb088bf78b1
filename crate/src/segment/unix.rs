//! POSIX backend on rustix: `shm_open`, `ftruncate`, `fallocate`, `fstat`, `mmap`, `munmap`,
//! `shm_unlink`. One small function per OS call.
//!
//! On Linux, `shm_open` and `shm_unlink` are done the way glibc and musl do them: `open` and
//! `unlink` of `/dev/shm/<name>`, with `O_NOFOLLOW | O_CLOEXEC`. rustix's own `shm::open` on its
//! linux_raw backend counts the leading slash against NAME_MAX (refusing the 255-byte names
//! that glibc, and so CPython, accept) and does not add `O_NOFOLLOW`.

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::mm::{MapFlags, ProtFlags};

use super::{ObjectId, SegmentImpl, SegmentOptions};
use crate::ShmName;

/// How long `open` waits for a creator that has `shm_open`ed but not yet `ftruncate`d.
const SIZING_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct SegmentInner {
    ptr: NonNull<u8>,
    len: usize,
    /// The object this handle created (`None` for an attach, and where `fstat` gives no inode).
    created: Option<ObjectId>,
}

impl SegmentImpl for SegmentInner {
    fn create(
        name: &ShmName,
        len: usize,
        options: &SegmentOptions,
        named: &mut dyn FnMut(Option<ObjectId>) -> io::Result<()>,
    ) -> io::Result<Self> {
        let fd = shm_open(name, Access::CreateExclusive, options.mode_bits())?;
        // From here on the name exists: any failure must remove it again, or it leaks.
        let sized = object_id(&fd).and_then(|created| {
            named(created)?;
            prepare_new(&fd, len, options, created)
        });
        if sized.is_err() {
            let _ = shm_unlink(name);
        }
        sized
    }

    fn open(name: &ShmName) -> io::Result<Self> {
        let fd = shm_open(name, Access::Existing, 0)?;
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

    fn unlink_created(name: &ShmName, created: Option<ObjectId>) -> io::Result<()> {
        unlink_if_same(name, created)
    }

    fn created_object(&self) -> Option<ObjectId> {
        self.created
    }

    fn mapping_budget() -> usize {
        mapping_budget()
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
        names: &mut dyn FnMut(Option<ObjectId>) -> Option<ShmName>,
    ) -> Option<io::Result<(Self, ShmName)>> {
        linked::create(len, options, fill, names)
    }
}

/// A new object's mode, size and reservation set, and its mapping, which records `created`.
fn prepare_new(
    fd: &OwnedFd,
    len: usize,
    options: &SegmentOptions,
    created: Option<ObjectId>,
) -> io::Result<SegmentInner> {
    set_mode(fd, options.mode_bits())?;
    size_object(fd, len, options.reserves())?;
    let mut inner = map(fd, len)?;
    inner.created = created;
    Ok(inner)
}

fn size_object(fd: &OwnedFd, len: usize, reserve: bool) -> io::Result<()> {
    ftruncate(fd, len)?;
    if reserve {
        reserve_memory(fd, len)?;
    }
    Ok(())
}

/// How `shm_open` is asked to open the object.
#[derive(Clone, Copy)]
enum Access {
    /// `O_CREAT | O_EXCL | O_RDWR`: a new object, never an existing one (nor a symlink,
    /// dangling or not: `O_EXCL` refuses those with `EEXIST`).
    CreateExclusive,
    /// `O_RDWR`: an existing object.
    Existing,
}

/// Where Linux keeps POSIX shared-memory objects (glibc's and musl's `shm_open` use it).
#[cfg(target_os = "linux")]
const SHM_DIR: &str = "/dev/shm/";

/// `shm_open`—opens or creates the object `/name`: on Linux `open("/dev/shm/name")` with
/// `O_NOFOLLOW | O_CLOEXEC`, exactly as glibc does, so a symlink planted at the name is
/// `ELOOP` rather than followed out of `/dev/shm` (CPython refuses it the same way).
#[cfg(target_os = "linux")]
fn shm_open(name: &ShmName, access: Access, mode: u32) -> io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let flags = match access {
        Access::CreateExclusive => OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Access::Existing => OFlags::RDWR,
    };
    let path = format!("{SHM_DIR}{name}");
    Ok(rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode as _),
    )?)
}

/// `shm_open`—opens or creates the object `/name`. Outside Linux, shared-memory objects live
/// in a namespace of their own (no symlinks can be planted there), and the C library's
/// `shm_open` applies the OS's own name rules.
#[cfg(not(target_os = "linux"))]
fn shm_open(name: &ShmName, access: Access, mode: u32) -> io::Result<OwnedFd> {
    use rustix::shm::OFlags;
    let flags = match access {
        Access::CreateExclusive => OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Access::Existing => OFlags::RDWR,
    };
    Ok(rustix::shm::open(
        name.os_name(),
        flags,
        Mode::from_raw_mode(mode as _),
    )?)
}

/// `shm_unlink`—removes the name `/name` (on Linux `unlink("/dev/shm/name")`, as glibc does;
/// a symlink there is removed itself, never its target).
#[cfg(target_os = "linux")]
fn shm_unlink(name: &ShmName) -> io::Result<()> {
    Ok(rustix::fs::unlink(format!("{SHM_DIR}{name}"))?)
}

/// `shm_unlink`—removes the name `/name`.
#[cfg(not(target_os = "linux"))]
fn shm_unlink(name: &ShmName) -> io::Result<()> {
    Ok(rustix::shm::unlink(name.os_name())?)
}

/// `fstat`—the object's identity (device and inode), to recognise it later by name.
fn object_id(fd: &OwnedFd) -> io::Result<Option<ObjectId>> {
    let stat = rustix::fs::fstat(fd)?;
    // macOS gives shm objects no inode (xnu `pshm_stat` fills only mode, owner and size).
    #[allow(clippy::unnecessary_cast)] // st_dev/st_ino are not u64 on every target
    Ok(ObjectId::new(stat.st_dev as u64, stat.st_ino as u64))
}

/// `lstat` + `unlink` of `/dev/shm/name`—removes the name only if it still names the object
/// `created`; a name someone else unlinked and re-created (or turned into a symlink) is theirs.
///
/// A window remains between the `lstat` and the `unlink`: no system call unlinks a name only
/// if it still refers to a given inode. A wrong deletion needs another process to unlink our
/// object *and* create a new one under the same name within those few microseconds, at the
/// moment this process (or its helper) cleans up after the creator has stopped using the
/// name. That is a far narrower race than the unconditional unlink it replaces, and closing
/// it (renaming the object aside first) would make the name vanish briefly for everyone
/// else, who would then see a spurious `ENOENT`.
#[cfg(target_os = "linux")]
fn unlink_if_same(name: &ShmName, created: Option<ObjectId>) -> io::Result<()> {
    let Some(created) = created else {
        return shm_unlink(name);
    };
    let path = format!("{SHM_DIR}{name}");
    let stat = rustix::fs::lstat(&path)?;
    #[allow(clippy::unnecessary_cast)] // st_dev/st_ino are not u64 on every target
    if ObjectId::new(stat.st_dev as u64, stat.st_ino as u64) != Some(created) {
        return Ok(());
    }
    Ok(rustix::fs::unlink(path)?)
}

/// Without a filesystem to `lstat` in, the name is all there is to go by: unlink it.
#[cfg(not(target_os = "linux"))]
fn unlink_if_same(name: &ShmName, _created: Option<ObjectId>) -> io::Result<()> {
    shm_unlink(name)
}

/// How many mappings this process may hold through shmkit: three quarters of
/// `vm.max_map_count` (65530 by default). The kernel refuses `mmap` beyond that count with
/// `ENOMEM`, and V8 needs mappings of its own to grow the heap — it aborts the process when
/// it cannot get one — so a quarter is kept for the runtime and everything else.
#[cfg(target_os = "linux")]
fn mapping_budget() -> usize {
    /// The kernel's default (`DEFAULT_MAX_MAP_COUNT`), assumed when /proc cannot be read.
    const DEFAULT_MAX_MAP_COUNT: usize = 65_530;
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_MAP_COUNT);
        max - max / 4
    })
}

/// Other systems have no small per-process limit on the number of mappings.
#[cfg(not(target_os = "linux"))]
fn mapping_budget() -> usize {
    usize::MAX
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
    let inner = SegmentInner {
        ptr,
        len,
        created: None,
    };
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

/// Linux: a segment built with no name and linked into place once complete, so that an open
/// racing its creator finds nothing or the finished segment. No temporary name ever exists,
/// so a creator that dies half-way leaves nothing behind.
#[cfg(target_os = "linux")]
mod linked {
    use std::io;
    use std::os::fd::AsRawFd;

    use rustix::fs::{AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    use super::{object_id, prepare_new, ObjectId, SegmentInner, SegmentOptions};
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
        names: &mut dyn FnMut(Option<ObjectId>) -> Option<ShmName>,
    ) -> Option<io::Result<(SegmentInner, ShmName)>> {
        // A name the caller chose that is already taken fails at `linkat` (EEXIST), but only
        // after the object was sized and its memory reserved: asking for more than tmpfs has
        // left would say ENOSPC instead. One `lstat` answers first; `linkat` still decides.
        if let Some(name) = &options.name {
            if rustix::fs::lstat(format!("{SHM_DIR}{}", name.os_name())).is_ok() {
                return Some(Err(Errno::EXIST.into()));
            }
        }
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        let fd = rustix::fs::open(SHM_DIR, flags, Mode::from_raw_mode(options.mode_bits() as _)).ok()?;
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        // Without /proc the object could never get its name: say so before `fill` runs, so
        // the caller can create by name and fill that instead.
        rustix::fs::stat(&source).ok()?;
        // A link keeps the inode: cleanup recognises the object under its final name.
        let created = match object_id(&fd) {
            Ok(created) => created,
            Err(e) => return Some(Err(e)),
        };
        let inner = match prepare_new(&fd, len, options, created) {
            Ok(inner) => inner,
            Err(e) => return Some(Err(e)),
        };
        if !fill(&inner) {
            return Some(Err(io::Error::other("the segment's contents could not be written")));
        }
        let mut last = None;
        while let Some(name) = names(created) {
            let target = format!("{SHM_DIR}{}", name.os_name());
            match rustix::fs::linkat(CWD, &source, CWD, &target, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => return Some(Ok((inner, name))),
                Err(Errno::EXIST) => last = Some(Errno::EXIST),
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Err(last.unwrap_or(Errno::EXIST).into()))
    }
}
