//! `SharedQueue`: a cross-process message queue in a segment (shmkit-core `queue`).
//!
//! The native side moves tagged bytes; `manners.js` turns values into bytes and back
//! (`v8.serialize` for structured-cloneable values, nothing for strings and byte arrays) and
//! builds the promise and iterator API on the blocking calls here.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::queue;
use shmkit_core::{segment, SegmentOptions, ShmName};

use crate::args;
use crate::error::{
    error, from_core, guard, refusal, Code, CLOSED, INVALID_ARG_VALUE, NAPI, OUT_OF_RANGE, SLOT_FINISHED,
};
use crate::raw::{detach_buffer, External, Reference};
use crate::sync::{spawn_promise, timeout};

/// What a message's bytes are; the reader turns them back into the same kind of value.
const TAG_SERIALIZED: u8 = 0;
const TAG_STRING: u8 = 1;
const TAG_UINT8ARRAY: u8 = 2;
const TAG_BUFFER: u8 = 3;

const DEFAULT_CAPACITY: usize = 1024;
const DEFAULT_MAX_MESSAGE: usize = 4096;

/// Options of `SharedQueue.create`.
#[napi(object)]
pub struct SharedQueueOptions {
    /// How many messages fit (default 1024; rounded up to a power of two, at least 2).
    pub capacity: Option<f64>,
    /// The most bytes one message may take once encoded (default 4096).
    pub max_message_size: Option<f64>,
    /// A name instead of a random `psm_…` one.
    pub name: Option<String>,
    /// Unlink the segment if this process ends without `unlink()` (default true).
    pub track: Option<bool>,
}

/// `toJSON()` of a queue: what another process passes to `SharedQueue.open`.
#[napi(object)]
pub struct SharedQueueJson {
    pub name: String,
}

/// A bounded queue of messages in shared memory, for many producers and consumers in any
/// processes and worker threads. See the README's SharedQueue section.
#[napi]
pub struct SharedQueue {
    inner: Option<Arc<queue::SharedQueue>>,
    name: String,
    /// The reservations and borrows this handle lent out, so that `close()` can finish them
    /// and detach their views.
    leases: Vec<Weak<RefCell<Lease>>>,
    /// `leases.len()` after the last sweep of finished ones.
    swept: usize,
}

#[napi]
impl SharedQueue {
    /// Creates a queue in a new segment.
    #[napi(factory, catch_unwind)]
    pub fn create(
        env: Env,
        #[napi(ts_arg_type = "SharedQueueOptions | undefined | null")] options: Option<Unknown>,
    ) -> Result<Self, Code> {
        guard(|| {
            let options: Option<SharedQueueOptions> = crate::error::options(&env, options, "options")?;
            let options = options.unwrap_or(SharedQueueOptions {
                capacity: None,
                max_message_size: None,
                name: None,
                track: None,
            });
            let capacity = count(options.capacity, "capacity", DEFAULT_CAPACITY)?;
            let max_message = count(options.max_message_size, "maxMessageSize", DEFAULT_MAX_MESSAGE)?;
            let mut builder = SegmentOptions::new();
            if let Some(name) = &options.name {
                builder.name(ShmName::new(name).map_err(from_core)?);
            }
            builder.track(options.track.unwrap_or(true));
            let inner = queue::SharedQueue::create(&builder, capacity, max_message).map_err(from_core)?;
            Ok(Self::wrap(inner))
        })
    }

    /// Opens a queue another process (or this one) created.
    #[napi(factory, catch_unwind)]
    pub fn open(env: Env, #[napi(ts_arg_type = "string")] name: Unknown) -> Result<Self, Code> {
        guard(|| {
            let name = args::string(&env, name, "name")?;
            Ok(Self::wrap(queue::SharedQueue::open(&name).map_err(from_core)?))
        })
    }

    fn wrap(inner: queue::SharedQueue) -> Self {
        SharedQueue {
            name: inner.name().to_owned(),
            inner: Some(Arc::new(inner)),
            leases: Vec::new(),
            swept: 0,
        }
    }

    fn inner(&self) -> Result<&Arc<queue::SharedQueue>, Code> {
        self.inner
            .as_ref()
            .ok_or_else(|| error(CLOSED, format!("SharedQueue '{}' is closed", self.name)))
    }

    /// The segment's name: what `SharedQueue.open` takes.
    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// How many messages fit.
    #[napi(getter, catch_unwind)]
    pub fn capacity(&self) -> Result<u32, Code> {
        guard(|| Ok(self.inner()?.capacity() as u32))
    }

