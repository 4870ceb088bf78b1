//! The crate's single error type. It says what went wrong in the core's own words (and the
//! OS's: POSIX errno names); what a binding shows its users, codes and class names, is the
//! binding's to choose (the Node binding's table is its `src/error.rs`).

use std::fmt;
use std::io;

/// Everything that can go wrong in shmkit-core.
#[derive(Debug)]
pub enum Error {
    /// The OS refused; the `io::Error` keeps its raw errno (`raw_os_error()`).
    Os {
        /// What was being done, e.g. `"shm_open"`.
        op: &'static str,
        /// The segment's name, as users see it.
        name: String,
        /// The OS error, unchanged.
        source: io::Error,
    },
    /// The name cannot name a segment on this OS (checked before any syscall).
    InvalidName(String),
    /// The size is not a positive integer that this platform can map.
    InvalidSize(String),
    /// Another argument is out of its range (e.g. a mode above 0o777).
    InvalidArgument(String),
    /// The object was closed or shut down.
    Closed(Closed),
    /// The bytes do not hold a valid ShareableList (says what is wrong).
    Corrupt(String),
    /// An item stayed mid-write while it was being read (internal; reported as `Corrupt`).
    Busy,
    /// An offset or other argument outside the object it refers to (says which).
    OutOfRange(String),
    /// This lock handle already holds the lock, or is already acquiring it.
    AlreadyHeld,
    /// `unlock` on a lock handle that does not hold the lock.
    NotHeld,
    /// A list index outside `[-len, len)`.
    IndexOutOfRange {
        /// The index asked for.
        index: i64,
        /// The list's length.
        len: usize,
    },
    /// This process already holds as many segment mappings as shmkit allows it (Linux: three
    /// quarters of `vm.max_map_count`; the rest is left for the runtime's own mappings).
    TooManyMappings {
        /// The segment that was being created or opened.
        name: String,
        /// Mappings this process holds through shmkit.
        live: usize,
        /// The most it may hold.
        budget: usize,
    },
    /// The bytes do not hold a valid [`crate::queue::SharedQueue`] (says what is wrong).
    QueueCorrupt(String),
    /// A queue stayed full until the timeout (Python: `queue.Full`).
    QueueFull,
    /// A queue stayed empty until the timeout (Python: `queue.Empty`).
    QueueEmpty,
    /// The queue was ended: nothing more may be put, and nothing is left to get.
    QueueEnded,
    /// A queue slot reservation or borrow that was already committed, aborted or released
    /// (says which).
    SlotFinished(&'static str),
    /// A message longer than the queue's slots hold.
    MessageTooLarge {
        /// Bytes the message needs.
        needed: usize,
        /// The most a message may take in this queue.
        max: usize,
    },
    /// A str/bytes longer than its slot (CPython: ValueError).
    ValueTooLarge {
        /// Bytes the value needs.
        needed: usize,
        /// Bytes the slot holds.
        allocated: usize,
    },
}

/// What was closed, in [`Error::Closed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A segment handle, retired ([`crate::Segment::retire`]); its name.
    Segment(String),
    /// A lock handle ([`crate::lock::ShmLock::close`]); the lock's byte offset.
    Lock(usize),
    /// A [`crate::Manager`], shut down.
    Manager,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Segment(name) => write!(f, "segment '{name}' is closed"),
            Closed::Lock(offset) => write!(f, "the lock at byte {offset} is closed"),
            Closed::Manager => f.write_str("the manager has been shut down"),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn os(op: &'static str, name: &str, source: io::Error) -> Self {
        Error::Os {
            op,
            name: name.to_owned(),
            source,
        }
    }

