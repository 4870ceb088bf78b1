//! Value conversions between Rust and JS that napi-rs offers only as `unsafe` casts or not
//! at all, each a checked Node-API call.

use std::cell::RefCell;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::error::{check, napi_failure, Code};

/// A string or byte sequence taken from JS, unless it is longer than the caller's bound:
/// then only its length, and nothing was copied.
pub enum Bounded<T> {
    /// The copy.
    Within(T),
    /// Its length (UTF-8 bytes for a string), over the bound.
    Over(usize),
}

/// `value` as a number, or `None` if it is not one (`napi_get_value_double`, which checks).
pub fn number(value: &Unknown<'_>) -> Option<f64> {
    let mut number = 0f64;
    // SAFETY: `value` is a live value of its env; Node-API checks that it is a number.
    let status = unsafe { sys::napi_get_value_double(value.value().env, value.raw(), &mut number) };
    (status == sys::Status::napi_ok).then_some(number)
}

/// `value` as a boolean (an error if it is not one).
pub fn boolean(value: &Unknown<'_>) -> Result<bool, Code> {
    let mut boolean = false;
    check(
        // SAFETY: as in `number`; Node-API checks the type.
        unsafe { sys::napi_get_value_bool(value.value().env, value.raw(), &mut boolean) },
        "napi_get_value_bool",
    )?;
    Ok(boolean)
}

/// A bigint as int64, and whether it fit without loss.
pub fn bigint_i64(value: &Unknown<'_>) -> Result<(i64, bool), Code> {
    let (mut int, mut lossless) = (0i64, false);
    check(
        // SAFETY: as in `number`; Node-API checks the type.
        unsafe { sys::napi_get_value_bigint_int64(value.value().env, value.raw(), &mut int, &mut lossless) },
        "napi_get_value_bigint_int64",
    )?;
    Ok((int, lossless))
}

/// A string's UTF-8 text (lone surrogates become U+FFFD), or its length when that is over
/// `max_len` bytes.
pub fn string(value: &Unknown<'_>, max_len: usize) -> Result<Bounded<String>, Code> {
    let env = value.value().env;
    let mut len = 0usize;
    check(
        // SAFETY: a null buffer asks only for the UTF-8 length; Node-API checks the type.
        unsafe { sys::napi_get_value_string_utf8(env, value.raw(), ptr::null_mut(), 0, &mut len) },
        "napi_get_value_string_utf8",
    )?;
    if len > max_len {
        return Ok(Bounded::Over(len));
    }
    let room = len.saturating_add(1);
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(room)
        .map_err(|_| napi_failure("no memory for a string"))?;
    bytes.resize(room, 0u8);
    let mut written = 0usize;
    check(
        // SAFETY: `bytes` has room for `len` bytes plus the NUL that Node-API writes.
        unsafe { sys::napi_get_value_string_utf8(env, value.raw(), bytes.as_mut_ptr().cast(), room, &mut written) },
        "napi_get_value_string_utf8",
    )?;
    bytes.truncate(written);
    // Node-API writes valid UTF-8.
    String::from_utf8(bytes)
        .map(Bounded::Within)
        .map_err(|e| napi_failure(e.to_string()))
}

/// A copy of a Uint8Array's bytes (a Buffer's included), or its length when that is over
/// `max_len`; `None` for any other value.
pub fn uint8_array(value: &Unknown<'_>, max_len: usize) -> Result<Option<Bounded<Vec<u8>>>, Code> {
    with_uint8_array(value, |bytes| {
        if bytes.len() > max_len {
            Bounded::Over(bytes.len())
        } else {
            Bounded::Within(bytes.to_vec())
        }
    })
}

