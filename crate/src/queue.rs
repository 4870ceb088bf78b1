//! A bounded multi-producer, multi-consumer message queue in one segment, usable from any
//! process (and any thread) that maps it: [`SharedQueue`].
//!
//! # Layout (native-endian; version 2)
//! ```text
//! byte 0    magic        u32  "SHMQ"
//!      4    version      u32  1
//!      8    capacity     u32  slots, a power of two in [2, 2^20]
//!      12   slot bytes   u32  round_up(16 + max message, 64)
//!      16   max message  u32  bytes a message may take, in [1, 2^30]
//!      64   tail         u32  the next position to write (a hint, see below)
//!      128  head         u32  the next position to read (a hint)
//!      192  flags        u32  bit 0: ended
//!      196  lost         u32  messages given up because their writer or reader died
//!      200  data epoch   u32  bit 0: armed (a consumer is about to sleep or sleeps);
//!                             bits 1..: bumped, and bit 0 cleared, to wake them
//!      204  data sleepers u32 consumers asleep on the data epoch
//!      208  space epoch  u32  the same for producers waiting for a free slot
//!      212  space sleepers u32
//!      256  slot 0, slot 1, … each `slot bytes` long:
//!           0  control u64: sequence (low 32 bits) | owner pid (high 32 bits)
//!           8  length  u32
//!           12 tag     u32  (the low byte; what the payload is, for the caller)
//!           16 payload
//! ```
//! Positions are u32 counters that wrap; slot `pos & (capacity - 1)` serves position `pos`.
//!
//! # Protocol (after Vyukov's bounded MPMC queue, with the claim in the slot word)
//! For position `p`, its slot's control word moves through
//! `(p, 0)` free → `(p, writer)` being written → `(p + 1, 0)` full →
//! `(p + 1, reader)` being read → `(p + capacity, 0)` free for the next lap.
//! Each arrow is one compare-and-swap or store on the slot word, so whoever claims a slot
//! records its pid in the same atomic step: there is no moment when a slot is taken and
//! nobody can say by whom. `tail`/`head` only say where to look; whoever sees that the slot
//! at the hint was already claimed moves the hint on (at most one behind).
//!
//! # What happens when a process dies
//! A slot left `(p, writer)` or `(p + 1, reader)` by a process that no longer exists blocks
//! whoever needs it next (the consumer at `head`, or the producer a lap later). That process
//! waits in slices; when a slice ends with the slot unchanged it checks the owner with
//! `kill(pid, 0)` (`OpenProcess` on Windows), and if the owner is gone it frees the slot in
//! one CAS (`(p + capacity, 0)`), adds one to `lost`, and everyone goes on. The half-written
//! or half-read message is lost: never delivered, never delivered twice. A dead process that
//! held no slot loses nothing. Same limits as [`crate::lock`]: a pid reused before anyone
//! looked keeps the slot (timeouts still work), and processes in other pid namespaces cannot
//! be checked.
//!
//! # Hostile bytes
//! The header's layout fields are validated once, at open, and kept in this handle (never
//! read again). Positions and slot words are read on every step and classified against the
//! states above; a state that fits none while the position did not move is
//! [`Error::QueueCorrupt`], as is a length above the maximum (that slot is freed and counted
//! lost). Every loop is bounded: by the caller's timeout when it sleeps, and by
//! [`MAX_STEPS`] compare-and-swap rounds when it does not.
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::futex::{self, WAIT_SLICE};
use crate::process::{self, current_pid};
use crate::segment::{load_bytes, store_bytes};
use crate::waiter::{AsyncWait, Sleep, Step};
use crate::{Error, Result, Segment, SegmentOptions};

const MAGIC: u32 = u32::from_le_bytes(*b"SHMQ");
/// 2: sleepers arm their channel's epoch and a wake disarms it (version 1 had no arming: its
/// sleepers would not be woken by version 2's wakers, so the two refuse each other's queues).
const VERSION: u32 = 2;
/// Bytes before slot 0.
pub const HEADER_BYTES: usize = 256;
/// Bytes before a slot's payload.
pub const SLOT_HEADER_BYTES: usize = 16;
/// The most slots a queue may have.
pub const MAX_CAPACITY: usize = 1 << 20;
/// The most bytes one message may take.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Slots are rounded up to this many bytes (a cache line, so payloads copy aligned).
const SLOT_ALIGN: usize = 64;
/// Compare-and-swap rounds an operation may take without sleeping before the queue's words
/// are judged to be changed by something that does not follow the protocol.
pub const MAX_STEPS: u32 = 1 << 20;
/// How long a blocked operation spins before it sleeps, by default.
const DEFAULT_SPIN: Duration = Duration::from_micros(20);

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 4;
const CAPACITY_AT: usize = 8;
const SLOT_BYTES_AT: usize = 12;
const MAX_MESSAGE_AT: usize = 16;
const TAIL_AT: usize = 64;
const HEAD_AT: usize = 128;
const FLAGS_AT: usize = 192;
const LOST_AT: usize = 196;
const DATA_EPOCH_AT: usize = 200;
const DATA_SLEEPERS_AT: usize = 204;
const SPACE_EPOCH_AT: usize = 208;
const SPACE_SLEEPERS_AT: usize = 212;
const ENDED: u32 = 1;
/// Bit 0 of an epoch word: set by whoever is about to sleep on it, cleared by the wake that
/// bumps it. A committer or freer makes the wake system call only while it is set, so the
/// sleepers count staying non-zero until a woken sleeper gets to run (tens of microseconds
/// under load) does not make every commit in between a system call.
const ARMED: u32 = 1;
/// How many times [`SharedQueue::notify`] retries its compare-and-swap on an epoch word that
/// keeps changing (racing wakers and sleepers) before it wakes unconditionally.
const DISARM_TRIES: u32 = 64;

