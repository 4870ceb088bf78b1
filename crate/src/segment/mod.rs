//! Named shared-memory segments: create, open, map, unlink.
//!
//! One segment is one mapping of one named OS object. Closing (dropping) a [`Segment`]
//! unmaps it for this handle only; [`Segment::unlink`] removes the name for everyone and
//! should be called once, by one process. On Windows there is nothing to unlink: a section
//! lives while any process has it open.
//!
//! # Safety
//! The mapping is shared with other processes, which may write any byte at any time. This
//! crate therefore hands out raw pointers and copying accessors, never `&[u8]` that Rust
//! would assume unchanging; callers that build slices over [`Segment::as_ptr`] must treat
//! every byte as untrusted and possibly changing.
#![allow(unsafe_code)]

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(windows, path = "windows.rs")]
mod os;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::futex::{self, WAIT_SLICE};
use crate::{Closed, Error, Result, ShmName};

/// What each OS backend provides. Both backends implement it, so neither can drift.
pub(crate) trait SegmentImpl: Sized {
    /// Creates the named object exclusively, sizes it and maps it. `named` is told the new
    /// object's identity as soon as the name exists, before the sizing (which can take seconds
    /// for a big reservation): an error from it abandons the create. Any failure after the name
    /// exists removes it again.
    fn create(
        name: &ShmName,
        len: usize,
        options: &SegmentOptions,
        named: &mut dyn FnMut(Option<ObjectId>) -> io::Result<()>,
    ) -> io::Result<Self>;
    /// Opens an existing object and maps all of it.
    fn open(name: &ShmName) -> io::Result<Self>;
    /// Removes the name.
    fn unlink(name: &ShmName) -> io::Result<()>;
    /// Removes the name only while it still names the object `created` (when the OS can tell
    /// objects apart; otherwise by name alone). For automatic cleanup, never for `unlink()`.
    fn unlink_created(name: &ShmName, created: Option<ObjectId>) -> io::Result<()>;
    /// The identity of the object this handle created; `None` for an attach.
    fn created_object(&self) -> Option<ObjectId>;
    /// How many segments this process may have mapped at once through shmkit.
    fn mapping_budget() -> usize;
    /// Start of the mapping.
    fn as_ptr(&self) -> *mut u8;
    /// Length of the mapping in bytes.
    fn len(&self) -> usize;
    /// Creates an object that has no name yet, lets `fill` write its mapping, then gives it
    /// the first free name `names` yields, atomically: an open by name finds nothing or the
    /// filled object (Linux: `O_TMPFILE` + `linkat`). `fill` returning `false` abandons it.
    /// `names` is told the object's identity, so that it can be tracked under each name before
    /// the name exists. `None` where the OS cannot do this; nothing was created then.
    fn create_linked(
        len: usize,
        options: &SegmentOptions,
        fill: &mut dyn FnMut(&Self) -> bool,
        names: &mut dyn FnMut(Option<ObjectId>) -> Option<ShmName>,
    ) -> Option<io::Result<(Self, ShmName)>> {
        let _ = (len, options, fill, names);
        None
    }
}

/// Which OS object a name referred to when this process created it: device and inode. Cleanup
/// that runs on its own (the tracker, a manager's shutdown) compares it before unlinking, so a
/// name that someone else unlinked and re-created is left to them (design.md safety rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ObjectId {
    device: u64,
    inode: u64,
}

// Only the POSIX backend and its cleanup helper can tell objects apart (Windows sections have
// no name to outlive them).
#[cfg(unix)]
impl ObjectId {
    /// `None` where the OS gives the object no inode (macOS shm objects report 0).
    pub(crate) fn new(device: u64, inode: u64) -> Option<ObjectId> {
        (inode != 0).then_some(ObjectId { device, inode })
    }

    /// 16 bytes, native-endian; all zero for `None`.
    pub(crate) fn to_bytes(id: Option<ObjectId>) -> [u8; 16] {
        let (device, inode) = id.map_or((0, 0), |id| (id.device, id.inode));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&device.to_ne_bytes());
        bytes[8..].copy_from_slice(&inode.to_ne_bytes());
        bytes
    }

    /// The inverse of [`ObjectId::to_bytes`].
    pub(crate) fn from_bytes(bytes: [u8; 16]) -> Option<ObjectId> {
        let [d0, d1, d2, d3, d4, d5, d6, d7, i0, i1, i2, i3, i4, i5, i6, i7] = bytes;
        ObjectId::new(
            u64::from_ne_bytes([d0, d1, d2, d3, d4, d5, d6, d7]),
            u64::from_ne_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
        )
    }
}