/// Runs `f` over a Uint8Array's bytes (a Buffer's included) in place, without a copy; `None`
/// for any other value. `f` must not call into JS (nothing it can reach does: it gets a slice).
pub fn with_uint8_array<R>(value: &Unknown<'_>, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Code> {
    let env = value.value().env;
    let mut is_typed_array = false;
    check(
        // SAFETY: `value` is a live value of its env; the out-pointer is valid.
        unsafe { sys::napi_is_typedarray(env, value.raw(), &mut is_typed_array) },
        "napi_is_typedarray",
    )?;
    if !is_typed_array {
        return Ok(None);
    }
    let (mut kind, mut len, mut data, mut array_buffer, mut offset) =
        (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    check(
        // SAFETY: `value` is a typed array; every out-pointer is valid.
        unsafe {
            sys::napi_get_typedarray_info(
                env,
                value.raw(),
                &mut kind,
                &mut len,
                &mut data,
                &mut array_buffer,
                &mut offset,
            )
        },
        "napi_get_typedarray_info",
    )?;
    if kind != sys::TypedarrayType::uint8_array {
        return Ok(None);
    }
    if len == 0 || data.is_null() {
        return Ok(Some(f(&[])));
    }
    // SAFETY: Node-API reports `data` valid for `len` bytes; no JS runs while `f` holds the
    // slice (this thread is inside a native call, and `f` cannot call into JS).
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    Ok(Some(f(bytes)))
}

/// `value` as an object (functions included), or `None`.
pub fn object<'env>(value: &Unknown<'env>) -> Option<Object<'env>> {
    let is_object = matches!(value.get_type(), Ok(ValueType::Object | ValueType::Function));
    // SAFETY: `value` is an object, as just checked, which is all `Object` assumes.
    is_object.then(|| unsafe { value.cast::<Object>() }.ok()).flatten()
}

/// `value` as an array, or `None`.
pub fn array<'env>(value: &Unknown<'env>) -> Option<Array<'env>> {
    let is_array = value.is_array().unwrap_or(false);
    // SAFETY: `value` is an array, as just checked.
    is_array.then(|| unsafe { value.cast::<Array>() }.ok()).flatten()
}

/// `value` as a string (napi-rs's conversion), or `None` if it is not one.
pub fn text(value: &Unknown<'_>) -> Option<String> {
    let is_string = matches!(value.get_type(), Ok(ValueType::String));
    // SAFETY: `value` is a string, as just checked.
    is_string.then(|| unsafe { value.cast::<String>() }.ok()).flatten()
}

/// An object converted to a `#[napi(object)]` struct, whose conversion checks every field.
pub fn from_object<T: FromNapiValue>(env: &Env, object: &Object<'_>) -> napi::Result<T> {
    // SAFETY: `object` is a live object of this env, which is what such a conversion reads.
    unsafe { T::from_napi_value(env.raw(), object.raw()) }
}

/// The instance of the `#[napi]` class `T` that `value` is (napi-rs checks its type tag
/// before it uses the wrapped pointer).
pub fn instance<'env, T: 'env + MaybeTypeTag>(
    env: &Env,
    value: &Unknown<'env>,
) -> napi::Result<ClassInstance<'env, T>> {
    // SAFETY: `value` is a live value of this env; the conversion checks the type tag.
    unsafe { ClassInstance::<T>::from_napi_value(env.raw(), value.raw()) }
}

/// `object[key]`, or `None` when the lookup throws (a getter, a Proxy).
pub fn property<'env>(env: &'env Env, object: &Unknown<'env>, key: &Unknown<'env>) -> Option<Unknown<'env>> {
    let mut found = ptr::null_mut();
    // SAFETY: `object` is an object and `key` a value, both live in this env.
    let status = unsafe { sys::napi_get_property(env.raw(), object.raw(), key.raw(), &mut found) };
    // SAFETY: just produced by this env.
    (status == sys::Status::napi_ok).then(|| unsafe { Unknown::from_raw_unchecked(env.raw(), found) })
}

/// One Node-API call that makes a value.
fn make<'env>(
    env: &'env Env,
    what: &str,
    call: impl FnOnce(sys::napi_env, *mut sys::napi_value) -> sys::napi_status,
) -> Result<Unknown<'env>, Code> {
    let mut value = ptr::null_mut();
    check(call(env.raw(), &mut value), what)?;
    // SAFETY: `call` succeeded, so `value` is a value it just made in this env.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// A value made by `create`, a Node-API function of the shape `(env, arg, &mut result)`.
