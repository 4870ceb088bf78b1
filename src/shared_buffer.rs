//! `SharedMemory.sharedBuffer`: a SharedArrayBuffer over the mapping, made with
//! `node_api_create_external_sharedarraybuffer`. That function is experimental Node-API
//! (Node 22.23+, 24.16+, 26.1+), so it is looked up in the running process at run time: one
//! binary then loads on every Node and reports `ERR_SHM_NO_SHARED_ARRAY_BUFFER` where it is
//! absent.
//!
//! A SharedArrayBuffer cannot be detached, so its backing store holds the mapping (an
//! `Arc<Segment>` in the finalize hint) until V8 frees it, in whichever thread that happens:
//! `close()` with one alive defers the unmap, never unmaps under it.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::sys;
use shmkit_core::Segment;

use crate::error::{check, error, Code};

const NO_SHARED_ARRAY_BUFFER: Code = Code("ERR_SHM_NO_SHARED_ARRAY_BUFFER");
const SYMBOL: &str = "node_api_create_external_sharedarraybuffer";

type Finalize = unsafe extern "C" fn(data: *mut c_void, hint: *mut c_void);
type CreateExternalSharedArrayBuffer = unsafe extern "C" fn(
    env: sys::napi_env,
    data: *mut c_void,
    byte_length: usize,
    finalize: Option<Finalize>,
    hint: *mut c_void,
    result: *mut sys::napi_value,
) -> sys::napi_status;

/// The host's `node_api_create_external_sharedarraybuffer`, if it exports one.
fn create_function() -> Option<CreateExternalSharedArrayBuffer> {
    static FOUND: OnceLock<Option<CreateExternalSharedArrayBuffer>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let address = host_symbol(c"node_api_create_external_sharedarraybuffer")?;
        // SAFETY: Node declares the symbol with exactly this signature (js_native_api.h,
        // NAPI_EXPERIMENTAL, the same in 22.23, 24.21 and 26.10).
        Some(unsafe { std::mem::transmute::<*mut c_void, CreateExternalSharedArrayBuffer>(address) })
    })
}

/// `dlsym(RTLD_DEFAULT, name)`: Node exports its Node-API functions from the executable.
#[cfg(unix)]
fn host_symbol(name: &std::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the images already loaded.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!found.is_null()).then_some(found)
}

/// `GetProcAddress(GetModuleHandleW(NULL), name)`: node.exe exports its Node-API functions.
#[cfg(windows)]
fn host_symbol(name: &std::ffi::CStr) -> Option<*mut c_void> {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    // SAFETY: a null name asks for the executable's module handle, which needs no release.
    let module = unsafe { GetModuleHandleW(ptr::null()) };
    if module.is_null() {
        return None;
    }
    // SAFETY: `module` is the live executable; `name` is NUL-terminated.
    let found = unsafe { GetProcAddress(module, name.as_ptr().cast()) }?;
    Some(found as *mut c_void)
}

/// A new SharedArrayBuffer over the whole mapping, holding it until V8 frees the buffer.
pub fn create(env: &Env, segment: &Arc<Segment>) -> Result<sys::napi_value, Code> {
    let Some(create) = create_function() else {
        return Err(error(
            NO_SHARED_ARRAY_BUFFER,
            format!(
                "this Node.js ({}) has no {SYMBOL} (experimental Node-API in 22.23+, 24.16+, 26.1+); use shm.buffer, which Atomics also accept (except wait)",
                node_version(env)
            ),
        ));
    };
    let hint = Box::into_raw(Box::new(Arc::clone(segment)));
    let mut result = ptr::null_mut();
    // SAFETY: the data pointer is valid for `len` bytes for as long as the Arc in `hint` lives,
    // and `release_segment` drops that Arc exactly once, when V8 frees the backing store.
    let status = unsafe {
        create(
            env.raw(),
            segment.as_ptr().cast(),
            segment.len(),
            Some(release_segment),
            hint.cast(),
            &mut result,
        )
    };
    if status != sys::Status::napi_ok {
        if crate::view::hint_never_taken(status) {
            // SAFETY: Node refused before making the backing store, so the finalizer will
            // never run: `hint` is still ours, and this is its only release.
            drop(unsafe { Box::from_raw(hint) });
        }
        // Otherwise V8's backing store owns `hint` and its deleter frees it exactly once.
        return Err(crate::view::refusal(env, status, SYMBOL, segment.len()));
    }
    Ok(result)
}

fn node_version(env: &Env) -> String {
    env.get_node_version()
        .map(|v| format!("v{}.{}.{}", v.major, v.minor, v.patch))
        .unwrap_or_else(|_| "unknown version".to_owned())
}

unsafe extern "C" fn release_segment(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Arc<Segment>>` leaked in `create`; V8 calls this once.
    drop(unsafe { Box::from_raw(hint.cast::<Arc<Segment>>()) });
}

/// A strong reference to the SharedArrayBuffer a `SharedMemory` handed out, so every access
/// of `sharedBuffer` gives the same object; released on `close()` and at finalization.
pub struct SharedBufferRef(sys::napi_ref);

impl SharedBufferRef {
    pub fn new(env: &Env, value: sys::napi_value) -> Result<Self, Code> {
        let mut reference = ptr::null_mut();
        // SAFETY: `value` is a live value of this env.
        check(
            unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(SharedBufferRef(reference))
    }

    pub fn get(&self, env: &Env) -> Result<sys::napi_value, Code> {
        let mut value = ptr::null_mut();
        // SAFETY: a strong reference made in this env.
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), self.0, &mut value) },
            "napi_get_reference_value",
        )?;
        Ok(value)
    }

    /// Drops the reference: the buffer lives on while JS holds it, and the mapping with it.
    pub fn release(self, env: &Env) {
        // SAFETY: made in this env and deleted only here (`self` is consumed).
        unsafe { sys::napi_delete_reference(env.raw(), self.0) };
    }
}
