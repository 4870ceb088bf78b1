#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]
//! Node binding of shmkit-core: JS <-> core conversions only.

use napi::bindgen_prelude::*;
use napi_derive::napi;

mod error;
mod fast;
mod held;
mod item;
mod lock;
mod manager;
mod shareable_list;
mod shared_buffer;
mod shared_memory;
mod sync;
mod view;

pub use lock::ShmLock;
pub use manager::SharedMemoryManager;
pub use shareable_list::ShareableList;
pub use shared_memory::SharedMemory;

/// Adds what napi-rs cannot declare in Rust (Symbol.dispose, util.inspect.custom) to the
/// exported classes of each environment that loads the addon.
#[napi(module_exports)]
pub fn install_js_manners(exports: Object, env: Env) -> Result<()> {
    env.add_env_cleanup_hook((), |()| {
        sync::retire_pending();
        manager::shut_down_live_managers()
    })?;
    let install: Function<Object, Unknown> = env.run_script(include_str!("manners.js"))?;
    let hooks: Object = install.call(exports)?.coerce_to_object()?;
    let prototype: Object = hooks.get_named_property("listPrototype")?;
    let collect: Unknown = hooks.get_named_property("collect")?;
    fast::install(&env, prototype.raw(), collect.raw())
        .map_err(|e| Error::new(Status::GenericFailure, e.reason.clone()))
}

/// The pid of this process's cleanup helper while one runs (it unlinks tracked segments if
/// this process dies); `null` when nothing is tracked or on Windows. For diagnostics and tests.
#[napi]
pub fn tracker_pid() -> Option<u32> {
    shmkit_core::tracker::helper_pid()
}