/// Segments this process has mapped through shmkit and not yet dropped.
static LIVE_MAPPINGS: AtomicUsize = AtomicUsize::new(0);

/// One unit of the process's mapping budget, held by each live [`Segment`].
///
/// Linux refuses `mmap` once a process has `vm.max_map_count` mappings, and V8 aborts the
/// process when it then cannot map memory to grow its heap. Counting our own mappings (an
/// atomic add, where reading /proc/self/maps would cost a millisecond per call) and refusing
/// beyond [`SegmentImpl::mapping_budget`] keeps a failure clean: a coded error here, and room
/// left for the runtime.
#[derive(Debug)]
struct MappingSlot(());

impl MappingSlot {
    fn take(name: &str) -> Result<MappingSlot> {
        let budget = os::SegmentInner::mapping_budget();
        LIVE_MAPPINGS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < budget).then(|| live + 1)
            })
            .map(|_| MappingSlot(()))
            .map_err(|live| Error::TooManyMappings {
                name: name.to_owned(),
                live,
                budget,
            })
    }
}

impl Drop for MappingSlot {
    fn drop(&mut self) {
        LIVE_MAPPINGS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How many random names to try before giving up on EEXIST.
const RANDOM_NAME_ATTEMPTS: usize = 64;

/// Builder for creating a segment; [`SegmentOptions::create`] ends it.
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    name: Option<ShmName>,
    reserve: bool,
    mode: u32,
    track: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            name: None,
            reserve: true,
            mode: 0o600,
            track: false,
        }
    }
}

impl SegmentOptions {
    /// Random name, memory reserved at create, mode 0600, not tracked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates under this name instead of a random `psm_…` one.
    pub fn name(&mut self, name: ShmName) -> &mut Self {
        self.name = Some(name);
        self
    }

    /// Whether to reserve the memory at create (Linux: `fallocate`), so that a full
    /// `/dev/shm` is `ENOSPC` now rather than SIGBUS at first write. Default `true`;
    /// `false` makes a sparse segment. Other OSes commit at create or fault lazily anyway.
    pub fn reserve(&mut self, reserve: bool) -> &mut Self {
        self.reserve = reserve;
        self
    }

    /// Permission bits for the new object (POSIX only; default 0600). Widen them only to
    /// share deliberately with other users; [`SegmentOptions::create`] refuses bits above 0o777.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Whether to [`crate::tracker::register`] the new segment, so that it is unlinked if
    /// this process ends without unlinking it (default `false` here; the Node binding's
    /// default is `true`, as CPython's).
    pub fn track(&mut self, track: bool) -> &mut Self {
        self.track = track;
        self
    }

    #[cfg_attr(windows, allow(dead_code))] // Windows sections take no mode
    pub(crate) fn mode_bits(&self) -> u32 {
        self.mode
    }

    #[cfg_attr(windows, allow(dead_code))] // Windows commits sections at create
    pub(crate) fn reserves(&self) -> bool {
        self.reserve
    }

    /// `shm_open(O_CREAT|O_EXCL|O_RDWR)` + `ftruncate` + `fallocate` + `mmap` (Unix; on Linux
    /// the same built unnamed with `O_TMPFILE` and given its name by `linkat` once complete,
    /// as [`SegmentOptions::create_filled`]), `CreateFileMappingW` + `MapViewOfFile`
    /// (Windows)—creates and maps a segment. A tracked segment is tracked before its name
    /// exists (Linux) or right after (elsewhere), so a creator killed mid-create leaves nothing.
    ///
    /// Without a name, random `psm_…` names are tried until one is free.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] for a zero size or one larger than `isize::MAX`;
    /// [`Error::InvalidArgument`] for a mode above 0o777; `EEXIST` when
    /// the name is taken; `ENOSPC` when the memory cannot be reserved; any other OS error.
    ///
    /// # References
    ///  - [POSIX `shm_open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html)
    ///  - [Linux `shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html)
    ///  - [Windows `CreateFileMappingW`](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-createfilemappingw)
    #[doc(alias = "shm_open")]
    #[doc(alias = "CreateFileMappingW")]
    pub fn create(&self, size: usize) -> Result<Segment> {
        self.create_filled(size, |_| Ok(()))
    }

