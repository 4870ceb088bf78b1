//! Segment names: validation, the OS form, and random generation. No OS calls.
//!
//! A user name `N` is `shm_open("/N")` on POSIX and the section name `N` on Windows, as in
//! CPython, so both languages reach the same segment by the same name.

use crate::{Error, Result};

/// Prefix of generated names, as in CPython (`_SHM_NAME_PREFIX`, without the slash).
#[cfg(not(windows))]
pub const NAME_PREFIX: &str = "psm_";
/// Prefix of generated names, as in CPython (`_SHM_NAME_PREFIX`).
#[cfg(windows)]
pub const NAME_PREFIX: &str = "wnsm_";

/// Random bytes in a generated name: 64 bits, against CPython's 32; 16 hex digits keep
/// `/psm_` + hex within macOS's 31 bytes.
const RANDOM_BYTES: usize = 8;

/// Longest name in bytes, without the leading slash: macOS's PSHMNAMLEN is 31 including
/// the slash (`bsd/sys/posix_shm.h`; `pshm_get_name` in `bsd/kern/posix_shm.c` copies at most
/// PSHMNAMLEN + 1 bytes with the NUL, else ENAMETOOLONG: https://github.com/apple-oss-distributions/xnu).
#[cfg(target_vendor = "apple")]
pub const MAX_NAME_LEN: usize = 30;
/// Longest name in bytes, without the leading slash: a file name under /dev/shm
/// (NAME_MAX = 255; glibc's `shm_open`, and so CPython, accept exactly that).
#[cfg(all(unix, not(target_vendor = "apple")))]
pub const MAX_NAME_LEN: usize = 255;
/// Longest name, in UTF-16 code units as `CreateFileMappingW` takes it: object names are
/// limited to MAX_PATH (260) characters ("Kernel Object Namespaces", Microsoft Learn).
#[cfg(windows)]
pub const MAX_NAME_LEN: usize = 260;

/// A validated segment name, as users see it (no leading slash).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShmName {
    name: String,
}

impl ShmName {
    /// Validates a user-supplied name. One leading `/` is accepted and dropped, as CPython's
    /// `.name` drops it; everything the OS would refuse is refused here, before any syscall.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name, a NUL, a `/` after the first character,
    /// `.` or `..`, or a name longer than [`MAX_NAME_LEN`] bytes.
    pub fn new(name: &str) -> Result<Self> {
        let bare = name.strip_prefix('/').unwrap_or(name);
        let invalid = |why: String| Err(Error::InvalidName(why));
        if bare.is_empty() {
            return invalid("the name is empty".into());
        }
        if bare.contains('\0') {
            return invalid(format!("{:?} contains a NUL character", truncated(bare)));
        }
        if bare.contains('/') {
            return invalid(format!("{:?} contains '/' after its first character", truncated(bare)));
        }
        if cfg!(windows) && bare.contains('\\') && !has_kernel_namespace(bare) {
            return invalid(format!(
                "{:?} contains '\\' outside a Global\\ or Local\\ prefix",
                truncated(bare)
            ));
        }
        if bare == "." || bare == ".." {
            return invalid(format!("{bare:?} is not a segment name"));
        }
        let length = os_length(bare);
        if length > MAX_NAME_LEN {
            return invalid(format!(
                "{:?} is {length} {LENGTH_UNIT} long; this OS allows at most {MAX_NAME_LEN}",
                truncated(bare),
            ));
        }
        Ok(ShmName { name: bare.to_owned() })
    }

    /// A fresh random name: [`NAME_PREFIX`] followed by 16 lowercase hex digits.
    pub fn random() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        // The OS random source failing is not something a caller can act on; a name from the
        // clock and pid is still unique enough, and create() retries on EEXIST anyway.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = fallback_entropy();
        }
        let mut name = String::with_capacity(NAME_PREFIX.len() + 2 * RANDOM_BYTES);
        name.push_str(NAME_PREFIX);
        for b in bytes {
            name.push_str(&format!("{b:02x}"));
        }
        ShmName { name }
    }

    /// The name as users see it, e.g. `psm_1a2b3c4d5e6f7a8b`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name as the OS takes it: `/N` for `shm_open`, `N` for Windows.
    pub fn os_name(&self) -> String {
        if cfg!(windows) {
            self.name.clone()
        } else {
            format!("/{}", self.name)
        }
    }
}

impl std::fmt::Display for ShmName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name's length in the unit the OS limits: bytes for POSIX, UTF-16 units for Windows.
fn os_length(name: &str) -> usize {
    if cfg!(windows) {
        name.encode_utf16().count()
    } else {
        name.len()
    }
}

const LENGTH_UNIT: &str = if cfg!(windows) { "UTF-16 units" } else { "bytes" };

fn has_kernel_namespace(name: &str) -> bool {
    let rest = name.strip_prefix("Global\\").or_else(|| name.strip_prefix("Local\\"));
    rest.is_some_and(|r| !r.is_empty() && !r.contains('\\'))
}

/// Keeps error messages short when someone passes a megabyte-long name.
fn truncated(name: &str) -> String {
    const SHOWN: usize = 64;
    if name.len() <= SHOWN {
        return name.to_owned();
    }
    let mut end = SHOWN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end])
}

fn fallback_entropy() -> [u8; RANDOM_BYTES] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(t.as_nanos());
    }
    hasher.finish().to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slash_is_dropped_once() {
        assert_eq!(ShmName::new("/abc").unwrap().as_str(), "abc");
        assert_eq!(ShmName::new("abc").unwrap().as_str(), "abc");
    }

    #[test]
    fn rejects_what_the_os_would() {
        for bad in ["", "/", "a/b", "//a", "a\0b", ".", "..", "/.."] {
            let err = ShmName::new(bad).unwrap_err();
            assert!(matches!(err, crate::Error::InvalidName(_)), "{bad:?}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(ShmName::new(&long).unwrap_err().to_string().contains("allows at most"));
        assert!(ShmName::new(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn huge_names_give_short_messages() {
        let err = ShmName::new(&"é".repeat(5_000_000)).unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn random_names_have_the_prefix_and_fit_macos() {
        let a = ShmName::random();
        let b = ShmName::random();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(NAME_PREFIX));
        assert_eq!(a.as_str().len(), NAME_PREFIX.len() + 16);
        assert!(a.os_name().len() <= 31);
        assert!(ShmName::new(a.as_str()).is_ok());
    }
}