fn make_from<'env, A>(
    env: &'env Env,
    what: &str,
    create: unsafe fn(sys::napi_env, A, *mut sys::napi_value) -> sys::napi_status,
    arg: A,
) -> Result<Unknown<'env>, Code> {
    // SAFETY: `create` is a Node-API function that makes a value from `arg` by value (nothing
    // it reads can dangle); `env` is this call's live env and `out` a valid out-pointer.
    make(env, what, |env, out| unsafe { create(env, arg, out) })
}

/// A number from an int64 (exact within ±2^53).
pub fn int64(env: &Env, int: i64) -> Result<Unknown<'_>, Code> {
    make_from(env, "napi_create_int64", sys::napi_create_int64, int)
}

/// A bigint.
pub fn bigint(env: &Env, int: i64) -> Result<Unknown<'_>, Code> {
    make_from(env, "napi_create_bigint_int64", sys::napi_create_bigint_int64, int)
}

/// A number.
pub fn double(env: &Env, number: f64) -> Result<Unknown<'_>, Code> {
    make_from(env, "napi_create_double", sys::napi_create_double, number)
}

/// `true` or `false`.
pub fn js_boolean(env: &Env, boolean: bool) -> Result<Unknown<'_>, Code> {
    make_from(env, "napi_get_boolean", sys::napi_get_boolean, boolean)
}

/// `null`.
pub fn null(env: &Env) -> Result<Unknown<'_>, Code> {
    // SAFETY: `env` is this call's live env, `out` the out-pointer `make` passes.
    make(env, "napi_get_null", |env, out| unsafe { sys::napi_get_null(env, out) })
}

/// `undefined`.
pub fn undefined(env: &Env) -> Result<Unknown<'_>, Code> {
    // SAFETY: `env` is this call's live env, `out` the out-pointer `make` passes.
    make(env, "napi_get_undefined", |env, out| unsafe {
        sys::napi_get_undefined(env, out)
    })
}

/// A string (`text` is at most `isize::MAX` bytes, as every Rust allocation is).
pub fn js_string<'env>(env: &'env Env, text: &str) -> Result<Unknown<'env>, Code> {
    // SAFETY: `env` is this call's live env, `out` the out-pointer `make` passes.
    make(env, "napi_create_string_utf8", |env, out| unsafe {
        sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, out)
    })
}

/// A new Buffer holding a copy of `bytes`.
pub fn buffer_copy<'env>(env: &'env Env, bytes: &[u8]) -> Result<Unknown<'env>, Code> {
    make(env, "napi_create_buffer_copy", |env, out| {
        let mut data = ptr::null_mut();
        // SAFETY: as above; `bytes` is valid for its length.
        unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, out) }
    })
}

/// An Int32Array of `length` elements over `array_buffer` from its start.
pub fn int32_array<'env>(env: &'env Env, array_buffer: &Unknown<'env>, length: usize) -> Result<Unknown<'env>, Code> {
    make(env, "napi_create_typedarray", |env, out| {
        // SAFETY: `env` is the live env of this call, `out` the out-pointer `make` passes.
        unsafe {
            sys::napi_create_typedarray(
                env,
                sys::TypedarrayType::int32_array,
                length,
                array_buffer.raw(),
                0,
                out,
            )
        }
    })
}

/// Arguments per call of `collect` in [`array`]; larger lists are built in chunks.
const CHUNK: usize = 8192;

thread_local! {
    /// Scratch space for [`collect_array`], reused across calls on this thread.
    static VALUES: RefCell<Vec<sys::napi_value>> = const { RefCell::new(Vec::new()) };
}

/// A new JS array of the values `fill` pushes, built by calling `collect`, a JS function
/// `(...items) => items` (one call per [`CHUNK`] values, where one Node-API call per element
/// would cost more than the values themselves).
pub fn collect_array<'env>(
    env: &'env Env,
    collect: &Unknown<'env>,
    fill: impl FnOnce(&mut dyn FnMut(Unknown<'env>) -> Result<(), Code>) -> Result<(), Code>,
) -> Result<Unknown<'env>, Code> {
    VALUES.with(|values| {
        // A re-entrant call (a list read from inside a `collect` cannot happen, but a
        // borrowed buffer must never panic) gets a buffer of its own.
        let mut own = Vec::new();
        let mut borrowed = values.try_borrow_mut();
        let values = match &mut borrowed {
            Ok(values) => &mut **values,
            Err(_) => &mut own,
        };
        values.clear();
        let filled = fill(&mut |value| {
            values
                .try_reserve(1)
                .map_err(|_| napi_failure("no memory for the list's values"))?;
            values.push(value.raw());
            Ok(())
        });
        let array = filled.and_then(|()| chunked_array(env, collect, values));
        // The handles belong to this call's scope: none may outlive it.
        values.clear();
        array
    })
}

