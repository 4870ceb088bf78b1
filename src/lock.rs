//! `ShmLock`: a robust cross-process lock in 4 bytes of a segment (shmkit-core `lock`).
//!
//! The uncontended lock and unlock run in JS (`manners.js`) with `Atomics` on the lock word and
//! on this handle's state word, following the protocol of `shmkit_core::lock::ShmLock::
//! handle_state`: a call into native code costs several times the lock itself. Everything
//! else (waiting, dead holders, errors) comes here.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::lock;

use crate::args;
use crate::error::{closed, error, from_core, guard, Code, INTERNAL};
use crate::raw::{self, External, Held};
use crate::shared_memory::SharedMemory;
use crate::sync::{byte_offset, locked_name, timeout, wait_promise};

/// A lock that lives in 4 bytes of a segment (at a multiple of 4), shared by every process and
/// worker that maps it. `ShmLock.create(shm, byteOffset)` makes it (once), any process then
/// `ShmLock.open`s it at the same place.
///
/// Robust: if the holding process dies, the next `lock()` gets the lock within 50 ms and
/// returns `'owner-died'`, so it can repair what the holder left half-done. Uncontended
/// `lock` + `unlock` never enter the kernel. `using` (or `close()`) unlocks if held.
#[napi(custom_finalize)]
pub struct ShmLock {
    inner: Option<Arc<lock::ShmLock>>,
    offset: usize,
    state_exported: bool,
    /// The SharedMemory given at creation, for `shm` and the JS fast path's view of the word.
    shm: Option<Held<SharedMemory>>,
}

#[napi]
impl ShmLock {
    /// Makes a new, free lock in `shm` at `byteOffset` (writes 0 there). Do it once, before
    /// other processes open it.
    #[napi(factory, catch_unwind)]
    pub fn create(
        env: Env,
        #[napi(ts_arg_type = "SharedMemory")] shm: Unknown,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
    ) -> Result<Self, Code> {
        guard(|| Self::new_with(&env, shm, byte_offset, lock::ShmLock::create))
    }

    /// A handle on the lock made in `shm` at `byteOffset` (a zero-filled word is a free lock).
    #[napi(factory, catch_unwind)]
    pub fn open(
        env: Env,
        #[napi(ts_arg_type = "SharedMemory")] shm: Unknown,
        #[napi(ts_arg_type = "number")] byte_offset: Unknown,
    ) -> Result<Self, Code> {
        guard(|| Self::new_with(&env, shm, byte_offset, lock::ShmLock::open))
    }

    fn new_with(
        env: &Env,
        shm: Unknown,
        offset: Unknown,
        make: fn(Arc<shmkit_core::Segment>, usize) -> shmkit_core::Result<lock::ShmLock>,
    ) -> Result<Self, Code> {
        let shm = args::instance::<SharedMemory>(env, shm, "shm", "SharedMemory")?;
        let offset = byte_offset(args::number(env, offset, "byteOffset")?)?;
        let segment = Arc::clone((*shm).segment()?);
        let inner = make(segment, offset).map_err(from_core)?;
        Ok(ShmLock {
            inner: Some(Arc::new(inner)),
            offset,
            state_exported: false,
            shm: Some(Held::new(env, shm)?),
        })
    }

    pub(crate) fn inner(&self) -> Result<&Arc<lock::ShmLock>, Code> {
        self.inner
            .as_ref()
            .ok_or_else(|| closed(&shmkit_core::Closed::Lock(self.offset)))
    }

