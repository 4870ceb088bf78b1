//! The lock shmkit writers take on one item of a list: its code byte, compare-and-swapped to
//! [`CODE_BUSY`] (CPython's layout has no room for anything else), and the polite back-off of
//! the writers that wait for it and the readers that copy around it.
//!
//! The protocol, which readers rely on ([`super::Layout::read_live`]):
//! - a writer takes the item with [`ItemLock::acquire`], then writes its data and format
//!   only through the guard, and [`ItemLock::publish`]es the final code last (release order);
//! - a reader never writes: it copies code, format and data twice and uses the copy only when
//!   nothing changed and the code was never busy.

use std::sync::atomic::{fence, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Written to an item's code while a shmkit writer changes it (CPython never writes it: as a
/// signed byte it is -1, which CPython does not map to anything).
pub(super) const CODE_BUSY: u8 = 0xff;

/// How long an item may stay busy before its writer is presumed dead (SIGKILLed mid-write),
/// and how long a reader retries an item that changes under every copy.
/// Far longer than any write, and than a scheduler time slice a live writer may lose.
pub(super) const BUSY_LIMIT: Duration = Duration::from_millis(200);

/// Waits politely: spins first, then yields the CPU to the writer that holds the item.
pub(super) struct Backoff {
    spins: u32,
    deadline: Option<Instant>,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff {
            spins: 0,
            deadline: None,
        }
    }

    /// Waits a little; `false` once [`BUSY_LIMIT`] has passed.
    pub(super) fn wait(&mut self) -> bool {
        self.spins = self.spins.saturating_add(1);
        if self.spins < 200 {
            std::hint::spin_loop();
            return true;
        }
        let now = Instant::now();
        let deadline = *self
            .deadline
            .get_or_insert_with(|| now.checked_add(BUSY_LIMIT).unwrap_or(now));
        std::thread::yield_now();
        Instant::now() < deadline
    }
}

/// One item held by this writer. Its code reads [`CODE_BUSY`] from [`ItemLock::acquire`] to
/// [`ItemLock::publish`], and the guard is the only way this code writes the item's slot and
/// format, so nothing is written outside the lock. A guard dropped without `publish` leaves
/// the item busy, as a writer that died would: readers report it mid-write after
/// [`BUSY_LIMIT`], and the next write repairs it.
#[must_use = "an item lock left unpublished keeps the item busy"]
pub(super) struct ItemLock<'m> {
    code: &'m AtomicU8,
    format: &'m [AtomicU8],
    slot: &'m [AtomicU8],
}

impl<'m> ItemLock<'m> {
    /// Takes the item whose code byte is `code`, waiting while another shmkit writer holds
    /// it; a holder busy past [`BUSY_LIMIT`] died mid-write and is overtaken (this write
    /// repairs the item).
    pub(super) fn acquire(code: &'m AtomicU8, format: &'m [AtomicU8], slot: &'m [AtomicU8]) -> Self {
        let mut backoff = Backoff::new();
        let mut holder_alive = true;
        loop {
            let current = code.load(Ordering::Relaxed);
            if (current != CODE_BUSY || !holder_alive)
                && code
                    .compare_exchange(current, CODE_BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            holder_alive = backoff.wait();
        }
        // Readers that see any store made through the guard then see "busy" (or a later code)
        // after it.
        fence(Ordering::Release);
        ItemLock { code, format, slot }
    }

    /// Writes the item: `write_data` fills its slot, then `format` is stored, and the item is
    /// released with its new `code`.
    pub(super) fn publish(self, write_data: impl FnOnce(&[AtomicU8]), format: &[u8; 8], code: u8) {
        write_data(self.slot);
        super::store_bytes(self.format, format);
        self.code.store(code, Ordering::Release);
    }
}
