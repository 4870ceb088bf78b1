//! `SharedMemory`: a named segment with a zero-copy `buf`, as in CPython.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::{Closed, Segment, SegmentOptions, ShmName};

use crate::args::{self, MAX_SAFE_INTEGER};
use crate::error::{
    closed, error, from_core, from_view, guard, Code, INVALID_ARG_VALUE, INVALID_NAME, INVALID_SIZE, OUT_OF_RANGE,
};
use crate::manager::SharedMemoryManager;
use crate::raw::{Held, Reference, View};
use crate::sync::{byte_offset, expected_word, timeout, wait_promise, waited_name, wake_count};

/// Options of `new SharedMemory(...)`, named as CPython's keyword arguments.
#[napi(object)]
#[derive(Default)]
pub struct SharedMemoryOptions {
    /// The segment's name; random (`psm_…`) when creating without one.
    pub name: Option<String>,
    /// Create a new segment (`true`) or attach to an existing one (default `false`).
    pub create: Option<bool>,
    /// Size in bytes when creating; ignored when attaching, as in CPython.
    pub size: Option<f64>,
    /// Unlink the segment if this process ends without unlinking it (default `true` for
    /// segments this process creates; attaching never tracks).
    pub track: Option<bool>,
    /// Reserve the memory at create, so a full /dev/shm fails now with `ENOSPC` instead of
    /// killing the process with SIGBUS at the first write (Linux; default `true`).
    pub reserve: Option<bool>,
    /// Permission bits of a new segment (POSIX; default `0o600`, owner only): an integer
    /// from 0 to 0o777.
    pub mode: Option<f64>,
}

/// Options of `SharedMemory.create(size, ...)`.
#[napi(object)]
#[derive(Default)]
pub struct CreateOptions {
    /// The segment's name; random (`psm_…`) when absent.
    pub name: Option<String>,
    /// Unlink the segment if this process ends without unlinking it (default `true`).
    pub track: Option<bool>,
    /// Reserve the memory now (Linux `fallocate`; default `true`). `false` makes it sparse.
    pub reserve: Option<bool>,
    /// Permission bits (POSIX; default `0o600`): an integer from 0 to 0o777.
    pub mode: Option<f64>,
}

/// What `JSON.stringify(shm)` gives: enough to attach from another process.
#[napi(object)]
pub struct SharedMemoryJson {
    /// The segment's name.
    pub name: String,
    /// Size in bytes.
    pub size: f64,
}

/// A named shared-memory segment, mapped into this process.
///
/// Create one with `SharedMemory.create(size)` or attach with `SharedMemory.open(name)`;
/// any process (Node, Python, Rust) can attach by `name`. `close()` unmaps this handle;
/// `unlink()` removes the name for everyone and should be called once, by one process.
#[napi(custom_finalize)]
pub struct SharedMemory {
    name: String,
    size: usize,
    track: bool,
    segment: Option<Arc<Segment>>,
    view: Option<View>,
    /// The SharedArrayBuffer over the mapping, once asked for (it holds the mapping itself).
    shared_buffer: Option<Reference>,
    /// The manager that made this segment, kept alive for as long as this handle lives.
    owner: Option<Held<SharedMemoryManager>>,
}