    /// [`SegmentOptions::create`] by `shm_open`: the name exists from the start.
    fn create_by_name(&self, size: usize) -> Result<Segment> {
        if let Some(name) = &self.name {
            return Segment::created(name.clone(), size, self);
        }
        let mut last = None;
        for _ in 0..RANDOM_NAME_ATTEMPTS {
            match Segment::created(ShmName::random(), size, self) {
                Err(Error::Os { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => last = Some(source),
                other => return other,
            }
        }
        let source = last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into());
        Err(Error::os("shm_open", crate::name::NAME_PREFIX, source))
    }

    /// Creates a segment as [`SegmentOptions::create`] does, and lets `fill` write it before
    /// its name appears where the OS allows (Linux: built in an unnamed `O_TMPFILE` object in
    /// `/dev/shm`, then `linkat`ed under its name, which keeps `EEXIST`): whoever opens the
    /// name finds nothing (`ENOENT`) or the filled segment. Elsewhere (macOS, Windows, or a
    /// Linux without `O_TMPFILE` or `/proc`) the name appears at create, before `fill` runs.
    ///
    /// When `fill` fails, no segment is left behind and its error is returned.
    ///
    /// # Errors
    /// As [`SegmentOptions::create`], or `fill`'s error.
    ///
    /// # References
    ///  - [Linux `open(2)` `O_TMPFILE`](https://man7.org/linux/man-pages/man2/open.2.html)
    ///  - [Linux `linkat(2)`](https://man7.org/linux/man-pages/man2/linkat.2.html)
    #[doc(alias = "linkat")]
    pub fn create_filled(&self, size: usize, fill: impl FnOnce(&[AtomicU8]) -> Result<()>) -> Result<Segment> {
        self.check(size)?;
        let mut fill = Some(fill);
        let mut failure = None;
        let mut fill_inner = |inner: &os::SegmentInner| {
            let Some(fill) = fill.take() else { return false };
            // SAFETY: the mapping is valid for `len` bytes while `inner` lives, which outlasts
            // this call; AtomicU8 has u8's size and alignment and allows shared mutation.
            let bytes = unsafe { atomic_view(inner.as_ptr(), inner.len()) };
            match fill(bytes) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        };
        let mut attempts = 0usize;
        // The name being tried, tracked under the new object's identity before it exists: a
        // process killed at any point leaves no name behind. Cleanup never takes a name that
        // turned out to be someone else's (EEXIST): it unlinks only that identity.
        let mut tracked: Option<ShmName> = None;
        let mut refused = None;
        let mut names = |created: Option<ObjectId>| {
            if let Some(taken) = tracked.take() {
                crate::tracker::unregister(taken.as_str());
            }
            attempts = attempts.saturating_add(1);
            let name = match &self.name {
                Some(name) => (attempts == 1).then(|| name.clone()),
                None => (attempts <= RANDOM_NAME_ATTEMPTS).then(ShmName::random),
            }?;
            if self.track {
                if let Err(e) = crate::tracker::register_name(name.as_str(), created) {
                    refused = Some(e);
                    return None;
                }
                tracked = Some(name.clone());
            }
            Some(name)
        };
        let shown = self.name.as_ref().map_or(crate::name::NAME_PREFIX, ShmName::as_str);
        let slot = MappingSlot::take(shown)?;
        if let Some(linked) = os::SegmentInner::create_linked(size, self, &mut fill_inner, &mut names) {
            let failed = failure.or(refused);
            if failed.is_some() || linked.is_err() {
                if let Some(taken) = &tracked {
                    crate::tracker::unregister(taken.as_str());
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            let (inner, name) = linked.map_err(|e| Error::os("create", shown, e))?;
            return Ok(Segment::mapped(name, inner, slot));
        }
        drop(slot);
        let segment = self.create_by_name(size)?;
        let Some(fill) = fill.take() else {
            return Ok(segment);
        };
        if let Err(e) = fill(segment.atomic_bytes()) {
            let _ = segment.unlink();
            return Err(e);
        }
        Ok(segment)
    }

    fn check(&self, size: usize) -> Result<()> {
        if size == 0 || size > isize::MAX as usize {
            return Err(Error::InvalidSize(format!(
                "'size' must be a positive number different from zero, not larger than {}; got {size}",
                isize::MAX
            )));
        }
        if self.mode > 0o777 {
            return Err(Error::InvalidArgument(format!(
                "mode {:#o} is not a permission mask (0 to 0o777)",
                self.mode
            )));
        }
        Ok(())
    }
}

/// A mapped named shared-memory segment. Dropping it unmaps this handle's view; the
/// segment itself lives until it is unlinked (and, on Windows, until every handle is closed).
#[derive(Debug)]
pub struct Segment {
    name: ShmName,
    inner: os::SegmentInner,
    /// Set by [`Segment::retire`]: waits end and new waits and locks are refused.
    retired: AtomicBool,
    /// Given back after `inner` is unmapped (fields drop in order).
    _slot: MappingSlot,
}

impl Segment {
    /// Creates a segment with a random name and default options; see [`SegmentOptions::create`].
    ///
    /// # Errors
    /// As [`SegmentOptions::create`].
    pub fn create(size: usize) -> Result<Segment> {
        SegmentOptions::new().create(size)
    }

    fn created(name: ShmName, size: usize, options: &SegmentOptions) -> Result<Segment> {
        let slot = MappingSlot::take(name.as_str())?;
        // Tracked from the moment the name exists, not once the memory is reserved: a process
        // killed while a big segment is being sized (seconds for gigabytes) leaves nothing.
        if options.track {
            crate::tracker::prepare()?;
        }
        let mut refused = None;
        let mut track = |created| {
            if !options.track {
                return Ok(());
            }
            crate::tracker::register_name(name.as_str(), created).map_err(|e| {
                refused = Some(e);
                io::Error::other("the segment could not be tracked")
            })
        };
        let created = os::SegmentInner::create(&name, size, options, &mut track);
        if let Some(e) = refused {
            return Err(e);
        }
        match created {
            Ok(inner) => Ok(Segment::mapped(name, inner, slot)),
            Err(e) => {
                // The backend removed the name; forget it here too (a no-op if never tracked).
                crate::tracker::unregister(name.as_str());
                Err(Error::os("create", name.as_str(), e))
            }
        }
    }

    /// `shm_open(O_RDWR)` + `fstat` + `mmap` (Unix), `OpenFileMappingW` + `MapViewOfFile` +
    /// `VirtualQuery` (Windows)—attaches to an existing segment by name. The size is the
    /// OS's (exact on Linux, page-rounded on macOS and Windows).
    ///
    /// # Errors
    /// [`Error::InvalidName`] before any syscall; `ENOENT` when no such segment exists;
    /// `EACCES` when its mode forbids us; `EINVAL` when it stays empty (its creator never
    /// sized it).
    ///
    /// # References
    ///  - [POSIX `shm_open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html)
    ///  - [Windows `OpenFileMappingW`](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-openfilemappingw)
    #[doc(alias = "shm_open")]
    #[doc(alias = "OpenFileMappingW")]
    pub fn open(name: &str) -> Result<Segment> {
        let name = ShmName::new(name)?;
        let slot = MappingSlot::take(name.as_str())?;
        let inner = os::SegmentInner::open(&name).map_err(|e| Error::os("open", name.as_str(), e))?;
        Ok(Segment::mapped(name, inner, slot))
    }

    fn mapped(name: ShmName, inner: os::SegmentInner, slot: MappingSlot) -> Segment {
        Segment {
            name,
            inner,
            retired: AtomicBool::new(false),
            _slot: slot,
        }
    }

    /// The identity of the object this handle created (`None` for an attach, and on systems
    /// that give shared-memory objects no inode).
    pub(crate) fn created_object(&self) -> Option<ObjectId> {
        self.inner.created_object()
    }

    /// The name, as Python shows it: no leading slash.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Always false: segments are never empty.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Start of the mapping; valid for [`Segment::len`] bytes while `self` lives.
    /// See the module's `# Safety` section for what may happen to those bytes.
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.as_ptr()
    }

    /// The whole mapping as atomic bytes, for layout code such as [`crate::list`]: every access
    /// is an atomic load or store, as memory that other processes change at any time must be
    /// accessed, and nothing builds a `&[u8]` or `&mut [u8]` over it.
    pub fn atomic_bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping is valid for `len` bytes while `self` lives; AtomicU8 has u8's
        // size and alignment and allows shared mutation (other processes' writes included).
        unsafe { atomic_view(self.as_ptr(), self.len()) }
    }

    /// Copies `dst.len()` bytes from `offset` out of the segment.
    ///
    /// # Panics
    /// Never; returns `false` (and copies nothing) when the range is outside the segment.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> bool {
        if !self.in_bounds(offset, dst.len()) {
            return false;
        }
        // SAFETY: `offset + dst.len() <= self.len()` was checked above, the mapping lives
        // while `self` does, and `dst` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies `src` into the segment at `offset`.
    ///
    /// Returns `false` (and copies nothing) when the range is outside the segment.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> bool {
        if !self.in_bounds(offset, src.len()) {
            return false;
        }
        // SAFETY: `offset + src.len() <= self.len()` was checked above, the mapping is
        // writable and lives while `self` does, and `src` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len()) };
        true
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len())
    }

    /// `shm_unlink` (Unix); nothing on Windows—removes the segment's name for everyone.
    /// Mappings stay valid until they are closed.
    ///
    /// # Errors
    /// `ENOENT` when the name is already gone.
    #[doc(alias = "shm_unlink")]
    pub fn unlink(&self) -> Result<()> {
        unlink(self.name())
    }
}

