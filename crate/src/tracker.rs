//! Cleanup of tracked segments whose creator ends without unlinking them — by `exit`, an
//! uncaught exception, SIGTERM, SIGKILL, a native crash, or a kill of its whole process group.
//!
//! CPython's two verbs: [`register`] a name when this process creates a tracked segment,
//! [`unregister`] it when the segment is unlinked. Nothing is tracked on attach.
//!
//! # Design (POSIX)
//! The first [`register`] forks a small helper process (double fork: it is re-parented to
//! init, and `setsid` puts it in its own session, so killing the creator's process group does
//! not reach it). The creator keeps one end of a Unix socket pair, the helper the other. The
//! creator sends `+name` / `-name` records; when its end closes — which the kernel does
//! however the creator dies — the helper reads EOF, unlinks every name still registered and
//! exits. Each `+` record carries the identity (device, inode) of the object the creator made,
//! and the helper unlinks a name only while it still names that object: a name that someone
//! else unlinked and re-created in the meantime is theirs (see `segment::unlink_created`). If the helper itself is killed, the next `register` sees the broken socket, starts
//! a new helper and re-sends every live name.
//!
//! The helper is a fork, not a new program: nothing to install or find on disk, and it
//! starts in about a millisecond. After the fork it only makes system calls and uses the
//! allocator (which glibc, musl and macOS make safe in the child of a threaded process); it
//! closes every inherited descriptor, resets signal handlers, and never runs the parent's
//! code again. Segment mappings are marked not to be inherited (`MADV_DONTFORK`,
//! `minherit`), so the helper never pins a segment's memory.
//!
//! When the last tracked name is unregistered and the helper has run for over ten seconds,
//! the creator closes its end and the helper exits; a later `register` starts a new one. (A
//! fork makes the creator take copy-on-write faults on the pages it writes next; the grace
//! keeps a create/unlink loop from paying that over and over. A helper with nothing to watch
//! sleeps in `read` and exits with the creator at the latest.)
//!
//! On Windows there is nothing to do: a section dies with its last handle.
#![allow(unsafe_code)]

#[cfg(unix)]
pub use unix::{helper_pid, register, unregister};
#[cfg(unix)]
pub(crate) use unix::{prepare, register_name};

#[cfg(windows)]
pub use windows::{helper_pid, register, unregister};
#[cfg(windows)]
pub(crate) use windows::{prepare, register_name};

#[cfg(windows)]
mod windows {
    use crate::{Result, Segment};

    /// Nothing to do on Windows: a section lives only while a handle to it is open.
    pub fn register(_segment: &Segment) -> Result<()> {
        Ok(())
    }

    /// Nothing to do on Windows.
    pub(crate) fn prepare() -> Result<()> {
        Ok(())
    }

    /// Nothing to do on Windows.
    pub(crate) fn register_name(_name: &str, _created: Option<crate::segment::ObjectId>) -> Result<()> {
        Ok(())
    }

    /// Nothing to do on Windows.
    pub fn unregister(_name: &str) {}

    /// There is no helper on Windows.
    pub fn helper_pid() -> Option<u32> {
        None
    }
}

#[cfg(unix)]
mod unix {
    use std::collections::HashMap;
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    use crate::segment::{unlink_created_quietly, ObjectId};
    use crate::{Error, Result, Segment};

    /// A helper younger than this is kept when nothing is left to watch: forking one costs
    /// the creator a burst of copy-on-write faults, too much to pay in a create/unlink loop.
    const IDLE_GRACE: Duration = Duration::from_secs(10);
    /// How long the helper naps between reads (see `follow`).
    const BATCH_NAP: Duration = Duration::from_millis(1);
    const ADD: u8 = b'+';
    const REMOVE: u8 = b'-';

    struct Helper {
        socket: OwnedFd,
        pid: u32,
        started: Instant,
    }

