//! JS values <-> ShareableList items. Numbers: a safe integer is int64 (`q`), any other
//! number float64 (`d`, -0 included); bigint is int64 (RangeError outside it); null is None;
//! Uint8Array/Buffer is bytes (read back as a Buffer copy).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use napi::bindgen_prelude::*;
use shmkit_core::list::{Item, MAX_SLOT_LEN};

use crate::args::MAX_SAFE_INTEGER;
use crate::error::{error, range_error, Code, OUT_OF_RANGE, UNSUPPORTED_TYPE};
use crate::raw::{self, Bounded};

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
pub fn from_js(env: &Env, value: &Unknown<'_>) -> Result<OwnedItem, Code> {
    match from_js_bounded(env, value)? {
        Converted::Item(item) => Ok(item),
        Converted::TooLarge(needed) => Err(crate::error::from_core(shmkit_core::Error::ValueTooLarge {
            needed,
            allocated: MAX_SLOT_LEN,
        })),
    }
}

/// As [`from_js`], but a str/bytes longer than [`MAX_SLOT_LEN`] comes back as its length.
pub fn from_js_bounded(env: &Env, value: &Unknown<'_>) -> Result<Converted, Code> {
    let kind = value
        .get_type()
        .map_err(|e| crate::error::napi_failure(e.reason.clone()))?;
    let item = match kind {
        ValueType::Number => {
            let v = raw::number(value).ok_or_else(|| crate::error::napi_failure("a number is not a number"))?;
            let safe_integer = v.fract() == 0.0 && v.abs() <= MAX_SAFE_INTEGER && !(v == 0.0 && v.is_sign_negative());
            if safe_integer {
                OwnedItem::Int(v as i64)
            } else {
                OwnedItem::Float(v)
            }
        }
        ValueType::BigInt => match raw::bigint_i64(value)? {
            (v, true) => OwnedItem::Int(v),
            (_, false) => {
                return Err(range_error(
                    env,
                    OUT_OF_RANGE,
                    "bigint is outside int64 (-2^63 .. 2^63-1)",
                ))
            }
        },
        ValueType::Boolean => OwnedItem::Bool(raw::boolean(value)?),
        ValueType::Null => OwnedItem::None,
        ValueType::String => match raw::string(value, MAX_SLOT_LEN)? {
            Bounded::Within(text) => OwnedItem::Str(text),
            Bounded::Over(len) => return Ok(Converted::TooLarge(len)),
        },
        ValueType::Object => match raw::uint8_array(value, MAX_SLOT_LEN)? {
            Some(Bounded::Within(bytes)) => OwnedItem::Bytes(bytes),
            Some(Bounded::Over(len)) => return Ok(Converted::TooLarge(len)),
            None => return Err(unsupported("an object that is not a Uint8Array or Buffer")),
        },
        ValueType::Undefined => return Err(unsupported("undefined (use null for None)")),
        ValueType::Symbol => return Err(unsupported("a symbol")),
        ValueType::Function => return Err(unsupported("a function")),
        _ => return Err(unsupported("this value")),
    };
    Ok(Converted::Item(item))
}

fn unsupported(what: &str) -> Error<Code> {
    error(
        UNSUPPORTED_TYPE,
        format!("a ShareableList cannot hold {what}: items are number, bigint, boolean, null, string or Uint8Array"),
    )
}

/// Converts an item read from a segment into a fresh JS value.
pub fn to_js<'env>(env: &'env Env, item: &Item<'_>) -> Result<Unknown<'env>, Code> {
    match item {
        Item::Int(v) if (*v as f64).abs() <= MAX_SAFE_INTEGER => raw::int64(env, *v),
        Item::Int(v) => raw::bigint(env, *v),
        Item::Float(v) => raw::double(env, *v),
        Item::Bool(v) => raw::js_boolean(env, *v),
        Item::None => raw::null(env),
        Item::Str(s) => raw::js_string(env, s),
        Item::Bytes(b) => raw::buffer_copy(env, b),
    }
}
