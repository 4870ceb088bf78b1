//! JS values <-> ShareableList items. Numbers: a safe integer is int64 (`q`), any other
//! number float64 (`d`, -0 included); bigint is int64 (RangeError outside it); null is None;
//! Uint8Array/Buffer is bytes (read back as a Buffer copy).
#![allow(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use shmkit_core::list::{Item, MAX_SLOT_LEN};

use crate::error::{check, error, range_error, Code};

const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
pub const UNSUPPORTED_TYPE: Code = Code("ERR_SHM_UNSUPPORTED_TYPE");

/// An item taken from JS, owning its text or bytes.
pub use shmkit_core::list::OwnedItem;

/// A JS value taken for a list: the item, or only the length of a str/bytes longer than any
/// slot can hold ([`MAX_SLOT_LEN`]), which is never copied.
pub enum Converted {
    /// The value as an item.
    Item(OwnedItem),
    /// A str (UTF-8 bytes) or bytes of this length, over [`MAX_SLOT_LEN`].
    TooLarge(usize),
}

/// Converts a JS value; anything no slot can hold is `ERR_SHM_UNSUPPORTED_TYPE`, and a
/// str/bytes longer than any slot is `ERR_SHM_VALUE_TOO_LARGE` (found before it is copied).
pub fn from_js(env: &Env, value: sys::napi_value) -> Result<OwnedItem, Code> {
    match from_js_bounded(env, value)? {
        Converted::Item(item) => Ok(item),
        Converted::TooLarge(needed) => Err(crate::error::from_core(shmkit_core::Error::ValueTooLarge {
            needed,
            allocated: MAX_SLOT_LEN,
        })),
    }
}

/// As [`from_js`], but a str/bytes longer than [`MAX_SLOT_LEN`] comes back as its length.
pub fn from_js_bounded(env: &Env, value: sys::napi_value) -> Result<Converted, Code> {
    let raw = env.raw();
    let mut kind = 0;
    // SAFETY: `value` is a live value of this env (an argument of the current call).
    check(unsafe { sys::napi_typeof(raw, value, &mut kind) }, "napi_typeof")?;
    match kind {
        sys::ValueType::napi_number => {
            let mut v = 0f64;
            // SAFETY: `value` is a number, as napi_typeof just said.
            check(
                unsafe { sys::napi_get_value_double(raw, value, &mut v) },
                "napi_get_value_double",
            )?;
            let safe_integer = v.fract() == 0.0 && v.abs() <= MAX_SAFE_INTEGER && !(v == 0.0 && v.is_sign_negative());
            Ok(Converted::Item(if safe_integer {
                OwnedItem::Int(v as i64)
            } else {
                OwnedItem::Float(v)
            }))
        }
        sys::ValueType::napi_bigint => {
            let (mut v, mut lossless) = (0i64, false);
            // SAFETY: `value` is a bigint, as napi_typeof just said.
            check(
                unsafe { sys::napi_get_value_bigint_int64(raw, value, &mut v, &mut lossless) },
                "napi_get_value_bigint_int64",
            )?;
            if !lossless {
                return Err(range_error(
                    env,
                    Code("ERR_OUT_OF_RANGE"),
                    "bigint is outside int64 (-2^63 .. 2^63-1)",
                ));
            }
            Ok(Converted::Item(OwnedItem::Int(v)))
        }
        sys::ValueType::napi_boolean => {
            let mut v = false;
            // SAFETY: `value` is a boolean, as napi_typeof just said.
            check(
                unsafe { sys::napi_get_value_bool(raw, value, &mut v) },
                "napi_get_value_bool",
            )?;
            Ok(Converted::Item(OwnedItem::Bool(v)))
        }
        sys::ValueType::napi_null => Ok(Converted::Item(OwnedItem::None)),
        sys::ValueType::napi_string => string_from_js(raw, value),
        sys::ValueType::napi_object => match uint8_array_bytes(raw, value)? {
            Some(bytes) => Ok(bytes),
            None => Err(unsupported("an object that is not a Uint8Array or Buffer")),
        },
        sys::ValueType::napi_undefined => Err(unsupported("undefined (use null for None)")),
        sys::ValueType::napi_symbol => Err(unsupported("a symbol")),
        sys::ValueType::napi_function => Err(unsupported("a function")),
        _ => Err(unsupported("this value")),
    }
}