/// Which sleepers a blocked operation joins: consumers wait for data, producers for space.
#[derive(Clone, Copy, Debug)]
enum Channel {
    Data,
    Space,
}

impl Channel {
    fn words(self) -> (usize, usize) {
        match self {
            Channel::Data => (DATA_EPOCH_AT, DATA_SLEEPERS_AT),
            Channel::Space => (SPACE_EPOCH_AT, SPACE_SLEEPERS_AT),
        }
    }
}

/// One message taken from the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The tag its producer gave it (what the payload is).
    pub tag: u8,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The bytes a queue of `capacity` slots for messages of up to `max_message` bytes takes,
/// with the capacity rounded as [`SharedQueue::create`] rounds it.
///
/// # Errors
/// [`Error::InvalidArgument`] outside `1..=MAX_CAPACITY` / `1..=MAX_MESSAGE_BYTES`.
pub fn segment_bytes(capacity: usize, max_message: usize) -> Result<usize> {
    let (capacity, slot_bytes) = shape(capacity, max_message)?;
    Ok(HEADER_BYTES + capacity * slot_bytes)
}

fn shape(capacity: usize, max_message: usize) -> Result<(usize, usize)> {
    if !(1..=MAX_CAPACITY).contains(&capacity) {
        return Err(Error::InvalidArgument(format!(
            "capacity must be an integer from 1 to {MAX_CAPACITY}, got {capacity}"
        )));
    }
    if !(1..=MAX_MESSAGE_BYTES).contains(&max_message) {
        return Err(Error::InvalidArgument(format!(
            "maxMessageSize must be an integer from 1 to {MAX_MESSAGE_BYTES}, got {max_message}"
        )));
    }
    Ok((capacity.next_power_of_two().max(2), slot_bytes_for(max_message)))
}

fn slot_bytes_for(max_message: usize) -> usize {
    (SLOT_HEADER_BYTES + max_message).div_ceil(SLOT_ALIGN) * SLOT_ALIGN
}

fn pack(seq: u32, owner: u32) -> u64 {
    u64::from(seq) | (u64::from(owner) << 32)
}

fn unpack(control: u64) -> (u32, u32) {
    (control as u32, (control >> 32) as u32)
}

/// A handle on a queue in a segment; see the module docs. Share it between threads with `Arc`.
#[derive(Debug)]
pub struct SharedQueue {
    segment: Arc<Segment>,
    capacity: u32,
    slot_bytes: usize,
    max_message: usize,
    me: u32,
    spin_nanos: AtomicU64,
}

impl SharedQueue {
    /// Creates a queue in a new segment made with `options`: `capacity` slots (rounded up to
    /// a power of two, at least 2) for messages of up to `max_message` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for sizes out of range; as [`SegmentOptions::create`].
    pub fn create(options: &SegmentOptions, capacity: usize, max_message: usize) -> Result<SharedQueue> {
        let (capacity, slot_bytes) = shape(capacity, max_message)?;
        let len = HEADER_BYTES + capacity * slot_bytes;
        let segment = options.create_filled(len, |bytes| {
            let put32 = |at: usize, value: u32| store_bytes(&bytes[at..at + 4], &value.to_ne_bytes());
            put32(VERSION_AT, VERSION);
            put32(CAPACITY_AT, capacity as u32);
            put32(SLOT_BYTES_AT, slot_bytes as u32);
            put32(MAX_MESSAGE_AT, max_message as u32);
            for index in 0..capacity {
                let at = HEADER_BYTES + index * slot_bytes;
                store_bytes(&bytes[at..at + 8], &pack(index as u32, 0).to_ne_bytes());
            }
            put32(MAGIC_AT, MAGIC);
            Ok(())
        })?;
        SharedQueue::from_segment(Arc::new(segment))
    }

    /// Opens the queue some process created under `name`.
    ///
    /// # Errors
    /// As [`Segment::open`]; [`Error::QueueCorrupt`] when the segment holds no valid queue.
    pub fn open(name: &str) -> Result<SharedQueue> {
        SharedQueue::from_segment(Arc::new(Segment::open(name)?))
    }