/// How [`Segment::wait`] ended, as `Atomics.wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// Woken by a notify, or the word changed while waiting.
    Ok,
    /// The word did not hold the expected value when the wait began.
    NotEqual,
    /// The timeout passed first.
    TimedOut,
}

impl Segment {
    /// The aligned 32-bit word at `offset`, shared with every process that maps the segment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `offset` is not a multiple of 4; [`Error::OutOfRange`]
    /// when the word does not lie inside the segment.
    pub fn word(&self, offset: usize) -> Result<&AtomicU32> {
        if !offset.is_multiple_of(4) {
            return Err(Error::InvalidArgument(format!(
                "byteOffset must be a multiple of 4, got {offset}"
            )));
        }
        if !self.in_bounds(offset, 4) {
            return Err(Error::OutOfRange(format!(
                "byteOffset {offset} is outside the segment's {} bytes (a word takes 4)",
                self.len()
            )));
        }
        // SAFETY: `offset + 4 <= len` was checked above; the mapping is page-aligned and
        // `offset % 4 == 0`, so the address suits an AtomicU32, and it stays mapped while
        // `self` lives. Other processes may access the word at any time, which atomics allow.
        Ok(unsafe { AtomicU32::from_ptr(self.as_ptr().add(offset).cast::<u32>()) })
    }

