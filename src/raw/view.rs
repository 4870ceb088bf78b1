//! The zero-copy views of a mapping in a JS environment: the whole-segment Buffer (`buf`, and
//! the ArrayBuffer under it) and any windows (`window(byteOffset, byteLength)`), each an
//! external Buffer whose finalizer holds a reference on the mapping.
//!
//! Lifetime rules, which keep the README's promise (Guarantees) that a view used after
//! `close()` reads length 0, never unmapped memory:
//! - while a view is attached, its finalizer's [`Share`] holds the mapping, so a Buffer the
//!   user keeps after the `SharedMemory` handle is garbage collected stays valid;
//! - `close()` detaches every ArrayBuffer (every view now reads as length 0), then takes the
//!   mapping out of the share at once: Node runs finalizers later (after the current JS task),
//!   and a loop of create/close must not pile up mappings until it yields.
//!
//! A Buffer cannot be longer than `buffer.constants.MAX_LENGTH` (4 GiB on Node 20, 2^53 - 1
//! from Node 22 on 64-bit). Past that, `buf` is a clean `ERR_SHM_BUFFER_TOO_LARGE` and windows
//! reach the whole segment piece by piece.

use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::*;
use napi::sys;
use shmkit_core::Segment;

use super::external::{create, External, Refused};
use super::reference::Reference;
use crate::error::{check, error, Code, CLOSED};

/// The views' hold on the mapping; emptied by `detach` once every view is detached.
type Share = Mutex<Option<Arc<Segment>>>;

/// Every view of one mapping made in one env.
pub struct View {
    share: Arc<Share>,
    /// Strong reference to the whole-segment Buffer, once asked for.
    whole: Option<Reference>,
    /// Weak references to the ArrayBuffers of windows (the ArrayBuffer, not the Buffer: a
    /// user may keep `window.buffer` alone, and that is what must be detached).
    windows: Vec<Reference>,
    /// `windows.len()` after the last sweep of collected windows.
    swept: usize,
}

/// Why a view could not be made.
pub enum ViewError {
    /// Ours, with its code.
    Failed(Error<Code>),
    /// Node refused the external buffer.
    Refused(Refused, usize),
}

impl From<Error<Code>> for ViewError {
    fn from(err: Error<Code>) -> Self {
        ViewError::Failed(err)
    }
}

impl View {
    /// No JS object yet: the Buffer and the windows are made on demand.
    pub fn new(segment: &Arc<Segment>) -> Self {
        View {
            share: Arc::new(Mutex::new(Some(Arc::clone(segment)))),
            whole: None,
            windows: Vec::new(),
            swept: 0,
        }
    }