#[napi]
impl SharedMemory {
    /// Creates (`create: true`) or attaches to a segment, like CPython's
    /// `SharedMemory(name=None, create=False, size=0)`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        #[napi(ts_arg_type = "SharedMemoryOptions | undefined | null")] options: Option<Unknown>,
    ) -> Result<Self, Code> {
        guard(|| Self::construct(&env, options))
    }

    fn construct(env: &Env, options: Option<Unknown>) -> Result<Self, Code> {
        let options: Option<SharedMemoryOptions> = crate::error::options(env, options, "options")?;
        let options = options.unwrap_or_default();
        if options.create.unwrap_or(false) {
            let size = options
                .size
                .ok_or_else(|| error(INVALID_SIZE, "'size' must be a positive number different from zero"))?;
            let create = CreateOptions {
                name: options.name,
                track: options.track,
                reserve: options.reserve,
                mode: options.mode,
            };
            return Self::create_with(size, Some(create));
        }
        match options.name {
            Some(name) => Self::attach(&name),
            None => Err(error(INVALID_NAME, "'name' can only be undefined if create is true")),
        }
    }

    /// Creates a new segment of `size` bytes, zero-filled, with mode 0600.
    #[napi(factory, catch_unwind)]
    pub fn create(
        env: Env,
        #[napi(ts_arg_type = "number")] size: Unknown,
        #[napi(ts_arg_type = "CreateOptions | undefined | null")] options: Option<Unknown>,
    ) -> Result<Self, Code> {
        guard(|| {
            let size = args::number(&env, size, "size")?;
            Self::create_with(size, crate::error::options(&env, options, "options")?)
        })
    }

    fn create_with(size: f64, options: Option<CreateOptions>) -> Result<Self, Code> {
        let size = checked_size(size)?;
        let options = options.unwrap_or_default();
        let mut builder = SegmentOptions::new();
        if let Some(name) = &options.name {
            builder.name(ShmName::new(name).map_err(from_core)?);
        }
        builder
            .reserve(options.reserve.unwrap_or(true))
            .track(options.track.unwrap_or(true));
        if let Some(mode) = options.mode {
            builder.mode(checked_mode(mode)?);
        }
        let segment = builder.create(size).map_err(from_core)?;
        Ok(Self::wrap(segment, options.track.unwrap_or(true)))
    }

    /// Attaches to an existing segment by name; its size is the OS's.
    #[napi(factory, catch_unwind)]
    pub fn open(env: Env, #[napi(ts_arg_type = "string")] name: Unknown) -> Result<Self, Code> {
        guard(|| Self::attach(&args::string(&env, name, "name")?))
    }

    fn attach(name: &str) -> Result<Self, Code> {
        let segment = Segment::open(name).map_err(from_core)?;
        Ok(Self::wrap(segment, false))
    }

    pub(crate) fn wrap(segment: Segment, track: bool) -> Self {
        SharedMemory {
            name: segment.name().to_owned(),
            size: segment.len(),
            track,
            segment: Some(Arc::new(segment)),
            view: None,
            shared_buffer: None,
            owner: None,
        }
    }

    /// A handle on a segment that `owner` made (and will unlink).
    pub(crate) fn owned_by(segment: Segment, owner: Held<SharedMemoryManager>) -> Self {
        SharedMemory {
            owner: Some(owner),
            ..Self::wrap(segment, true)
        }
    }

    /// The segment's name as Python shows it (`psm_1a2b…`, no leading slash).
    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Size in bytes (exact on Linux, page-rounded on macOS and Windows attaches).
    #[napi(getter, catch_unwind)]
    pub fn size(&self) -> f64 {
        self.size as f64
    }

    /// Whether this handle is tracked: unlinked if the process ends without `unlink()`.
    #[napi(getter, catch_unwind)]
    pub fn track(&self) -> bool {
        self.track
    }

    /// Whether `close()` has been called.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.segment.is_none()
    }

    /// A zero-copy Buffer over the whole segment (the same object on every access).
    /// After `close()` it reads as length 0; accessing `buf` then throws `ERR_SHM_CLOSED`.
    /// A segment larger than `buffer.constants.MAX_LENGTH` (4 GiB on Node 20) throws
    /// `ERR_SHM_BUFFER_TOO_LARGE`: use `window()` for views of parts of it.
    #[napi(getter, ts_return_type = "Buffer", catch_unwind)]
    pub fn buf<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| self.view()?.buffer(env).map_err(|e| from_view(env, e)))
    }

    /// The ArrayBuffer under `buf`, for typed arrays (`new Float64Array(shm.buffer)`).
    #[napi(getter, ts_return_type = "ArrayBuffer", catch_unwind)]
    pub fn buffer<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| self.view()?.array_buffer(env).map_err(|e| from_view(env, e)))
    }

    /// A zero-copy Buffer over `byteLength` bytes of the segment from `byteOffset` (default:
    /// to the end), with an ArrayBuffer of its own that starts at `byteOffset`. Each call makes
    /// a new window; all of them are detached (length 0) by `close()`, like `buf`. Windows
    /// reach every byte of segments too large for one Buffer (`ERR_SHM_BUFFER_TOO_LARGE` from
    /// `buf`); a window itself may be at most `buffer.constants.MAX_LENGTH` long. A range
    /// outside the segment throws `ERR_OUT_OF_RANGE`.
    #[napi(ts_return_type = "Buffer", catch_unwind)]
    pub fn window<'env>(
        &mut self,
        env: &'env Env,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
        #[napi(ts_arg_type = "number | undefined | null")] byte_length: Option<Unknown>,
    ) -> Result<Unknown<'env>, Code> {
        guard(|| {
            let byte_offset = args::number(env, byte_offset, "byteOffset")?;
            let byte_length = args::optional_number(env, byte_length, "byteLength")?;
            let size = self.segment()?.len();
            let (offset, len) = window_range(byte_offset, byte_length, size)?;
            self.view()?.window(env, offset, len).map_err(|e| from_view(env, e))
        })
    }

    /// A SharedArrayBuffer over the whole segment (the same object on every access), for
    /// `Atomics.wait`/`notify` between threads and `postMessage` to workers without a copy.
    /// Needs a Node with `node_api_create_external_sharedarraybuffer` (22.23+, 24.16+, 26.1+;
    /// experimental), else throws `ERR_SHM_NO_SHARED_ARRAY_BUFFER`. It cannot be detached: after
    /// `close()` it stays usable, and the mapping lives until every copy of it is collected.
    #[napi(getter, ts_return_type = "SharedArrayBuffer", catch_unwind)]
    pub fn shared_buffer<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| {
            if let Some(reference) = &self.shared_buffer {
                return reference.get(env);
            }
            let shared_buffer = crate::shared_buffer::create(env, self.segment()?)?;
            self.shared_buffer = Some(Reference::strong(env, &shared_buffer)?);
            Ok(shared_buffer)
        })
    }

    /// Sleeps until another process or thread calls `notify` on the 32-bit word at `byteOffset`
    /// (a multiple of 4), if the word holds `expected` (as an Int32Array or Uint32Array element);
    /// at most `timeoutMs` (default: forever). Like `Atomics.wait`, but across processes, and it
    /// blocks this thread. `'ok'` means woken or changed: check the word again.
    #[napi(ts_return_type = "WaitResult", catch_unwind)]
    pub fn wait(
        &self,
        env: Env,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
        #[napi(ts_arg_type = "number")] expected: Unknown,
        #[napi(ts_arg_type = "number | undefined | null")] timeout_ms: Option<Unknown>,
    ) -> Result<&'static str, Code> {
        guard(|| {
            let (offset, expected, timeout) = wait_arguments(&env, byte_offset, expected, timeout_ms)?;
            let segment = self.segment()?;
            segment
                .wait(offset, expected, timeout)
                .map(waited_name)
                .map_err(from_core)
        })
    }

    /// `wait` without blocking: the promise settles with `'ok' | 'not-equal' | 'timed-out'`, or
    /// rejects with `ERR_SHM_CLOSED` if this handle is closed meanwhile (within 50 ms). Bad
    /// arguments throw at once. The waits of the whole process share a few native threads (at
    /// most 17, however many waits are pending).
    #[napi(ts_return_type = "Promise<WaitResult>", catch_unwind)]
    pub fn wait_async<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
        #[napi(ts_arg_type = "number")] expected: Unknown,
        #[napi(ts_arg_type = "number | undefined | null")] timeout_ms: Option<Unknown>,
    ) -> Result<Object<'env>, Code> {
        guard(|| {
            let (offset, expected, timeout) = wait_arguments(env, byte_offset, expected, timeout_ms)?;
            let segment = Arc::clone(self.segment()?);
            let wait = shmkit_core::waiter::WordWait::new(Arc::clone(&segment), offset, expected, timeout)
                .map_err(from_core)?;
            crate::sync::track_pending(&segment);
            wait_promise(env, wait, waited_name)
        })
    }

    /// Wakes up to `count` (default: all) waiters on the word at `byteOffset`, in every process
    /// and thread. Returns how many it woke: exact on Linux, 0 or 1 on macOS (the OS does not
    /// say), 0 on Windows (waiters there poll the word and wake when it changes).
    #[napi(catch_unwind)]
    pub fn notify(
        &self,
        env: Env,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
        #[napi(ts_arg_type = "number | undefined | null")] count: Option<Unknown>,
    ) -> Result<f64, Code> {
        guard(|| {
            let offset = crate::sync::byte_offset(args::number(&env, byte_offset, "byteOffset")?)?;
            let count = wake_count(args::optional_number(&env, count, "count")?)?;
            let woken = self.segment()?.notify(offset, count).map_err(from_core)?;
            Ok(woken as f64)
        })
    }

    /// The mapping, or `ERR_SHM_CLOSED`.
    pub(crate) fn segment(&self) -> Result<&Arc<Segment>, Code> {
        self.segment
            .as_ref()
            .ok_or_else(|| closed(&Closed::Segment(self.name.clone())))
    }

    fn view(&mut self) -> Result<&mut View, Code> {
        let view = match self.view.take() {
            Some(view) => view,
            None => View::new(self.segment()?),
        };
        Ok(self.view.insert(view))
    }

    /// Unmaps this handle: every Buffer, ArrayBuffer and typed array over it becomes
    /// detached (length 0). Other handles and processes are unaffected. Calling it twice is
    /// harmless.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: &Env) -> Result<(), Code> {
        guard(|| self.close_now(env))
    }

    fn close_now(&mut self, env: &Env) -> Result<(), Code> {
        let detached = match self.view.take() {
            Some(view) => view.detach(env),
            None => Ok(()),
        };
        if let Some(shared_buffer) = self.shared_buffer.take() {
            shared_buffer.release(env);
        }
        // Unmaps now unless something else holds the mapping: a view that could not be
        // detached, a SharedArrayBuffer, a ShmLock or a pending waitAsync. Waits end first.
        if let Some(segment) = self.segment.take() {
            segment.retire();
        }
        detached
    }

    /// Removes the segment's name, so no new process can attach; existing mappings stay
    /// valid until closed. Call it once, from one process; a second call throws `ENOENT`.
    /// Works before or after `close()`. Does nothing on Windows, where a segment lives while
    /// any handle is open.
    #[napi(catch_unwind)]
    pub fn unlink(&mut self) -> Result<(), Code> {
        guard(|| shmkit_core::unlink(&self.name).map_err(from_core))
    }

    /// `{ name, size }`, so `JSON.stringify` passes a segment to another process.
    #[napi(js_name = "toJSON", catch_unwind)]
    pub fn to_json(&self) -> SharedMemoryJson {
        SharedMemoryJson {
            name: self.name.clone(),
            size: self.size as f64,
        }
    }
}

