//! `napi_ref`s: one owning type for every reference the binding keeps across calls.
//!
//! napi-rs's `Reference<T>` leaked about 120 bytes per object here (measured: 50 000
//! ShareableLists grew RSS by 6 MiB); these hold one plain `napi_ref` and nothing else.

use std::ptr::{self, NonNull};

use napi::bindgen_prelude::*;
use napi::sys;

use crate::error::{check, Code};

/// A `napi_ref` to a JS value: strong (it keeps the value alive) or weak (the value may be
/// collected; [`Reference::value`] then gives null). Deleted by [`Reference::release`], which
/// needs the env, so it is called from a finalizer or a method; one that is dropped instead
/// leaks the reference and never deletes it twice.
pub struct Reference(sys::napi_ref);

impl Reference {
    /// A strong reference to `value`.
    pub fn strong<'env>(env: &Env, value: &impl JsValue<'env>) -> Result<Self, Code> {
        Self::with_count(env, value.raw(), 1)
    }

    /// A weak reference to `value`: it does not keep it alive.
    pub fn weak<'env>(env: &Env, value: &impl JsValue<'env>) -> Result<Self, Code> {
        Self::with_count(env, value.raw(), 0)
    }

    pub(super) fn with_count(env: &Env, value: sys::napi_value, count: u32) -> Result<Self, Code> {
        let mut reference = ptr::null_mut();
        check(
            // SAFETY: `value` is a live value of this env (a typed value's lifetime or the
            // current call says so); `reference` is a valid out-pointer.
            unsafe { sys::napi_create_reference(env.raw(), value, count, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(Reference(reference))
    }

    /// The referenced value; null once a weak reference's value has been collected.
    pub(super) fn raw_value(&self, env: &Env) -> Result<sys::napi_value, Code> {
        let mut value = ptr::null_mut();
        check(
            // SAFETY: the reference was made in this env and is not deleted yet (`release`
            // consumes it).
            unsafe { sys::napi_get_reference_value(env.raw(), self.0, &mut value) },
            "napi_get_reference_value",
        )?;
        Ok(value)
    }

    /// The referenced value, or `None` once a weak reference's value has been collected.
    pub fn value<'env>(&self, env: &'env Env) -> Result<Option<Unknown<'env>>, Code> {
        let value = self.raw_value(env)?;
        // SAFETY: a non-null value from a live reference of this env is a live value of it.
        Ok((!value.is_null()).then(|| unsafe { Unknown::from_raw_unchecked(env.raw(), value) }))
    }

    /// The referenced value of a strong reference (an error for a collected weak one).
    pub fn get<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        self.value(env)?
            .ok_or_else(|| crate::error::napi_failure("napi_get_reference_value gave no value"))
    }

    /// Makes a strong reference weak (its count was 1).
    fn unref(&self, env: &Env) -> Result<(), Code> {
        let mut count = 0;
        check(
            // SAFETY: the reference was made in this env and is not deleted yet.
            unsafe { sys::napi_reference_unref(env.raw(), self.0, &mut count) },
            "napi_reference_unref",
        )
    }

    /// Deletes the reference: a strong one lets its value go (it may then be collected).
    pub fn release(self, env: &Env) {
        // SAFETY: made in this env, deleted once (`self` is consumed).
        unsafe { sys::napi_delete_reference(env.raw(), self.0) };
    }
}

/// Keeps one of our `#[napi]` objects (and so the Rust value napi-rs boxed inside it) alive
/// until [`Held::release`], and reaches that Rust value without a lookup.
pub struct Held<T> {
    reference: Reference,
    native: NonNull<T>,
    weak: bool,
}

impl<T> Held<T> {
    /// Holds `instance`, just created by `into_instance` or passed in as an argument.
    pub fn new(env: &Env, mut instance: ClassInstance<'_, T>) -> Result<Self, Code> {
        let native = NonNull::from(&mut *instance);
        Ok(Held {
            reference: Reference::with_count(env, instance.value, 1)?,
            native,
            weak: false,
        })
    }

    /// Holds the object `this` of a method of `T`, whose Rust value is `native`.
    pub fn this(env: &Env, this: &This<'_>, native: &mut T) -> Result<Self, Code> {
        Ok(Held {
            reference: Reference::with_count(env, this.object.raw(), 1)?,
            native: NonNull::from(native),
            weak: false,
        })
    }

    /// The Rust value.
    pub fn get(&self) -> &T {
        // SAFETY: the strong reference keeps the JS object alive (once weakened, the
        // non-configurable property that `weaken` requires does, for as long as the owner
        // that calls this lives), and napi-rs frees the boxed value only when that object is
        // finalized; JS is single-threaded in this env.
        unsafe { self.native.as_ref() }
    }

    /// The Rust value, mutably (no other Rust reference to it is live during a call).
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: as in `get`; `&mut self` makes this the only access through this handle, and
        // the methods that call it run to completion without re-entering JS.
        unsafe { self.native.as_mut() }
    }

    /// The JS object.
    pub fn value<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        self.reference.get(env)
    }

    /// Lets the object go (it may then be collected).
    pub fn release(self, env: &Env) {
        self.reference.release(env);
    }

    /// Makes the reference weak. Only for a caller that has made the object reachable for
    /// good (a non-configurable property) from the JS object that owns this `Held`: the
    /// object then lives as long as any call that uses [`Held::get`], and both can die in one
    /// garbage collection, where a strong reference kept the held object alive until the
    /// owner's finalizer ran, one collection later (so every one was promoted to the old
    /// generation).
    pub fn weaken(&mut self, env: &Env) -> Result<(), Code> {
        if !self.weak {
            self.reference.unref(env)?;
            self.weak = true;
        }
        Ok(())
    }
}