    /// The POSIX errno name of an OS error (`ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`, …;
    /// Windows errors are given the same names), and of the two lock errors that POSIX names:
    /// `EDEADLK` for [`Error::AlreadyHeld`], `EPERM` for [`Error::NotHeld`]. `None` for the rest.
    pub fn errno_name(&self) -> Option<&'static str> {
        match self {
            Error::Os { source, .. } => Some(errno_name(source)),
            Error::AlreadyHeld => Some("EDEADLK"),
            Error::NotHeld => Some("EPERM"),
            _ => None,
        }
    }

    /// The OS error's raw code, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, name, source } => {
                write!(f, "{}: {op} '{name}' failed: {source}", errno_name(source))
            }
            Error::InvalidName(why) => write!(f, "invalid shared memory name: {why}"),
            Error::InvalidSize(why) => write!(f, "invalid shared memory size: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Closed(what) => what.fmt(f),
            Error::Corrupt(why) => write!(f, "not a valid ShareableList: {why}"),
            Error::Busy => f.write_str("not a valid ShareableList: an item stays mid-write"),
            Error::OutOfRange(why) => f.write_str(why),
            Error::AlreadyHeld => f.write_str("EDEADLK: this handle already holds the lock (or is acquiring it)"),
            Error::NotHeld => f.write_str("EPERM: this handle does not hold the lock"),
            Error::IndexOutOfRange { index, len } => {
                write!(f, "index out of range: {index} (the list has {len} items)")
            }
            Error::TooManyMappings { name, live, budget } => write!(
                f,
                "cannot map '{name}': this process already holds {live} segment mappings, \
                 the most shmkit allows ({budget}, three quarters of vm.max_map_count; the rest is kept for the runtime); \
                 close() handles you no longer use"
            ),
            Error::QueueCorrupt(why) => write!(f, "not a valid SharedQueue: {why}"),
            Error::QueueFull => f.write_str("the queue stayed full until the timeout"),
            Error::QueueEmpty => f.write_str("the queue stayed empty until the timeout"),
            Error::QueueEnded => f.write_str("the queue was ended (end()): nothing more comes"),
            Error::SlotFinished(how) => write!(f, "this queue slot was already {how}"),
            Error::MessageTooLarge { needed, max } => write!(
                f,
                "the message takes {needed} bytes; this queue's maxMessageSize is {max}"
            ),
            Error::ValueTooLarge { needed, allocated } => write!(
                f,
                "bytes/str item exceeds available storage: it needs {needed} bytes, the slot holds {allocated}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(unix)]
fn errno_name(err: &io::Error) -> &'static str {
    use rustix::io::Errno;
    let Some(raw) = err.raw_os_error() else {
        return kind_name(err.kind());
    };
    match Errno::from_raw_os_error(raw) {
        Errno::NOENT => "ENOENT",
        Errno::EXIST => "EEXIST",
        Errno::ACCESS => "EACCES",
        Errno::PERM => "EPERM",
        Errno::NOSPC => "ENOSPC",
        Errno::NOMEM => "ENOMEM",
        Errno::INVAL => "EINVAL",
        Errno::NAMETOOLONG => "ENAMETOOLONG",
        Errno::MFILE => "EMFILE",
        Errno::NFILE => "ENFILE",
        Errno::FBIG => "EFBIG",
        Errno::INTR => "EINTR",
        Errno::NODEV => "ENODEV",
        Errno::ISDIR => "EISDIR",
        Errno::LOOP => "ELOOP",
        Errno::ROFS => "EROFS",
        Errno::NOTSUP => "ENOTSUP",
        _ => kind_name(err.kind()),
    }
}

#[cfg(windows)]
fn errno_name(err: &io::Error) -> &'static str {
    // Win32 codes from winerror.h, named as the POSIX errno Node would use for them.
    match err.raw_os_error() {
        Some(2) | Some(3) => "ENOENT",      // ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND
        Some(5) => "EACCES",                // ERROR_ACCESS_DENIED
        Some(8) | Some(14) => "ENOMEM",     // ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY
        Some(80) | Some(183) => "EEXIST",   // ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS
        Some(87) | Some(123) => "EINVAL",   // ERROR_INVALID_PARAMETER, ERROR_INVALID_NAME
        Some(112) | Some(1455) => "ENOSPC", // ERROR_DISK_FULL, ERROR_COMMITMENT_LIMIT
        Some(206) => "ENAMETOOLONG",        // ERROR_FILENAME_EXCED_RANGE
        _ => kind_name(err.kind()),
    }
}

fn kind_name(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::NotFound => "ENOENT",
        io::ErrorKind::AlreadyExists => "EEXIST",
        io::ErrorKind::PermissionDenied => "EACCES",
        io::ErrorKind::OutOfMemory => "ENOMEM",
        io::ErrorKind::InvalidInput => "EINVAL",
        _ => "EIO",
    }
}
