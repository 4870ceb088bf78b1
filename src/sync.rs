//! Argument checks and promise plumbing shared by `SharedMemory.wait/notify` and `ShmLock`.

use std::time::Duration;

use napi::bindgen_prelude::*;
use shmkit_core::lock::Locked;
use shmkit_core::waiter::{self, AsyncWait, Panicked};
use shmkit_core::Waited;

use crate::args::MAX_SAFE_INTEGER;
use crate::error::{error, from_core, napi_failure, panicked, Code, OUT_OF_RANGE};

/// A byte offset: a non-negative safe integer (alignment and bounds are the core's checks).
pub fn byte_offset(offset: f64) -> Result<usize, Code> {
    if !(offset.is_finite() && offset.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&offset)) {
        return Err(error(
            OUT_OF_RANGE,
            format!("byteOffset must be a non-negative integer, got {offset}"),
        ));
    }
    Ok(offset as usize)
}

/// The value a waiter expects: an Int32Array or Uint32Array element, as 32 bits.
pub fn expected_word(value: f64) -> Result<u32, Code> {
    if !(value.fract() == 0.0 && (-2_147_483_648.0..=4_294_967_295.0).contains(&value)) {
        return Err(error(
            OUT_OF_RANGE,
            format!("expected must be a 32-bit integer (-2^31 to 2^32-1), got {value}"),
        ));
    }
    Ok(value as i64 as u32)
}

/// Milliseconds to wait: `undefined` and `Infinity` mean forever; NaN and negatives are errors.
/// A finite timeout too long for a `Duration` (over 584 billion years) is forever too.
pub fn timeout(ms: Option<f64>) -> Result<Option<Duration>, Code> {
    match ms {
        None => Ok(None),
        Some(ms) if ms >= 0.0 => Ok(Duration::try_from_secs_f64(ms / 1000.0).ok()),
        Some(ms) => Err(error(
            OUT_OF_RANGE,
            format!("timeoutMs must be a non-negative number of milliseconds or Infinity, got {ms}"),
        )),
    }
}

/// How many waiters to wake: `undefined` and `Infinity` mean all.
pub fn wake_count(count: Option<f64>) -> Result<u32, Code> {
    match count {
        None => Ok(u32::MAX),
        Some(c) if c == f64::INFINITY => Ok(u32::MAX),
        Some(c) if c.is_finite() && c.fract() == 0.0 && c >= 0.0 => Ok(c.min(u32::MAX as f64) as u32),
        Some(c) => Err(error(
            OUT_OF_RANGE,
            format!("count must be a non-negative integer or Infinity, got {c}"),
        )),
    }
}

/// `Atomics.wait`'s words for how a wait ended.
pub fn waited_name(waited: Waited) -> &'static str {
    match waited {
        Waited::Ok => "ok",
        Waited::NotEqual => "not-equal",
        Waited::TimedOut => "timed-out",
    }
}

/// How a lock attempt ended; `not_acquired` is `"timed-out"` for `lock`, `"busy"` for `tryLock`.
pub fn locked_name(locked: Locked, not_acquired: &'static str) -> &'static str {
    match locked {
        Locked::Acquired => "acquired",
        Locked::OwnerDied => "owner-died",
        Locked::NotAcquired => not_acquired,
    }
}

/// Runs `wait` on shmkit-core's shared waiter threads (a few for the whole process, however
/// many waits are pending: see `shmkit_core::waiter`) and settles the returned promise with
/// `name` of its outcome on the JS thread.
pub fn wait_promise<'env, W: AsyncWait>(
    env: &'env Env,
    wait: W,
    name: fn(W::Output) -> &'static str,
) -> Result<Object<'env>, Code> {
    let (deferred, promise) = env
        .create_deferred::<&'static str, _>()
        .map_err(|e| napi_failure(e.reason.clone()))?;
    waiter::submit(wait, move |outcome| {
        deferred.resolve(move |env| {
            let err = match outcome {
                Ok(Ok(value)) => return Ok(name(value)),
                Ok(Err(err)) => from_core(err),
                // A panic in a step must neither abort the process nor leave the promise pending.
                Err(Panicked(message)) => panicked(&message),
            };
            // Rejects with a JS error that keeps its `code` (napi-rs's Status would not).
            Err(napi::Error::from(JsError::from(err).into_unknown(env)))
        });
    });
    Ok(promise)
}

thread_local! {
    /// Segments with a `waitAsync`/`lockAsync` in flight from this JS thread's env.
    static PENDING: std::cell::RefCell<Vec<std::sync::Weak<shmkit_core::Segment>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Remembers a segment an async wait runs on, so that [`retire_pending`] can end it.
pub fn track_pending(segment: &std::sync::Arc<shmkit_core::Segment>) {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        // Once per segment, not per wait: 10 000 waits on one segment keep one entry.
        if pending
            .iter()
            .any(|weak| std::ptr::eq(weak.as_ptr(), std::sync::Arc::as_ptr(segment)))
        {
            return;
        }
        pending.retain(|weak| weak.strong_count() > 0);
        pending.push(std::sync::Arc::downgrade(segment));
    });
}

/// At env teardown (a worker ending, the process exiting): ends this env's async waits, whose
/// promises nobody can observe any more, so their threads let go of the mappings.
pub fn retire_pending() {
    PENDING.with(|pending| {
        for segment in pending.borrow_mut().drain(..).filter_map(|weak| weak.upgrade()) {
            segment.retire();
        }
    });
}