    /// The most bytes one encoded message may take.
    #[napi(getter, catch_unwind)]
    pub fn max_message_size(&self) -> Result<u32, Code> {
        guard(|| Ok(self.inner()?.max_message_size() as u32))
    }

    /// Messages lost because a process died while it was writing or reading them.
    #[napi(getter, catch_unwind)]
    pub fn lost(&self) -> Result<u32, Code> {
        guard(|| Ok(self.inner()?.lost()))
    }

    /// Whether `end()` was called, by any process.
    #[napi(getter, catch_unwind)]
    pub fn ended(&self) -> Result<bool, Code> {
        guard(|| Ok(self.inner()?.is_ended()))
    }

    /// Whether this handle was closed.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// About how many messages wait (exact when nothing moves).
    #[napi(catch_unwind)]
    pub fn qsize(&self) -> Result<u32, Code> {
        guard(|| Ok(self.inner()?.len() as u32))
    }

    /// Whether no message waits (approximate while others move, as in Python).
    #[napi(catch_unwind)]
    pub fn empty(&self) -> Result<bool, Code> {
        guard(|| Ok(self.inner()?.is_empty()))
    }

    /// Whether the queue is full (approximate while others move, as in Python).
    #[napi(catch_unwind)]
    pub fn full(&self) -> Result<bool, Code> {
        guard(|| Ok(self.inner()?.is_full()))
    }

    /// Marks the end of the stream for every process: later `put`s throw
    /// `ERR_SHM_QUEUE_ENDED`; readers take what is left, then `get` throws it and iteration ends.
    #[napi(catch_unwind)]
    pub fn end(&self) -> Result<(), Code> {
        guard(|| self.inner()?.end().map_err(from_core))
    }

    /// How long a blocked `put`/`get` on this handle spins before it sleeps, in microseconds
    /// (default 20). A consumer that spins answers faster and keeps a core busy meanwhile.
    #[napi(setter, catch_unwind)]
    pub fn set_spin_micros(&self, env: Env, #[napi(ts_arg_type = "number")] micros: Unknown) -> Result<(), Code> {
        guard(|| {
            let micros = args::number(&env, micros, "spinMicros")?;
            if !(micros.is_finite() && micros >= 0.0) {
                return Err(error(
                    OUT_OF_RANGE,
                    format!("spinMicros must be a non-negative number, got {micros}"),
                ));
            }
            self.inner()?.set_spin(std::time::Duration::from_secs_f64(micros / 1e6));
            Ok(())
        })
    }

    /// `{ name }`, so `JSON.stringify` passes a queue to another process.
    #[napi(js_name = "toJSON", catch_unwind)]
    pub fn to_json(&self) -> SharedQueueJson {
        SharedQueueJson {
            name: self.name.clone(),
        }
    }

