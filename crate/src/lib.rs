//! shmkit-core: named shared-memory segments with the semantics of CPython's
//! `multiprocessing.shared_memory`, usable from Rust without Node.
//!
//! A segment made here opens in Python under the same name, and the other way round.
//!
//! ```
//! # fn main() -> Result<(), shmkit_core::Error> {
//! use shmkit_core::{Segment, SegmentOptions};
//!
//! let created = SegmentOptions::new().create(4096)?;
//! let attached = Segment::open(created.name())?;
//! assert_eq!(attached.len(), 4096);
//! created.unlink()?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod error;
mod futex;
pub mod list;
pub mod lock;
mod manager;
pub mod name;
mod process;
pub mod queue;
pub mod segment;
pub mod tracker;
pub mod waiter;

pub use error::{Closed, Error, Result};
pub use manager::Manager;
pub use name::ShmName;
pub use segment::{unlink, Segment, SegmentOptions, Waited};
