//! External (Shared)ArrayBuffers: JS buffers over memory that Rust keeps alive, with an `Arc`
//! of its owner in the finalize hint (the shape of napi-rs's `from_external`, without its
//! silent copy where a runtime forbids external buffers: that is an error here, since a copy
//! of a shared segment would quietly stop sharing).

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::sync::{Arc, OnceLock};

use napi::bindgen_prelude::*;
use napi::sys;

/// Memory an external buffer may show: atomics, as JS, other threads and other processes
/// write it while Rust holds references to it.
pub trait SharedBytes {
    /// Start and length in bytes.
    fn raw_parts(&self) -> (*mut c_void, usize);
}

impl SharedBytes for [AtomicU8] {
    fn raw_parts(&self) -> (*mut c_void, usize) {
        (self.as_ptr().cast_mut().cast(), self.len())
    }
}

impl SharedBytes for AtomicU32 {
    fn raw_parts(&self) -> (*mut c_void, usize) {
        (self.as_ptr().cast(), size_of::<u32>())
    }
}

/// Which kind of JS object shows the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum External {
    /// A `Buffer` (a Uint8Array with its own ArrayBuffer).
    Buffer,
    /// An `ArrayBuffer`.
    ArrayBuffer,
    /// A `SharedArrayBuffer` (needs [`has_shared_array_buffers`]).
    SharedArrayBuffer,
}

/// Why Node made no buffer: the Node-API status of the refusal. The hint is released in every
/// case, by us or by Node (see [`hint_never_taken`]).
#[derive(Clone, Copy, Debug)]
pub struct Refused(pub sys::napi_status);

/// A new external buffer over the bytes `bytes` picks out of `owner`, which the buffer keeps
/// alive (its `Arc` in the finalize hint) until V8 frees it, on whichever thread that happens.
pub fn external<'env, T, B>(
    env: &'env Env,
    kind: External,
    owner: Arc<T>,
    bytes: impl FnOnce(&T) -> &B,
) -> std::result::Result<Unknown<'env>, Refused>
where
    T: Send + Sync + 'static,
    B: SharedBytes + ?Sized,
{
    let (data, len) = bytes(&owner).raw_parts();
    // SAFETY: `data` is valid for `len` bytes for as long as `owner` lives (the closure
    // borrowed them from it), and the hint keeps `owner` alive until the buffer is freed.
    // The bytes are atomics: JS writing them while Rust holds references is allowed.
    unsafe { create(env, kind, owner, data, len) }
}

/// [`external`] over `len` bytes at `data`.
///
/// # Safety
/// `data` is valid for reads and writes of `len` bytes, through shared (atomic) access, for
/// as long as `hint` lives or until every JS view of the buffer is detached.
pub(super) unsafe fn create<'env, T: Send + Sync + 'static>(
    env: &'env Env,
    kind: External,
    hint: Arc<T>,
    data: *mut c_void,
    len: usize,
) -> std::result::Result<Unknown<'env>, Refused> {
    let raw = env.raw();
    let create_shared = match kind {
        External::SharedArrayBuffer => {
            Some(create_shared_function().ok_or(Refused(sys::Status::napi_generic_failure))?)
        }
        _ => None,
    };
    let hint = Arc::into_raw(hint).cast_mut().cast::<c_void>();
    let mut result = ptr::null_mut();
    let status = match kind {
        // SAFETY: the caller vouches for `data` and `len`; the finalizer drops the leaked Arc
        // exactly once, and only when Node took the hint.
        External::Buffer => unsafe {
            sys::napi_create_external_buffer(raw, len, data, Some(release_hint::<T>), hint, &mut result)
        },
        // SAFETY: as for a Buffer.
        External::ArrayBuffer => unsafe {
            sys::napi_create_external_arraybuffer(raw, data, len, Some(release_hint::<T>), hint, &mut result)
        },
        External::SharedArrayBuffer => match create_shared {
            // SAFETY: as for a Buffer; Node declares the function with this signature.
            Some(create) => unsafe { create(raw, data, len, Some(release_basic_hint::<T>), hint, &mut result) },
            None => sys::Status::napi_generic_failure,
        },
    };
    if status == sys::Status::napi_ok {
        // SAFETY: just produced by this env.
        return Ok(unsafe { Unknown::from_raw_unchecked(raw, result) });
    }
    if hint_never_taken(status) {
        // SAFETY: Node refused before making the finalizer, which will never run: the Arc in
        // `hint` is still ours, and this is its only release.
        drop(unsafe { Arc::from_raw(hint.cast::<T>().cast_const()) });
    }
    // Otherwise Node has run, or will run, the finalizer, which frees `hint`.
    Err(Refused(status))
}

/// Whether a failed external buffer creation left the finalize hint with us.
///
/// Node checks its arguments, a pending exception and (in a V8 sandbox, as in Electron)
/// whether external buffers are allowed before it makes the finalizer; those failures leave
/// the hint ours to free. Every later failure comes from `node::Buffer::New`, which has
/// already called the finalizer (a length above `buffer.constants.MAX_LENGTH`) or arranged for
/// it to run when the half-made ArrayBuffer is collected: then the hint is Node's, and freeing
/// it here too would free it twice (`napi_create_external_buffer` in Node's `node_api.cc`).
fn hint_never_taken(status: sys::napi_status) -> bool {
    matches!(
        status,
        sys::Status::napi_invalid_arg
            | sys::Status::napi_pending_exception
            | sys::Status::napi_no_external_buffers_allowed
    )
}

unsafe extern "C" fn release_hint<T>(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Arc<T>` leaked in `create`; Node calls this once per buffer, and
    // only for buffers whose hint it took (see `hint_never_taken`).
    drop(unsafe { Arc::from_raw(hint.cast::<T>().cast_const()) });
}

unsafe extern "C" fn release_basic_hint<T>(_data: *mut c_void, hint: *mut c_void) {
    // SAFETY: as in `release_hint`; V8 calls this once, when it frees the backing store.
    drop(unsafe { Arc::from_raw(hint.cast::<T>().cast_const()) });
}

type BasicFinalize = unsafe extern "C" fn(data: *mut c_void, hint: *mut c_void);
type CreateExternalSharedArrayBuffer = unsafe extern "C" fn(
    env: sys::napi_env,
    data: *mut c_void,
    byte_length: usize,
    finalize: Option<BasicFinalize>,
    hint: *mut c_void,
    result: *mut sys::napi_value,
) -> sys::napi_status;

/// Whether this Node has `node_api_create_external_sharedarraybuffer`: experimental Node-API
/// (Node 22.23+, 24.16+, 26.1+), looked up in the running process, so one binary loads on
/// every Node.
pub fn has_shared_array_buffers() -> bool {
    create_shared_function().is_some()
}

/// The host's `node_api_create_external_sharedarraybuffer`, if it exports one.
fn create_shared_function() -> Option<CreateExternalSharedArrayBuffer> {
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
