//! The zero-copy views of a mapping in a JS environment: the whole-segment Buffer (`buf`, and
//! the ArrayBuffer under it) and any windows (`window(byteOffset, byteLength)`), each an
//! external Buffer whose finalizer holds a reference on the mapping.
//!
//! Lifetime rules (design.md, safety rule 3):
//! - while a view is attached, its finalizer's [`Share`] holds the mapping, so a Buffer the
//!   user keeps after the `SharedMemory` handle is garbage collected stays valid;
//! - `close()` detaches every ArrayBuffer (every view now reads as length 0), then takes the
//!   mapping out of the share at once: Node runs finalizers later (after the current JS task),
//!   and a loop of create/close must not pile up mappings until it yields.
//!
//! A Buffer cannot be longer than `buffer.constants.MAX_LENGTH` (4 GiB on Node 20, 2^53 - 1
//! from Node 22 on 64-bit). Past that, `buf` is a clean `ERR_SHM_BUFFER_TOO_LARGE` and windows
//! reach the whole segment piece by piece.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::*;
use napi::sys;
use shmkit_core::Segment;

use crate::error::{check, check_external, error, Code};

/// The views' hold on the mapping; emptied by `close()` once every view is detached.
type Share = Mutex<Option<Arc<Segment>>>;

pub const BUFFER_TOO_LARGE: Code = Code("ERR_SHM_BUFFER_TOO_LARGE");

/// Every view of one mapping made in one env.
pub struct View {
    share: Arc<Share>,
    /// Strong reference to the whole-segment Buffer, once asked for.
    whole: Option<sys::napi_ref>,
    /// Weak references to the ArrayBuffers of windows (the ArrayBuffer, not the Buffer: a
    /// user may keep `window.buffer` alone, and that is what must be detached).
    windows: Vec<sys::napi_ref>,
    /// `windows.len()` after the last sweep of collected windows.
    swept: usize,
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
    pub fn buffer<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        let reference = match self.whole {
            Some(reference) => reference,
            None => {
                let len = self.segment()?.len();
                let buffer = self.external_buffer(env, 0, len)?;
                *self.whole.insert(reference(env, buffer, 1)?)
            }
        };
        let value = reference_value(env, reference)?;
        // SAFETY: a strong reference of this env gives a live value.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    }

