//! The ShareableList hot path (`get`, `set`, `toArray`) as plain Node-API callbacks.
//!
//! napi-rs's generated method wrappers cost about 400 ns per call here (borrow tracking with
//! heap allocations, on top of the type-tag check and unwrap); a list `get` is ~100 ns of
//! real work. These callbacks keep the safety checks that matter — the receiver's type tag
//! before it is unwrapped, argument types, bounds, no panic crossing into JS — and call the
//! same `ShareableList` methods.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::error::{check, panic_message, panicked, type_error, Code};
use crate::shareable_list::ShareableList;

/// Installs the callbacks on `ShareableList.prototype`. `collect` is a JS function
/// `(...items) => items`, used to build arrays in one call.
pub fn install(env: &Env, prototype: sys::napi_value, collect: sys::napi_value) -> Result<(), Code> {
    let raw = env.raw();
    let mut collect_ref = ptr::null_mut();
    // SAFETY: `collect` is a live function of this env. The reference lives as long as the env
    // (the toArray function that holds it in `data` is on the prototype for good).
    check(
        unsafe { sys::napi_create_reference(raw, collect, 1, &mut collect_ref) },
        "napi_create_reference",
    )?;
    let methods: [(&str, sys::napi_callback, *mut c_void); 3] = [
        ("get", Some(get), ptr::null_mut()),
        ("set", Some(set), ptr::null_mut()),
        ("toArray", Some(to_array), collect_ref.cast()),
    ];
    for (name, callback, data) in methods {
        let mut function = ptr::null_mut();
        // SAFETY: `name` is valid for its length; `callback` is an extern "C" fn of the right type.
        check(
            unsafe {
                sys::napi_create_function(
                    raw,
                    name.as_ptr().cast(),
                    name.len() as isize,
                    callback,
                    data,
                    &mut function,
                )
            },
            "napi_create_function",
        )?;
        let key = std::ffi::CString::new(name).expect("method names have no NUL");
        // SAFETY: `prototype` is an object of this env; `key` is NUL-terminated.
        check(
            unsafe { sys::napi_set_named_property(raw, prototype, key.as_ptr(), function) },
            "napi_set_named_property",
        )?;
    }
    Ok(())
}

const MAX_ARGS: usize = 2;

/// Unpacks the call, checks that `this` really is a ShareableList, runs `body`, and turns
/// errors (and panics) into JS exceptions.
unsafe fn call(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    body: impl FnOnce(&Env, &ShareableList, [sys::napi_value; MAX_ARGS], *mut c_void) -> Result<sys::napi_value, Code>,
) -> sys::napi_value {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = MAX_ARGS;
        let mut argv = [ptr::null_mut(); MAX_ARGS];
        let mut this = ptr::null_mut();
        let mut data = ptr::null_mut();
        // SAFETY: all out-pointers are valid; `argv` has room for `argc` values.
        check(
            unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), &mut this, &mut data) },
            "napi_get_cb_info",
        )?;
        let env = Env::from_raw(env);
        // Missing arguments read as `undefined`.
        for slot in argv.iter_mut().skip(argc.min(MAX_ARGS)) {
            // SAFETY: valid out-pointer.
            check(
                unsafe { sys::napi_get_undefined(env.raw(), slot) },
                "napi_get_undefined",
            )?;
        }
        // SAFETY: `this` is the receiver of the current call.
        let list = unsafe { receiver(&env, this) }?;
        body(&env, list, argv, data)
    }));
    match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            // SAFETY: `env` is the env of the current call.
            unsafe { JsError::from(err).throw_into(env) };
            ptr::null_mut()
        }
        Err(payload) => {
            let err = panicked(panic_message(&*payload));
            // SAFETY: `env` is the env of the current call.
            unsafe { JsError::from(err).throw_into(env) };
            ptr::null_mut()
        }
    }
}

