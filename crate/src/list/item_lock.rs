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

/// How long an item may stay busy on every look before a reader reports it mid-write (its
/// writer may have died). The clock restarts whenever the item is seen free or changed. As
/// long as a writer waits before overtaking: a reader that gives up on a live holder (one kept
/// off the CPU on an overloaded machine) fails a read that waiting would have answered. At
/// 200 ms, readers under qemu-user with three writer processes on two cores got such errors.
pub(super) const BUSY_LIMIT: Duration = OVERTAKE_LIMIT;

/// How long an item must stay busy on every look before a writer presumes its holder dead
/// (SIGKILLed mid-write) and overtakes it: a writer that overtakes a live holder lets two
/// writes interleave. The clock restarts whenever the item is seen free or changed, so live
/// writers taking it in turn are never mistaken for a dead one.
pub(super) const OVERTAKE_LIMIT: Duration = Duration::from_millis(1000);

/// How many loads of a busy code a waiting writer makes, looking for the moment a holder lets
/// go, before it counts the look as "held" (a few microseconds).
const WATCH_LOADS: u32 = 1024;

/// How long a reader retries an item that changes under every copy before giving up with an
/// error rather than waiting without end on peers that never pause.
pub(super) const CHANGE_LIMIT: Duration = Duration::from_millis(1000);

/// The same for a writer that other writers beat to the item on every try: longer than
/// [`OVERTAKE_LIMIT`], so that a holder that dies after a spell of contention is still overtaken.
pub(super) const WRITER_CHANGE_LIMIT: Duration = Duration::from_millis(2000);

/// What one look at an item found, when it was not the one wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// Its code read busy: a shmkit writer holds it (or died holding it).
    Held,
    /// It was free but changed under the copy, or another writer took it first: progress.
    Changed,
}

/// Why [`Backoff::wait`] gave up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum GaveUp {
    /// Busy on every look for the back-off's limit: its writer died mid-write.
    Held,
    /// Changing for the back-off's limit: peers rewrite it without pause.
    Changing,
}

/// How long a waiter sleeps between looks once it has spun a little.
const LOOK_INTERVAL: Duration = Duration::from_micros(50);

/// Waits politely: spins first, then sleeps between looks so the holder can run.
pub(super) struct Backoff {
    spins: u32,
    started: Option<Instant>,
    held_since: Option<Instant>,
    held_looks: u32,
    held_limit: Duration,
    change_limit: Duration,
}

/// How many looks in a row must find the item busy, besides its `held_limit` passing, before
/// its holder is given up on: time alone also passes while this thread is not running at all
/// (an overloaded machine), and a holder seen by so few looks has not been watched.
const HELD_LOOKS: u32 = 100;

impl Backoff {
    /// A back-off that gives up on a holder after `held_limit` of busy looks, and on an item
    /// that keeps changing after `change_limit`.
    pub(super) fn new(held_limit: Duration, change_limit: Duration) -> Self {
        Backoff {
            spins: 0,
            started: None,
            held_since: None,
            held_looks: 0,
            held_limit,
            change_limit,
        }
    }

    /// Waits a little after a look that found `look`; gives up once the item has been held on
    /// every look (at least [`HELD_LOOKS`] of them) for its `held_limit`, or has kept changing
    /// for its `change_limit`.
    pub(super) fn wait(&mut self, look: Look) -> Result<(), GaveUp> {
        self.spins = self.spins.saturating_add(1);
        if self.spins < 200 {
            std::hint::spin_loop();
            return Ok(());
        }
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        let held_since = match look {
            Look::Changed => {
                self.held_since = None;
                self.held_looks = 0;
                now
            }
            Look::Held => {
                self.held_looks = self.held_looks.saturating_add(1);
                *self.held_since.get_or_insert(now)
            }
        };
        if self.held_looks >= HELD_LOOKS && now.saturating_duration_since(held_since) >= self.held_limit {
            return Err(GaveUp::Held);
        }
        if now.saturating_duration_since(started) >= self.change_limit {
            return Err(GaveUp::Changing);
        }
        // A sleep, not a yield: the holder may be waiting for this very CPU, and on an
        // overloaded machine a yield can hand the CPU straight back.
        std::thread::sleep(LOOK_INTERVAL);
        Ok(())
    }
}

