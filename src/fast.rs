//! The ShareableList hot path (`get`, `set`, `toArray`) as plain Node-API callbacks.
//!
//! napi-rs's generated method wrappers cost about 400 ns per call here (borrow tracking with
//! heap allocations, on top of the type-tag check and unwrap); a list `get` is ~100 ns of
//! real work. These methods go through `raw`'s trampoline, which keeps the safety checks that
//! matter (the receiver's type tag before it is unwrapped, no panic crossing into JS), and
//! call the same `ShareableList` methods.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use napi::bindgen_prelude::*;

use crate::error::{napi_failure, Code};
use crate::raw::{self, Call};
use crate::shareable_list::ShareableList;

/// Installs the methods on `ShareableList.prototype`. `collect` is a JS function
/// `(...items) => items`, used to build arrays in one call.
pub fn install<'env>(env: &'env Env, prototype: &Object<'env>, collect: &Unknown<'env>) -> Result<(), Code> {
    raw::define::<ShareableList>(env, prototype, "get", get, None)?;
    raw::define::<ShareableList>(env, prototype, "set", set, None)?;
    raw::define::<ShareableList>(env, prototype, "toArray", to_array, Some(collect))
}

fn get<'env>(call: Call<'env, ShareableList>) -> Result<Unknown<'env>, Code> {
    let [index, _] = call.args;
    call.this.get_item(call.env, &index)
}

fn set<'env>(call: Call<'env, ShareableList>) -> Result<Unknown<'env>, Code> {
    let [index, value] = call.args;
    call.this.set_item(call.env, &index, &value)?;
    raw::undefined(call.env)
}

fn to_array<'env>(call: Call<'env, ShareableList>) -> Result<Unknown<'env>, Code> {
    let collect = call
        .data
        .ok_or_else(|| napi_failure("toArray lost its collect function"))?;
    raw::collect_array(call.env, &collect, |push| call.this.each_item(call.env, push))
}