    /// The aligned 64-bit word at `offset` (a multiple of 8), shared like [`Segment::word`]'s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `offset` is not a multiple of 8; [`Error::OutOfRange`]
    /// when the word does not lie inside the segment.
    pub fn word64(&self, offset: usize) -> Result<&AtomicU64> {
        if !offset.is_multiple_of(8) {
            return Err(Error::InvalidArgument(format!(
                "a 64-bit word's offset must be a multiple of 8, got {offset}"
            )));
        }
        if !self.in_bounds(offset, 8) {
            return Err(Error::OutOfRange(format!(
                "byte {offset} is outside the segment's {} bytes (a 64-bit word takes 8)",
                self.len()
            )));
        }
        // SAFETY: `offset + 8 <= len` was checked above; the mapping is page-aligned and
        // `offset % 8 == 0`, so the address suits an AtomicU64, and it stays mapped while
        // `self` lives. Other processes may access the word at any time, which atomics allow.
        Ok(unsafe { AtomicU64::from_ptr(self.as_ptr().add(offset).cast::<u64>()) })
    }

    /// `futex(FUTEX_WAIT)` (Linux), `os_sync_wait_on_address` / `__ulock_wait` (macOS), a
    /// bounded back-off poll (Windows)—sleeps while the word at `offset` holds `expected`,
    /// until [`Segment::notify`] from any process or thread, or `timeout` (`None`: forever).
    ///
    /// Like `Atomics.wait`, but across processes. A return of [`Waited::Ok`] means "woken or
    /// changed": check the word again, as with any futex.
    ///
    /// # Errors
    /// As [`Segment::word`]; [`Error::Closed`] when the segment is (or gets) retired: a wait
    /// in progress ends within 50 ms of [`Segment::retire`].
    ///
    /// # References
    ///  - [Linux `futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html)
    #[doc(alias = "futex")]
    #[doc(alias = "os_sync_wait_on_address")]
    pub fn wait(&self, offset: usize, expected: u32, timeout: Option<Duration>) -> Result<Waited> {
        let word = self.live_word(offset)?;
        if word.load(Ordering::SeqCst) != expected {
            return Ok(Waited::NotEqual);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let slice = match deadline {
                Some(deadline) => WAIT_SLICE.min(deadline.saturating_duration_since(Instant::now())),
                None => WAIT_SLICE,
            };
            if slice.is_zero() {
                return Ok(Waited::TimedOut);
            }
            let woke = futex::wait(word, expected, slice).map_err(|e| Error::os("wait", self.name(), e))?;
            self.live()?;
            if woke != futex::Wake::TimedOut || word.load(Ordering::SeqCst) != expected {
                return Ok(Waited::Ok);
            }
        }
    }

