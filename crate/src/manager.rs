//! A manager owns the segments it creates and unlinks them on [`Manager::shutdown`] or when
//! it is dropped, as CPython's `SharedMemoryManager` does. It makes no OS calls of its own:
//! it combines [`SegmentOptions`] and the [`crate::tracker`].
//!
//! ```
//! # fn main() -> Result<(), shmkit_core::Error> {
//! use shmkit_core::{Manager, Segment};
//!
//! let mut manager = Manager::new();
//! let segment = manager.create(1024)?;
//! let name = segment.name().to_owned();
//! drop(manager); // unlinks every segment it made: on POSIX the name is gone now
//! drop(segment); // on Windows a section lives until its last handle closes
//! assert!(Segment::open(&name).is_err());
//! # Ok(())
//! # }
//! ```

use crate::segment::{unlink_created, ObjectId};
use crate::{Closed, Error, Result, Segment, SegmentOptions, ShmName};

/// Owns the names of the segments it created; unlinks them on shutdown or drop.
#[derive(Debug, Default)]
pub struct Manager {
    names: Vec<String>,
    /// The object each name named when this manager created it (same order as `names`).
    created: Vec<Option<ObjectId>>,
    shut_down: bool,
}

impl Manager {
    /// A manager that owns nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a segment of `size` bytes with a random name. It is tracked, so it is unlinked
    /// even if this process dies before the manager shuts down.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`Manager::shutdown`]; otherwise as [`SegmentOptions::create`].
    pub fn create(&mut self, size: usize) -> Result<Segment> {
        self.create_with(SegmentOptions::new().track(true), size)
    }

    /// Creates a segment with `options` and owns it from now on.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`Manager::shutdown`]; otherwise as [`SegmentOptions::create`].
    pub fn create_with(&mut self, options: &SegmentOptions, size: usize) -> Result<Segment> {
        if self.shut_down {
            return Err(Error::Closed(Closed::Manager));
        }
        let segment = options.create(size)?;
        self.names.push(segment.name().to_owned());
        self.created.push(segment.created_object());
        Ok(segment)
    }

    /// Creates a tracked segment with a random name that `fill` writes before the name appears
    /// (see [`SegmentOptions::create_filled`]), owned from now on.
    ///
    /// # Errors
    /// As [`Manager::create_with`], or `fill`'s error.
    pub fn create_filled(
        &mut self,
        size: usize,
        fill: impl FnOnce(&[std::sync::atomic::AtomicU8]) -> Result<()>,
    ) -> Result<Segment> {
        if self.shut_down {
            return Err(Error::Closed(Closed::Manager));
        }
        let segment = SegmentOptions::new().track(true).create_filled(size, fill)?;
        self.names.push(segment.name().to_owned());
        // `shutdown` pairs names with identities: one of each per segment, or they drift apart.
        self.created.push(segment.created_object());
        Ok(segment)
    }

    /// Creates a segment under `name`, owned from now on.
    ///
    /// # Errors
    /// As [`Manager::create_with`], and [`Error::InvalidName`].
    pub fn create_named(&mut self, name: &str, size: usize) -> Result<Segment> {
        self.create_with(SegmentOptions::new().track(true).name(ShmName::new(name)?), size)
    }

    /// Names of the segments this manager created and will unlink.
    pub fn segments(&self) -> &[String] {
        &self.names
    }

    /// Whether [`Manager::shutdown`] has run.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Unlinks every segment this manager created (mappings held elsewhere stay readable
    /// until closed, as in CPython). A name that someone else unlinked and then created anew
    /// names their segment, not ours, and is left alone (Linux; other systems give no identity
    /// to compare). A second call does nothing.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        for (name, created) in self.names.drain(..).zip(self.created.drain(..)) {
            // Already unlinked by its user is fine: the goal is that our object's name is gone.
            let _ = unlink_created(&name, created);
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.shutdown();
    }
}
