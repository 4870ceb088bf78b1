//! Waits that do not hold a thread each: any number of them share a few waiter threads.
//!
//! A blocking wait ([`Segment::wait`], [`crate::lock::ShmLock::lock`], a queue's
//! `wait_readable`) holds its thread for as long as it sleeps. An async caller (a promise in
//! Node) instead describes its wait as an [`AsyncWait`]: a step that never blocks and either
//! finishes or names the word it would sleep on ([`Sleep`]). [`submit`] takes the first step
//! on the caller's thread and, if it must sleep, hands it to a waiter thread, which sleeps on
//! many words at once ([`futex`]'s `wait_any`: `futex_waitv(2)` on Linux 5.16+, 128 words a
//! call) and takes the next step when its word is woken or changes, when its deadline passes,
//! and at least every 50 ms (so that a retired segment or a dead lock holder is noticed as
//! quickly as by a blocking wait). The outcome goes to the callback given to [`submit`], on
//! the waiter thread.
//!
//! # How many threads
//! Words are packed into groups of what one OS call can sleep on (127 words beside the
//! group's doorbell with `futex_waitv`); each group has one thread, and there are at most
//! [`MAX_GROUPS`] of them. Waits on further words go to one more thread that polls them
//! (a check of every word, then naps of up to 1 ms). Where the OS has no multi-word sleep
//! (macOS, Windows, Linux before 5.16) one thread polls every word. So a process never has
//! more than `MAX_GROUPS + 1` waiter threads, however many waits are pending; a thread with
//! nothing to wait for ends after [`IDLE_EXIT`].
//!
//! A wake that reaches a word wakes every async wait of this process sleeping on that word
//! (the OS counts it as one), and a wake that leaves a word unchanged can be missed while
//! the waiter thread is between two sleeps: re-check the word, as with any futex.
//!
//! ```
//! # fn main() -> Result<(), shmkit_core::Error> {
//! use std::sync::{mpsc, Arc};
//! use shmkit_core::{Segment, Waited};
//!
//! let segment = Arc::new(Segment::create(4096)?);
//! let (tx, rx) = mpsc::channel();
//! let wait = shmkit_core::waiter::WordWait::new(Arc::clone(&segment), 0, 0, None)?;
//! shmkit_core::waiter::submit(wait, move |outcome| tx.send(outcome).unwrap());
//! segment.word(0)?.store(1, std::sync::atomic::Ordering::SeqCst);
//! segment.notify(0, u32::MAX)?;
//! assert!(matches!(rx.recv().unwrap(), Ok(Ok(Waited::Ok))));
//! segment.unlink()?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::futex::{self, WAIT_SLICE};
use crate::{Error, Result, Segment, Waited};

/// The most waiter threads that sleep with the OS's multi-word wait; one more polls what
/// they cannot hold.
pub const MAX_GROUPS: usize = 16;

/// How long a waiter thread with nothing to wait for lingers before it ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(1);

/// A waiter thread's stack: it runs steps and callbacks, never deep recursion.
const STACK_BYTES: usize = 256 * 1024;

/// The word an [`AsyncWait`] sleeps on until its next step.
#[derive(Debug)]
pub struct Sleep {
    segment: Arc<Segment>,
    offset: usize,
    expected: u32,
    deadline: Option<Instant>,
}

impl Sleep {
    /// Sleep while the word at `offset` holds `expected`, until `deadline` at the latest
    /// (`None`: no deadline; the step still runs every 50 ms).
    ///
    /// # Errors
    /// As [`Segment::word`].
    pub fn new(segment: Arc<Segment>, offset: usize, expected: u32, deadline: Option<Instant>) -> Result<Sleep> {
        segment.word(offset)?;
        Ok(Sleep {
            segment,
            offset,
            expected,
            deadline,
        })
    }

    /// The word (checked in [`Sleep::new`], so `None` never happens in practice).
    fn word(&self) -> Option<&AtomicU32> {
        self.segment.word(self.offset).ok()
    }

