#![deny(clippy::all)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Everywhere, as in the core's list code: no call may panic (a panic is caught, but it is a bug).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(clippy::arithmetic_side_effects)]
//! Node binding of shmkit-core: JS <-> core conversions only.

use napi::bindgen_prelude::*;
use napi_derive::napi;

mod args;
mod error;
mod fast;
mod item;
mod lock;
mod manager;
mod queue;
#[allow(unsafe_code)] // the one module that calls Node-API directly
mod raw;
mod shareable_list;
mod shared_buffer;
mod shared_memory;
mod sync;

pub use lock::ShmLock;
pub use manager::SharedMemoryManager;
pub use queue::SharedQueue;
pub use shareable_list::ShareableList;
pub use shared_memory::SharedMemory;

/// Adds what napi-rs cannot declare in Rust (Symbol.dispose, util.inspect.custom) to the
/// exported classes of each environment that loads the addon.
#[napi(module_exports, catch_unwind)]
pub fn install_js_manners(exports: Object, env: Env) -> Result<()> {
    env.add_env_cleanup_hook((), |()| {
        sync::retire_pending();
        manager::shut_down_live_managers()
    })?;
    let install: Function<Object, Unknown> = env.run_script(include_str!("manners.js"))?;
    let hooks: Object = install.call(exports)?.coerce_to_object()?;
    let prototype: Object = hooks.get_named_property("listPrototype")?;
    let collect: Unknown = hooks.get_named_property("collect")?;
    fast::install(&env, &prototype, &collect).map_err(|e| Error::new(Status::GenericFailure, e.reason.clone()))?;
    // Over the native get/set/toArray just installed: they stay its fallback.
    let install_list_fast_path: Function<Object, Unknown> = env.run_script(include_str!("list_fast.js"))?;
    install_list_fast_path.call(exports)?;
    // Over the queue's put/get from manners.js, which stay its fallback.
    let queue: Object = hooks.get_named_property("queue")?;
    let install_queue_fast_path: Function<Object, Unknown> = env.run_script(include_str!("queue_fast.js"))?;
    install_queue_fast_path.call(queue)?;
    Ok(())
}

/// The pid of this process's cleanup helper while one runs (it unlinks tracked segments if
/// this process dies); `null` when nothing is tracked or on Windows. For diagnostics and tests.
#[napi(catch_unwind)]
pub fn tracker_pid() -> Option<u32> {
    shmkit_core::tracker::helper_pid()
}

/// Test hook (not part of the API): whether async waits sleep in the OS on their words, so that
/// a notify that leaves a word unchanged still wakes them (`false` where they poll: see the
/// README's "Async waits share a few threads").
#[napi(skip_typescript, js_name = "_asyncWaitsSleepInOs", catch_unwind)]
pub fn async_waits_sleep_in_os() -> bool {
    shmkit_core::waiter::sleeps_in_os()
}

/// Test hook for the panic guard (not part of the API): with `SHMKIT_TEST_HOOKS=1` in the
/// environment it panics inside a guarded entry point (`"sync"`) or inside an async waiter's
/// thread (`"async"`, returns a promise), so the suite can check that a bug in shmkit becomes
/// an `ERR_SHM_PANIC` error instead of aborting the process. Without the variable it only throws.
#[napi(skip_typescript, js_name = "_panicForTests", catch_unwind)]
#[allow(clippy::panic)] // panicking on request is what it is for
pub fn panic_for_tests<'env>(
    env: &'env Env,
    #[napi(ts_arg_type = "string")] kind: Unknown,
) -> Result<Unknown<'env>, error::Code> {
    error::guard(|| {
        let kind = args::string(env, kind, "kind")?;
        if std::env::var_os("SHMKIT_TEST_HOOKS").is_none_or(|v| v != "1") {
            return Err(error::error(error::INVALID_ARG_VALUE, "test hooks are off"));
        }
        match kind.as_str() {
            "async" => {
                let promise = sync::wait_promise(env, PanicsForTests, |never| never)?;
                Ok(promise.to_unknown())
            }
            _ => panic!("panic requested by a test"),
        }
    })
}

/// A wait whose first step panics, for `_panicForTests("async")`.
struct PanicsForTests;

impl shmkit_core::waiter::AsyncWait for PanicsForTests {
    type Output = &'static str;

    #[allow(clippy::panic)] // panicking on request is what it is for
    fn step(&mut self, _woken: bool) -> shmkit_core::Result<shmkit_core::waiter::Step<&'static str>> {
        panic!("panic requested by a test")
    }
}
