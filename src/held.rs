//! A strong Node-API reference to one of our wrapped objects, with its Rust value's address.
//!
//! napi-rs's `Reference<T>` leaked about 120 bytes per object here (measured: 50 000
//! ShareableLists grew RSS by 6 MiB); this holds one plain `napi_ref` and nothing else.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};

use napi::bindgen_prelude::*;
use napi::sys;

use crate::error::{check, error, Code};

/// Keeps a JS object (and so the Rust value napi-rs boxed inside it) alive until
/// [`Held::release`], which must be called from a finalizer or method that has the `Env`.
pub struct Held<T> {
    reference: sys::napi_ref,
    native: NonNull<T>,
    weak: bool,
}

impl<T> Held<T> {
    /// Holds `instance`, just created by `into_instance`.
    pub fn new(env: &Env, mut instance: ClassInstance<'_, T>) -> Result<Self, Code> {
        let native = NonNull::from(&mut *instance);
        Self::from_raw(env, instance.value, native)
    }

    /// Holds the object `value` whose wrapped Rust value is `native`.
    pub fn from_raw(env: &Env, value: sys::napi_value, native: NonNull<T>) -> Result<Self, Code> {
        let mut reference = ptr::null_mut();
        // SAFETY: `value` is a live object of this env.
        check(
            unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(Held {
            reference,
            native,
            weak: false,
        })
    }

    /// The Rust value.
    pub fn get(&self) -> &T {
        // SAFETY: the strong reference keeps the JS object alive, and napi-rs frees the boxed
        // value only when that object is finalized; JS is single-threaded in this env.
        unsafe { self.native.as_ref() }
    }

    /// The Rust value, mutably (no other Rust reference to it is live during a call).
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: as in `get`; `&mut self` makes this the only access through this handle, and
        // the methods that call it run to completion without re-entering JS.
        unsafe { self.native.as_mut() }
    }

    /// The JS object.
    pub fn value(&self, env: &Env) -> Result<sys::napi_value, Code> {
        let mut value = ptr::null_mut();
        // SAFETY: the reference was made in this env and is still alive.
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), self.reference, &mut value) },
            "napi_get_reference_value",
        )?;
        if value.is_null() {
            return Err(error(
                Code("ERR_SHM_INTERNAL"),
                "a weakened reference outlived its object",
            ));
        }
        Ok(value)
    }

    /// Makes the reference weak. Only for a caller that has made the object reachable from the
    /// JS object that owns this `Held`, for good (a non-configurable property): then the object
    /// lives as long as any call that uses [`Held::get`], and both can die in one garbage
    /// collection, where a strong reference kept the held object alive until the owner's
    /// finalizer ran, one collection later (so every one was promoted to the old generation).
    pub fn weaken(&mut self, env: &Env) -> Result<(), Code> {
        if self.weak {
            return Ok(());
        }
        let mut count = 0;
        // SAFETY: the reference was made in this env with a count of 1 and is still alive.
        check(
            unsafe { sys::napi_reference_unref(env.raw(), self.reference, &mut count) },
            "napi_reference_unref",
        )?;
        self.weak = true;
        Ok(())
    }

    /// Lets the object go (it may then be collected).
    pub fn release(self, env: &Env) {
        // SAFETY: made in this env, deleted once (`self` is consumed).
        unsafe { sys::napi_delete_reference(env.raw(), self.reference) };
    }
}