    /// Lets go of this handle's mapping; a blocked call on another thread ends with
    /// `ERR_SHM_CLOSED`. Calling it twice is harmless. The queue lives on for others.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: &Env) -> Result<(), Code> {
        guard(|| {
            // Reservations are aborted and borrows released; their views read length 0.
            for lease in self.leases.drain(..).filter_map(|lease| lease.upgrade()) {
                lease.borrow_mut().finish(env, Finish::Abandon)?;
            }
            self.swept = 0;
            if let Some(inner) = self.inner.take() {
                inner.segment().retire();
            }
            Ok(())
        })
    }

    /// Removes the queue's name (processes that have it open keep using it).
    #[napi(catch_unwind)]
    pub fn unlink(&self) -> Result<(), Code> {
        guard(|| segment::unlink(&self.name).map_err(from_core))
    }

    /// For `manners.js`: puts bytes with the tag that says what they are.
    #[napi(skip_typescript, js_name = "_putBytes", catch_unwind)]
    pub fn put_bytes(&self, env: Env, bytes: Unknown, tag: Unknown, timeout_ms: Option<Unknown>) -> Result<(), Code> {
        guard(|| {
            let tag = args::number(&env, tag, "tag")?;
            let tag = [TAG_SERIALIZED, TAG_UINT8ARRAY, TAG_BUFFER]
                .into_iter()
                .find(|&t| f64::from(t) == tag)
                .ok_or_else(|| error(INVALID_ARG_VALUE, format!("no message tag {tag}")))?;
            let timeout = timeout(args::optional_number(&env, timeout_ms, "timeout")?)?;
            let inner = self.inner()?;
            crate::raw::with_uint8_array(&bytes, |bytes| inner.put(tag, bytes, timeout))?
                .ok_or_else(|| args::wrong_type(&env, "value", "a Uint8Array", &bytes))?
                .map_err(from_core)
        })
    }

    /// For `manners.js`: puts a string as UTF-8.
    #[napi(skip_typescript, js_name = "_putString", catch_unwind)]
    pub fn put_string(&self, env: Env, text: Unknown, timeout_ms: Option<Unknown>) -> Result<(), Code> {
        guard(|| {
            let text = args::string(&env, text, "value")?;
            let timeout = timeout(args::optional_number(&env, timeout_ms, "timeout")?)?;
            self.inner()?
                .put(TAG_STRING, text.as_bytes(), timeout)
                .map_err(from_core)
        })
    }

    /// For `manners.js`: takes a message: a string as itself, anything else as a Buffer whose
    /// first byte is the tag.
    #[napi(skip_typescript, js_name = "_get", catch_unwind)]
    pub fn get<'env>(&self, env: &'env Env, timeout_ms: Option<Unknown>) -> Result<Unknown<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let message = self.inner()?.get(timeout).map_err(from_core)?;
            let napi = |e: napi::Error| error(NAPI, e.reason.clone());
            match message.tag {
                TAG_STRING => {
                    let text = String::from_utf8(message.bytes).map_err(|_| {
                        from_core(shmkit_core::Error::QueueCorrupt(
                            "a string message is not valid UTF-8".into(),
                        ))
                    })?;
                    Ok(env.create_string_from_std(text).map_err(napi)?.to_unknown())
                }
                TAG_SERIALIZED | TAG_UINT8ARRAY | TAG_BUFFER => {
                    let mut tagged = Vec::with_capacity(message.bytes.len().saturating_add(1));
                    tagged.push(message.tag);
                    tagged.extend_from_slice(&message.bytes);
                    let buffer = BufferSlice::copy_from(env, tagged).map_err(napi)?;
                    Ok(buffer.to_unknown())
                }
                other => Err(from_core(shmkit_core::Error::QueueCorrupt(format!(
                    "unknown message tag {other}"
                )))),
            }
        })
    }

    /// For `manners.js`: reserves a slot for `size` bytes (see `reserve` in the README).
    #[napi(skip_typescript, js_name = "_reserve", catch_unwind)]
    pub fn reserve(&mut self, env: &Env, size: Unknown, timeout_ms: Option<Unknown>) -> Result<QueueReservation, Code> {
        guard(|| {
            let size = args::number(env, size, "size")?;
            if !(size.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&size)) {
                return Err(error(
                    OUT_OF_RANGE,
                    format!("size must be a non-negative integer, got {size}"),
                ));
            }
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = self.inner()?;
            let slot = inner.reserve(size as usize, timeout).map_err(from_core)?;
            let (offset, len) = (slot.payload_offset(), slot.reserved());
            let lease = self.lend(env, Slot::Write(slot), offset, len)?;
            Ok(QueueReservation { lease })
        })
    }

    /// For `manners.js`: takes the oldest message and lends its slot.
    #[napi(skip_typescript, js_name = "_borrow", catch_unwind)]
    pub fn borrow(&mut self, env: &Env, timeout_ms: Option<Unknown>) -> Result<QueueBorrow, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = self.inner()?;
            let slot = inner.borrow(timeout).map_err(from_core)?;
            let (offset, len) = (slot.payload_offset(), slot.len());
            let lease = self.lend(env, Slot::Read(slot), offset, len)?;
            Ok(QueueBorrow { lease })
        })
    }

    /// A lease on `slot` with a Buffer over its `len` bytes at `offset` (checked by the core to
    /// lie inside the slot), remembered for `close()`. If the Buffer cannot be made, the slot
    /// is finished at once (a reservation aborted, a borrow released: its message is lost).
    fn lend(&mut self, env: &Env, slot: Slot, offset: usize, len: usize) -> Result<Rc<RefCell<Lease>>, Code> {
        let segment = Arc::clone(self.inner()?.segment());
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= segment.len())
            .ok_or_else(|| crate::error::napi_failure("a queue slot outside its segment"))?;
        let buffer = crate::raw::external(env, External::Buffer, segment, |segment| {
            segment.atomic_bytes().get(offset..end).unwrap_or_default()
        })
        .map_err(|refused| refusal(env, refused, "napi_create_external_buffer", len))?;
        let view = Reference::strong(env, &buffer)?;
        let lease = Rc::new(RefCell::new(Lease { slot, view: Some(view) }));
        if self.leases.len() >= self.swept.max(8).saturating_mul(2) {
            self.leases.retain(|lease| lease.strong_count() > 0);
            self.swept = self.leases.len();
        }
        self.leases.push(Rc::downgrade(&lease));
        Ok(lease)
    }

    /// For `manners.js`: settles with `'ready'` once a `get` may find something (or `'timed-out'`),
    /// waiting on a thread of its own; claims nothing.
    #[napi(skip_typescript, js_name = "_readable", catch_unwind)]
    pub fn readable<'env>(&self, env: &'env Env, timeout_ms: Option<Unknown>) -> Result<Object<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = Arc::clone(self.inner()?);
            crate::sync::track_pending(inner.segment());
            spawn_promise(env, "queue", move || inner.wait_readable(timeout).map(ready_name))
        })
    }

    /// For `manners.js`: as `_readable`, for room to `put`.
    #[napi(skip_typescript, js_name = "_writable", catch_unwind)]
    pub fn writable<'env>(&self, env: &'env Env, timeout_ms: Option<Unknown>) -> Result<Object<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = Arc::clone(self.inner()?);
            crate::sync::track_pending(inner.segment());
            spawn_promise(env, "queue", move || inner.wait_writable(timeout).map(ready_name))
        })
    }
}