    #[derive(Default)]
    struct Tracker {
        helper: Option<Helper>,
        /// Helpers that stopped reading (SIGSTOPped, say: nothing drained for 100 ms). Their sockets stay open so they never
        /// see EOF while this process lives — EOF would make them unlink live segments; when
        /// this process dies they clean up along with the current helper.
        retired: Vec<OwnedFd>,
        /// Each tracked name, with the object this process created under it.
        names: HashMap<String, Option<ObjectId>>,
    }

    impl Tracker {
        /// Replaces the helper with a fresh one that knows every live name.
        fn restart(&mut self) -> io::Result<()> {
            if let Some(old) = self.helper.take() {
                self.retired.push(old.socket);
            }
            let helper = start_helper()?;
            for (live, created) in &self.names {
                send(&helper.socket, ADD, live, *created, Wait::Handover)?;
            }
            self.helper = Some(helper);
            Ok(())
        }
    }

    /// How long a send waits for room in the socket buffer.
    #[derive(Clone, Copy, PartialEq)]
    enum Wait {
        /// A create waits briefly: a helper that drains nothing for that long has stopped.
        Briefly,
        /// A new helper that is being handed every live name gets longer.
        Handover,
    }

    impl Wait {
        fn limit(self) -> Duration {
            match self {
                Wait::Briefly => Duration::from_millis(100),
                Wait::Handover => Duration::from_secs(2),
            }
        }
    }

    static TRACKER: Mutex<Option<Tracker>> = Mutex::new(None);