    /// The queue in an already mapped segment; its header is validated here, once.
    ///
    /// # Errors
    /// [`Error::QueueCorrupt`] when the header is not a version-1 queue that fits the segment.
    pub fn from_segment(segment: Arc<Segment>) -> Result<SharedQueue> {
        let read = |at: usize| -> Result<u32> { Ok(segment.word(at)?.load(Ordering::Acquire)) };
        if segment.len() < HEADER_BYTES {
            return Err(corrupt(format!("{} bytes cannot hold a queue's header", segment.len())));
        }
        let magic = read(MAGIC_AT)?;
        if magic != MAGIC {
            return Err(corrupt(format!("bad magic {magic:#010x}")));
        }
        let version = read(VERSION_AT)?;
        if version != VERSION {
            return Err(corrupt(format!("unknown version {version}")));
        }
        let capacity = read(CAPACITY_AT)? as usize;
        if !(2..=MAX_CAPACITY).contains(&capacity) || !capacity.is_power_of_two() {
            return Err(corrupt(format!(
                "capacity {capacity} is not a power of two in [2, {MAX_CAPACITY}]"
            )));
        }
        let max_message = read(MAX_MESSAGE_AT)? as usize;
        if !(1..=MAX_MESSAGE_BYTES).contains(&max_message) {
            return Err(corrupt(format!("max message size {max_message} is out of range")));
        }
        let slot_bytes = read(SLOT_BYTES_AT)? as usize;
        if slot_bytes != slot_bytes_for(max_message) {
            return Err(corrupt(format!(
                "slot size {slot_bytes} does not match the max message size {max_message}"
            )));
        }
        let needed = capacity
            .checked_mul(slot_bytes)
            .and_then(|slots| slots.checked_add(HEADER_BYTES))
            .filter(|&needed| needed <= segment.len());
        if needed.is_none() {
            return Err(corrupt(format!(
                "{capacity} slots of {slot_bytes} bytes do not fit the segment's {} bytes",
                segment.len()
            )));
        }
        let me = current_pid();
        if me == 0 || me == u32::MAX {
            return Err(Error::OutOfRange(format!("process id {me} does not fit a slot word")));
        }
        Ok(SharedQueue {
            segment,
            capacity: capacity as u32,
            slot_bytes,
            max_message,
            me,
            spin_nanos: AtomicU64::new(DEFAULT_SPIN.as_nanos() as u64),
        })
    }

    /// The segment the queue lives in.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The segment's name: what [`SharedQueue::open`] takes.
    pub fn name(&self) -> &str {
        self.segment.name()
    }

    /// How many messages fit (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The most bytes one message may take.
    pub fn max_message_size(&self) -> usize {
        self.max_message
    }

