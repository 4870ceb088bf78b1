//! Arguments taken from JS by name. A wrong type is a `TypeError` with code
//! `ERR_INVALID_ARG_TYPE` that names the argument and what was expected, as Node's own APIs
//! answer (`The "size" argument must be of type number. Received type string ('64')`).

use napi::bindgen_prelude::*;

use crate::error::{type_error, Code};
use crate::raw;

/// `Number.MAX_SAFE_INTEGER`: above it, JS numbers no longer hold every integer.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A number argument (any number; range checks are the caller's).
pub fn number(env: &Env, value: Unknown, name: &str) -> Result<f64, Code> {
    raw::number(&value).ok_or_else(|| wrong_type(env, name, "of type number", &value))
}

/// A number argument that may be left out: `undefined` and `null` are `None`.
pub fn optional_number(env: &Env, value: Option<Unknown>, name: &str) -> Result<Option<f64>, Code> {
    match value {
        Some(value) if !is_nullish(&value) => number(env, value, name).map(Some),
        _ => Ok(None),
    }
}

/// A string argument.
pub fn string(env: &Env, value: Unknown, name: &str) -> Result<String, Code> {
    raw::text(&value).ok_or_else(|| wrong_type(env, name, "of type string", &value))
}

/// Whether an optional argument was left out (`undefined` or `null`).
pub fn is_nullish(value: &Unknown) -> bool {
    matches!(kind(value), ValueType::Undefined | ValueType::Null)
}

/// Throws the `ERR_INVALID_ARG_TYPE` TypeError for argument `name`, which must be `expected`
/// (`"of type number"`, `"an instance of SharedMemory"`).
pub fn wrong_type(env: &Env, name: &str, expected: &str, value: &Unknown) -> Error<Code> {
    type_error(
        env,
        format!(
            "The \"{name}\" argument must be {expected}. Received {}",
            received(value)
        ),
    )
}

fn kind(value: &Unknown) -> ValueType {
    value.get_type().unwrap_or(ValueType::Unknown)
}

/// What was passed, in the words of Node's own messages.
fn received(value: &Unknown) -> String {
    match kind(value) {
        ValueType::Undefined => "undefined".into(),
        ValueType::Null => "null".into(),
        ValueType::String => match raw::text(value) {
            Some(s) if s.chars().count() <= 25 => format!("type string ('{s}')"),
            Some(s) => format!("type string ('{}...')", s.chars().take(25).collect::<String>()),
            None => "type string".into(),
        },
        ValueType::Number => match raw::number(value) {
            Some(n) => format!("type number ({n})"),
            None => "type number".into(),
        },
        ValueType::Boolean => "type boolean".into(),
        ValueType::BigInt => "type bigint".into(),
        ValueType::Symbol => "type symbol".into(),
        ValueType::Function => "a function".into(),
        ValueType::Object => "an object".into(),
        _ => "a value of another type".into(),
    }
}

/// An instance of the `#[napi]` class `T` (napi-rs checks its type tag before the cast).
pub fn instance<'env, T: 'env + MaybeTypeTag>(
    env: &Env,
    value: Unknown<'env>,
    name: &str,
    class: &str,
) -> Result<ClassInstance<'env, T>, Code> {
    raw::instance::<T>(env, &value).map_err(|_| wrong_type(env, name, &format!("an instance of {class}"), &value))
}