    fn with_tracker<T>(f: impl FnOnce(&mut Tracker) -> T) -> T {
        let mut guard = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.get_or_insert_with(Tracker::default))
    }

    /// Tracks a segment this process created: its name is unlinked if this process ends before
    /// [`unregister`] — as long as the name still names the object created here.
    ///
    /// # Errors
    /// `Error::Os` when no helper can be started (fork or socketpair failed); the caller
    /// should then undo the create, since the promise cannot be kept.
    pub fn register(segment: &Segment) -> Result<()> {
        register_name(segment.name(), segment.created_object())
    }

    /// Starts a helper if none runs, so that a create about to make a name registers it a moment
    /// later without a fork in between: starting a helper takes milliseconds, during which the
    /// new name would not be watched.
    ///
    /// # Errors
    /// As [`register`].
    pub(crate) fn prepare() -> Result<()> {
        with_tracker(|tracker| match tracker.helper {
            Some(_) => Ok(()),
            None => tracker
                .restart()
                .map_err(|e| Error::os("start the tracking helper for", crate::name::NAME_PREFIX, e)),
        })
    }

    /// [`register`] by name, for a segment being created: `created` is the object the name
    /// was made for.
    pub(crate) fn register_name(name: &str, created: Option<ObjectId>) -> Result<()> {
        with_tracker(|tracker| {
            if tracker.names.insert(name.to_owned(), created) == Some(created) {
                return Ok(());
            }
            let sent = match &tracker.helper {
                Some(helper) => send(&helper.socket, ADD, name, created, Wait::Briefly).is_ok(),
                None => false,
            };
            if sent {
                return Ok(());
            }
            // No helper yet, or it died or stopped reading: start one with every live name.
            tracker.restart().map_err(|e| {
                tracker.names.remove(name);
                Error::os("start the tracking helper for", name, e)
            })
        })
    }

    /// Stops tracking `name` (it was unlinked); a name never registered is ignored.
    pub fn unregister(name: &str) {
        with_tracker(|tracker| {
            if tracker.names.remove(name).is_none() {
                return;
            }
            if let Some(helper) = &tracker.helper {
                if send(&helper.socket, REMOVE, name, None, Wait::Briefly).is_err() {
                    // Dead or stopped: the next register replaces it. A stopped one still
                    // holds this name and may unlink it again at exit, which finds it gone.
                    if let Some(old) = tracker.helper.take() {
                        tracker.retired.push(old.socket);
                    }
                    return;
                }
                if tracker.names.is_empty() && helper.started.elapsed() > IDLE_GRACE {
                    // Closing our end is the helper's signal to exit (with nothing to unlink).
                    tracker.helper = None;
                }
            }
        })
    }

    /// The helper's pid while one runs (for tests and diagnostics).
    pub fn helper_pid() -> Option<u32> {
        with_tracker(|tracker| tracker.helper.as_ref().map(|h| h.pid))
    }

    /// Bytes of a record before the name: op, name length (u16), object identity (16 bytes).
    const HEADER: usize = 3 + 16;

    /// One record: op, name length (u16, native-endian), the created object's identity
    /// (all zero when there is none, and in `-` records), name bytes. Names may contain any
    /// byte but NUL and `/`, so they are length-prefixed rather than line-separated.
    fn send(socket: &OwnedFd, op: u8, name: &str, created: Option<ObjectId>, wait: Wait) -> io::Result<()> {
        let mut record = Vec::with_capacity(HEADER + name.len());
        record.push(op);
        record.extend_from_slice(&(name.len() as u16).to_ne_bytes());
        record.extend_from_slice(&ObjectId::to_bytes(created));
        record.extend_from_slice(name.as_bytes());
        let mut rest = &record[..];
        let deadline = Instant::now() + wait.limit();
        while !rest.is_empty() {
            match rustix::net::send(socket, rest, send_flags()) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => {
                    let mut fds = [rustix::event::PollFd::new(socket, rustix::event::PollFlags::OUT)];
                    let timeout = rustix::time::Timespec {
                        tv_sec: 0,
                        tv_nsec: 10_000_000,
                    };
                    let _ = rustix::event::poll(&mut fds, Some(&timeout));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Never blocks (MSG_DONTWAIT), and a dead helper is EPIPE, never SIGPIPE (MSG_NOSIGNAL;
    /// macOS has SO_NOSIGPIPE on the socket instead).
    fn send_flags() -> rustix::net::SendFlags {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        return rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT;
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        return rustix::net::SendFlags::DONTWAIT;
    }

    fn start_helper() -> io::Result<Helper> {
        #[cfg(not(target_vendor = "apple"))]
        let (ours, theirs) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
        // Apple has no SOCK_CLOEXEC, so close-on-exec is set right after. A fork+exec by
        // another thread between the two calls would leave both ends open in that program.
        // That is no risk to correctness: the helper unlinks only at EOF, which then waits
        // until that program exits too, so cleanup is late, never early and never lost. Node's
        // spawns are rarely affected: on Apple libuv spawns with posix_spawn and
        // POSIX_SPAWN_CLOEXEC_DEFAULT, which passes on only the child's stdio, and forks only
        // for options posix_spawn lacks (uid/gid) — see `uv__spawn_set_posix_spawn_attrs` in
        // https://github.com/libuv/libuv/blob/v1.x/src/unix/process.c.
        #[cfg(target_vendor = "apple")]
        let (ours, theirs) = {
            let pair = rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::empty(), None)?;
            rustix::io::fcntl_setfd(&pair.0, rustix::io::FdFlags::CLOEXEC)?;
            rustix::io::fcntl_setfd(&pair.1, rustix::io::FdFlags::CLOEXEC)?;
            pair
        };
        #[cfg(target_vendor = "apple")]
        rustix::net::sockopt::set_socket_nosigpipe(&ours, true)?;
        // SAFETY: the child only calls `run_intermediate`, which makes system calls and then
        // `_exit`s; it never returns into the parent's code (see the module docs).
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => run_intermediate(theirs),
            child => {
                drop(theirs);
                // The intermediate exits right after forking the helper; reap it.
                let mut status = 0;
                // SAFETY: `child` is our own child; `status` is a valid out-pointer.
                while unsafe { libc::waitpid(child, &mut status, 0) } == -1
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {}
                let mut pid = [0u8; 4];
                read_exact(&ours, &mut pid)?;
                Ok(Helper {
                    socket: ours,
                    pid: u32::from_ne_bytes(pid),
                    started: Instant::now(),
                })
            }
        }
    }

    fn read_exact(socket: &OwnedFd, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match rustix::io::read(socket, &mut *buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tracking helper exited at start",
                    ))
                }
                Ok(n) => buf = &mut buf[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The first child: a new session, then the helper as its own child, then `_exit`, so
    /// the helper is re-parented to init and no zombie is left behind.
    fn run_intermediate(socket: OwnedFd) -> ! {
        let _ = rustix::process::setsid();
        // SAFETY: as in `start_helper`: the grandchild runs only `run_helper`.
        match unsafe { libc::fork() } {
            0 => run_helper(socket),
            // SAFETY: `_exit` skips atexit handlers and destructors that belong to the parent.
            _ => unsafe { libc::_exit(0) },
        }
    }

    fn run_helper(socket: OwnedFd) -> ! {
        isolate(socket.as_raw_fd());
        // So that `ps` and `top` say what it is (Linux; the name is at most 15 bytes).
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, c"shmkit-tracker".as_ptr());
        }
        let pid = std::process::id().to_ne_bytes();
        let _ = rustix::net::send(&socket, &pid, rustix::net::SendFlags::empty());
        let names = follow(&socket);
        for (name, created) in names {
            unlink_created_quietly(&name, created);
        }
        // SAFETY: see `run_intermediate`.
        unsafe { libc::_exit(0) }
    }

    /// Reads records until EOF; returns the names still registered then. After each read it
    /// naps for a millisecond: a creator's send then rarely has to wake it (a wake-up costs
    /// the creator several microseconds in a VM), while the socket buffer — about two hundred
    /// small records — still drains far faster than creates can fill it.
    fn follow(socket: &OwnedFd) -> HashMap<String, Option<ObjectId>> {
        let mut names = HashMap::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match rustix::io::read(socket.as_fd(), &mut chunk) {
                Ok(0) => return names,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return names,
            }
            let mut used = 0;
            while let Some(header) = pending.get(used..used + HEADER) {
                let len = usize::from(u16::from_ne_bytes([header[1], header[2]]));
                let Some(name) = pending.get(used + HEADER..used + HEADER + len) else {
                    break;
                };
                let mut id = [0u8; 16];
                id.copy_from_slice(&header[3..HEADER]);
                let name = String::from_utf8_lossy(name).into_owned();
                if header[0] == ADD {
                    names.insert(name, ObjectId::from_bytes(id));
                } else {
                    names.remove(&name);
                }
                used += HEADER + len;
            }
            pending.drain(..used);
            std::thread::sleep(BATCH_NAP);
        }
    }

    /// Detaches the helper from everything it inherited: other descriptors (sockets, the
    /// creator's stdout and IPC channel, which would otherwise stay open for its readers),
    /// signal handlers and the signal mask.
    fn isolate(keep: i32) {
        // SAFETY: plain system calls on descriptors and signal state owned by this process.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
            }
            close_from(3, keep);
            for signal in 1..32 {
                libc::signal(signal, libc::SIG_DFL);
            }
            // A creator that died before reading our pid must not kill us with SIGPIPE.
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        }
    }

    /// Closes every descriptor from `first` up, except `keep`.
    fn close_from(first: i32, keep: i32) {
        #[cfg(target_os = "linux")]
        {
            let close_range = |from: i32, to: u32| {
                // SAFETY: close_range on a range of our own descriptors (Linux 5.9+).
                from as u32 > to || unsafe { libc::syscall(libc::SYS_close_range, from as u32, to, 0) } == 0
            };
            if close_range(first, (keep - 1) as u32) && close_range(keep + 1, u32::MAX) {
                return;
            }
        }
        // SAFETY: getdtablesize has no preconditions.
        let limit = unsafe { libc::getdtablesize() }.clamp(first, 65_536);
        for fd in first..limit {
            if fd != keep {
                // SAFETY: closing a descriptor number this process may or may not have open.
                unsafe { libc::close(fd) };
            }
        }
    }
}