    /// `futex(FUTEX_WAKE)` (Linux), `os_sync_wake_by_address_*` / `__ulock_wake` (macOS)—wakes
    /// up to `count` waiters on the word at `offset`, in any process. Returns how many were
    /// woken: exact on Linux, 0 or 1 on macOS (it does not say), 0 on Windows (waiters poll).
    ///
    /// # Errors
    /// As [`Segment::word`]; [`Error::Closed`] after [`Segment::retire`].
    #[doc(alias = "futex")]
    pub fn notify(&self, offset: usize, count: u32) -> Result<usize> {
        let word = self.live_word(offset)?;
        futex::wake(word, count).map_err(|e| Error::os("notify", self.name(), e))
    }

    /// Marks this handle closed for waiting and locking: waits in progress on any thread end
    /// with [`Error::Closed`] within 50 ms, and later waits, notifies and lock attempts fail
    /// the same way. The mapping itself stays until the last owner drops the segment.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// Whether [`Segment::retire`] was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    pub(crate) fn live(&self) -> Result<()> {
        if self.is_retired() {
            return Err(Error::Closed(Closed::Segment(self.name().to_owned())));
        }
        Ok(())
    }

    pub(crate) fn live_word(&self, offset: usize) -> Result<&AtomicU32> {
        self.live()?;
        self.word(offset)
    }
}

/// `shm_unlink` (Unix); nothing on Windows—removes a segment's name for everyone.
///
/// # Errors
/// [`Error::InvalidName`] before any syscall; `ENOENT` when no such segment exists.
///
/// # References
///  - [POSIX `shm_unlink`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_unlink.html)
#[doc(alias = "shm_unlink")]
pub fn unlink(name: &str) -> Result<()> {
    let name = ShmName::new(name)?;
    crate::tracker::unregister(name.as_str());
    os::SegmentInner::unlink(&name).map_err(|e| Error::os("unlink", name.as_str(), e))
}

/// Automatic cleanup's unlink: stops tracking `name`, then removes it only while it still names
/// the object this process created (`created`, from [`Segment::created_object`]). A name that
/// someone else unlinked and re-created is theirs and stays (Linux; elsewhere the OS gives no
/// identity to compare and the name is removed). The user's own `unlink` is [`unlink`], which
/// removes the name whatever it names, as CPython's does.
pub(crate) fn unlink_created(name: &str, created: Option<ObjectId>) -> Result<()> {
    let name = ShmName::new(name)?;
    crate::tracker::unregister(name.as_str());
    os::SegmentInner::unlink_created(&name, created).map_err(|e| Error::os("unlink", name.as_str(), e))
}

/// The helper's variant of [`unlink_created`]: no tracker (it *is* the tracker), no error.
#[cfg(unix)]
pub(crate) fn unlink_created_quietly(name: &str, created: Option<ObjectId>) {
    if let Ok(name) = ShmName::new(name) {
        let _ = os::SegmentInner::unlink_created(&name, created);
    }
}

/// `len` bytes at `ptr` as atomics.
///
/// # Safety
/// `ptr` is valid for reads and writes of `len` bytes for the returned lifetime, and nothing
/// accesses them meanwhile except through atomics (or from other processes).
unsafe fn atomic_view<'a>(ptr: *mut u8, len: usize) -> &'a [AtomicU8] {
    // SAFETY: the caller's promise; AtomicU8 has the size and alignment of u8.
    unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU8>(), len) }
}