/// The ShareableList behind `this`, refusing any other object (the type tag is checked
/// before the pointer is used).
unsafe fn receiver<'a>(env: &Env, this: sys::napi_value) -> Result<&'a ShareableList, Code> {
    let tag = <ShareableList as TypeTag>::type_tag();
    let mut tagged = false;
    // SAFETY: `this` is a value of this env; `tag` outlives the call.
    let status = unsafe { sys::napi_check_object_type_tag(env.raw(), this, &tag, &mut tagged) };
    if status != sys::Status::napi_ok || !tagged {
        return Err(type_error(
            env,
            "a ShareableList method was called on an object that is not a ShareableList",
        ));
    }
    let mut native = ptr::null_mut();
    // SAFETY: the type tag proves napi-rs wrapped a ShareableList in `this`.
    check(unsafe { sys::napi_unwrap(env.raw(), this, &mut native) }, "napi_unwrap")?;
    // SAFETY: napi-rs wraps a `*mut ShareableList` that lives until the object is collected,
    // which cannot happen during this call (`this` is on the stack). Only shared access is
    // taken, and no JS runs while it is held.
    Ok(unsafe { &*native.cast::<ShareableList>() })
}

unsafe extern "C" fn get(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with a live env and callback info.
    unsafe { call(env, info, |env, list, [index, _], _| list.get_raw(env, index)) }
}

unsafe extern "C" fn set(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with a live env and callback info.
    unsafe {
        call(env, info, |env, list, [index, value], _| {
            list.set_raw(env, index, value)?;
            let mut undefined = ptr::null_mut();
            check(sys::napi_get_undefined(env.raw(), &mut undefined), "napi_get_undefined")?;
            Ok(undefined)
        })
    }
}

/// Arguments per call of `collect`; larger lists are built in chunks and concatenated.
const CHUNK: usize = 8192;

thread_local! {
    /// Scratch space for the decoded values, reused across calls on this thread.
    static VALUES: RefCell<Vec<sys::napi_value>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "C" fn to_array(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with a live env and callback info.
    unsafe {
        call(env, info, |env, list, _, data| {
            let raw = env.raw();
            let mut collect = ptr::null_mut();
            check(
                sys::napi_get_reference_value(raw, data.cast(), &mut collect),
                "napi_get_reference_value",
            )?;
            let mut undefined = ptr::null_mut();
            check(sys::napi_get_undefined(raw, &mut undefined), "napi_get_undefined")?;
            VALUES.with(|values| {
                let mut values = values.borrow_mut();
                list.values_raw(env, &mut values)?;
                let mut result = ptr::null_mut();
                for (n, chunk) in values.chunks(CHUNK).enumerate() {
                    let mut part = ptr::null_mut();
                    check(
                        sys::napi_call_function(raw, undefined, collect, chunk.len(), chunk.as_ptr(), &mut part),
                        "collect",
                    )?;
                    if n == 0 {
                        result = part;
                    } else {
                        append(raw, result, part)?;
                    }
                }
                if result.is_null() {
                    check(sys::napi_create_array(raw, &mut result), "napi_create_array")?;
                }
                values.clear();
                Ok(result)
            })
        })
    }
}

/// `target.push(...part)` for the rare list larger than one chunk.
unsafe fn append(raw: sys::napi_env, target: sys::napi_value, part: sys::napi_value) -> Result<(), Code> {
    let (mut start, mut len) = (0u32, 0u32);
    // SAFETY: both are arrays made in this env.
    unsafe {
        check(
            sys::napi_get_array_length(raw, target, &mut start),
            "napi_get_array_length",
        )?;
        check(sys::napi_get_array_length(raw, part, &mut len), "napi_get_array_length")?;
        for i in 0..len {
            let mut element = ptr::null_mut();
            check(sys::napi_get_element(raw, part, i, &mut element), "napi_get_element")?;
            check(
                sys::napi_set_element(raw, target, start + i, element),
                "napi_set_element",
            )?;
        }
    }
    Ok(())
}
