//! The one place where errors become JS errors with a stable `code`: the table from the core's
//! errors to JS codes and messages ([`from_core`]), and every code the binding throws itself.

use napi::bindgen_prelude::*;

use crate::raw::{self, Thrown};

/// A JS error code (`err.code`): a POSIX errno name or one of the `ERR_SHM_*` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

pub const CLOSED: Code = Code("ERR_SHM_CLOSED");
pub const CORRUPT: Code = Code("ERR_SHM_CORRUPT");
pub const VALUE_TOO_LARGE: Code = Code("ERR_SHM_VALUE_TOO_LARGE");
pub const VALUE_NOT_FOUND: Code = Code("ERR_SHM_VALUE_NOT_FOUND");
pub const UNSUPPORTED_TYPE: Code = Code("ERR_SHM_UNSUPPORTED_TYPE");
pub const TOO_MANY_MAPPINGS: Code = Code("ERR_SHM_TOO_MANY_MAPPINGS");
pub const NO_SHARED_ARRAY_BUFFER: Code = Code("ERR_SHM_NO_SHARED_ARRAY_BUFFER");
pub const INTERNAL: Code = Code("ERR_SHM_INTERNAL");
pub const NO_MEMORY: Code = Code("ENOMEM");
pub const NO_THREAD: Code = Code("EAGAIN");
pub const INVALID_NAME: Code = Code("ERR_SHM_INVALID_NAME");
pub const INVALID_SIZE: Code = Code("ERR_SHM_INVALID_SIZE");
pub const NO_EXTERNAL_BUFFERS: Code = Code("ERR_SHM_NO_EXTERNAL_BUFFERS");
pub const INVALID_ARG_TYPE: Code = Code("ERR_INVALID_ARG_TYPE");
pub const INVALID_ARG_VALUE: Code = Code("ERR_INVALID_ARG_VALUE");
pub const PANIC: Code = Code("ERR_SHM_PANIC");
pub const OUT_OF_RANGE: Code = Code("ERR_OUT_OF_RANGE");
pub const NAPI: Code = Code("ERR_SHM_NAPI");
pub const BUFFER_TOO_LARGE: Code = Code("ERR_SHM_BUFFER_TOO_LARGE");
pub const QUEUE_FULL: Code = Code("ERR_SHM_QUEUE_FULL");
pub const QUEUE_EMPTY: Code = Code("ERR_SHM_QUEUE_EMPTY");
pub const QUEUE_ENDED: Code = Code("ERR_SHM_QUEUE_ENDED");
pub const SLOT_FINISHED: Code = Code("ERR_SHM_SLOT_FINISHED");
/// napi-rs skips re-throwing an error with this status when one is already pending, which
/// is how a RangeError thrown by hand travels out of a `#[napi]` function.
pub const PENDING: Code = Code("PendingException");

pub fn error(code: Code, message: impl Into<String>) -> Error<Code> {
    Error::new(code, message.into())
}

/// The table: a core error as the JS error users see (`err.code` and `err.message`).
pub fn from_core(err: shmkit_core::Error) -> Error<Code> {
    use shmkit_core::Error as Core;
    let code = match &err {
        Core::Os { .. } | Core::AlreadyHeld | Core::NotHeld => Code(err.errno_name().unwrap_or("EIO")),
        Core::InvalidName(_) => INVALID_NAME,
        Core::InvalidSize(_) => INVALID_SIZE,
        Core::InvalidArgument(_) => INVALID_ARG_VALUE,
        Core::Closed(what) => return closed(what),
        Core::Corrupt(_) | Core::Busy | Core::QueueCorrupt(_) => CORRUPT,
        Core::IndexOutOfRange { .. } | Core::OutOfRange(_) => OUT_OF_RANGE,
        Core::ValueTooLarge { .. } | Core::MessageTooLarge { .. } => VALUE_TOO_LARGE,
        Core::QueueFull => QUEUE_FULL,
        Core::QueueEmpty => QUEUE_EMPTY,
        Core::QueueEnded => QUEUE_ENDED,
        Core::SlotFinished(_) => SLOT_FINISHED,
        Core::TooManyMappings { .. } => return error(TOO_MANY_MAPPINGS, format!("{}: {err}", TOO_MANY_MAPPINGS.0)),
    };
    error(code, err.to_string())
}

