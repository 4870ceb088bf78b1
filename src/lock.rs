//! `ShmLock`: a robust cross-process lock in 4 bytes of a segment (shmkit-core `lock`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::lock;

use crate::error::{error, from_core, Code, CLOSED};
use crate::shared_memory::SharedMemory;
use crate::sync::{byte_offset, locked_name, spawn_promise, timeout};

/// A lock that lives in 4 bytes of a segment (at a multiple of 4), shared by every process and
/// worker that maps it. `ShmLock.create(shm, byteOffset)` makes it (once), any process then
/// `ShmLock.open`s it at the same place.
///
/// Robust: if the holding process dies, the next `lock()` gets the lock within 50 ms and
/// returns `'owner-died'`, so it can repair what the holder left half-done. Uncontended
/// `lock` + `unlock` never enter the kernel. `using` (or `close()`) unlocks if held.
#[napi]
pub struct ShmLock {
    inner: Option<Arc<lock::ShmLock>>,
    offset: usize,
}

#[napi]
impl ShmLock {
    /// Makes a new, free lock in `shm` at `byteOffset` (writes 0 there). Do it once, before
    /// other processes open it.
    #[napi(factory)]
    pub fn create(shm: &SharedMemory, byte_offset: f64) -> Result<Self, Code> {
        Self::new_with(shm, byte_offset, lock::ShmLock::create)
    }

    /// A handle on the lock made in `shm` at `byteOffset` (a zero-filled word is a free lock).
    #[napi(factory)]
    pub fn open(shm: &SharedMemory, byte_offset: f64) -> Result<Self, Code> {
        Self::new_with(shm, byte_offset, lock::ShmLock::open)
    }

    fn new_with(
        shm: &SharedMemory,
        offset: f64,
        make: fn(Arc<shmkit_core::Segment>, usize) -> shmkit_core::Result<lock::ShmLock>,
    ) -> Result<Self, Code> {
        let offset = byte_offset(offset)?;
        let segment = Arc::clone(shm.segment()?);
        let inner = make(segment, offset).map_err(from_core)?;
        Ok(ShmLock {
            inner: Some(Arc::new(inner)),
            offset,
        })
    }

    pub(crate) fn inner(&self) -> Result<&Arc<lock::ShmLock>, Code> {
        self.inner
            .as_ref()
            .ok_or_else(|| error(CLOSED, format!("ShmLock at byte {} is closed", self.offset)))
    }

    /// Takes the lock, waiting up to `timeoutMs` (default: forever) while another process or
    /// thread holds it: `'acquired'`, `'owner-died'` (taken over from a dead holder: repair the
    /// data) or `'timed-out'`. Blocks this thread; `lockAsync` does not. Throws `EDEADLK` if this
    /// handle holds it already, `ERR_SHM_CLOSED` if its SharedMemory was closed.
    #[napi(ts_return_type = "LockResult | 'timed-out'")]
    pub fn lock(&self, timeout_ms: Option<f64>) -> Result<&'static str, Code> {
        let timeout = timeout(timeout_ms)?;
        self.inner()?
            .lock(timeout)
            .map(|locked| locked_name(locked, "timed-out"))
            .map_err(from_core)
    }

    /// Takes the lock only if it is free (or its holder died): `'acquired'`, `'owner-died'` or
    /// `'busy'`. Never waits.
    #[napi(ts_return_type = "LockResult | 'busy'")]
    pub fn try_lock(&self) -> Result<&'static str, Code> {
        self.inner()?
            .try_lock()
            .map(|locked| locked_name(locked, "busy"))
            .map_err(from_core)
    }

    /// `lock` without blocking the event loop: waits on a thread of its own; the promise
    /// settles with what `lock` returns, or rejects (`ERR_SHM_CLOSED` if the SharedMemory is
    /// closed meanwhile).
    #[napi(ts_return_type = "Promise<LockResult | 'timed-out'>")]
    pub fn lock_async<'env>(&self, env: &'env Env, timeout_ms: Option<f64>) -> Result<Object<'env>, Code> {
        let timeout = timeout(timeout_ms)?;
        let inner = Arc::clone(self.inner()?);
        crate::sync::track_pending(inner.segment());
        spawn_promise(env, "lock", move || {
            inner.lock(timeout).map(|locked| locked_name(locked, "timed-out"))
        })
    }

    /// Releases the lock and wakes one waiter. Throws `EPERM` if this handle does not hold it.
    /// Works after its SharedMemory was closed, so a holder can always let go.
    #[napi]
    pub fn unlock(&self) -> Result<(), Code> {
        self.inner()?.unlock().map_err(from_core)
    }

    /// Whether this handle holds the lock.
    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.is_held())
    }

    /// The pid the lock names as its holder: 0 when free (for diagnostics; it may change at
    /// any moment).
    #[napi(getter)]
    pub fn holder(&self) -> Result<u32, Code> {
        self.inner()?.holder().map_err(from_core)
    }

    /// The lock's byte offset in its segment.
    #[napi(getter)]
    pub fn byte_offset(&self) -> f64 {
        self.offset as f64
    }

    /// Unlocks if this handle holds the lock, then lets go of the segment (the mapping is
    /// unmapped once its SharedMemory is closed too). Calling it twice is harmless.
    #[napi]
    pub fn close(&mut self) -> Result<(), Code> {
        if let Some(inner) = self.inner.take() {
            if inner.is_held() {
                inner.unlock().map_err(from_core)?;
            }
        }
        Ok(())
    }
}