    /// How long a blocked `put`/`get` on this handle spins before it sleeps (default 20 µs).
    /// Longer spins cut the latency of a waiting consumer at the cost of a busy core.
    pub fn set_spin(&self, spin: Duration) {
        self.spin_nanos
            .store(u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// What a JS fast path over this queue's mapping needs, validated at open: `[header bytes,
    /// slot bytes, capacity, max message, tail at, head at, flags at, lost at, data sleepers at,
    /// space sleepers at, this process's id, data epoch at, space epoch at]` (offsets in bytes
    /// from the segment's start; the slot of position `p` starts at `header + (p & (capacity -
    /// 1)) * slot bytes`, its control word there, length at +8, tag at +12, payload at +16).
    /// After a commit (free), a fast path calls [`SharedQueue::wake`] only when the channel's
    /// sleepers count is non-zero and its epoch is armed (bit 0), as [`SharedQueue::notify`]
    /// decides.
    pub fn fast_path_layout(&self) -> [u32; 13] {
        [
            HEADER_BYTES as u32,
            self.slot_bytes as u32,
            self.capacity,
            self.max_message as u32,
            TAIL_AT as u32,
            HEAD_AT as u32,
            FLAGS_AT as u32,
            LOST_AT as u32,
            DATA_SLEEPERS_AT as u32,
            SPACE_SLEEPERS_AT as u32,
            self.me,
            DATA_EPOCH_AT as u32,
            SPACE_EPOCH_AT as u32,
        ]
    }

    /// Wakes sleeping consumers (`data`) or producers (`!data`), as the core does after it
    /// commits or frees a slot: for a fast path that found the channel's sleepers count
    /// non-zero after its own commit or free.
    ///
    /// # Errors
    /// [`Error::Closed`] when the segment is retired; an OS error from the wake.
    pub fn wake(&self, data: bool) -> Result<()> {
        self.segment.live()?;
        self.notify(if data { Channel::Data } else { Channel::Space })
    }

    /// Puts one message (`tag` says what its bytes are, for the reader), waiting up to
    /// `timeout` (`None`: for ever; zero: not at all) while the queue is full.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`]; [`Error::QueueFull`] when the timeout passes;
    /// [`Error::QueueEnded`] after [`SharedQueue::end`]; [`Error::Closed`] when the segment
    /// is retired; [`Error::QueueCorrupt`].
    pub fn put(&self, tag: u8, payload: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.put_with(tag, payload.len(), timeout, |slot| {
            store_bytes(slot, payload);
        })
    }

    /// Puts a message of `len` bytes that `write` writes straight into its slot (no copy in
    /// between): `write` gets exactly `len` bytes of shared memory. Blocks as
    /// [`SharedQueue::put`] does. If `write` panics, the slot is freed and counted lost.
    ///
    /// # Errors
    /// As [`SharedQueue::put`].
    pub fn put_with(
        &self,
        tag: u8,
        len: usize,
        timeout: Option<Duration>,
        write: impl FnOnce(&[AtomicU8]),
    ) -> Result<()> {
        if len > self.max_message {
            return Err(Error::MessageTooLarge {
                needed: len,
                max: self.max_message,
            });
        }
        let pos = self.claim_write(deadline(timeout))?;
        let claim = Claim {
            queue: self,
            pos,
            held: pack(pos, self.me),
        };
        let at = self.slot_at(pos);
        write(&self.segment.atomic_bytes()[at + SLOT_HEADER_BYTES..at + SLOT_HEADER_BYTES + len]);
        self.segment.word(at + 8)?.store(len as u32, Ordering::Relaxed);
        self.segment.word(at + 12)?.store(u32::from(tag), Ordering::Relaxed);
        claim.finish(pack(pos.wrapping_add(1), 0), Channel::Data)
    }

    /// Takes the oldest message, waiting up to `timeout` (`None`: for ever; zero: not at all)
    /// while the queue is empty.
    ///
    /// # Errors
    /// [`Error::QueueEmpty`] when the timeout passes; [`Error::QueueEnded`] when the queue was
    /// ended and is empty; [`Error::Closed`]; [`Error::QueueCorrupt`] (a message whose length
    /// is out of range is dropped and counted in [`SharedQueue::lost`]).
    pub fn get(&self, timeout: Option<Duration>) -> Result<Message> {
        self.get_with(timeout, |tag, slot| {
            let mut bytes = vec![0u8; slot.len()];
            load_bytes(slot, &mut bytes);
            Message { tag, bytes }
        })
    }

    /// Takes the oldest message and lets `read` see it in its slot (its tag and exactly its
    /// bytes of shared memory, which nobody else touches meanwhile); the slot is freed when
    /// `read` returns. Blocks as [`SharedQueue::get`] does. If `read` panics, the slot is
    /// freed and the message counted lost.
    ///
    /// # Errors
    /// As [`SharedQueue::get`].
    pub fn get_with<T>(&self, timeout: Option<Duration>, read: impl FnOnce(u8, &[AtomicU8]) -> T) -> Result<T> {
        let pos = self.claim_read(deadline(timeout))?;
        let claim = Claim {
            queue: self,
            pos,
            held: pack(pos.wrapping_add(1), self.me),
        };
        let at = self.slot_at(pos);
        let len = self.segment.word(at + 8)?.load(Ordering::Relaxed) as usize;
        let tag = self.segment.word(at + 12)?.load(Ordering::Relaxed) as u8;
        if len > self.max_message {
            // Dropping the claim frees the slot and counts the message lost.
            drop(claim);
            return Err(corrupt(format!(
                "the message at position {pos} claims {len} bytes; the most is {}",
                self.max_message
            )));
        }
        let value = read(
            tag,
            &self.segment.atomic_bytes()[at + SLOT_HEADER_BYTES..at + SLOT_HEADER_BYTES + len],
        );
        claim.finish(pack(pos.wrapping_add(self.capacity), 0), Channel::Space)?;
        Ok(value)
    }

    /// Reserves the slot of the next message for `len` bytes that the caller writes in place
    /// ([`WriteSlot::bytes`]) and then [`WriteSlot::commit`]s (or [`WriteSlot::abort`]s).
    /// Blocks as [`SharedQueue::put`] does. Until it is committed, consumers wait at this
    /// message (later ones stay behind it, so that each producer's order holds). A reservation
    /// dropped unfinished is aborted; one whose process dies is freed by whoever waits on it
    /// and counted in [`SharedQueue::lost`].
    ///
    /// # Errors
    /// As [`SharedQueue::put`].
    pub fn reserve(self: &Arc<Self>, len: usize, timeout: Option<Duration>) -> Result<WriteSlot> {
        if len > self.max_message {
            return Err(Error::MessageTooLarge {
                needed: len,
                max: self.max_message,
            });
        }
        let pos = self.claim_write(deadline(timeout))?;
        Ok(WriteSlot {
            queue: Arc::clone(self),
            pos,
            reserved: len,
            open: true,
        })
    }

    /// Takes the oldest message and lends its slot ([`ReadSlot::bytes`]) until
    /// [`ReadSlot::release`] (or drop). Blocks as [`SharedQueue::get`] does. While it is lent,
    /// other consumers go on; a producer that comes round to the slot a lap later waits for it.
    /// A borrow whose process dies is freed by that producer and counted in
    /// [`SharedQueue::lost`].
    ///
    /// # Errors
    /// As [`SharedQueue::get`].
    pub fn borrow(self: &Arc<Self>, timeout: Option<Duration>) -> Result<ReadSlot> {
        let pos = self.claim_read(deadline(timeout))?;
        let claim = Claim {
            queue: self,
            pos,
            held: pack(pos.wrapping_add(1), self.me),
        };
        let at = self.slot_at(pos);
        let len = self.segment.word(at + 8)?.load(Ordering::Relaxed) as usize;
        let tag = self.segment.word(at + 12)?.load(Ordering::Relaxed) as u8;
        if len > self.max_message {
            drop(claim);
            return Err(corrupt(format!(
                "the message at position {pos} claims {len} bytes; the most is {}",
                self.max_message
            )));
        }
        std::mem::forget(claim);
        Ok(ReadSlot {
            queue: Arc::clone(self),
            pos,
            len,
            tag,
            open: true,
        })
    }

    /// Waits up to `timeout` until a `get` may find something: a message, the end of the
    /// stream, or a dead writer's slot to free. Claims nothing, so a caller that is not there
    /// to take the message (an async wait given up) loses nothing. `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`Error::Closed`] when the segment is retired.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        self.wait_ready(Channel::Data, timeout)
    }

    /// Waits up to `timeout` until a `put` may find room (or the end of the stream, or a dead
    /// reader's slot to free). Claims nothing. `Ok(false)` on timeout.
    ///
    /// # Errors
    /// [`Error::Closed`] when the segment is retired.
    pub fn wait_writable(&self, timeout: Option<Duration>) -> Result<bool> {
        self.wait_ready(Channel::Space, timeout)
    }

    fn wait_ready(&self, channel: Channel, timeout: Option<Duration>) -> Result<bool> {
        let deadline = deadline(timeout);
        loop {
            self.segment.live()?;
            let Some(blocked) = self.blocked(channel)? else {
                return Ok(true);
            };
            if !self.block(channel, deadline, || self.still_blocked(channel, blocked))? {
                return Ok(false);
            }
        }
    }

    /// `None` when a `get` (`Channel::Data`) or `put` (`Channel::Space`) may go on: a message
    /// or room, the end of the stream, or a dead peer's slot to free. Else the position and
    /// slot control word that must change first.
    fn blocked(&self, channel: Channel) -> Result<Option<(u32, u64)>> {
        let pos = self.end_word(channel)?.load(Ordering::Acquire);
        let control = self.control(pos)?.load(Ordering::SeqCst);
        let (seq, owner) = unpack(control);
        let waits = match channel {
            Channel::Data => seq == pos,
            Channel::Space => {
                let previous = pos.wrapping_sub(self.capacity);
                seq == previous.wrapping_add(1) || (seq == previous && owner != 0)
            }
        };
        if !waits || self.is_ended() || (owner != 0 && !process::alive(owner)) {
            return Ok(None);
        }
        Ok(Some((pos, control)))
    }

    /// Whether nothing moved since [`Self::blocked`] said `blocked`.
    fn still_blocked(&self, channel: Channel, (pos, control): (u32, u64)) -> bool {
        let Ok(end) = self.end_word(channel) else {
            return false;
        };
        self.control(pos)
            .is_ok_and(|slot| slot.load(Ordering::SeqCst) == control)
            && end.load(Ordering::Acquire) == pos
            && !self.is_ended()
    }

    /// The position word a channel's waiter watches: the head for data, the tail for space.
    fn end_word(&self, channel: Channel) -> Result<&AtomicU32> {
        match channel {
            Channel::Data => self.segment.word(HEAD_AT),
            Channel::Space => self.segment.word(TAIL_AT),
        }
    }

    /// Marks the end of the stream: later `put`s fail with [`Error::QueueEnded`], and `get`s
    /// take what is left, then fail the same way. Wakes every sleeper.
    ///
    /// # Errors
    /// [`Error::Closed`] when the segment is retired.
    pub fn end(&self) -> Result<()> {
        self.segment.live()?;
        self.segment.word(FLAGS_AT)?.fetch_or(ENDED, Ordering::SeqCst);
        for channel in [Channel::Data, Channel::Space] {
            let (epoch, _) = channel.words();
            self.segment.word(epoch)?.fetch_add(1, Ordering::SeqCst);
            self.segment.notify(epoch, u32::MAX)?;
        }
        Ok(())
    }

    /// Whether [`SharedQueue::end`] was called (by any process).
    pub fn is_ended(&self) -> bool {
        self.segment
            .word(FLAGS_AT)
            .is_ok_and(|flags| flags.load(Ordering::SeqCst) & ENDED != 0)
    }

    /// About how many messages wait (exact when nothing moves), in `0..=capacity`.
    pub fn len(&self) -> usize {
        let (Ok(head), Ok(tail)) = (self.segment.word(HEAD_AT), self.segment.word(TAIL_AT)) else {
            return 0;
        };
        let head = head.load(Ordering::SeqCst);
        let tail = tail.load(Ordering::SeqCst);
        (tail.wrapping_sub(head) as i32).clamp(0, self.capacity as i32) as usize
    }

    /// Whether no message waits (as [`SharedQueue::len`], approximate while others move).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is full (approximate while others move).
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Messages lost so far because their writer or reader died holding their slot (or
    /// because their slot held an impossible length).
    pub fn lost(&self) -> u32 {
        self.lost_word().map_or(0, |lost| lost.load(Ordering::SeqCst))
    }

    fn lost_word(&self) -> Result<&AtomicU32> {
        self.segment.word(LOST_AT)
    }

    fn slot_at(&self, pos: u32) -> usize {
        HEADER_BYTES + (pos & (self.capacity - 1)) as usize * self.slot_bytes
    }

    fn control(&self, pos: u32) -> Result<&AtomicU64> {
        self.segment.word64(self.slot_at(pos))
    }

    fn spin(&self) -> Duration {
        Duration::from_nanos(self.spin_nanos.load(Ordering::Relaxed))
    }

    /// Claims the slot of the next position to write: `(p, 0)` → `(p, me)`.
    fn claim_write(&self, deadline: Option<Instant>) -> Result<u32> {
        let tail = self.segment.word(TAIL_AT)?;
        let cap = self.capacity;
        let mut steps = 0u32;
        let mut blocked_on = None;
        loop {
            steps = self.step(steps)?;
            if self.is_ended() {
                return Err(Error::QueueEnded);
            }
            let pos = tail.load(Ordering::Acquire);
            let slot = self.control(pos)?;
            let control = slot.load(Ordering::SeqCst);
            let (seq, owner) = unpack(control);
            if seq == pos && owner == 0 {
                if slot
                    .compare_exchange(control, pack(pos, self.me), Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    let _ = tail.compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed);
                    return Ok(pos);
                }
                continue;
            }
            if seq == pos || seq == pos.wrapping_add(1) || seq == pos.wrapping_add(cap) {
                // Position `pos` was claimed already; its claimer has yet to move the hint.
                let _ = tail.compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed);
                continue;
            }
            let previous = pos.wrapping_sub(cap);
            let full = seq == previous.wrapping_add(1) || (seq == previous && owner != 0);
            if full {
                if self.reclaim_if_dead(slot, control, previous, &mut blocked_on)? {
                    continue;
                }
                if !self.block(Channel::Space, deadline, || {
                    slot.load(Ordering::SeqCst) == control && !self.is_ended()
                })? {
                    // Before giving up, look once more at the owner (a zero timeout sees the
                    // slot only once).
                    if self.reclaim_if_dead(slot, control, previous, &mut Some(control))? {
                        continue;
                    }
                    return Err(Error::QueueFull);
                }
                steps = 0;
                continue;
            }
            if tail.load(Ordering::Acquire) == pos {
                return Err(corrupt(format!(
                    "the slot of write position {pos} holds sequence {seq} (owner {owner}), which no state of the queue explains"
                )));
            }
        }
    }

