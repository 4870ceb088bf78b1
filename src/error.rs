//! The one place where errors become JS errors with a stable `code`.

use napi::bindgen_prelude::*;

/// A JS error code (`err.code`): a POSIX errno name or one of the `ERR_SHM_*` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

pub const CLOSED: Code = Code("ERR_SHM_CLOSED");
pub const INVALID_NAME: Code = Code("ERR_SHM_INVALID_NAME");
pub const INVALID_SIZE: Code = Code("ERR_SHM_INVALID_SIZE");
pub const NO_EXTERNAL_BUFFERS: Code = Code("ERR_SHM_NO_EXTERNAL_BUFFERS");
pub const INVALID_ARG_TYPE: Code = Code("ERR_INVALID_ARG_TYPE");
pub const INVALID_ARG_VALUE: Code = Code("ERR_INVALID_ARG_VALUE");
pub const PANIC: Code = Code("ERR_SHM_PANIC");
/// napi-rs skips re-throwing an error with this status when one is already pending, which
/// is how a RangeError thrown by hand travels out of a `#[napi]` function.
pub const PENDING: Code = Code("PendingException");

pub fn error(code: Code, message: impl Into<String>) -> Error<Code> {
    Error::new(code, message.into())
}

pub fn from_core(err: shmkit_core::Error) -> Error<Code> {
    Error::new(Code(err.code()), err.to_string())
}

/// Throws a `RangeError` with `code` and returns the error that tells napi-rs it is pending.
pub fn range_error(env: &Env, code: Code, message: impl Into<String>) -> Error<Code> {
    let raw = env.raw();
    // SAFETY: `raw` is the live env of the current call.
    unsafe { JsRangeError::from(Error::new(code, message.into())).throw_into(raw) };
    Error::new(PENDING, String::new())
}

/// Throws a `TypeError` with code `ERR_INVALID_ARG_TYPE`, as Node's own argument checks do,
/// and returns the error that tells napi-rs it is pending.
pub fn type_error(env: &Env, message: impl Into<String>) -> Error<Code> {
    let raw = env.raw();
    // SAFETY: `raw` is the live env of the current call.
    unsafe { JsTypeError::from(Error::new(INVALID_ARG_TYPE, message.into())).throw_into(raw) };
    Error::new(PENDING, String::new())
}

/// The error a caught panic becomes. No panic is reachable by design; this is the last line
/// that keeps a bug from aborting the user's process at the `extern "C"` boundary.
pub fn panicked(message: &str) -> Error<Code> {
    error(PANIC, format!("internal error in shmkit (please report it): {message}"))
}

/// The text a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// Runs the body of a Node-API entry point, turning a panic into `ERR_SHM_PANIC`. (napi-rs's
/// own `catch_unwind` option, set on every export as well, guards its argument and return
/// conversions, but it reports panics as `GenericFailure`.)
pub fn guard<T>(body: impl FnOnce() -> Result<T, Code>) -> Result<T, Code> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or_else(|payload| Err(panicked(panic_message(&*payload))))
}

/// Maps a failed raw Node-API call to an error (the raw status number is in the message).
pub fn check(status: napi::sys::napi_status, what: &str) -> Result<(), Code> {
    if status == napi::sys::Status::napi_ok {
        Ok(())
    } else {
        Err(error(
            Code("ERR_SHM_NAPI"),
            format!("{what} failed with Node-API status {status}"),
        ))
    }
}

/// Maps the status of a call that made an external (Shared)ArrayBuffer: Electron's V8 memory
/// cage refuses them, and shmkit will not fall back to a copy that silently stops sharing.
pub fn check_external(status: napi::sys::napi_status, what: &str) -> Result<(), Code> {
    if status == napi::sys::Status::napi_no_external_buffers_allowed {
        return Err(error(
            NO_EXTERNAL_BUFFERS,
            "this runtime forbids external buffers (e.g. Electron's V8 memory cage); shmkit will not copy a shared segment",
        ));
    }
    check(status, what)
}

/// An optional options argument: `undefined`/`null` is `None`, an object is converted, and
/// anything else is `ERR_INVALID_ARG_TYPE` (napi-rs alone would accept a string as `{}`).
pub fn options<T: FromNapiValue>(env: &Env, value: Option<Unknown>, what: &str) -> Result<Option<T>, Code> {
    let Some(value) = value else { return Ok(None) };
    let kind = value
        .get_type()
        .map_err(|e| error(INVALID_ARG_TYPE, e.reason.clone()))?;
    match kind {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Object => {
            // SAFETY: `value` is a live object of the current call's env.
            unsafe { T::from_napi_value(env.raw(), value.raw()) }
                .map(Some)
                .map_err(|e| {
                    type_error(
                        env,
                        format!("The \"{what}\" argument has a property of the wrong type: {}", e.reason),
                    )
                })
        }
        _ => Err(crate::args::wrong_type(env, what, "an object", &value)),
    }
}