fn chunked_array<'env>(
    env: &'env Env,
    collect: &Unknown<'env>,
    values: &[sys::napi_value],
) -> Result<Unknown<'env>, Code> {
    let undefined = undefined(env)?;
    let mut result: Option<Unknown<'env>> = None;
    for chunk in values.chunks(CHUNK) {
        let part = make(env, "collect", |env, out| {
            // SAFETY: `collect` is a function of this env and `chunk` holds values that `fill`
            // pushed during this call.
            unsafe { sys::napi_call_function(env, undefined.raw(), collect.raw(), chunk.len(), chunk.as_ptr(), out) }
        })?;
        match &result {
            None => result = Some(part),
            Some(target) => append(env, target, &part)?,
        }
    }
    match result {
        Some(array) => Ok(array),
        None => make(env, "napi_create_array", |env, out| {
            // SAFETY: `env` is the live env of this call, `out` the out-pointer `make` passes.
            unsafe { sys::napi_create_array(env, out) }
        }),
    }
}

/// `target.push(...part)` for the rare list larger than one chunk.
fn append(env: &Env, target: &Unknown<'_>, part: &Unknown<'_>) -> Result<(), Code> {
    let raw = env.raw();
    let (mut start, mut len) = (0u32, 0u32);
    // SAFETY: both are arrays made in this env during this call; out-pointers are valid.
    unsafe {
        check(
            sys::napi_get_array_length(raw, target.raw(), &mut start),
            "napi_get_array_length",
        )?;
        check(
            sys::napi_get_array_length(raw, part.raw(), &mut len),
            "napi_get_array_length",
        )?;
        for i in 0..len {
            let mut element = ptr::null_mut();
            check(
                sys::napi_get_element(raw, part.raw(), i, &mut element),
                "napi_get_element",
            )?;
            // An array holds fewer than 2^32 elements, and both come from one list.
            let at = start.checked_add(i).ok_or_else(|| {
                crate::error::error(crate::error::OUT_OF_RANGE, "the list is too long for a JS array")
            })?;
            check(
                sys::napi_set_element(raw, target.raw(), at, element),
                "napi_set_element",
            )?;
        }
    }
    Ok(())
}

/// Which JS error class [`throw`] makes.
#[derive(Clone, Copy, Debug)]
pub enum Thrown {
    /// `Error`.
    Error,
    /// `TypeError`.
    TypeError,
    /// `RangeError`.
    RangeError,
}

/// Throws `err` (its `code` property kept) as a JS exception of class `class`.
pub fn throw(env: &Env, class: Thrown, err: Error<Code>) {
    let raw = env.raw();
    // SAFETY: `raw` is the live env of the current call.
    unsafe {
        match class {
            Thrown::Error => JsError::from(err).throw_into(raw),
            Thrown::TypeError => JsTypeError::from(err).throw_into(raw),
            Thrown::RangeError => JsRangeError::from(err).throw_into(raw),
        }
    }
}

/// Clears a pending JS exception, if any, and returns its `code` property.
pub fn take_exception_code(env: &Env) -> Option<String> {
    let mut pending = false;
    // SAFETY: `env` is the live env of the current call; `pending` is a valid out-pointer.
    let status = unsafe { sys::napi_is_exception_pending(env.raw(), &mut pending) };
    if status != sys::Status::napi_ok || !pending {
        return None;
    }
    let exception = make(env, "napi_get_and_clear_last_exception", |env, out| {
        // SAFETY: as above; an exception is pending, so this clears it.
        unsafe { sys::napi_get_and_clear_last_exception(env, out) }
    })
    .ok()?;
    let object = object(&exception)?;
    object.get_named_property::<String>("code").ok()
}