impl ObjectFinalize for SharedMemory {
    fn finalize(mut self, env: Env) -> napi::Result<()> {
        // Views the user still holds keep the mapping through their own reference.
        if let Some(view) = self.view.take() {
            view.release(&env);
        }
        if let Some(shared_buffer) = self.shared_buffer.take() {
            shared_buffer.release(&env);
        }
        if let Some(owner) = self.owner.take() {
            owner.release(&env);
        }
        Ok(())
    }
}

fn wait_arguments(
    env: &Env,
    offset: Unknown,
    expected: Unknown,
    timeout_ms: Option<Unknown>,
) -> Result<(usize, u32, Option<std::time::Duration>), Code> {
    Ok((
        byte_offset(args::number(env, offset, "byteOffset")?)?,
        expected_word(args::number(env, expected, "expected")?)?,
        timeout(args::optional_number(env, timeout_ms, "timeoutMs")?)?,
    ))
}

/// Permission bits: an integer from 0 to 0o777 (no setuid, setgid or sticky bit).
fn checked_mode(mode: f64) -> Result<u32, Code> {
    if !(mode.fract() == 0.0 && (0.0..=f64::from(0o777)).contains(&mode)) {
        return Err(error(
            INVALID_ARG_VALUE,
            format!("'mode' must be an integer from 0 to 0o777 (permission bits), got {mode}"),
        ));
    }
    Ok(mode as u32)
}