    /// The ArrayBuffer under the Buffer (same object every time).
    pub fn array_buffer<'env>(&mut self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        let buffer = self.buffer(env)?;
        let array_buffer = array_buffer_of(env, buffer.raw())?;
        // SAFETY: `array_buffer` was just produced by this env.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), array_buffer) })
    }

    /// A new Buffer over `[offset, offset + len)` of the mapping, with its own ArrayBuffer.
    /// `close()` detaches it along with `buf`. The caller has checked the range.
    pub fn window<'env>(&mut self, env: &'env Env, offset: usize, len: usize) -> Result<Unknown<'env>, Code> {
        let buffer = self.external_buffer(env, offset, len)?;
        let array_buffer = array_buffer_of(env, buffer)?;
        self.sweep_windows(env);
        self.windows.push(reference(env, array_buffer, 0)?);
        // SAFETY: `buffer` was just produced by this env.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), buffer) })
    }

    fn segment(&self) -> Result<Arc<Segment>, Code> {
        let share = self.share.lock().unwrap_or_else(PoisonError::into_inner);
        share
            .clone()
            .ok_or_else(|| error(Code("ERR_SHM_CLOSED"), "the segment's views are detached"))
    }

    /// An external Buffer over `len` bytes at `offset`, its finalizer holding the share.
    fn external_buffer(&self, env: &Env, offset: usize, len: usize) -> Result<sys::napi_value, Code> {
        let segment = self.segment()?;
        debug_assert!(offset.checked_add(len).is_some_and(|end| end <= segment.len()));
        let hint = Arc::into_raw(Arc::clone(&self.share)).cast_mut();
        let mut buffer = ptr::null_mut();
        // SAFETY: the callers checked `offset + len <= segment.len()`, so the data pointer is
        // valid for `len` bytes for as long as the Arc in `hint` lives (close() empties the
        // share only after detaching every view); `release_share` drops that Arc once.
        let status = unsafe {
            sys::napi_create_external_buffer(
                env.raw(),
                len,
                segment.as_ptr().add(offset).cast::<c_void>(),
                Some(release_share),
                hint.cast::<c_void>(),
                &mut buffer,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok(buffer);
        }
        if hint_never_taken(status) {
            // SAFETY: Node refused before making the finalizer, which will never run: the Arc
            // in `hint` is still ours, and this is its only release.
            drop(unsafe { Arc::from_raw(hint.cast_const()) });
        }
        Err(refusal(env, status, "napi_create_external_buffer", len))
    }

    /// Forgets windows that JS has collected, when their number has doubled since last time
    /// (so a program making many short-lived windows pays O(1) per window on average).
    fn sweep_windows(&mut self, env: &Env) {
        if self.windows.len() < 2 * self.swept.max(8) {
            return;
        }
        self.windows.retain(|&window| {
            let alive = reference_value(env, window).is_ok_and(|value| !value.is_null());
            if !alive {
                delete_reference(env, window);
            }
            alive
        });
        self.swept = self.windows.len();
    }

    /// Detaches every view (each reads as length 0 from now on), lets go of the mapping and
    /// drops the references. If a detach fails, the views keep the mapping.
    pub fn detach(self, env: &Env) -> Result<(), Code> {
        let whole = self
            .whole
            .map(|whole| reference_value(env, whole).and_then(|buffer| array_buffer_of(env, buffer)));
        let windows = self.windows.iter().map(|&window| reference_value(env, window));
        let mut detached = Ok(());
        for array_buffer in whole.into_iter().chain(windows) {
            let result = array_buffer.and_then(|array_buffer| {
                if array_buffer.is_null() {
                    return Ok(()); // a window JS has collected
                }
                // SAFETY: a live ArrayBuffer of this env; external ones are detachable.
                check(
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
            delete_reference(env, reference);
        }
    }
}

/// Whether a failed external buffer creation left the finalize hint with us.
///
/// Node checks its arguments, a pending exception and (in a V8 sandbox, as in Electron)
/// whether external buffers are allowed before it makes the finalizer; those failures leave
/// the hint ours to free. Every later failure comes from `node::Buffer::New`, which has
/// already called the finalizer (a length above `buffer.constants.MAX_LENGTH`) or arranged for
/// it to run when the half-made ArrayBuffer is collected: then the hint is Node's, and freeing
/// it here too would free it twice (`napi_create_external_buffer` in Node's `node_api.cc`).
pub(crate) fn hint_never_taken(status: sys::napi_status) -> bool {
    matches!(
        status,
        sys::Status::napi_invalid_arg
            | sys::Status::napi_pending_exception
            | sys::Status::napi_no_external_buffers_allowed
    )
}

/// The error for a refused external buffer. Node may have thrown already (a length over
/// `buffer.constants.MAX_LENGTH` is its `ERR_BUFFER_TOO_LARGE`); that exception is cleared and
/// replaced by one of ours, which says what to use instead.
pub(crate) fn refusal(env: &Env, status: sys::napi_status, what: &str, len: usize) -> Error<Code> {
    let thrown = take_exception_code(env);
    if thrown.as_deref() == Some("ERR_BUFFER_TOO_LARGE") {
        return error(
            BUFFER_TOO_LARGE,
            format!(
                "a view of {len} bytes exceeds the largest Buffer this Node.js can make (buffer.constants.MAX_LENGTH); \
                 use shm.window(byteOffset, byteLength) for views of at most that size, or shm.sharedBuffer (Node 22.23+)"
            ),
        );
    }
    match check_external(status, what) {
        Err(err) => err,
        Ok(()) => error(Code("ERR_SHM_NAPI"), format!("{what} failed")),
    }
}

/// Clears a pending JS exception, if any, and returns its `code` property.
pub(crate) fn take_exception_code(env: &Env) -> Option<String> {
    let mut pending = false;
    // SAFETY: `env` is the live env of the current call; `pending` is a valid out-pointer.
    let status = unsafe { sys::napi_is_exception_pending(env.raw(), &mut pending) };
    if status != sys::Status::napi_ok || !pending {
        return None;
    }
    let mut exception = ptr::null_mut();
    // SAFETY: as above; an exception is pending, so this clears it.
    let status = unsafe { sys::napi_get_and_clear_last_exception(env.raw(), &mut exception) };
    if status != sys::Status::napi_ok || exception.is_null() {
        return None;
    }
    // SAFETY: `exception` is a live value of this env.
    let exception = unsafe { Unknown::from_raw_unchecked(env.raw(), exception) };
    let object = exception.coerce_to_object().ok()?;
    object.get_named_property::<String>("code").ok()
}

fn reference(env: &Env, value: sys::napi_value, count: u32) -> Result<sys::napi_ref, Code> {
    let mut reference = ptr::null_mut();
    // SAFETY: `value` is a live value of this env.
    check(
        unsafe { sys::napi_create_reference(env.raw(), value, count, &mut reference) },
        "napi_create_reference",
    )?;
    Ok(reference)
}

/// The referenced value; null when a weak reference's value has been collected.
fn reference_value(env: &Env, reference: sys::napi_ref) -> Result<sys::napi_value, Code> {
    let mut value = ptr::null_mut();
    // SAFETY: `reference` was made in this env and is not deleted yet.
    check(
        unsafe { sys::napi_get_reference_value(env.raw(), reference, &mut value) },
        "napi_get_reference_value",
    )?;
    Ok(value)
}

fn delete_reference(env: &Env, reference: sys::napi_ref) {
    // SAFETY: made in this env; every caller deletes each reference exactly once.
    unsafe { sys::napi_delete_reference(env.raw(), reference) };
}

fn array_buffer_of(env: &Env, typed_array: sys::napi_value) -> Result<sys::napi_value, Code> {
    let mut kind = 0;
    let mut length = 0;
    let mut data = ptr::null_mut();
    let mut array_buffer = ptr::null_mut();
    let mut offset = 0;
    // SAFETY: `typed_array` is a live Buffer (a Uint8Array) of this env; all out-pointers are valid.
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
    Ok(array_buffer)
}

unsafe extern "C" fn release_share(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is an `Arc<Share>` leaked in `external_buffer`; Node calls this once per
    // buffer, and only for buffers whose hint it took (see `hint_never_taken`).
    drop(unsafe { Arc::from_raw(hint.cast::<Share>().cast_const()) });
}