    /// The word's address in this process: what the OS keys sleepers by, here.
    fn address(&self) -> usize {
        self.word().map_or(0, |word| word.as_ptr() as usize)
    }

    fn is_due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

/// What one step of an [`AsyncWait`] came to.
#[derive(Debug)]
pub enum Step<T> {
    /// Finished with this outcome.
    Done(T),
    /// Not yet: step again once this word is woken or changes, or its deadline passes.
    Sleep(Sleep),
}

/// A wait taken in steps that never block; see the module docs.
pub trait AsyncWait: Send + 'static {
    /// What the wait gives when it ends.
    type Output: Send + 'static;

    /// Looks at the world once. `woken` says that the OS reported a wake of the word of the
    /// previous [`Step::Sleep`] (false on the first step, after a timeout, and when the word
    /// merely changed).
    ///
    /// # Errors
    /// Whatever ends the wait with an error (a retired segment: [`Error::Closed`]).
    fn step(&mut self, woken: bool) -> Result<Step<Self::Output>>;
}

/// A panic inside a step, caught: its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked(pub String);

/// How a submitted wait ended: its step's result, or the panic that ended it.
pub type Outcome<T> = std::result::Result<Result<T>, Panicked>;

/// Runs `wait` to its end without a thread of its own: the first step on this thread, the
/// rest on a shared waiter thread (see the module docs). `done` receives the outcome exactly
/// once: here if the first step finishes, else on the waiter thread.
pub fn submit<W: AsyncWait>(wait: W, done: impl FnOnce(Outcome<W::Output>) + Send + 'static) {
    let mut job: Box<dyn Job> = Box::new(Task { wait, done: Some(done) });
    if let Some(sleep) = job.step(false) {
        place(job, sleep);
    }
}

/// Whether async waits sleep in the OS on their words (Linux 5.16+'s `futex_waitv`), so that
/// a notify that leaves a word unchanged still wakes them. `false` where the waiter threads
/// poll the words (macOS, Windows, older Linux, and emulators without `futex_waitv`): there
/// only a change of the word wakes a wait (for diagnostics and tests).
pub fn sleeps_in_os() -> bool {
    futex::wait_any_sleeps()
}

/// How many waiter threads run now (for diagnostics and tests).
pub fn thread_count() -> usize {
    pool().groups.len()
}

/// A submitted wait with its callback, as a waiter thread sees it.
trait Job: Send {
    /// One step; `None` once it ended (and its callback ran).
    fn step(&mut self, woken: bool) -> Option<Sleep>;
    /// Ends it with `error` without another step.
    fn fail(&mut self, error: Error);
}

struct Task<W: AsyncWait, F: FnOnce(Outcome<W::Output>) + Send> {
    wait: W,
    done: Option<F>,
}

impl<W: AsyncWait, F: FnOnce(Outcome<W::Output>) + Send> Task<W, F> {
    fn finish(&mut self, outcome: Outcome<W::Output>) {
        if let Some(done) = self.done.take() {
            // A panicking callback is its caller's bug; it must not take the waiter thread down.
            let _ = catch_unwind(AssertUnwindSafe(|| done(outcome)));
        }
    }
}

impl<W: AsyncWait, F: FnOnce(Outcome<W::Output>) + Send> Job for Task<W, F> {
    fn step(&mut self, woken: bool) -> Option<Sleep> {
        let outcome = match catch_unwind(AssertUnwindSafe(|| self.wait.step(woken))) {
            Ok(Ok(Step::Sleep(sleep))) => return Some(sleep),
            Ok(Ok(Step::Done(value))) => Ok(Ok(value)),
            Ok(Err(error)) => Ok(Err(error)),
            Err(payload) => Err(Panicked(panic_message(&*payload))),
        };
        self.finish(outcome);
        None
    }