    /// Claims the slot of the next position to read: `(p + 1, 0)` → `(p + 1, me)`.
    fn claim_read(&self, deadline: Option<Instant>) -> Result<u32> {
        let head = self.segment.word(HEAD_AT)?;
        let cap = self.capacity;
        let mut steps = 0u32;
        let mut blocked_on = None;
        loop {
            steps = self.step(steps)?;
            let pos = head.load(Ordering::Acquire);
            let slot = self.control(pos)?;
            let control = slot.load(Ordering::SeqCst);
            let (seq, owner) = unpack(control);
            let next = pos.wrapping_add(1);
            if seq == next && owner == 0 {
                if slot
                    .compare_exchange(control, pack(next, self.me), Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    let _ = head.compare_exchange(pos, next, Ordering::SeqCst, Ordering::Relaxed);
                    return Ok(pos);
                }
                continue;
            }
            if seq == next || seq == pos.wrapping_add(cap) {
                // Being read, or already read (or given up): move the hint on.
                let _ = head.compare_exchange(pos, next, Ordering::SeqCst, Ordering::Relaxed);
                continue;
            }
            let previous = pos.wrapping_sub(cap);
            if seq == previous.wrapping_add(1) && owner != 0 {
                // A slow reader still holds the slot's previous lap while `head` went round:
                // nothing can be written at `pos` before it lets go. Empty, for now.
                if owner == 0 || self.reclaim_if_dead(slot, control, previous, &mut blocked_on)? {
                    continue;
                }
                if !self.block(Channel::Data, deadline, || slot.load(Ordering::SeqCst) == control)? {
                    if self.reclaim_if_dead(slot, control, previous, &mut Some(control))? {
                        continue;
                    }
                    return Err(Error::QueueEmpty);
                }
                steps = 0;
                continue;
            }
            if seq == pos {
                // Nothing written at `pos` yet (owner 0), or being written.
                if owner == 0 && self.is_ended() {
                    return Err(Error::QueueEnded);
                }
                if self.reclaim_if_dead(slot, control, pos, &mut blocked_on)? {
                    continue;
                }
                let still = || slot.load(Ordering::SeqCst) == control && !(owner == 0 && self.is_ended());
                if !self.block(Channel::Data, deadline, still)? {
                    if self.reclaim_if_dead(slot, control, pos, &mut Some(control))? {
                        continue;
                    }
                    return Err(Error::QueueEmpty);
                }
                steps = 0;
                continue;
            }
            if head.load(Ordering::Acquire) == pos {
                return Err(corrupt(format!(
                    "the slot of read position {pos} holds sequence {seq} (owner {owner}), which no state of the queue explains"
                )));
            }
        }
    }