fn unsupported(what: &str) -> Error<Code> {
    error(
        UNSUPPORTED_TYPE,
        format!("a ShareableList cannot hold {what}: items are number, bigint, boolean, null, string or Uint8Array"),
    )
}

fn string_from_js(raw: sys::napi_env, value: sys::napi_value) -> Result<Converted, Code> {
    let mut len = 0usize;
    // SAFETY: `value` is a string; a null buffer asks only for the UTF-8 length.
    check(
        unsafe { sys::napi_get_value_string_utf8(raw, value, ptr::null_mut(), 0, &mut len) },
        "napi_get_value_string_utf8",
    )?;
    if len > MAX_SLOT_LEN {
        return Ok(Converted::TooLarge(len));
    }
    // `len <= MAX_SLOT_LEN`, so this cannot overflow.
    let room = len.saturating_add(1);
    let mut bytes = vec![0u8; room];
    let mut written = 0usize;
    // SAFETY: `bytes` has room for `len` bytes plus the NUL Node-API writes.
    check(
        unsafe { sys::napi_get_value_string_utf8(raw, value, bytes.as_mut_ptr().cast(), room, &mut written) },
        "napi_get_value_string_utf8",
    )?;
    bytes.truncate(written);
    // Node-API writes valid UTF-8 (lone surrogates become U+FFFD).
    let text = String::from_utf8(bytes).map_err(|e| error(Code("ERR_SHM_NAPI"), e.to_string()))?;
    Ok(Converted::Item(OwnedItem::Str(text)))
}

/// A copy of a Uint8Array's bytes (Buffer included), or `None` for other objects. A view
/// longer than [`MAX_SLOT_LEN`] (say over a huge sparse segment) is not copied.
fn uint8_array_bytes(raw: sys::napi_env, value: sys::napi_value) -> Result<Option<Converted>, Code> {
    let mut is_typed_array = false;
    // SAFETY: `value` is a live object of this env.
    check(
        unsafe { sys::napi_is_typedarray(raw, value, &mut is_typed_array) },
        "napi_is_typedarray",
    )?;
    if !is_typed_array {
        return Ok(None);
    }
    let (mut kind, mut len, mut data, mut array_buffer, mut offset) =
        (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    // SAFETY: `value` is a typed array; every out-pointer is valid.
    check(
        unsafe {
            sys::napi_get_typedarray_info(
                raw,
                value,
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
    if len > MAX_SLOT_LEN {
        return Ok(Some(Converted::TooLarge(len)));
    }
    if len == 0 || data.is_null() {
        return Ok(Some(Converted::Item(OwnedItem::Bytes(Vec::new()))));
    }
    // SAFETY: Node-API reports `data` valid for `len` bytes; JS cannot run during this copy.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec();
    Ok(Some(Converted::Item(OwnedItem::Bytes(bytes))))
}

/// Converts an item read from a segment into a fresh JS value.
pub fn to_js(raw: sys::napi_env, item: &Item<'_>) -> Result<sys::napi_value, Code> {
    let mut out = ptr::null_mut();
    // SAFETY (all arms): `raw` is the env of the current call and `out` a valid out-pointer;
    // str/bytes pointers are valid for the lengths passed.
    let status = match item {
        Item::Int(v) if (*v as f64).abs() <= MAX_SAFE_INTEGER => unsafe { sys::napi_create_int64(raw, *v, &mut out) },
        Item::Int(v) => unsafe { sys::napi_create_bigint_int64(raw, *v, &mut out) },
        Item::Float(v) => unsafe { sys::napi_create_double(raw, *v, &mut out) },
        Item::Bool(v) => unsafe { sys::napi_get_boolean(raw, *v, &mut out) },
        Item::None => unsafe { sys::napi_get_null(raw, &mut out) },
        // A str read from a list is at most MAX_SLOT_LEN bytes, far below isize::MAX.
        Item::Str(s) => unsafe { sys::napi_create_string_utf8(raw, s.as_ptr().cast(), s.len() as isize, &mut out) },
        Item::Bytes(b) => {
            let mut data = ptr::null_mut();
            unsafe { sys::napi_create_buffer_copy(raw, b.len(), b.as_ptr().cast(), &mut data, &mut out) }
        }
    };
    check(status, "creating a JS value")?;
    Ok(out)
}