/// A slot lent to JS, and the Buffer over it (detached when the slot is finished).
pub struct Lease {
    slot: Slot,
    view: Option<Reference>,
}

enum Slot {
    Write(queue::WriteSlot),
    Read(queue::ReadSlot),
    Done,
}

/// How a lease ends.
enum Finish {
    /// `commit(length)`.
    Commit(usize),
    /// `abort()` / `release()`.
    Release,
    /// The handle or the lease object went away: abort a reservation, release a borrow.
    Abandon,
}

impl Lease {
    /// Finishes the slot (first, so that an error leaves everything as it was), then detaches
    /// the view and lets it go.
    fn finish(&mut self, env: &Env, how: Finish) -> Result<(), Code> {
        match (&mut self.slot, how) {
            (Slot::Write(slot), Finish::Commit(len)) => slot.commit(TAG_UINT8ARRAY, len).map_err(from_core)?,
            (Slot::Write(slot), Finish::Release | Finish::Abandon) => slot.abort().map_err(from_core)?,
            (Slot::Read(slot), Finish::Release | Finish::Abandon) => slot.release().map_err(from_core)?,
            (Slot::Read(_), Finish::Commit(_)) => return Err(napi_only("commit of a borrow")),
            (Slot::Done, Finish::Abandon) => return Ok(()),
            (Slot::Done, _) => {
                return Err(error(
                    SLOT_FINISHED,
                    "this queue slot was already committed, aborted or released",
                ))
            }
        }
        self.slot = Slot::Done;
        self.drop_view(env)
    }

    fn drop_view(&mut self, env: &Env) -> Result<(), Code> {
        if let Some(view) = self.view.take() {
            let detached = detach_buffer(env, &view);
            view.release(env);
            detached?;
        }
        Ok(())
    }

    fn bytes<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        match &self.view {
            Some(view) => view.get(env),
            None => Err(error(
                SLOT_FINISHED,
                "this queue slot was already committed, aborted or released: its bytes are gone",
            )),
        }
    }

    fn is_open(&self) -> bool {
        !matches!(self.slot, Slot::Done)
    }
}

fn napi_only(what: &str) -> Error<Code> {
    crate::error::napi_failure(format!("{what} is not possible"))
}

/// A slot of a SharedQueue reserved by `queue.reserve(size)`: write the message into `bytes`,
/// then `commit()` it (or `abort()`). `using` aborts it unless it was committed.
#[napi(custom_finalize)]
pub struct QueueReservation {
    lease: Rc<RefCell<Lease>>,
}