    /// Counts one round of a loop that does not sleep, and gives up on a queue whose words
    /// keep changing in ways the protocol cannot produce.
    fn step(&self, steps: u32) -> Result<u32> {
        self.segment.live()?;
        if steps >= MAX_STEPS {
            return Err(corrupt(format!(
                "{MAX_STEPS} rounds without progress: the queue's words change outside the protocol"
            )));
        }
        Ok(steps + 1)
    }

    /// Frees a slot whose owner (writer or reader of position `pos`) has died, counting the
    /// message lost. Only a slot seen unchanged across one wait is checked, so a live owner in
    /// the middle of a copy costs one liveness check per wait slice at most.
    fn reclaim_if_dead(&self, slot: &AtomicU64, control: u64, pos: u32, blocked_on: &mut Option<u64>) -> Result<bool> {
        let (_, owner) = unpack(control);
        if owner == 0 || blocked_on.replace(control) != Some(control) || process::alive(owner) {
            return Ok(false);
        }
        let freed = pack(pos.wrapping_add(self.capacity), 0);
        if slot
            .compare_exchange(control, freed, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            self.lost_word()?.fetch_add(1, Ordering::SeqCst);
            let head = self.segment.word(HEAD_AT)?;
            let _ = head.compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed);
            self.notify(Channel::Space)?;
            self.notify(Channel::Data)?;
        }
        *blocked_on = None;
        Ok(true)
    }

    /// Waits while `still_blocked()`: spins for a while, then sleeps on the channel's epoch
    /// word in slices. `Ok(false)` when the deadline passed and it is still blocked;
    /// `Ok(true)` when it is worth looking again (it may still be blocked).
    fn block(&self, channel: Channel, deadline: Option<Instant>, still_blocked: impl Fn() -> bool) -> Result<bool> {
        let started = Instant::now();
        let spin = self.spin();
        let mut round = 0u32;
        loop {
            if !still_blocked() {
                return Ok(true);
            }
            round = round.wrapping_add(1);
            if round.is_multiple_of(64) {
                let now = Instant::now();
                if now.duration_since(started) >= spin || deadline.is_some_and(|d| now >= d) {
                    break;
                }
            }
            std::hint::spin_loop();
        }
        let slice = match deadline {
            Some(deadline) => WAIT_SLICE.min(deadline.saturating_duration_since(Instant::now())),
            None => WAIT_SLICE,
        };
        if slice.is_zero() {
            return Ok(!still_blocked());
        }
        let (epoch_at, sleepers_at) = channel.words();
        let epoch = self.segment.word(epoch_at)?;
        let sleepers = self.segment.word(sleepers_at)?;
        let seen = epoch.fetch_or(ARMED, Ordering::SeqCst) | ARMED;
        sleepers.fetch_add(1, Ordering::SeqCst);
        let slept = if still_blocked() {
            futex::wait(epoch, seen, slice).map(|_| ())
        } else {
            Ok(())
        };
        sleepers.fetch_sub(1, Ordering::SeqCst);
        slept.map_err(|e| Error::os("wait", self.segment.name(), e))?;
        self.segment.live()?;
        Ok(true)
    }

    /// Wakes the channel's sleepers, if any: one atomic load when none sleeps, two when one
    /// sleeps that an earlier wake already reached, and the system call only for sleepers
    /// that armed the epoch since the last wake.
    ///
    /// Why no sleeper is missed: a sleeper arms the epoch, counts itself in, then looks at the
    /// queue once more before it sleeps on the armed value; this is called after a commit
    /// (free). All are sequentially consistent, so either the sleeper's look sees the commit,
    /// or this sees its count and its arming, bumps the epoch (which it sleeps on) and wakes
    /// it. A wake that finds the epoch disarmed comes after another wake that bumped it past
    /// every armed value a sleeper may sleep on.
    fn notify(&self, channel: Channel) -> Result<()> {
        let (epoch_at, sleepers_at) = channel.words();
        if self.segment.word(sleepers_at)?.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let epoch = self.segment.word(epoch_at)?;
        let mut seen = epoch.load(Ordering::SeqCst);
        let mut tries = 0;
        loop {
            if seen & ARMED == 0 {
                return Ok(());
            }
            let woken = (seen & !ARMED).wrapping_add(2);
            match epoch.compare_exchange(seen, woken, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
            tries += 1;
            if tries == DISARM_TRIES {
                // Peers change the word without pause: bump it regardless, and wake.
                epoch.fetch_add(2, Ordering::SeqCst);
                break;
            }
        }
        futex::wake(epoch, u32::MAX).map_err(|e| Error::os("notify", self.segment.name(), e))?;
        Ok(())
    }
}

