//! The one zero-copy view of a mapping in a JS environment: an external Buffer (and the
//! ArrayBuffer under it) whose finalizer holds a reference on the mapping.
//!
//! Lifetime rules (design.md, safety rule 3):
//! - while the view is attached, its finalizer's [`Share`] holds the mapping, so a Buffer the
//!   user keeps after the `SharedMemory` handle is garbage collected stays valid;
//! - `close()` detaches the ArrayBuffer (every view now reads as length 0), then takes the
//!   mapping out of the share at once: Node runs finalizers later (after the current JS task),
//!   and a loop of create/close must not pile up mappings until it yields.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::*;
use napi::sys;
use shmkit_core::Segment;

use crate::error::{check, check_external, Code};

/// The view's hold on the mapping; emptied by `close()` once the view is detached.
type Share = Mutex<Option<Arc<Segment>>>;

/// A strong reference to the Buffer over a mapping, valid in the env that made it.
pub struct View {
    buffer: sys::napi_ref,
    share: Arc<Share>,
}

impl View {
    /// Creates the external Buffer over the whole mapping.
    pub fn new(env: &Env, segment: &Arc<Segment>) -> Result<Self, Code> {
        let raw_env = env.raw();
        let share: Arc<Share> = Arc::new(Mutex::new(Some(Arc::clone(segment))));
        let hint = Arc::into_raw(Arc::clone(&share)).cast_mut();
        let mut buffer = ptr::null_mut();
        // SAFETY: the data pointer is valid for `len` bytes for as long as the Arc in `hint`
        // lives, and `release_segment` drops that Arc exactly once, when V8 frees the buffer.
        let status = unsafe {
            sys::napi_create_external_buffer(
                raw_env,
                segment.len(),
                segment.as_ptr().cast::<c_void>(),
                Some(release_segment),
                hint.cast::<c_void>(),
                &mut buffer,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: the buffer was not made, so the finalizer will never run: `hint` is still ours.
            drop(unsafe { Arc::from_raw(hint) });
            check_external(status, "napi_create_external_buffer")?;
        }
        let mut reference = ptr::null_mut();
        // SAFETY: `buffer` is a live value of this env.
        check(
            unsafe { sys::napi_create_reference(raw_env, buffer, 1, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(View {
            buffer: reference,
            share,
        })
    }

    /// The Buffer (same object every time).
    pub fn buffer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        let mut value = ptr::null_mut();
        // SAFETY: `self.buffer` is a strong reference made in this env.
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), self.buffer, &mut value) },
            "napi_get_reference_value",
        )?;
        // SAFETY: `value` was just produced by this env.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    }

    /// The ArrayBuffer under the Buffer (same object every time).
    pub fn array_buffer<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        let buffer = self.buffer(env)?;
        let array_buffer = array_buffer_of(env, buffer.raw())?;
        // SAFETY: `array_buffer` was just produced by this env.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), array_buffer) })
    }

    /// Detaches the ArrayBuffer (every view reads as length 0 from now on), lets go of the
    /// mapping and drops the reference. If detaching fails, the view keeps the mapping.
    pub fn detach(self, env: &Env) -> Result<(), Code> {
        let buffer = self.buffer(env)?;
        let array_buffer = array_buffer_of(env, buffer.raw())?;
        // SAFETY: `array_buffer` is a live ArrayBuffer of this env; external ones are detachable.
        check(
            unsafe { sys::napi_detach_arraybuffer(env.raw(), array_buffer) },
            "napi_detach_arraybuffer",
        )?;
        // No JS view can reach the memory any more: let go of the mapping now.
        self.share.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.release(env);
        Ok(())
    }

    /// Drops the reference without detaching: views the user still holds keep the mapping.
    pub fn release(self, env: &Env) {
        // SAFETY: the reference was made in this env and is deleted only here (`self` is consumed).
        unsafe { sys::napi_delete_reference(env.raw(), self.buffer) };
    }
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

unsafe extern "C" fn release_segment(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Arc<Share>` leaked in `View::new`; Node calls this once.
    drop(unsafe { Arc::from_raw(hint.cast::<Share>().cast_const()) });
}