    /// Takes the lock, waiting up to `timeoutMs` (default: forever) while another process or
    /// thread holds it: `'acquired'`, `'owner-died'` (taken over from a dead holder: repair the
    /// data) or `'timed-out'`. Blocks this thread; `lockAsync` does not. Throws `EDEADLK` if this
    /// handle holds it already, `ERR_SHM_CLOSED` if its SharedMemory was closed.
    #[napi(ts_return_type = "LockResult | 'timed-out'", catch_unwind)]
    pub fn lock(
        &self,
        env: Env,
        #[napi(ts_arg_type = "number | undefined | null")] timeout_ms: Option<Unknown>,
    ) -> Result<&'static str, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(&env, timeout_ms, "timeoutMs")?)?;
            self.inner()?
                .lock(timeout)
                .map(|locked| locked_name(locked, "timed-out"))
                .map_err(from_core)
        })
    }

    /// Takes the lock only if it is free (or its holder died): `'acquired'`, `'owner-died'` or
    /// `'busy'`. Never waits.
    #[napi(ts_return_type = "LockResult | 'busy'", catch_unwind)]
    pub fn try_lock(&self) -> Result<&'static str, Code> {
        guard(|| {
            self.inner()?
                .try_lock()
                .map(|locked| locked_name(locked, "busy"))
                .map_err(from_core)
        })
    }

    /// `lock` without blocking the event loop: the promise settles with what `lock` returns, or
    /// rejects (`ERR_SHM_CLOSED` if the SharedMemory is closed meanwhile). The wait shares the
    /// process's few native waiter threads with every other async wait.
    #[napi(ts_return_type = "Promise<LockResult | 'timed-out'>", catch_unwind)]
    pub fn lock_async<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "number | undefined | null")] timeout_ms: Option<Unknown>,
    ) -> Result<Object<'env>, Code> {
        guard(|| {
            let timeout = timeout(args::optional_number(env, timeout_ms, "timeoutMs")?)?;
            let inner = Arc::clone(self.inner()?);
            crate::sync::track_pending(inner.segment());
            wait_promise(env, lock::LockWait::new(inner, timeout), |locked| {
                locked_name(locked, "timed-out")
            })
        })
    }

    /// Releases the lock and wakes one waiter. Throws `EPERM` if this handle does not hold it.
    /// Works after its SharedMemory was closed, so a holder can always let go.
    #[napi(catch_unwind)]
    pub fn unlock(&self) -> Result<(), Code> {
        guard(|| self.inner()?.unlock().map_err(from_core))
    }

    /// Whether this handle holds the lock.
    #[napi(getter, catch_unwind)]
    pub fn held(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.is_held())
    }

    /// The pid the lock names as its holder: 0 when free (for diagnostics; it may change at
    /// any moment).
    #[napi(getter, catch_unwind)]
    pub fn holder(&self) -> Result<u32, Code> {
        guard(|| self.inner()?.holder().map_err(from_core))
    }

    /// The lock's byte offset in its segment.
    #[napi(getter, catch_unwind)]
    pub fn byte_offset(&self) -> f64 {
        self.offset as f64
    }

    /// The SharedMemory the lock lives in (the same object on every access); `null` after `close()`.
    #[napi(getter, ts_return_type = "SharedMemory | null", catch_unwind)]
    pub fn shm<'env>(&self, env: &'env Env) -> Result<Option<Unknown<'env>>, Code> {
        guard(|| self.shm.as_ref().map(|shm| shm.value(env)).transpose())
    }

    /// For `manners.js` only: an Int32Array over this handle's state word (holding the handle
    /// alive), or `undefined` where external buffers are refused (the fast path then stays off).
    /// Made once per handle: V8 must not see two backing stores over one pointer.
    #[napi(skip_typescript, js_name = "_handleState", catch_unwind)]
    pub fn handle_state<'env>(&mut self, env: &'env Env) -> Result<Option<Unknown<'env>>, Code> {
        guard(|| self.export_handle_state(env))
    }

    fn export_handle_state<'env>(&mut self, env: &'env Env) -> Result<Option<Unknown<'env>>, Code> {
        if self.state_exported {
            return Err(error(INTERNAL, "_handleState is made once per ShmLock"));
        }
        let inner = Arc::clone(self.inner()?);
        let array_buffer = match raw::external(env, External::ArrayBuffer, inner, |lock| lock.handle_state()) {
            Ok(array_buffer) => array_buffer,
            Err(_) => {
                // Node's own exception, if it threw one, is not ours to pass on: the fast path
                // simply stays off.
                raw::take_exception_code(env);
                return Ok(None);
            }
        };
        self.state_exported = true;
        raw::int32_array(env, &array_buffer, 1).map(Some)
    }

    /// For `manners.js` only: the process id the fast path writes into the lock word.
    #[napi(skip_typescript, js_name = "_pid", catch_unwind)]
    pub fn pid(&self) -> Result<u32, Code> {
        guard(|| Ok(self.inner()?.pid()))
    }

    /// For `manners.js` only: wakes one waiter after a JS unlock that saw the waiters bit.
    #[napi(skip_typescript, js_name = "_wakeWaiter", catch_unwind)]
    pub fn wake_waiter(&self) -> Result<(), Code> {
        guard(|| self.inner()?.wake_waiter().map_err(from_core))
    }

    /// Unlocks if this handle holds the lock, then lets go of the segment (the mapping is
    /// unmapped once its SharedMemory is closed too). Calling it twice is harmless.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: &Env) -> Result<(), Code> {
        guard(|| {
            if let Some(shm) = self.shm.take() {
                shm.release(env);
            }
            // The JS fast path sees the CLOSED state and falls back to the methods here.
            match self.inner.take() {
                Some(inner) => inner.close().map_err(from_core),
                None => Ok(()),
            }
        })
    }
}

impl ObjectFinalize for ShmLock {
    fn finalize(mut self, env: Env) -> napi::Result<()> {
        if let Some(shm) = self.shm.take() {
            shm.release(&env);
        }
        // Dropping `inner` while held marks the lock abandoned (shmkit-core).
        Ok(())
    }
}