/// A slot this handle claimed (to write or to read). [`Claim::finish`] passes it on; dropped
/// unfinished (an error or a panic on the way), it frees the slot for the next lap and counts
/// its message lost, so that no live process keeps a slot it will never finish.
struct Claim<'q> {
    queue: &'q SharedQueue,
    pos: u32,
    held: u64,
}

impl Claim<'_> {
    fn finish(self, next: u64, wake: Channel) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.queue.finish(this.pos, this.held, next, wake)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.queue.free(self.pos, self.held, true);
    }
}

impl SharedQueue {
    /// Passes on a slot this handle holds (`held`), to `next`, and wakes `wake`.
    fn finish(&self, pos: u32, held: u64, next: u64, wake: Channel) -> Result<()> {
        self.control(pos)?
            .compare_exchange(held, next, Ordering::SeqCst, Ordering::Relaxed)
            .map_err(|found| {
                corrupt(format!(
                    "the slot of position {pos} changed while this process held it ({found:#x})"
                ))
            })?;
        self.notify(wake)
    }

    /// Frees a slot this handle holds (`held`) for the next lap, with no message in it;
    /// `lost` says whether a message was given up (then it is counted).
    fn free(&self, pos: u32, held: u64, lost: bool) {
        let Ok(slot) = self.control(pos) else { return };
        let freed = pack(pos.wrapping_add(self.capacity), 0);
        if slot
            .compare_exchange(held, freed, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            if lost {
                if let Ok(word) = self.lost_word() {
                    word.fetch_add(1, Ordering::SeqCst);
                }
            }
            if let Ok(head) = self.segment.word(HEAD_AT) {
                let _ = head.compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed);
            }
            let _ = self.notify(Channel::Space);
            let _ = self.notify(Channel::Data);
        }
    }
}

/// A slot reserved for writing one message in place: see [`SharedQueue::reserve`].
#[derive(Debug)]
pub struct WriteSlot {
    queue: Arc<SharedQueue>,
    pos: u32,
    reserved: usize,
    open: bool,
}

impl WriteSlot {
    /// The bytes reserved, in shared memory (nobody else touches them until the commit).
    pub fn bytes(&self) -> &[AtomicU8] {
        let at = self.payload_offset();
        &self.queue.segment.atomic_bytes()[at..at + self.reserved]
    }

    /// Where [`WriteSlot::bytes`] start in the queue's segment.
    pub fn payload_offset(&self) -> usize {
        self.queue.slot_at(self.pos) + SLOT_HEADER_BYTES
    }

    /// How many bytes were reserved.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Whether it is still to be committed or aborted.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Publishes the first `len` bytes as a message with `tag`: consumers may take it now.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] when `len` is above what was reserved, and
    /// [`Error::SlotFinished`] after a commit or abort (the reservation is unchanged by
    /// either); [`Error::Closed`] when the segment was retired (the reservation stays, and is
    /// aborted when dropped); [`Error::QueueCorrupt`] when the slot word was changed under it.
    pub fn commit(&mut self, tag: u8, len: usize) -> Result<()> {
        if !self.open {
            return Err(Error::SlotFinished("committed or aborted"));
        }
        if len > self.reserved {
            return Err(Error::OutOfRange(format!(
                "commit length {len} is above the {} bytes reserved",
                self.reserved
            )));
        }
        let queue = &self.queue;
        queue.segment.live()?;
        let at = queue.slot_at(self.pos);
        queue.segment.word(at + 8)?.store(len as u32, Ordering::Relaxed);
        queue.segment.word(at + 12)?.store(u32::from(tag), Ordering::Relaxed);
        self.open = false;
        queue.finish(
            self.pos,
            pack(self.pos, queue.me),
            pack(self.pos.wrapping_add(1), 0),
            Channel::Data,
        )
    }

