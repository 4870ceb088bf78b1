//! Helpers every test file of the core shares: each test removes the segments it creates.
#![allow(dead_code)] // each test file uses its own part

use shmkit_core::ShmName;

/// Unlinks its segment's name however the test ends (a failed assertion included).
pub struct Unlink(pub String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = shmkit_core::unlink(&self.0);
    }
}

/// A name no other test or run uses, short enough for macOS's 30-byte limit: `shmkit_` + tag
/// + this process's id + 8 random hex digits.
pub fn unique(tag: &str) -> String {
    let random = ShmName::random();
    let hex = &random.as_str()[random.as_str().len() - 8..];
    format!("shmkit_{tag}_{:x}{hex}", std::process::id())
}
