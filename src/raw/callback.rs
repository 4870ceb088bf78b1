//! Methods as plain Node-API callbacks, for the few calls where napi-rs's generated wrapper
//! costs more than the work (see `fast.rs`). The trampoline keeps what matters: the receiver's
//! type tag is checked before it is unwrapped, and no panic crosses into JS.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use super::reference::Reference;
use super::value::{throw, Thrown};
use crate::error::{check, panic_message, panicked, type_error, Code};

/// Arguments a [`Method`] receives; missing ones read as `undefined`.
pub const MAX_ARGS: usize = 2;

/// What a method call passes to [`Method::call`].
pub struct Call<'env, T> {
    /// The env of the call.
    pub env: &'env Env,
    /// The receiver, checked to be a `T`.
    pub this: &'env T,
    /// The arguments.
    pub args: [Unknown<'env>; MAX_ARGS],
    /// The value given to [`define`] for this method, if any.
    pub data: Option<Unknown<'env>>,
}

/// A method's body: from what the call passes to the value it returns.
pub type Body<T> = for<'env> fn(Call<'env, T>) -> Result<Unknown<'env>, Code>;

/// What a function made by [`define`] carries to every call, for as long as the env lives.
struct Defined<T> {
    body: Body<T>,
    data: Option<Reference>,
}

/// Puts `body` on `prototype` as the method `name` of the `#[napi]` class `T`, a plain
/// Node-API function. `data`, if any, is held for as long as the env lives (the function stays
/// on the prototype for good) and reaches every call.
pub fn define<'env, T: TypeTag + TypeName + 'static>(
    env: &'env Env,
    prototype: &Object<'env>,
    name: &str,
    body: Body<T>,
    data: Option<&Unknown<'env>>,
) -> Result<(), Code> {
    let data = data.map(|data| Reference::strong(env, data)).transpose()?;
    let defined = Box::into_raw(Box::new(Defined { body, data }));
    let mut function = ptr::null_mut();
    // SAFETY: `name` is valid for its length; `trampoline` has the callback's signature, and
    // `defined` is leaked for the env's lifetime.
    let status = unsafe {
        sys::napi_create_function(
            env.raw(),
            name.as_ptr().cast(),
            name.len() as isize,
            Some(trampoline::<T>),
            defined.cast(),
            &mut function,
        )
    };
    check(status, "napi_create_function")?;
    let key = super::value::js_string(env, name)?;
    // SAFETY: `prototype` is an object of this env, `key` a string and `function` a function
    // of it.
    let status = unsafe { sys::napi_set_property(env.raw(), prototype.raw(), key.raw(), function) };
    check(status, "napi_set_property")
}

/// Unpacks the call, checks that `this` is a `T`, runs the body, and turns errors and panics
/// into JS exceptions.
unsafe extern "C" fn trampoline<T: TypeTag + TypeName + 'static>(
    raw: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let env = Env::from_raw(raw);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = MAX_ARGS;
        let mut argv = [ptr::null_mut(); MAX_ARGS];
        let mut this = ptr::null_mut();
        let mut defined: *mut c_void = ptr::null_mut();
        // SAFETY: Node calls this with a live env and callback info; every out-pointer is valid
        // and `argv` has room for `argc` values.
        let status = unsafe { sys::napi_get_cb_info(raw, info, &mut argc, argv.as_mut_ptr(), &mut this, &mut defined) };
        check(status, "napi_get_cb_info")?;
        for slot in argv.iter_mut().skip(argc.min(MAX_ARGS)) {
            *slot = super::value::undefined(&env)?.raw();
        }
        // SAFETY: Node-API produced these values for this call.
        let args = argv.map(|value| unsafe { Unknown::from_raw_unchecked(raw, value) });
        // SAFETY: the function's data is the `Defined<T>` that `define` leaked for good.
        let defined = unsafe { &*defined.cast::<Defined<T>>() };
        let data = match &defined.data {
            Some(data) => data.value(&env)?,
            None => None,
        };
        let this = receiver::<T>(&env, this)?;
        (defined.body)(Call {
            env: &env,
            this,
            args,
            data,
        })
        .map(|value| value.raw())
    }));
    let err = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(err)) => err,
        Err(payload) => panicked(panic_message(&*payload)),
    };
    throw(&env, Thrown::Error, err);
    ptr::null_mut()
}

/// The `T` behind `this`, refusing any other object (the type tag is checked before the
/// pointer is used).
fn receiver<'a, T: TypeTag + TypeName + 'static>(env: &Env, this: sys::napi_value) -> Result<&'a T, Code> {
    let class = T::type_name();
    let tag = T::type_tag();
    let mut tagged = false;
    // SAFETY: `this` is the receiver of the current call; `tag` outlives the call.
    let status = unsafe { sys::napi_check_object_type_tag(env.raw(), this, &tag, &mut tagged) };
    if status != sys::Status::napi_ok || !tagged {
        return Err(type_error(
            env,
            format!("a {class} method was called on an object that is not a {class}"),
        ));
    }
    let mut native = ptr::null_mut();
    // SAFETY: the type tag proves that napi-rs wrapped a `T` in `this`.
    check(unsafe { sys::napi_unwrap(env.raw(), this, &mut native) }, "napi_unwrap")?;
    // SAFETY: napi-rs wraps a `*mut T` that lives until the object is collected, which cannot
    // happen during this call (`this` is on the stack). Only shared access is taken, and no JS
    // runs while it is held.
    Ok(unsafe { &*native.cast::<T>() })
}