/// `[byteOffset, byteOffset + byteLength)` as a range inside a segment of `size` bytes.
fn window_range(byte_offset: f64, byte_length: Option<f64>, size: usize) -> Result<(usize, usize), Code> {
    let out_of_range = |what: &str, value: f64| {
        error(
            OUT_OF_RANGE,
            format!("{what} must be an integer from 0 to the segment's size ({size}), got {value}"),
        )
    };
    let whole = |value: f64| value.is_finite() && value.fract() == 0.0 && value >= 0.0 && value <= size as f64;
    if !whole(byte_offset) {
        return Err(out_of_range("byteOffset", byte_offset));
    }
    let offset = byte_offset as usize;
    // `offset <= size`, as just checked.
    let after = size.saturating_sub(offset);
    let len = match byte_length {
        None => after,
        Some(length) if whole(length) && length as usize <= after => length as usize,
        Some(length) => {
            return Err(error(
                OUT_OF_RANGE,
                format!(
                "byteLength must be an integer from 0 to {after} (the bytes after byteOffset {offset}), got {length}"
            ),
            ))
        }
    };
    Ok((offset, len))
}

/// A size must be a positive safe integer (JS numbers above 2^53 are not exact).
pub(crate) fn checked_size(size: f64) -> Result<usize, Code> {
    if !(size.is_finite() && size.fract() == 0.0 && size > 0.0 && size <= MAX_SAFE_INTEGER) {
        return Err(error(
            INVALID_SIZE,
            format!("'size' must be a positive safe integer number of bytes, got {size}"),
        ));
    }
    usize::try_from(size as u64).map_err(|_| error(INVALID_SIZE, format!("size {size} does not fit this platform")))
}