    fn fail(&mut self, error: Error) {
        self.finish(Ok(Err(error)));
    }
}

impl<W: AsyncWait, F: FnOnce(Outcome<W::Output>) + Send> Drop for Task<W, F> {
    /// A wait dropped unfinished (only a bug can do that) still settles its caller.
    fn drop(&mut self) {
        self.finish(Err(Panicked("the wait was dropped before it ended".into())));
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// A wait and the word it sleeps on, in a waiter thread's hands.
struct Parked {
    job: Box<dyn Job>,
    sleep: Sleep,
    /// The address it was placed by (see [`Pool::homes`]); it counts there until it ends.
    home: usize,
}

/// One waiter thread's mailbox.
struct Group {
    id: u64,
    /// Bumped (and woken) whenever the inbox gets a wait, so the thread's sleep ends.
    doorbell: AtomicU32,
    inbox: Mutex<Vec<Parked>>,
    /// Whether it polls instead of sleeping in the OS (the overflow group).
    polls: bool,
}

impl Group {
    fn ring(&self) {
        self.doorbell.fetch_add(1, Ordering::SeqCst);
        // A failed wake only delays the thread to its next 50 ms look.
        let _ = futex::wake(&self.doorbell, 1);
    }
}

/// Every waiter thread, and which thread holds each word.
struct Pool {
    groups: Vec<Slot>,
    /// Word address → (group id, waits placed by it and not yet ended).
    homes: HashMap<usize, (u64, usize)>,
    next_id: u64,
}

struct Slot {
    group: Arc<Group>,
    /// Distinct words placed in it that still have waits.
    words: usize,
    /// How many words it may hold (`usize::MAX` when it polls).
    limit: usize,
}

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| {
    Mutex::new(Pool {
        groups: Vec::new(),
        homes: HashMap::new(),
        next_id: 0,
    })
});

fn pool() -> MutexGuard<'static, Pool> {
    // The pool's state stays consistent between statements; a panic elsewhere cannot break it.
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a sleeping wait to the thread that holds its word, or to one with room (starting
/// one if needed and allowed).
fn place(mut job: Box<dyn Job>, sleep: Sleep) {
    let home = sleep.address();
    let mut pool = pool();
    let group = match pool.home_of(home) {
        Some(group) => Ok(group),
        None => pool.room_for(home),
    };
    match group {
        Ok(group) => {
            lock(&group.inbox).push(Parked { job, sleep, home });
            drop(pool);
            group.ring();
        }
        Err(error) => {
            drop(pool);
            job.fail(Error::os("wait", sleep.segment.name(), error));
        }
    }
}

impl Pool {
    /// The group already holding `address`, counting one more wait there.
    fn home_of(&mut self, address: usize) -> Option<Arc<Group>> {
        let (id, waits) = self.homes.get_mut(&address)?;
        *waits += 1;
        let id = *id;
        self.groups
            .iter()
            .find(|slot| slot.group.id == id)
            .map(|slot| Arc::clone(&slot.group))
    }

    /// A group with room for one more word (a new one if all are full), now holding `address`.
    fn room_for(&mut self, address: usize) -> std::io::Result<Arc<Group>> {
        let slot = match self.groups.iter().position(|slot| slot.words < slot.limit) {
            Some(index) => index,
            None => self.start_group()?,
        };
        let Some(slot) = self.groups.get_mut(slot) else {
            return Err(std::io::Error::other("waiter group vanished"));
        };
        slot.words += 1;
        self.homes.insert(address, (slot.group.id, 1));
        Ok(Arc::clone(&slot.group))
    }

    /// Starts a waiter thread: one that sleeps in the OS while fewer than [`MAX_GROUPS`] do,
    /// else the one that polls. Returns its index in `groups`.
    fn start_group(&mut self) -> std::io::Result<usize> {
        let sleepers = self.groups.iter().filter(|slot| !slot.group.polls).count();
        let polls = sleepers >= MAX_GROUPS;
        let limit = if polls {
            usize::MAX
        } else {
            futex::wait_any_limit().saturating_sub(1).max(1)
        };
        let group = Arc::new(Group {
            id: self.next_id,
            doorbell: AtomicU32::new(0),
            inbox: Mutex::new(Vec::new()),
            polls,
        });
        self.next_id += 1;
        let runs = Arc::clone(&group);
        std::thread::Builder::new()
            .name("shmkit-waiter".into())
            .stack_size(STACK_BYTES)
            .spawn(move || run(&runs))?;
        self.groups.push(Slot { group, words: 0, limit });
        Ok(self.groups.len() - 1)
    }

    /// Waits placed by these addresses ended: frees the words that have none left.
    fn ended(&mut self, homes: &[usize]) {
        for home in homes {
            let Some((id, waits)) = self.homes.get_mut(home) else {
                continue;
            };
            *waits = waits.saturating_sub(1);
            if *waits == 0 {
                let id = *id;
                self.homes.remove(home);
                if let Some(slot) = self.groups.iter_mut().find(|slot| slot.group.id == id) {
                    slot.words = slot.words.saturating_sub(1);
                }
            }
        }
    }
}

/// The waits of one word, in a waiter thread.
struct Word {
    /// What the waits expect the word to hold (the first one's, if they disagree).
    expected: u32,
    /// Whether some wait expects another value: then the word has moved on for one of them.
    mixed: bool,
    /// The earliest deadline among them.
    deadline: Option<Instant>,
    waits: Vec<Parked>,
}

impl Word {
    fn add(&mut self, parked: Parked) {
        if parked.sleep.expected != self.expected {
            self.mixed = true;
        }
        self.deadline = match (self.deadline, parked.sleep.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.waits.push(parked);
    }

    fn word(&self) -> Option<&AtomicU32> {
        self.waits.first().and_then(|parked| parked.sleep.word())
    }
}

fn add(words: &mut HashMap<usize, Word>, parked: Parked) {
    let address = parked.sleep.address();
    let expected = parked.sleep.expected;
    words
        .entry(address)
        .or_insert_with(|| Word {
            expected,
            mixed: false,
            deadline: None,
            waits: Vec::new(),
        })
        .add(parked);
}

/// A waiter thread: sleeps on every word its waits need, steps the waits whose word moved.
fn run(group: &Group) {
    let mut words: HashMap<usize, Word> = HashMap::new();
    let mut woken: Option<usize> = None;
    let mut last_sweep = Instant::now();
    let mut idle_since: Option<Instant> = None;
    loop {
        let bell = group.doorbell.load(Ordering::SeqCst);
        for parked in lock(&group.inbox).drain(..) {
            add(&mut words, parked);
        }
        if words.is_empty() {
            let idle = *idle_since.get_or_insert_with(Instant::now);
            if idle.elapsed() >= IDLE_EXIT {
                let mut pool = pool();
                if lock(&group.inbox).is_empty() {
                    pool.groups.retain(|slot| slot.group.id != group.id);
                    return;
                }
                continue;
            }
            // Through `wait_any` like every other sleep here: the doorbell is private memory,
            // which only Linux's futex takes as readily as shared memory.
            let _ = futex::wait_any(&[(&group.doorbell, bell)], IDLE_EXIT);
            continue;
        }
        idle_since = None;

        let now = Instant::now();
        let sweep = now.duration_since(last_sweep) >= WAIT_SLICE;
        if sweep {
            last_sweep = now;
        }
        let ended = step_ready(&mut words, woken.take(), sweep, now);
        if !ended.is_empty() {
            pool().ended(&ended);
        }

        // Sleep on the doorbell and every word, unless a word already moved on.
        let mut deadline = last_sweep + WAIT_SLICE;
        let mut moved = false;
        let mut order = Vec::with_capacity(words.len() + 1);
        let mut sleep_on: Vec<(&AtomicU32, u32)> = Vec::with_capacity(words.len() + 1);
        sleep_on.push((&group.doorbell, bell));
        order.push(0);
        for (address, word) in &words {
            if let Some(due) = word.deadline {
                deadline = deadline.min(due);
            }
            match word.word() {
                Some(atomic) if !word.mixed && atomic.load(Ordering::SeqCst) == word.expected => {
                    sleep_on.push((atomic, word.expected));
                    order.push(*address);
                }
                _ => moved = true,
            }
        }
        if moved {
            continue;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let slept = if group.polls {
            futex::poll_any(&sleep_on, timeout)
        } else {
            futex::wait_any(&sleep_on, timeout)
        };
        match slept {
            Ok(Some(index)) => woken = order.get(index).copied().filter(|&address| address != 0),
            Ok(None) => {}
            // Nothing sensible to do about a failing sleep but to look again a little later.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Steps the waits that are due: on the woken word, on a word that changed, past their
/// deadline, or all of them on a sweep. Returns the homes of the waits that ended.
fn step_ready(words: &mut HashMap<usize, Word>, woken: Option<usize>, sweep: bool, now: Instant) -> Vec<usize> {
    let mut ended = Vec::new();
    let mut again = Vec::new();
    let ready: Vec<usize> = words
        .iter()
        .filter(|(address, word)| {
            sweep
                || word.mixed
                || woken == Some(**address)
                || word.deadline.is_some_and(|due| now >= due)
                || word
                    .word()
                    .is_none_or(|atomic| atomic.load(Ordering::SeqCst) != word.expected)
        })
        .map(|(address, _)| *address)
        .collect();
    for address in ready {
        let Some(word) = words.remove(&address) else {
            continue;
        };
        let value = word.word().map(|atomic| atomic.load(Ordering::SeqCst));
        let was_woken = woken == Some(address);
        for mut parked in word.waits {
            let due = sweep
                || was_woken
                || parked.sleep.is_due(now)
                || value.is_none_or(|value| value != parked.sleep.expected);
            if !due {
                again.push(parked);
                continue;
            }
            match parked.job.step(was_woken) {
                Some(sleep) => {
                    parked.sleep = sleep;
                    again.push(parked);
                }
                None => ended.push(parked.home),
            }
        }
    }
    for parked in again {
        add(words, parked);
    }
    ended
}

/// [`Segment::wait`] as an [`AsyncWait`]: `'ok'`, `'not-equal'` or `'timed-out'`, and
/// [`Error::Closed`] when the segment is retired.
#[derive(Debug)]
pub struct WordWait {
    segment: Arc<Segment>,
    offset: usize,
    expected: u32,
    deadline: Option<Instant>,
    started: bool,
}

impl WordWait {
    /// A wait while the word at `offset` holds `expected`, for at most `timeout` (`None`:
    /// forever).
    ///
    /// # Errors
    /// As [`Segment::word`]; [`Error::Closed`] after [`Segment::retire`].
    pub fn new(segment: Arc<Segment>, offset: usize, expected: u32, timeout: Option<Duration>) -> Result<WordWait> {
        segment.live_word(offset)?;
        Ok(WordWait {
            segment,
            offset,
            expected,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            started: false,
        })
    }
}

impl AsyncWait for WordWait {
    type Output = Waited;

    fn step(&mut self, woken: bool) -> Result<Step<Waited>> {
        let word = self.segment.live_word(self.offset)?;
        let value = word.load(Ordering::SeqCst);
        if !self.started {
            self.started = true;
            if value != self.expected {
                return Ok(Step::Done(Waited::NotEqual));
            }
        } else if woken || value != self.expected {
            return Ok(Step::Done(Waited::Ok));
        }
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(Step::Done(Waited::TimedOut));
        }
        Sleep::new(Arc::clone(&self.segment), self.offset, self.expected, self.deadline).map(Step::Sleep)
    }
}