/// A byte buffer this code owns, seen as atomics so that the layout code that writes shared
/// segments can write it too (what the unstable `AtomicU8::from_mut_slice` does).
pub fn atomic_slice(bytes: &mut [u8]) -> &[AtomicU8] {
    // SAFETY: `&mut` proves exclusive access for the returned lifetime, and AtomicU8 has
    // the size and alignment of u8.
    unsafe { atomic_view(bytes.as_mut_ptr(), bytes.len()) }
}

/// The 8-byte words of shared memory that are 8-aligned: `(head, words, tail)`, so that
/// slots and formats (8-aligned in a page-aligned mapping) move with one atomic access per
/// word, never torn; `head` and `tail` are byte-wise (empty for a segment's slots).
fn words(bytes: &[AtomicU8]) -> (&[AtomicU8], &[AtomicU64], &[AtomicU8]) {
    // SAFETY: every bit pattern is a valid AtomicU64, and `align_to` only puts properly
    // aligned, fully contained words in the middle part.
    unsafe { bytes.align_to::<AtomicU64>() }
}

/// Copies 8 bytes of shared memory (`src` must be 8 long, else zeros come back): one relaxed
/// atomic load when they are 8-aligned, as every slot and format of a list in a mapping is.
pub fn load_word(src: &[AtomicU8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    if src.len() == 8 && src.as_ptr().cast::<AtomicU64>().is_aligned() {
        // SAFETY: `src` is 8 valid bytes at an address aligned for AtomicU64, shared memory
        // that is only ever accessed atomically from here.
        let word = unsafe { &*src.as_ptr().cast::<AtomicU64>() };
        out = word.load(Ordering::Relaxed).to_ne_bytes();
    } else {
        for (d, s) in out.iter_mut().zip(src) {
            *d = s.load(Ordering::Relaxed);
        }
    }
    out
}

/// Copies shared memory into `dst` (the same length) with relaxed atomic loads, a word at a
/// time where aligned. Returns `false`, copying nothing, when the lengths differ.
pub fn load_bytes(src: &[AtomicU8], dst: &mut [u8]) -> bool {
    if src.len() != dst.len() {
        return false;
    }
    if let Ok(word) = <&mut [u8; 8]>::try_from(&mut *dst) {
        *word = load_word(src);
        return true;
    }
    let (head, middle, tail) = words(src);
    let (dst_head, rest) = dst.split_at_mut(head.len());
    let (dst_middle, dst_tail) = rest.split_at_mut(middle.len() * 8);
    for (d, s) in dst_head.iter_mut().zip(head) {
        *d = s.load(Ordering::Relaxed);
    }
    for (d, s) in dst_middle.chunks_exact_mut(8).zip(middle) {
        d.copy_from_slice(&s.load(Ordering::Relaxed).to_ne_bytes());
    }
    for (d, s) in dst_tail.iter_mut().zip(tail) {
        *d = s.load(Ordering::Relaxed);
    }
    true
}

/// Copies `src` into shared memory (the same length) with relaxed atomic stores, a word at a
/// time where aligned. Returns `false`, storing nothing, when the lengths differ.
pub fn store_bytes(dst: &[AtomicU8], src: &[u8]) -> bool {
    if src.len() != dst.len() {
        return false;
    }
    let (head, middle, tail) = words(dst);
    let (src_head, rest) = src.split_at(head.len());
    let (src_middle, src_tail) = rest.split_at(middle.len() * 8);
    for (d, s) in head.iter().zip(src_head) {
        d.store(*s, Ordering::Relaxed);
    }
    for (d, s) in middle.iter().zip(src_middle.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(s);
        d.store(u64::from_ne_bytes(word), Ordering::Relaxed);
    }
    for (d, s) in tail.iter().zip(src_tail) {
        d.store(*s, Ordering::Relaxed);
    }
    true
}

/// Fills shared memory with `byte`, a word at a time where aligned.
pub fn fill_bytes(dst: &[AtomicU8], byte: u8) {
    let (head, middle, tail) = words(dst);
    for d in head.iter().chain(tail) {
        d.store(byte, Ordering::Relaxed);
    }
    let word = u64::from_ne_bytes([byte; 8]);
    for d in middle {
        d.store(word, Ordering::Relaxed);
    }
}
