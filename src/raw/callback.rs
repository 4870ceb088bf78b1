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

/// A method of the `#[napi]` class `T` installed by [`define`].
pub trait Method<T> {
    /// The property name on the prototype.
    const NAME: &'static str;
    /// The class name, for the error a call on another object gets.
    const CLASS: &'static str;
    /// The method's body.
    fn call<'env>(call: Call<'env, T>) -> Result<Unknown<'env>, Code>;
}

/// Puts method `M` on `prototype` as a plain Node-API function. `data`, if any, is held for as
/// long as the env lives (the function stays on the prototype for good) and reaches every call.
pub fn define<'env, T: TypeTag + 'static, M: Method<T>>(
    env: &'env Env,
    prototype: &Object<'env>,
    data: Option<&Unknown<'env>>,
) -> Result<(), Code> {
    let data: *mut c_void = match data {
        Some(data) => Box::into_raw(Box::new(Reference::strong(env, data)?)).cast(),
        None => ptr::null_mut(),
    };
    let name = M::NAME;
    let mut function = ptr::null_mut();
    check(
        // SAFETY: `name` is valid for its length; `trampoline` has the callback's signature; `data`
        // is null or a `Reference` leaked for the env's lifetime.
        unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(trampoline::<T, M>),
                data,
                &mut function,
            )
        },
        "napi_create_function",
    )?;
    let key = super::value::js_string(env, name)?;
    check(
        // SAFETY: `prototype` is an object of this env, `key` a string and `function` a function
        // of it.
        unsafe { sys::napi_set_property(env.raw(), prototype.raw(), key.raw(), function) },
        "napi_set_property",
    )
}

/// Unpacks the call, checks that `this` is a `T`, runs `M`, and turns errors and panics into
/// JS exceptions.
unsafe extern "C" fn trampoline<T: TypeTag + 'static, M: Method<T>>(
    raw: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let env = Env::from_raw(raw);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = MAX_ARGS;
        let mut argv = [ptr::null_mut(); MAX_ARGS];
        let mut this = ptr::null_mut();
        let mut data: *mut c_void = ptr::null_mut();
        check(
            // SAFETY: Node calls this with a live env and callback info; every out-pointer is valid
            // and `argv` has room for `argc` values.
            unsafe { sys::napi_get_cb_info(raw, info, &mut argc, argv.as_mut_ptr(), &mut this, &mut data) },
            "napi_get_cb_info",
        )?;
        for slot in argv.iter_mut().skip(argc.min(MAX_ARGS)) {
            *slot = super::value::undefined(&env)?.raw();
        }
        // SAFETY: Node-API produced these values for this call.
        let args = argv.map(|value| unsafe { Unknown::from_raw_unchecked(raw, value) });
        let data = match data.is_null() {
            true => None,
            // SAFETY: a non-null `data` is the `Reference` that `define` leaked for good.
            false => unsafe { &*data.cast::<Reference>() }.value(&env)?,
        };
        let this = receiver::<T>(&env, this, M::CLASS)?;
        M::call(Call {
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
fn receiver<'a, T: TypeTag + 'static>(env: &Env, this: sys::napi_value, class: &str) -> Result<&'a T, Code> {
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