    /// The Buffer over the whole mapping (the same object every time).
    pub fn buffer<'env>(&mut self, env: &'env Env) -> std::result::Result<Unknown<'env>, ViewError> {
        if let Some(whole) = &self.whole {
            return Ok(whole.get(env)?);
        }
        let len = self.segment()?.len();
        let buffer = self.external_buffer(env, 0, len)?;
        self.whole = Some(Reference::strong(env, &buffer)?);
        Ok(buffer)
    }

    /// The ArrayBuffer under the Buffer (same object every time).
    pub fn array_buffer<'env>(&mut self, env: &'env Env) -> std::result::Result<Unknown<'env>, ViewError> {
        let buffer = self.buffer(env)?;
        Ok(array_buffer_of(env, buffer.raw())?)
    }

    /// A new Buffer over `[offset, offset + len)` of the mapping, with its own ArrayBuffer.
    /// `close()` detaches it along with `buf`. The caller has checked the range.
    pub fn window<'env>(
        &mut self,
        env: &'env Env,
        offset: usize,
        len: usize,
    ) -> std::result::Result<Unknown<'env>, ViewError> {
        let buffer = self.external_buffer(env, offset, len)?;
        let array_buffer = array_buffer_of(env, buffer.raw())?;
        self.sweep_windows(env);
        self.windows.push(Reference::weak(env, &array_buffer)?);
        Ok(buffer)
    }

    fn segment(&self) -> Result<Arc<Segment>, Code> {
        let share = self.share.lock().unwrap_or_else(PoisonError::into_inner);
        share
            .clone()
            .ok_or_else(|| error(CLOSED, "the segment's views are detached"))
    }

    /// An external Buffer over `len` bytes at `offset`, its finalizer holding the share.
    fn external_buffer<'env>(
        &self,
        env: &'env Env,
        offset: usize,
        len: usize,
    ) -> std::result::Result<Unknown<'env>, ViewError> {
        let segment = self.segment()?;
        let in_bounds = offset.checked_add(len).is_some_and(|end| end <= segment.len());
        if !in_bounds {
            return Err(crate::error::napi_failure("a view outside the segment").into());
        }
        // SAFETY: `offset + len <= segment.len()` was checked above, so the data pointer is
        // valid for `len` bytes for as long as the share holds the segment, and `detach`
        // empties the share only after detaching every view made here; the bytes are shared
        // memory, only ever accessed atomically from Rust.
        let data = unsafe { segment.as_ptr().add(offset) };
        // SAFETY: as just said.
        unsafe { create(env, External::Buffer, Arc::clone(&self.share), data.cast(), len) }
            .map_err(|refused| ViewError::Refused(refused, len))
    }

    /// Forgets windows that JS has collected, when their number has doubled since last time
    /// (so a program making many short-lived windows pays O(1) per window on average).
    fn sweep_windows(&mut self, env: &Env) {
        if self.windows.len() < self.swept.max(8).saturating_mul(2) {
            return;
        }
        let mut kept = Vec::with_capacity(self.windows.len());
        for window in self.windows.drain(..) {
            if window.raw_value(env).is_ok_and(|value| !value.is_null()) {
                kept.push(window);
            } else {
                window.release(env);
            }
        }
        self.windows = kept;
        self.swept = self.windows.len();
    }

    /// Detaches every view (each reads as length 0 from now on), lets go of the mapping and
    /// drops the references. If a detach fails, the views keep the mapping.
    pub fn detach(self, env: &Env) -> Result<(), Code> {
        let whole = self.whole.as_ref().map(|whole| {
            whole
                .raw_value(env)
                .and_then(|buffer| array_buffer_of(env, buffer).map(|b| b.raw()))
        });
        let windows = self.windows.iter().map(|window| window.raw_value(env));
        let mut detached = Ok(());
        for array_buffer in whole.into_iter().chain(windows) {
            let result = array_buffer.and_then(|array_buffer| {
                if array_buffer.is_null() {
                    return Ok(()); // a window JS has collected
                }
                check(
                    // SAFETY: a live ArrayBuffer of this env; external ones are detachable.
                    unsafe { sys::napi_detach_arraybuffer(env.raw(), array_buffer) },
                    "napi_detach_arraybuffer",
                )
            });
            detached = detached.and(result);
        }
        if detached.is_ok() {
            // No JS view can reach the memory any more: let go of the mapping now.
            self.share.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        self.release(env);
        detached
    }

    /// Drops the references without detaching: views the user still holds keep the mapping.
    pub fn release(self, env: &Env) {
        for reference in self.whole.into_iter().chain(self.windows) {
            reference.release(env);
        }
    }
}

/// Detaches the ArrayBuffer under the Buffer `buffer` refers to (a Buffer of this env): every
/// view of it reads as length 0 from then on. Detaching twice is harmless.
pub fn detach_buffer(env: &Env, buffer: &Reference) -> Result<(), Code> {
    let value = buffer.raw_value(env)?;
    if value.is_null() {
        return Ok(()); // a weak reference whose Buffer JS has collected
    }
    let array_buffer = array_buffer_of(env, value)?;
    check(
        // SAFETY: a live ArrayBuffer of this env; external ones are detachable.
        unsafe { sys::napi_detach_arraybuffer(env.raw(), array_buffer.raw()) },
        "napi_detach_arraybuffer",
    )
}

/// The ArrayBuffer under a Buffer (a Uint8Array) of this env.
fn array_buffer_of(env: &Env, typed_array: sys::napi_value) -> Result<Unknown<'_>, Code> {
    let mut kind = 0;
    let mut length = 0;
    let mut data = ptr::null_mut();
    let mut array_buffer = ptr::null_mut();
    let mut offset = 0;
    // SAFETY: `typed_array` is a live Buffer of this env; all out-pointers are valid.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            typed_array,
            &mut kind,
            &mut length,
            &mut data,
            &mut array_buffer,
            &mut offset,
        )
    };
    check(status, "napi_get_typedarray_info")?;
    // SAFETY: just produced by this env.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), array_buffer) })
}
