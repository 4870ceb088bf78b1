//! `SharedMemory.sharedBuffer`: a SharedArrayBuffer over the mapping, made with
//! `node_api_create_external_sharedarraybuffer`. That function is experimental Node-API
//! (Node 22.23+, 24.16+, 26.1+), so it is looked up in the running process at run time: one
//! binary then loads on every Node and reports `ERR_SHM_NO_SHARED_ARRAY_BUFFER` where it is
//! absent.
//!
//! A SharedArrayBuffer cannot be detached, so its backing store holds the mapping (an
//! `Arc<Segment>` in the finalize hint) until V8 frees it, in whichever thread that happens:
//! `close()` with one alive defers the unmap, never unmaps under it.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use shmkit_core::Segment;

use crate::error::{error, refusal, Code, NO_SHARED_ARRAY_BUFFER};
use crate::raw::{self, External};

const SYMBOL: &str = "node_api_create_external_sharedarraybuffer";

/// A new SharedArrayBuffer over the whole mapping, holding it until V8 frees the buffer.
pub fn create<'env>(env: &'env Env, segment: &Arc<Segment>) -> Result<Unknown<'env>, Code> {
    if !raw::has_shared_array_buffers() {
        return Err(error(
            NO_SHARED_ARRAY_BUFFER,
            format!(
                "this Node.js ({}) has no {SYMBOL} (experimental Node-API in 22.23+, 24.16+, 26.1+); use shm.buffer, which Atomics also accept (except wait)",
                node_version(env)
            ),
        ));
    }
    raw::external(
        env,
        External::SharedArrayBuffer,
        Arc::clone(segment),
        Segment::atomic_bytes,
    )
    .map_err(|refused| refusal(env, refused, SYMBOL, segment.len()))
}

fn node_version(env: &Env) -> String {
    env.get_node_version()
        .map(|v| format!("v{}.{}.{}", v.major, v.minor, v.patch))
        .unwrap_or_else(|_| "unknown version".to_owned())
}