/// [`from_core`] for an error met in the list in segment `name`, which the message names.
pub fn from_core_in(name: &str, err: shmkit_core::Error) -> Error<Code> {
    let err = from_core(err);
    let message = format!("segment '{name}': {}", err.reason);
    error(err.status, message)
}

/// `ERR_SHM_CLOSED` for what was closed, named as JS knows it.
pub fn closed(what: &shmkit_core::Closed) -> Error<Code> {
    use shmkit_core::Closed;
    let message = match what {
        Closed::Segment(name) => format!("SharedMemory '{name}' is closed"),
        Closed::Lock(offset) => format!("ShmLock at byte {offset} is closed"),
        Closed::Manager => "the SharedMemoryManager has been shut down".to_owned(),
    };
    error(CLOSED, message)
}

/// Throws a `RangeError` with `code` and returns the error that tells napi-rs it is pending.
pub fn range_error(env: &Env, code: Code, message: impl Into<String>) -> Error<Code> {
    raw::throw(env, Thrown::RangeError, Error::new(code, message.into()));
    Error::new(PENDING, String::new())
}

/// Throws a `TypeError` with code `ERR_INVALID_ARG_TYPE`, as Node's own argument checks do,
/// and returns the error that tells napi-rs it is pending.
pub fn type_error(env: &Env, message: impl Into<String>) -> Error<Code> {
    raw::throw(env, Thrown::TypeError, Error::new(INVALID_ARG_TYPE, message.into()));
    Error::new(PENDING, String::new())
}

/// A Node-API call that should not fail did (`ERR_SHM_NAPI`).
pub fn napi_failure(message: impl Into<String>) -> Error<Code> {
    error(NAPI, message)
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
        Err(napi_failure(format!("{what} failed with Node-API status {status}")))
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
            let object = raw::object(&value).ok_or_else(|| napi_failure("an object is not an object"))?;
            raw::from_object(env, &object).map(Some).map_err(|e| {
                type_error(
                    env,
                    format!("The \"{what}\" argument has a property of the wrong type: {}", e.reason),
                )
            })
        }
        _ => Err(crate::args::wrong_type(env, what, "an object", &value)),
    }
}

/// The error for an external buffer Node would not make. Node may have thrown already (a
/// length over `buffer.constants.MAX_LENGTH` is its `ERR_BUFFER_TOO_LARGE`); that exception is
/// cleared and replaced by one of ours, which says what to use instead.
pub fn refusal(env: &Env, refused: raw::Refused, what: &str, len: usize) -> Error<Code> {
    let thrown = raw::take_exception_code(env);
    if thrown.as_deref() == Some("ERR_BUFFER_TOO_LARGE") {
        return error(
            BUFFER_TOO_LARGE,
            format!(
                "a view of {len} bytes exceeds the largest Buffer this Node.js can make (buffer.constants.MAX_LENGTH); \
                 use shm.window(byteOffset, byteLength) for views of at most that size, or shm.sharedBuffer (Node 22.23+)"
            ),
        );
    }
    match check_external(refused.0, what) {
        Err(err) => err,
        Ok(()) => napi_failure(format!("{what} failed")),
    }
}

/// A view that could not be made, as the error JS sees.
pub fn from_view(env: &Env, err: raw::ViewError) -> Error<Code> {
    match err {
        raw::ViewError::Failed(err) => err,
        raw::ViewError::Refused(refused, len) => refusal(env, refused, "napi_create_external_buffer", len),
    }
}