    /// Gives the slot up without a message (not counted lost: nothing was put).
    ///
    /// # Errors
    /// [`Error::SlotFinished`] after a commit or abort.
    pub fn abort(&mut self) -> Result<()> {
        if !self.open {
            return Err(Error::SlotFinished("committed or aborted"));
        }
        self.open = false;
        self.queue.free(self.pos, pack(self.pos, self.queue.me), false);
        Ok(())
    }
}

impl Drop for WriteSlot {
    fn drop(&mut self) {
        if self.open {
            self.open = false;
            self.queue.free(self.pos, pack(self.pos, self.queue.me), false);
        }
    }
}

/// A message lent in its slot: see [`SharedQueue::borrow`].
#[derive(Debug)]
pub struct ReadSlot {
    queue: Arc<SharedQueue>,
    pos: u32,
    len: usize,
    tag: u8,
    open: bool,
}

impl ReadSlot {
    /// The message's bytes, in shared memory (nobody else touches them until the release).
    pub fn bytes(&self) -> &[AtomicU8] {
        let at = self.payload_offset();
        &self.queue.segment.atomic_bytes()[at..at + self.len]
    }

    /// Where [`ReadSlot::bytes`] start in the queue's segment.
    pub fn payload_offset(&self) -> usize {
        self.queue.slot_at(self.pos) + SLOT_HEADER_BYTES
    }

    /// The message's length in bytes (checked against the queue's maximum).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tag its producer gave it.
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// Whether it is still to be released.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Frees the slot for the next lap (the message is taken; this is not a loss).
    ///
    /// # Errors
    /// [`Error::SlotFinished`] after a release; [`Error::QueueCorrupt`] when the slot word was
    /// changed under it.
    pub fn release(&mut self) -> Result<()> {
        if !self.open {
            return Err(Error::SlotFinished("released"));
        }
        self.open = false;
        let queue = &self.queue;
        let pos = self.pos;
        queue.finish(
            pos,
            pack(pos.wrapping_add(1), queue.me),
            pack(pos.wrapping_add(queue.capacity), 0),
            Channel::Space,
        )
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        if self.open {
            let _ = self.release();
        }
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too long to add is no timeout.
    timeout.and_then(|t| Instant::now().checked_add(t))
}

fn corrupt(why: String) -> Error {
    Error::QueueCorrupt(why)
}

/// [`SharedQueue::wait_readable`] / [`SharedQueue::wait_writable`] as an [`AsyncWait`], for
/// [`crate::waiter::submit`]: `true` once a `get` / `put` may go on, `false` on timeout.
/// Like them it claims nothing; it counts itself among the channel's sleepers while it sleeps,
/// so that producers and consumers wake it.
#[derive(Debug)]
pub struct ReadyWait {
    queue: Arc<SharedQueue>,
    channel: Channel,
    deadline: Option<Instant>,
    /// Whether it counts among the channel's sleepers now.
    counted: bool,
}

impl ReadyWait {
    /// Waits for something to read, at most `timeout` (`None`: forever).
    pub fn readable(queue: Arc<SharedQueue>, timeout: Option<Duration>) -> ReadyWait {
        ReadyWait::new(queue, Channel::Data, timeout)
    }

    /// Waits for room to write, at most `timeout` (`None`: forever).
    pub fn writable(queue: Arc<SharedQueue>, timeout: Option<Duration>) -> ReadyWait {
        ReadyWait::new(queue, Channel::Space, timeout)
    }

    fn new(queue: Arc<SharedQueue>, channel: Channel, timeout: Option<Duration>) -> ReadyWait {
        ReadyWait {
            queue,
            channel,
            deadline: deadline(timeout),
            counted: false,
        }
    }

    fn uncount(&mut self) {
        if self.counted {
            self.counted = false;
            let (_, sleepers_at) = self.channel.words();
            if let Ok(sleepers) = self.queue.segment.word(sleepers_at) {
                sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl AsyncWait for ReadyWait {
    type Output = bool;

    fn step(&mut self, _woken: bool) -> Result<Step<bool>> {
        self.uncount();
        let queue = Arc::clone(&self.queue);
        let (epoch_at, sleepers_at) = self.channel.words();
        loop {
            queue.segment.live()?;
            let Some(blocked) = queue.blocked(self.channel)? else {
                return Ok(Step::Done(true));
            };
            if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(Step::Done(false));
            }
            // As `block`: arm the epoch, count in, and sleep only if nothing moved meanwhile.
            let seen = queue.segment.word(epoch_at)?.fetch_or(ARMED, Ordering::SeqCst) | ARMED;
            queue.segment.word(sleepers_at)?.fetch_add(1, Ordering::SeqCst);
            self.counted = true;
            if queue.still_blocked(self.channel, blocked) {
                return Sleep::new(Arc::clone(&queue.segment), epoch_at, seen, self.deadline).map(Step::Sleep);
            }
            self.uncount();
        }
    }
}

impl Drop for ReadyWait {
    fn drop(&mut self) {
        self.uncount();
    }
}