/// Watches a busy code for a few microseconds: `true` if its holder let go meanwhile. A holder
/// that takes the item again at once leaves it free for well under a microsecond between its
/// writes, so an occasional look would find it busy every time and take a live writer for a
/// dead one.
pub(super) fn watch_for_release(code: &AtomicU8) -> bool {
    (0..WATCH_LOADS).any(|_| {
        std::hint::spin_loop();
        code.load(Ordering::Relaxed) != CODE_BUSY
    })
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
    /// it; a holder that keeps it busy on every look for [`OVERTAKE_LIMIT`] died mid-write and
    /// is overtaken (this write repairs the item).
    ///
    /// # Errors
    /// [`GaveUp::Changing`] when other writers took the item first on every try for
    /// [`WRITER_CHANGE_LIMIT`].
    pub(super) fn acquire(code: &'m AtomicU8, format: &'m [AtomicU8], slot: &'m [AtomicU8]) -> Result<Self, GaveUp> {
        let mut backoff = Backoff::new(OVERTAKE_LIMIT, WRITER_CHANGE_LIMIT);
        let mut holder_dead = false;
        loop {
            let current = code.load(Ordering::Relaxed);
            let held = current == CODE_BUSY;
            if (!held || holder_dead)
                && code
                    .compare_exchange(current, CODE_BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            let freed = held && watch_for_release(code);
            match backoff.wait(if held && !freed { Look::Held } else { Look::Changed }) {
                Ok(()) => {}
                Err(GaveUp::Held) => holder_dead = true,
                Err(GaveUp::Changing) => return Err(GaveUp::Changing),
            }
        }
        // Readers that see any store made through the guard then see "busy" (or a later code)
        // after it.
        fence(Ordering::Release);
        Ok(ItemLock { code, format, slot })
    }

    /// Writes the item: `write_data` fills its slot, then `format` is stored, and the item is
    /// released with its new `code`.
    pub(super) fn publish(self, write_data: impl FnOnce(&[AtomicU8]), format: &[u8; 8], code: u8) {
        write_data(self.slot);
        super::store_bytes(self.format, format);
        self.code.store(code, Ordering::Release);
    }
}

#[cfg(test)]
// A test fails by panicking.
#[allow(clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    /// Writers that take one item in turn, as fast as they can, for longer than
    /// [`OVERTAKE_LIMIT`]: none ever presumes a live holder dead (which would let two writes
    /// interleave). (Before the clock restarted on a change, 200 ms of losing the race was
    /// enough to overtake.) A holder preempted while holding is still taken for dead if it
    /// stays off the CPU on every look for the whole limit: that is the rule's known limit
    /// (see the README), so the holders here hold only while they write, as real writers do.
    #[test]
    fn live_writers_taking_turns_are_never_overtaken() {
        let code = AtomicU8::new(1);
        let format: Vec<AtomicU8> = (0..8).map(|_| AtomicU8::new(0)).collect();
        let slot: Vec<AtomicU8> = (0..16).map(|_| AtomicU8::new(0)).collect();
        let inside = AtomicU32::new(0);
        let overlaps = AtomicU32::new(0);
        let run_for = OVERTAKE_LIMIT * 2;
        let writes: Vec<u32> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let mut writes = 0u32;
                        let end = Instant::now() + run_for;
                        while Instant::now() < end {
                            let Ok(lock) = ItemLock::acquire(&code, &format, &slot) else {
                                continue;
                            };
                            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            inside.fetch_sub(1, Ordering::SeqCst);
                            lock.publish(
                                |slot| {
                                    super::super::store_bytes(slot, &[7; 16]);
                                },
                                &[0; 8],
                                1,
                            );
                            writes += 1;
                        }
                        writes
                    })
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
        });
        assert_eq!(overlaps.load(Ordering::SeqCst), 0, "writes interleaved: {writes:?}");
        assert!(writes.iter().all(|&w| w > 0), "every writer got its turn: {writes:?}");
    }

    /// The dead-holder clock restarts whenever a look finds the item changed: a waiter that
    /// keeps losing to live writers never gives up on a holder, however long it waits.
    #[test]
    fn the_held_clock_restarts_on_every_change() {
        let held_limit = Duration::from_millis(200);
        let mut backoff = Backoff::new(held_limit, held_limit * 10);
        let start = Instant::now();
        let mut changed_at = start;
        let mut looks = 0u32;
        while start.elapsed() < held_limit * 3 {
            // Busy on hundreds of looks in a row, but seen changing hands every 50 ms.
            let look = if changed_at.elapsed() >= held_limit / 4 {
                changed_at = Instant::now();
                Look::Changed
            } else {
                Look::Held
            };
            looks += 1;
            assert_eq!(backoff.wait(look), Ok(()), "gave up after {looks} looks");
        }
    }

    /// A holder that never lets go (a writer SIGKILLed mid-write) is overtaken once the item
    /// has been busy on every look for [`OVERTAKE_LIMIT`], and the item is free again afterwards.
    #[test]
    fn a_dead_holder_is_overtaken_after_the_limit() {
        let code = AtomicU8::new(CODE_BUSY);
        let format: Vec<AtomicU8> = (0..8).map(|_| AtomicU8::new(0)).collect();
        let slot: Vec<AtomicU8> = (0..8).map(|_| AtomicU8::new(0)).collect();
        let started = Instant::now();
        let lock = ItemLock::acquire(&code, &format, &slot).expect("a dead holder is overtaken");
        assert!(started.elapsed() >= OVERTAKE_LIMIT);
        lock.publish(|_| {}, &[b'q', 0, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(code.load(Ordering::SeqCst), 0);
    }

    /// A code that changes on every look (peers, or hostile bytes, that never pause) ends the
    /// wait with [`GaveUp::Changing`] after [`CHANGE_LIMIT`], never a hang.
    #[test]
    fn an_item_changing_without_pause_ends_the_wait() {
        let mut backoff = Backoff::new(BUSY_LIMIT, CHANGE_LIMIT);
        let started = Instant::now();
        let gave_up = loop {
            if let Err(why) = backoff.wait(Look::Changed) {
                break why;
            }
        };
        assert_eq!(gave_up, GaveUp::Changing);
        assert!(started.elapsed() >= CHANGE_LIMIT);
    }
}
