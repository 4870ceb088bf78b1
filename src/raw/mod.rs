//! The one module that calls Node-API directly (`napi::sys`) and the one place the binding
//! allows `unsafe` (the crate denies it everywhere else): strong and weak `napi_ref`s,
//! external (Shared)ArrayBuffers that keep their memory's owner alive, the views of a mapping,
//! the trampoline of the methods that bypass napi-rs's wrappers, and the value conversions
//! napi-rs only offers as unchecked casts. Everything it exports is safe to call; each
//! `unsafe` block says why it holds.

mod callback;
mod external;
mod reference;
mod value;
mod view;

pub use callback::{define, Call};
pub use external::{external, has_shared_array_buffers, External, Refused};
pub use reference::{Held, Reference};
pub use value::*;
pub use view::{detach_buffer, View, ViewError};