#[napi]
impl QueueReservation {
    /// The reserved bytes, in the queue's shared memory (no copy). Detached (length 0) once
    /// the reservation is committed or aborted, or the queue handle closed; reading it after
    /// that throws `ERR_SHM_SLOT_FINISHED`.
    #[napi(getter, ts_return_type = "Buffer", catch_unwind)]
    pub fn bytes<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| self.lease.borrow().bytes(env))
    }

    /// Whether it is still to be committed or aborted.
    #[napi(getter, catch_unwind)]
    pub fn open(&self) -> bool {
        self.lease.borrow().is_open()
    }

    /// Publishes the first `length` bytes (default: all reserved) as a message: `get()`
    /// returns it as a Uint8Array, `borrow()` lends it. A length above the reservation throws
    /// `ERR_OUT_OF_RANGE` and changes nothing; a second commit throws `ERR_SHM_SLOT_FINISHED`.
    #[napi(catch_unwind)]
    pub fn commit(
        &self,
        env: &Env,
        #[napi(ts_arg_type = "number | undefined")] length: Option<Unknown>,
    ) -> Result<(), Code> {
        guard(|| {
            let mut lease = self.lease.borrow_mut();
            let reserved = match &lease.slot {
                Slot::Write(slot) => slot.reserved(),
                _ => 0,
            };
            let len = match args::optional_number(env, length, "length")? {
                None => reserved,
                Some(n) if n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&n) => n as usize,
                Some(n) => {
                    return Err(error(
                        OUT_OF_RANGE,
                        format!("length must be a non-negative integer, got {n}"),
                    ))
                }
            };
            lease.finish(env, Finish::Commit(len))
        })
    }

    /// Gives the slot up without a message. After a commit or abort: `ERR_SHM_SLOT_FINISHED`.
    #[napi(catch_unwind)]
    pub fn abort(&self, env: &Env) -> Result<(), Code> {
        guard(|| self.lease.borrow_mut().finish(env, Finish::Release))
    }

    /// For `Symbol.dispose`: aborts unless committed.
    #[napi(skip_typescript, js_name = "_dispose", catch_unwind)]
    pub fn dispose(&self, env: &Env) -> Result<(), Code> {
        guard(|| self.lease.borrow_mut().finish(env, Finish::Abandon))
    }
}

impl ObjectFinalize for QueueReservation {
    fn finalize(self, env: Env) -> napi::Result<()> {
        // Collected unfinished: abort, and detach the Buffer a user may still hold.
        let _ = self.lease.borrow_mut().finish(&env, Finish::Abandon);
        Ok(())
    }
}

/// A message lent in its slot by `queue.borrow()`: read `bytes`, then `release()` it.
/// `using` releases it.
#[napi(custom_finalize)]
pub struct QueueBorrow {
    lease: Rc<RefCell<Lease>>,
}

#[napi]
impl QueueBorrow {
    /// The message's bytes, in the queue's shared memory (no copy; read-only by contract).
    /// Detached (length 0) once released or the queue handle closed; reading it after that
    /// throws `ERR_SHM_SLOT_FINISHED`.
    #[napi(getter, ts_return_type = "Buffer", catch_unwind)]
    pub fn bytes<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| self.lease.borrow().bytes(env))
    }

    /// Whether it is still to be released.
    #[napi(getter, catch_unwind)]
    pub fn open(&self) -> bool {
        self.lease.borrow().is_open()
    }

    /// What the message is: 0 v8.serialize bytes, 1 a UTF-8 string, 2 a Uint8Array (also what
    /// `commit()` gives), 3 a Buffer.
    #[napi(getter, catch_unwind)]
    pub fn tag(&self) -> u32 {
        match &self.lease.borrow().slot {
            Slot::Read(slot) => u32::from(slot.tag()),
            _ => 0,
        }
    }

    /// Frees the slot for the next message. A second release throws `ERR_SHM_SLOT_FINISHED`.
    #[napi(catch_unwind)]
    pub fn release(&self, env: &Env) -> Result<(), Code> {
        guard(|| self.lease.borrow_mut().finish(env, Finish::Release))
    }

    /// For `Symbol.dispose`: releases unless released.
    #[napi(skip_typescript, js_name = "_dispose", catch_unwind)]
    pub fn dispose(&self, env: &Env) -> Result<(), Code> {
        guard(|| self.lease.borrow_mut().finish(env, Finish::Abandon))
    }
}

impl ObjectFinalize for QueueBorrow {
    fn finalize(self, env: Env) -> napi::Result<()> {
        let _ = self.lease.borrow_mut().finish(&env, Finish::Abandon);
        Ok(())
    }
}

fn ready_name(ready: bool) -> &'static str {
    if ready {
        "ready"
    } else {
        "timed-out"
    }
}

/// A positive integer option, or its default when left out.
fn count(value: Option<f64>, what: &str, default: usize) -> Result<usize, Code> {
    match value {
        None => Ok(default),
        Some(n) if n.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&n) => Ok(n as usize),
        Some(n) => Err(error(
            OUT_OF_RANGE,
            format!("{what} must be a positive integer, got {n}"),
        )),
    }
}
