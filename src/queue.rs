//! `SharedQueue`: a cross-process message queue in a segment (shmkit-core `queue`).
//!
//! The native side moves tagged bytes; `manners.js` turns values into bytes and back
//! (`v8.serialize` for structured-cloneable values, nothing for strings and byte arrays) and
//! builds the promise and iterator API on the blocking calls here.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::queue;
use shmkit_core::{segment, SegmentOptions, ShmName};

use crate::args;
use crate::error::{error, from_core, guard, Code, CLOSED, INVALID_ARG_VALUE, NAPI, OUT_OF_RANGE};
use crate::sync::{timeout, wait_promise};

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
    pub fn close(&mut self) -> Result<(), Code> {
        guard(|| {
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

    /// For `manners.js`: settles with `'ready'` once a `get` may find something (or `'timed-out'`),
    /// waiting on the shared native waiter threads; claims nothing.
    #[napi(skip_typescript, js_name = "_readable", catch_unwind)]
    pub fn readable<'env>(&self, env: &'env Env, timeout_ms: Option<Unknown>) -> Result<Object<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = Arc::clone(self.inner()?);
            crate::sync::track_pending(inner.segment());
            wait_promise(env, queue::ReadyWait::readable(inner, timeout), ready_name)
        })
    }

    /// For `manners.js`: as `_readable`, for room to `put`.
    #[napi(skip_typescript, js_name = "_writable", catch_unwind)]
    pub fn writable<'env>(&self, env: &'env Env, timeout_ms: Option<Unknown>) -> Result<Object<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeout")?)?;
            let inner = Arc::clone(self.inner()?);
            crate::sync::track_pending(inner.segment());
            wait_promise(env, queue::ReadyWait::writable(inner, timeout), ready_name)
        })
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
