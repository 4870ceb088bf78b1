//! CPython's `ShareableList` layout (3.9 – 3.14): encode a list into bytes, validate bytes
//! read from a segment, read and write single items. Works on private byte slices and on a
//! segment's atomic view ([`crate::Segment::atomic_bytes`]): no mapping, no `unsafe`. The
//! per-item lock of shmkit writers, and the back-off around it, are in `item_lock`.
//!
//! Every offset, length, format and code read from a segment is untrusted: it is copied
//! once, the copy is validated, and only the copy is used. A reader never writes a byte of
//! the segment (CPython readers of the same list see exactly what they would without us);
//! it gets a consistent item by copying it twice and checking that nothing changed, see
//! [`Layout::read_live`].
//!
//! The layout, all integers native-endian (little-endian on every supported platform), every
//! field a multiple of 8 bytes:
//!
//! - `0`: int64 `N`, the item count;
//! - `8`: `N + 1` int64 slot offsets `off[0] = 0 … off[N]`, relative to the data area;
//! - [`data_start`] `= 8 (N + 2)`: item `i` occupies `[data_start + off[i], data_start + off[i+1])`;
//! - [`formats_start`] `= data_start + off[N]`: `N` 8-byte struct formats, NUL-padded;
//! - [`codes_start`] `= formats_start + 8 N`: `N` one-byte "back-transform" codes.
//!
//! | value | format | slot | code |
//! | --- | --- | --- | --- |
//! | int64 | `q` | int64 | 0 |
//! | float64 | `d` | float64 | 0 |
//! | bool | `xxxxxxx?` | 7 zero bytes, then 0/1 | 0 |
//! | None | `xxxxxx?x` | 8 zero bytes | 3 |
//! | str | `<n>s` | UTF-8, NUL-padded to n | 1 |
//! | bytes | `<n>s` | raw, NUL-padded to n | 2 |
//!
//! Reading a str or bytes item strips *all* trailing NUL bytes, as CPython does
//! (gh-96779/gh-106939): `b"ab\0"` reads back as `b"ab"` in both languages.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{fence, AtomicU8, Ordering};
use std::time::{Duration, Instant};

mod item_lock;

use item_lock::{
    watch_for_release, Backoff, GaveUp, ItemLock, Look, BUSY_LIMIT, CHANGE_LIMIT, CODE_BUSY, WRITER_CHANGE_LIMIT,
};

use crate::segment::{atomic_slice, fill_bytes, load_bytes, load_word, store_bytes};
use crate::{Error, Result};

/// One item of a list, borrowed: what is written, and what is read (borrowing a private copy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item<'a> {
    /// Python `int` within int64 (`q`).
    Int(i64),
    /// Python `float` (`d`).
    Float(f64),
    /// Python `bool` (`xxxxxxx?`).
    Bool(bool),
    /// Python `None` (`xxxxxx?x`).
    None,
    /// Python `str` (`<n>s`, code 1).
    Str(&'a str),
    /// Python `bytes` (`<n>s`, code 2).
    Bytes(&'a [u8]),
}

/// An item that owns its text or bytes (for values that outlive their source).
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedItem {
    /// Python `int` within int64.
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `bool`.
    Bool(bool),
    /// Python `None`.
    None,
    /// Python `str`.
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
}

impl OwnedItem {
    /// The borrowed [`Item`] to write.
    pub fn item(&self) -> Item<'_> {
        match self {
            OwnedItem::Int(v) => Item::Int(*v),
            OwnedItem::Float(v) => Item::Float(*v),
            OwnedItem::Bool(v) => Item::Bool(*v),
            OwnedItem::None => Item::None,
            OwnedItem::Str(s) => Item::Str(s),
            OwnedItem::Bytes(b) => Item::Bytes(b),
        }
    }
}

const FORMAT_LEN: usize = 8;
const SLOT_ALIGN: usize = 8;
/// The largest str/bytes slot whose format (`9999992s`) still fits 8 bytes; CPython would
/// silently truncate the format of a larger one. It also bounds every str/bytes item: a
/// larger foreign slot holds at most this many bytes of text (its format says `9999992s`).
pub const MAX_SLOT_LEN: usize = 9_999_992;
/// Bytes the smallest item takes: its offset, an 8-byte slot, its format and its code.
const MIN_ITEM_LEN: usize = 8 + 8 + FORMAT_LEN + 1;
/// The count and `off[0]`: all an empty list has.
const HEADER_LEN: usize = 16;
/// The smallest page size of the supported OSes: segments there are multiples of it
/// (macOS and Windows round sizes up to pages; Linux keeps them exact).
const PAGE_LEN: usize = 4096;
/// The largest page of the supported OSes (64 KiB: some Linux arm64 kernels; Apple silicon
/// has 16 KiB). An empty list (16 bytes) rounds up to one page at most, so a segment of zeros
/// larger than this is never a finished empty list.
const LARGEST_PAGE_LEN: usize = 64 * 1024;

const FORMAT_INT: &[u8; 8] = b"q\0\0\0\0\0\0\0";
const FORMAT_FLOAT: &[u8; 8] = b"d\0\0\0\0\0\0\0";
const FORMAT_BOOL: &[u8; 8] = b"xxxxxxx?";
const FORMAT_NONE: &[u8; 8] = b"xxxxxx?x";

const CODE_PLAIN: u8 = 0;
const CODE_STR: u8 = 1;
const CODE_BYTES: u8 = 2;
const CODE_NONE: u8 = 3;

/// Start of the data area for `n` items: after the count and the `n + 1` offsets (`None` on
/// overflow, as for the other positions).
pub fn data_start(n: usize) -> Option<usize> {
    n.checked_add(2)?.checked_mul(8)
}

/// Start of the formats for `n` items whose slots take `data_len` bytes.
pub fn formats_start(n: usize, data_len: usize) -> Option<usize> {
    data_start(n)?.checked_add(data_len)
}

/// Start of the back-transform codes.
pub fn codes_start(n: usize, data_len: usize) -> Option<usize> {
    formats_start(n, data_len)?.checked_add(n.checked_mul(FORMAT_LEN)?)
}

/// Total bytes of a list of `n` items whose slots take `data_len` bytes.
pub fn total_len(n: usize, data_len: usize) -> Option<usize> {
    codes_start(n, data_len)?.checked_add(n)
}

/// The slot CPython gives a str/bytes of `units` (code points or bytes): `8 * (units // 8 + 1)`.
fn cpython_slot(units: usize) -> usize {
    (units / SLOT_ALIGN).saturating_add(1).saturating_mul(SLOT_ALIGN)
}

/// The slot an item needs. str: CPython's size from code points whenever the UTF-8 bytes fit
/// it (so lists CPython stores correctly are byte-identical), else the next multiple of 8
/// that holds the bytes, where CPython would truncate (gh-88336).
pub fn slot_len(item: &Item<'_>) -> usize {
    match item {
        Item::Str(s) => {
            let slot = cpython_slot(s.chars().count());
            if s.len() <= slot {
                slot
            } else {
                s.len().div_ceil(SLOT_ALIGN).saturating_mul(SLOT_ALIGN)
            }
        }
        Item::Bytes(b) => cpython_slot(b.len()),
        _ => 8,
    }
}

/// Where one item lives: its slot, its format and its code byte (absolute positions).
struct Fields {
    slot: Range<usize>,
    format: usize,
    code: usize,
}

/// The validated shape of a list: its count and slot offsets, read once at attach. CPython
/// never changes them after creation, so later accesses use these and never trust the
/// segment's copy again; formats, codes and data are re-read (and re-validated) on every
/// access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `off[0] = 0 … off[N]`, each slot a positive multiple of 8 bytes.
    offsets: Vec<usize>,
    data_at: usize,
    formats_at: usize,
    codes_at: usize,
    total: usize,
}

/// Why a segment is not (yet) a list.
enum Problem {
    /// Never a valid list.
    Bad(Error),
    /// What a list still being written looks like; `otherwise` is the answer if it stays so
    /// for `grace`.
    Unfinished { otherwise: Result<Layout>, grace: Duration },
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::Bad(e)
    }
}

/// How long [`Layout::attach`] waits for a list that looks half-written (its creator is
/// still writing it) before taking it as it stands.
const UNFINISHED_GRACE: Duration = Duration::from_millis(200);

/// The same for a list whose shmkit creator has laid out every offset and is filling the items
/// (the count goes last) where it cannot hide the list until complete (Windows, macOS). That
/// takes longer for a big list — about 200 ms for a million items natively, more under Wine —
/// and a creator this far along almost always finishes: only a creator that dies mid-fill
/// costs an opener this wait.
const FILLING_GRACE: Duration = Duration::from_secs(5);

impl Layout {
    fn from_offsets(offsets: Vec<usize>) -> Option<Layout> {
        let n = offsets.len().checked_sub(1)?;
        let data_len = *offsets.last()?;
        Some(Layout {
            data_at: data_start(n)?,
            formats_at: formats_start(n, data_len)?,
            codes_at: codes_start(n, data_len)?,
            total: total_len(n, data_len)?,
            offsets,
        })
    }

    fn empty() -> Layout {
        Layout {
            offsets: vec![0],
            data_at: HEADER_LEN,
            formats_at: HEADER_LEN,
            codes_at: HEADER_LEN,
            total: HEADER_LEN,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The validated slot offsets `off[0] = 0 … off[N]` (relative to [`data_start`]), for a
    /// second accessor of the same list (the Node binding's JS fast path) that must never
    /// trust the segment's copy of them either.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Bytes the whole list takes.
    pub fn total_len(&self) -> usize {
        self.total
    }

    /// Bytes needed to hold `items`.
    ///
    /// # Errors
    /// [`Error::ValueTooLarge`] when a str/bytes needs a slot over [`MAX_SLOT_LEN`] or the
    /// list would not fit the address space.
    pub fn for_items(items: &[Item<'_>]) -> Result<Layout> {
        let too_large = || Error::ValueTooLarge {
            needed: usize::MAX,
            allocated: isize::MAX as usize,
        };
        let mut offsets = Vec::new();
        offsets
            .try_reserve_exact(items.len().saturating_add(1))
            .map_err(|_| too_large())?;
        offsets.push(0usize);
        let mut end = 0usize;
        for item in items {
            let slot = slot_len(item);
            if slot > MAX_SLOT_LEN {
                return Err(Error::ValueTooLarge {
                    needed: slot,
                    allocated: MAX_SLOT_LEN,
                });
            }
            end = end.checked_add(slot).ok_or_else(too_large)?;
            offsets.push(end);
        }
        Layout::from_offsets(offsets)
            .filter(|layout| layout.total <= isize::MAX as usize)
            .ok_or_else(too_large)
    }

    /// Reads and validates a list from a private copy of a segment's bytes: header, offsets
    /// (starting at 0, increasing by multiples of 8, inside the bytes), and every item's
    /// format and code. A live segment is attached with [`Layout::attach`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming what is wrong. A CPython 3.8 list (per-item sizes instead of
    /// offsets) is recognised and refused as such.
    pub fn read(bytes: &[u8]) -> Result<Layout> {
        match Layout::parse(bytes) {
            Ok(layout) => Ok(layout),
            Err(Problem::Bad(e)) => Err(e),
            Err(Problem::Unfinished { otherwise, .. }) => otherwise,
        }
    }

    /// Reads and validates the list in a live segment, as [`Layout::read`], copying each
    /// field once before checking it. A list that looks half-written — what an open racing
    /// its creator sees where the creator cannot hide it until complete — is waited for,
    /// briefly ([`UNFINISHED_GRACE`]; [`FILLING_GRACE`] once a shmkit creator has laid out
    /// its offsets), then taken as it stands.
    ///
    /// # Errors
    /// As [`Layout::read`].
    pub fn attach(mem: &[AtomicU8]) -> Result<Layout> {
        // The grace the deadline was set for, and the deadline.
        let mut deadline: Option<(Duration, Instant)> = None;
        loop {
            let (otherwise, grace) = match Layout::parse(mem) {
                Ok(layout) => return Ok(layout),
                Err(Problem::Unfinished { otherwise, grace }) => (otherwise, grace),
                Err(Problem::Bad(e)) => return Err(e),
            };
            let now = Instant::now();
            // A creator seen sizing the list and then filling it gets the longer grace from
            // when it started filling. Only ever lengthened, so a peer flipping the bytes back
            // and forth cannot keep an opener waiting beyond both graces.
            let until = match deadline {
                Some((set_for, until)) if set_for >= grace => until,
                _ => {
                    let until = now.checked_add(grace).unwrap_or(now);
                    deadline = Some((grace, until));
                    until
                }
            };
            if now >= until {
                return otherwise;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn parse<S: Source + ?Sized>(src: &S) -> std::result::Result<Layout, Problem> {
        let len = src.size();
        let count = src
            .word(0)
            .map(i64::from_ne_bytes)
            .ok_or_else(|| corrupt("shorter than the 8-byte item count"))?;
        let n = usize::try_from(count).map_err(|_| corrupt(format!("item count {count} is negative")))?;
        // (Measured from the count only, so that a CPython 3.8 list, one offset shorter, is
        // still recognised below.)
        if n > len.saturating_sub(8) / MIN_ITEM_LEN {
            return Err(corrupt(format!("item count {n} cannot fit in {len} bytes")).into());
        }
        let first = src.word(8).ok_or_else(|| corrupt("offsets run past the end"))?;
        if first != [0; 8] {
            return Err(legacy_or_bad_start(src, n, i64::from_ne_bytes(first)).into());
        }
        if n == 0 {
            // A shmkit creator that cannot hide a list until it is complete stores the count
            // last: a count of 0 followed by a first slot's end is a list still being written.
            // So is a segment of zeros longer than an empty list (16 bytes) that no page
            // rounding explains: a creator (CPython's, say, or shmkit's an instant before it
            // writes the offsets) that has sized it but not written yet. (Up to a page they
            // are taken at once: on macOS and Windows every empty list is a page of zeros.)
            let filling = src.word(HEADER_LEN).is_some_and(|w| w != [0; 8]);
            let sized_only = len > HEADER_LEN && (!len.is_multiple_of(PAGE_LEN) || len > LARGEST_PAGE_LEN);
            if filling || sized_only {
                return Err(Problem::Unfinished {
                    otherwise: Ok(Layout::empty()),
                    grace: if filling { FILLING_GRACE } else { UNFINISHED_GRACE },
                });
            }
            return Ok(Layout::empty());
        }
        let data_at = data_start(n).ok_or_else(|| corrupt("offsets overflow"))?;
        let tail = n
            .checked_mul(FORMAT_LEN + 1)
            .ok_or_else(|| corrupt("offsets overflow"))?;
        let mut offsets = Vec::new();
        // Grows only with offsets already validated: a lying count allocates nothing.
        offsets
            .try_reserve(n.min(4096).saturating_add(1))
            .map_err(|_| no_memory())?;
        offsets.push(0usize);
        let mut prev = 0usize;
        for i in 0..n {
            let at = i
                .checked_add(2)
                .and_then(|k| k.checked_mul(8))
                .ok_or_else(|| corrupt("offsets overflow"))?;
            let raw = src
                .word(at)
                .map(i64::from_ne_bytes)
                .ok_or_else(|| corrupt("offsets run past the end"))?;
            let off = usize::try_from(raw)
                .map_err(|_| corrupt(format!("offset {} is negative ({raw})", i.saturating_add(1))))?;
            let spans = corrupt(format!(
                "slot {i} spans [{prev}, {off}): not a positive multiple of 8 bytes"
            ));
            if off == 0 {
                // CPython writes the count first, then the offsets.
                return Err(Problem::Unfinished {
                    otherwise: Err(spans),
                    grace: UNFINISHED_GRACE,
                });
            }
            let step = off
                .checked_sub(prev)
                .filter(|&d| d >= SLOT_ALIGN && d.is_multiple_of(SLOT_ALIGN));
            if step.is_none() {
                return Err(spans.into());
            }
            let total = data_at
                .checked_add(off)
                .and_then(|t| t.checked_add(tail))
                .ok_or_else(|| corrupt("offsets overflow"))?;
            if total > len {
                return Err(corrupt(format!("the list needs {total} bytes; the segment has {len}")).into());
            }
            offsets.try_reserve(1).map_err(|_| no_memory())?;
            offsets.push(off);
            prev = off;
        }
        let layout = Layout::from_offsets(offsets).ok_or_else(|| corrupt("offsets overflow"))?;
        for i in 0..n {
            // An item another process is writing right now is checked when it is read.
            let Some((format, code)) = src.head(&layout, i)? else {
                continue;
            };
            let checked = kind_of(&format, code, layout.slot_len(i), i);
            if format == [0; 8] && code == 0 {
                // Never written: its creator has not got this far yet.
                return Err(Problem::Unfinished {
                    otherwise: checked.map(|_| layout),
                    grace: UNFINISHED_GRACE,
                });
            }
            checked?;
        }
        Ok(layout)
    }

    /// Writes `items` into a buffer this code owns (at least [`Layout::total_len`] long) in
    /// CPython's layout.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if `bytes` is too short (a caller bug; nothing is written then).
    pub fn write_all(&self, bytes: &mut [u8], items: &[Item<'_>]) -> Result<()> {
        self.fill(atomic_slice(bytes), items)
    }

    /// Writes `items` into a fresh segment in CPython's layout. The count goes last, so that
    /// [`Layout::attach`] by another process sees an unfinished list, never a wrong one.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if `mem` is too short (a caller bug; nothing is written then).
    pub fn fill(&self, mem: &[AtomicU8], items: &[Item<'_>]) -> Result<()> {
        if mem.len() < self.total || items.len() != self.len() {
            return Err(corrupt("buffer too small for the list"));
        }
        for (i, off) in self.offsets.iter().enumerate() {
            let at = i.saturating_add(1).saturating_mul(8);
            let off = i64::try_from(*off).map_err(|_| corrupt("offsets overflow"))?;
            store_bytes(region(mem, at, 8)?, &off.to_ne_bytes());
        }
        for (i, item) in items.iter().enumerate() {
            let (format, code) = self.format_and_code(i, item)?;
            let fields = self.fields(i)?;
            write_data(region(mem, fields.slot.start, fields.slot.len())?, item);
            store_bytes(region(mem, fields.format, FORMAT_LEN)?, &format);
            cell(mem, fields.code)?.store(code, Ordering::Relaxed);
        }
        let count = i64::try_from(self.len()).map_err(|_| corrupt("count overflow"))?;
        fence(Ordering::Release);
        store_bytes(region(mem, 0, 8)?, &count.to_ne_bytes());
        Ok(())
    }

    /// Bytes a str/bytes item at `index` can hold (its slot; 0 outside the list).
    pub fn slot_len(&self, index: usize) -> usize {
        self.fields(index).map_or(0, |f| f.slot.len())
    }

    /// The longest str/bytes item `index` can take: its slot, up to [`MAX_SLOT_LEN`] (a
    /// larger foreign slot's format cannot say more).
    fn capacity(&self, index: usize) -> usize {
        self.slot_len(index).min(MAX_SLOT_LEN)
    }

    fn fields(&self, index: usize) -> Result<Fields> {
        let bad = || corrupt(format!("no item {index} in a list of {}", self.len()));
        let start = *self.offsets.get(index).ok_or_else(bad)?;
        let end = *self
            .offsets
            .get(index.checked_add(1).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let slot_start = self.data_at.checked_add(start).ok_or_else(bad)?;
        let slot_end = self.data_at.checked_add(end).ok_or_else(bad)?;
        let format = index
            .checked_mul(FORMAT_LEN)
            .and_then(|at| self.formats_at.checked_add(at))
            .ok_or_else(bad)?;
        let code = self.codes_at.checked_add(index).ok_or_else(bad)?;
        Ok(Fields {
            slot: slot_start..slot_end,
            format,
            code,
        })
    }

    /// Checks `index` against the count; negative indices count from the end, as in Python.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] outside `[-len, len)`.
    pub fn position(&self, index: i64) -> Result<usize> {
        let len = i64::try_from(self.len()).unwrap_or(i64::MAX);
        let pos = if index < 0 { index.checked_add(len) } else { Some(index) };
        match pos {
            Some(p) if (0..len).contains(&p) => {
                usize::try_from(p).map_err(|_| Error::IndexOutOfRange { index, len: self.len() })
            }
            _ => Err(Error::IndexOutOfRange { index, len: self.len() }),
        }
    }

    /// Reads item `index` of a private copy of a list's bytes; str/bytes borrow `bytes`, with
    /// trailing NULs stripped. A live segment is read with [`Layout::read_live`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] when its format or code is invalid or a str is not UTF-8.
    pub fn get<'a>(&self, bytes: &'a [u8], index: usize) -> Result<Item<'a>> {
        let fields = self.fields(index)?;
        let (format, code) = bytes.head(self, index)?.ok_or_else(|| mid_write(index))?;
        let kind = kind_of(&format, code, fields.slot.len(), index)?;
        let slot = bytes.get(fields.slot).ok_or_else(|| corrupt("slot past the end"))?;
        decode(kind, slot, index)
    }

    /// Reads item `index` of a segment other processes may be writing, without writing a
    /// byte of it: code, format and data are copied twice, and the copy is used only when
    /// both copies and the code around them agree and no shmkit writer held the item (a
    /// seqlock without a counter, which CPython's layout has no room for). int and float
    /// are one 8-byte atomic load each. str/bytes are copied into `scratch`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the item is invalid or not UTF-8, stayed mid-write on every
    /// look for 1 s (its writer died between its stores; setting the item again repairs
    /// it), or changed under every copy for 1 s (peers rewriting it without pause).
    pub fn read_live<'s>(&self, mem: &[AtomicU8], index: usize, scratch: &'s mut Vec<u8>) -> Result<Item<'s>> {
        let copied = self
            .copy_live(mem, index, scratch, Wanted::Data)?
            .ok_or_else(|| mid_write(index))?;
        match copied.kind? {
            kind @ (Kind::Str(_) | Kind::Bytes(_)) => decode(kind, scratch.as_slice(), index),
            kind => Ok(decode_word(kind, copied.word)),
        }
    }

    /// A consistent copy of item `index` (see [`Layout::read_live`]): its validated kind and
    /// its format; with [`Wanted::Data`], its data (`kind.data_len()` bytes) in `scratch`.
    /// `None` when the item is busy and `wanted` says not to wait.
    fn copy_live(
        &self,
        mem: &[AtomicU8],
        index: usize,
        scratch: &mut Vec<u8>,
        wanted: Wanted,
    ) -> Result<Option<Copied>> {
        let fields = self.fields(index)?;
        let code = cell(mem, fields.code)?;
        let format = region(mem, fields.format, FORMAT_LEN)?;
        let slot = region(mem, fields.slot.start, fields.slot.len())?;
        let mut backoff = Backoff::new(BUSY_LIMIT, CHANGE_LIMIT);
        loop {
            let before = code.load(Ordering::Acquire);
            if before == CODE_BUSY {
                if wanted == Wanted::HeadUnlessBusy {
                    return Ok(None);
                }
                let look = if watch_for_release(code) {
                    Look::Changed
                } else {
                    Look::Held
                };
                match backoff.wait(look) {
                    Ok(()) => continue,
                    Err(GaveUp::Held) => return Ok(None),
                    Err(GaveUp::Changing) => return Err(changing(index)),
                }
            }
            let first_format = load8(format);
            let kind = kind_of(&first_format, before, fields.slot.len(), index);
            let mut word = [0u8; 8];
            let copy = Copy {
                code,
                before,
                format,
                first_format,
            };
            let stable = match (&kind, wanted) {
                (Ok(Kind::Str(n) | Kind::Bytes(n)), Wanted::Data) => {
                    let n = *n;
                    let data = slot.get(..n).ok_or_else(|| corrupt("slot past the end"))?;
                    let both = n.saturating_mul(2);
                    // The buffer is reused across reads: it only ever grows.
                    if scratch.len() < both {
                        scratch
                            .try_reserve(both.saturating_sub(scratch.len()))
                            .map_err(|_| no_memory())?;
                        scratch.resize(both, 0);
                    }
                    let (first, rest) = scratch.split_at_mut(n);
                    let second = rest.get_mut(..n).ok_or_else(|| corrupt("short copy"))?;
                    copy.twice(data, first, second)
                }
                (Ok(_), Wanted::Data) => {
                    let data = slot.get(..8).ok_or_else(|| corrupt("slot past the end"))?;
                    match copy.twice_word(data) {
                        Some(copied) => {
                            word = copied;
                            true
                        }
                        None => false,
                    }
                }
                _ => copy.twice(&[], &mut [], &mut []),
            };
            if stable {
                return Ok(Some(Copied {
                    kind,
                    format: first_format,
                    code: before,
                    word,
                }));
            }
            match backoff.wait(Look::Changed) {
                Ok(()) => {}
                Err(GaveUp::Held) => return Ok(None),
                Err(GaveUp::Changing) => return Err(changing(index)),
            }
        }
    }

    /// The item's 8-byte format as CPython shows it (`q`, `8s`, …), from a private copy.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the format or code is invalid.
    pub fn item_format(&self, bytes: &[u8], index: usize) -> Result<String> {
        let (format, code) = bytes.head(self, index)?.ok_or_else(|| mid_write(index))?;
        kind_of(&format, code, self.slot_len(index), index)?;
        Ok(show_format(&format))
    }

    /// All formats concatenated, as CPython's `ShareableList.format`, from a private copy.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when any format or code is invalid.
    pub fn format(&self, bytes: &[u8]) -> Result<String> {
        (0..self.len()).map(|i| self.item_format(bytes, i)).collect()
    }

    /// [`Layout::format`] of a live segment: each item's format and code are copied
    /// consistently (see [`Layout::read_live`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when any format or code is invalid or stays mid-write.
    pub fn format_live(&self, mem: &[AtomicU8]) -> Result<String> {
        let mut formats = String::new();
        let mut scratch = Vec::new();
        for index in 0..self.len() {
            let copied = self
                .copy_live(mem, index, &mut scratch, Wanted::Head)?
                .ok_or_else(|| mid_write(index))?;
            copied.kind?;
            formats.push_str(&show_format(&copied.format));
        }
        Ok(formats)
    }

    /// How many items equal `needle` under Python's `==` ([`python_eq`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when an item cannot be read.
    pub fn count(&self, mem: &[AtomicU8], needle: &Item<'_>) -> Result<usize> {
        let mut scratch = Vec::new();
        let mut count = 0usize;
        for i in 0..self.len() {
            if python_eq(&self.read_live(mem, i, &mut scratch)?, needle) {
                count = count.saturating_add(1);
            }
        }
        Ok(count)
    }

    /// The first index whose item equals `needle` under Python's `==`, if any.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when an item cannot be read.
    pub fn index_of(&self, mem: &[AtomicU8], needle: &Item<'_>) -> Result<Option<usize>> {
        let mut scratch = Vec::new();
        for i in 0..self.len() {
            if python_eq(&self.read_live(mem, i, &mut scratch)?, needle) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Writes `item` at `index` (checked by [`Layout::position`]) of a live segment. All or
    /// nothing: a value that does not fit changes no byte (CPython zeroes the slot first).
    ///
    /// The item's code byte is compare-and-swapped to "busy" (waiting while another shmkit
    /// writer holds it), then data and format are stored and the final code released, so two
    /// shmkit writers of one item never interleave and readers can tell a write overlapped
    /// their copy. A writer that died holding an item (busy on every look for 1 s) is
    /// overtaken.
    ///
    /// # Errors
    /// [`Error::ValueTooLarge`] when a str/bytes is longer than the slot (or than
    /// [`MAX_SLOT_LEN`], all a format can express), with both lengths; [`Error::Corrupt`]
    /// when other writers took the item first on every try for 2 s.
    pub fn set(&self, mem: &[AtomicU8], index: usize, item: &Item<'_>) -> Result<()> {
        let allocated = self.capacity(index);
        let needed = match item {
            Item::Str(s) => s.len(),
            Item::Bytes(b) => b.len(),
            _ => 0,
        };
        if needed > allocated {
            return Err(Error::ValueTooLarge { needed, allocated });
        }
        if mem.len() < self.total {
            return Err(corrupt("the segment is shorter than the list"));
        }
        let (format, code) = self.format_and_code(index, item)?;
        let fields = self.fields(index)?;
        let code_cell = cell(mem, fields.code)?;
        let format_cell = region(mem, fields.format, FORMAT_LEN)?;
        let slot = region(mem, fields.slot.start, fields.slot.len())?;
        ItemLock::acquire(code_cell, format_cell, slot)
            .map_err(|_| contended(index))?
            .publish(|slot| write_data(slot, item), &format, code);
        Ok(())
    }

    fn format_and_code(&self, index: usize, item: &Item<'_>) -> Result<([u8; 8], u8)> {
        Ok(match item {
            Item::Int(_) => (*FORMAT_INT, CODE_PLAIN),
            Item::Float(_) => (*FORMAT_FLOAT, CODE_PLAIN),
            Item::Bool(_) => (*FORMAT_BOOL, CODE_PLAIN),
            Item::None => (*FORMAT_NONE, CODE_NONE),
            Item::Str(_) => (string_format(self.capacity(index))?, CODE_STR),
            Item::Bytes(_) => (string_format(self.capacity(index))?, CODE_BYTES),
        })
    }
}

/// What [`Layout::copy_live`] copies, and whether it waits for a busy item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// Format, code and data.
    Data,
    /// Format and code.
    Head,
    /// Format and code, or nothing at once when a writer holds the item.
    HeadUnlessBusy,
}

/// Where [`Layout::parse`] reads: a private copy (`[u8]`) or a live segment (`[AtomicU8]`,
/// each field copied once, consistently, before it is checked).
trait Source {
    fn size(&self) -> usize;
    /// The 8 bytes at `at`, copied.
    fn word(&self, at: usize) -> Option<[u8; 8]>;
    /// Item `index`'s format and code, copied; `None` when a writer holds it.
    fn head(&self, layout: &Layout, index: usize) -> Result<Option<([u8; 8], u8)>>;
}

impl Source for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn word(&self, at: usize) -> Option<[u8; 8]> {
        self.get(at..at.checked_add(8)?)?.try_into().ok()
    }

    fn head(&self, layout: &Layout, index: usize) -> Result<Option<([u8; 8], u8)>> {
        let fields = layout.fields(index)?;
        let code = *self.get(fields.code).ok_or_else(|| corrupt("codes run past the end"))?;
        let format = self
            .word(fields.format)
            .ok_or_else(|| corrupt("formats run past the end"))?;
        Ok((code != CODE_BUSY).then_some((format, code)))
    }
}

impl Source for [AtomicU8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn word(&self, at: usize) -> Option<[u8; 8]> {
        Some(load8(self.get(at..at.checked_add(8)?)?))
    }

    fn head(&self, layout: &Layout, index: usize) -> Result<Option<([u8; 8], u8)>> {
        let mut scratch = Vec::new();
        let copied = layout.copy_live(self, index, &mut scratch, Wanted::HeadUnlessBusy)?;
        Ok(copied.map(|c| (c.format, c.code)))
    }
}

/// A consistent copy of an item: its format and code, what they say it holds, and its data
/// (int/float/bool/None in `word`; str/bytes in the caller's scratch buffer).
struct Copied {
    kind: Result<Kind>,
    format: [u8; 8],
    code: u8,
    word: [u8; 8],
}

/// The first half of one read of an item: its code (not busy) and format, copied.
struct Copy<'m> {
    code: &'m AtomicU8,
    before: u8,
    format: &'m [AtomicU8],
    first_format: [u8; 8],
}

impl Copy<'_> {
    /// [`Copy::twice`] for an 8-byte word: the word, when stable.
    fn twice_word(&self, data: &[AtomicU8]) -> Option<[u8; 8]> {
        let first = load8(data);
        fence(Ordering::Acquire);
        let middle = self.code.load(Ordering::Relaxed);
        let second_format = load8(self.format);
        let second = load8(data);
        fence(Ordering::Acquire);
        let after = self.code.load(Ordering::Relaxed);
        let stable = self.before == middle && middle == after && self.first_format == second_format && first == second;
        stable.then_some(first)
    }

    /// Copies `data` into `first`, then format and `data` again into `second`, reading the
    /// code between and after: `true` when nothing changed and no shmkit writer held the item
    /// meanwhile, so the first copy is one write's format with that write's data.
    fn twice(&self, data: &[AtomicU8], first: &mut [u8], second: &mut [u8]) -> bool {
        load_bytes(data, first);
        fence(Ordering::Acquire);
        let middle = self.code.load(Ordering::Relaxed);
        let second_format = load8(self.format);
        load_bytes(data, second);
        fence(Ordering::Acquire);
        let after = self.code.load(Ordering::Relaxed);
        self.before == middle && middle == after && self.first_format == second_format && first == second
    }
}

fn region(mem: &[AtomicU8], at: usize, len: usize) -> Result<&[AtomicU8]> {
    at.checked_add(len)
        .and_then(|end| mem.get(at..end))
        .ok_or_else(|| corrupt("the segment is shorter than the list"))
}

fn cell(mem: &[AtomicU8], at: usize) -> Result<&AtomicU8> {
    mem.get(at)
        .ok_or_else(|| corrupt("the segment is shorter than the list"))
}

/// Eight bytes of shared memory, copied (one atomic load when aligned).
fn load8(src: &[AtomicU8]) -> [u8; 8] {
    load_word(src)
}

/// Stores an item's data into its slot (at least 8 bytes; str/bytes known to fit).
fn write_data(slot: &[AtomicU8], item: &Item<'_>) {
    let word = match item {
        Item::Int(v) => v.to_ne_bytes(),
        Item::Float(v) => v.to_ne_bytes(),
        Item::Bool(v) => [0, 0, 0, 0, 0, 0, 0, u8::from(*v)],
        Item::None => [0; 8],
        Item::Str(s) => return write_padded(slot, s.as_bytes()),
        Item::Bytes(b) => return write_padded(slot, b),
    };
    if let Some(first) = slot.get(..8) {
        store_bytes(first, &word);
    }
}

fn write_padded(slot: &[AtomicU8], value: &[u8]) {
    if let (Some(head), Some(rest)) = (slot.get(..value.len()), slot.get(value.len()..)) {
        store_bytes(head, value);
        fill_bytes(rest, 0);
    }
}

fn changing(index: usize) -> Error {
    corrupt(format!(
        "item {index} changed under every try for {} ms: peers rewrite it without pause (CPython writers do not lock it)",
        CHANGE_LIMIT.as_millis()
    ))
}

fn contended(index: usize) -> Error {
    corrupt(format!(
        "item {index}: other writers took it first on every try for {} ms (peers rewrite it without pause)",
        WRITER_CHANGE_LIMIT.as_millis()
    ))
}

fn mid_write(index: usize) -> Error {
    corrupt(format!(
        "item {index} stays mid-write: its writer may have died (set it again to repair it)"
    ))
}

fn no_memory() -> Error {
    corrupt("not enough memory to read the list")
}

/// What an item's (copied) format and code say it holds. str/bytes lengths are checked
/// against the slot, so everything after uses only validated sizes.
fn kind_of(format: &[u8; 8], code: u8, slot_len: usize, index: usize) -> Result<Kind> {
    let kind = match (format, code) {
        (f, CODE_PLAIN) if f == FORMAT_INT => Kind::Int,
        (f, CODE_PLAIN) if f == FORMAT_FLOAT => Kind::Float,
        (f, CODE_PLAIN) if f == FORMAT_BOOL => Kind::Bool,
        (f, CODE_NONE) if f == FORMAT_NONE => Kind::None,
        (f, CODE_STR | CODE_BYTES) => {
            let n = parse_string_format(f)
                .ok_or_else(|| corrupt(format!("item {index} has format {:?} with code {code}", show_format(f))))?;
            if n > slot_len {
                return Err(corrupt(format!(
                    "item {index} claims {n} bytes in a {slot_len}-byte slot"
                )));
            }
            if code == CODE_STR {
                Kind::Str(n)
            } else {
                Kind::Bytes(n)
            }
        }
        (f, _) => {
            return Err(corrupt(format!(
                "item {index} has format {:?} with code {code}",
                show_format(f)
            )))
        }
    };
    Ok(kind)
}

/// Decodes an int, float, bool or None from its copied 8-byte word.
fn decode_word(kind: Kind, word: [u8; 8]) -> Item<'static> {
    match kind {
        Kind::Int => Item::Int(i64::from_ne_bytes(word)),
        Kind::Float => Item::Float(f64::from_ne_bytes(word)),
        Kind::Bool => Item::Bool(word[7] != 0),
        _ => Item::None,
    }
}

/// Decodes a copied slot (at least `kind.data_len()` bytes).
fn decode(kind: Kind, slot: &[u8], index: usize) -> Result<Item<'_>> {
    let data = slot
        .get(..kind.data_len())
        .ok_or_else(|| corrupt("slot past the end"))?;
    let word = || <[u8; 8]>::try_from(data).map_err(|_| corrupt("slot past the end"));
    Ok(match kind {
        Kind::Int => Item::Int(i64::from_ne_bytes(word()?)),
        Kind::Float => Item::Float(f64::from_ne_bytes(word()?)),
        Kind::Bool => Item::Bool(word()?[7] != 0),
        Kind::None => Item::None,
        Kind::Str(_) => {
            let raw = strip_nuls(data);
            Item::Str(std::str::from_utf8(raw).map_err(|e| corrupt(format!("item {index} is not UTF-8: {e}")))?)
        }
        Kind::Bytes(_) => Item::Bytes(strip_nuls(data)),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    None,
    Str(usize),
    Bytes(usize),
}

impl Kind {
    /// Bytes of the slot the value occupies (validated against the slot).
    fn data_len(self) -> usize {
        match self {
            Kind::Str(n) | Kind::Bytes(n) => n,
            _ => 8,
        }
    }
}

/// `<n>s`, NUL-padded to 8 bytes.
///
/// # Errors
/// [`Error::ValueTooLarge`] when `n` has more than 7 digits (a caller passes at most
/// [`MAX_SLOT_LEN`]).
fn string_format(slot_len: usize) -> Result<[u8; 8]> {
    let text = format!("{slot_len}s");
    let mut format = [0u8; 8];
    format
        .get_mut(..text.len())
        .ok_or(Error::ValueTooLarge {
            needed: slot_len,
            allocated: MAX_SLOT_LEN,
        })?
        .copy_from_slice(text.as_bytes());
    Ok(format)
}

/// `<n>s` NUL-padded, n in decimal without a sign or leading zeros.
fn parse_string_format(format: &[u8; 8]) -> Option<usize> {
    let end = format.iter().position(|&b| b == 0).unwrap_or(format.len());
    let (text, padding) = format.split_at(end);
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    let digits = text.strip_suffix(b"s")?;
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if digits.is_empty() || leading_zero {
        return None;
    }
    // At most 7 digits: no overflow.
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(usize::from(d.wrapping_sub(b'0'))))
            .flatten()
    })
}

fn show_format(format: &[u8; 8]) -> String {
    let end = format.iter().position(|&b| b == 0).unwrap_or(format.len());
    String::from_utf8_lossy(format.get(..end).unwrap_or_default()).into_owned()
}

fn strip_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p.saturating_add(1));
    bytes.get(..end).unwrap_or_default()
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::Corrupt(why.into())
}

/// `off[0]` must be 0. CPython 3.8 stored each item's size there instead of offsets.
fn legacy_or_bad_start<S: Source + ?Sized>(src: &S, n: usize, first: i64) -> Error {
    let mut data = Some(0usize);
    for i in 0..n {
        let size = i
            .checked_add(1)
            .and_then(|k| k.checked_mul(8))
            .and_then(|at| src.word(at))
            .and_then(|w| usize::try_from(i64::from_ne_bytes(w)).ok())
            .filter(|&s| s >= 8 && s.is_multiple_of(8));
        data = data.zip(size).and_then(|(acc, s)| acc.checked_add(s));
        if data.is_none() {
            break;
        }
    }
    let looks_legacy = n > 0
        && data
            .and_then(|d| d.checked_add(8))
            .and_then(|d| d.checked_add(n.checked_mul(17)?))
            .is_some_and(|total| total <= src.size());
    if looks_legacy {
        corrupt("this looks like a CPython 3.8 ShareableList (per-item sizes instead of offsets); only the 3.9+ layout is supported: recreate the list with CPython 3.9 or newer")
    } else {
        corrupt(format!("the first offset is {first}, not 0"))
    }
}

impl fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(v) => write!(f, "{v}"),
            Item::Float(v) => write!(f, "{v}"),
            Item::Bool(v) => f.write_str(if *v { "True" } else { "False" }),
            Item::None => f.write_str("None"),
            Item::Str(s) => write!(f, "{s:?}"),
            Item::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
        }
    }
}

/// Python's `==` between two items: numbers (and bools) compare by value exactly, int against
/// float included (`1 == 1.0 == True`); str equals only str, bytes only bytes; NaN equals
/// nothing.
pub fn python_eq(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.eq_exact(&y),
        (None, None) => match (a, b) {
            (Item::None, Item::None) => true,
            (Item::Str(x), Item::Str(y)) => x == y,
            (Item::Bytes(x), Item::Bytes(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn eq_exact(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                // Exact, as Python compares int and float: 2**53 + 1 != 2.0**53.
                f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(f) && *f as i64 == *i
            }
        }
    }
}

fn number(item: &Item<'_>) -> Option<Number> {
    match item {
        Item::Int(v) => Some(Number::Int(*v)),
        Item::Bool(v) => Some(Number::Int(i64::from(*v))),
        Item::Float(v) => Some(Number::Float(*v)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn encode(items: &[Item<'_>]) -> Vec<u8> {
        let layout = Layout::for_items(items).unwrap();
        let mut bytes = vec![0u8; layout.total_len()];
        layout.write_all(&mut bytes, items).unwrap();
        bytes
    }

    #[test]
    fn empty_list_is_16_zero_bytes() {
        assert_eq!(encode(&[]), vec![0u8; 16]);
        let layout = Layout::read(&[0u8; 16]).unwrap();
        assert!(layout.is_empty());
        assert_eq!(layout.format(&[0u8; 16]).unwrap(), "");
    }

    #[test]
    fn slot_sizes_follow_cpython_and_grow_only_when_utf8_does_not_fit() {
        assert_eq!(slot_len(&Item::Str("")), 8);
        assert_eq!(slot_len(&Item::Str("howdy")), 8);
        assert_eq!(slot_len(&Item::Str("abcdefgh")), 16);
        assert_eq!(slot_len(&Item::Str("encodés")), 8); // 7 code points, 8 bytes: CPython's 8s
        assert_eq!(slot_len(&Item::Str("ééééé")), 16); // 10 bytes: CPython would truncate to 8
        assert_eq!(slot_len(&Item::Str("😀😀😀😀😀😀😀")), 32); // 7 code points, 28 bytes
        assert_eq!(slot_len(&Item::Bytes(b"bytes\0")), 8);
    }

    #[test]
    fn negative_indices_count_from_the_end_and_others_are_out_of_range() {
        let layout = Layout::for_items(&[Item::Int(1), Item::Int(2), Item::Int(3)]).unwrap();
        assert_eq!(layout.position(-1).unwrap(), 2);
        assert_eq!(layout.position(-3).unwrap(), 0);
        assert!(matches!(layout.position(-4), Err(Error::IndexOutOfRange { .. })));
        assert!(matches!(layout.position(3), Err(Error::IndexOutOfRange { .. })));
        assert!(matches!(layout.position(i64::MIN), Err(Error::IndexOutOfRange { .. })));
    }

    #[test]
    fn failed_set_changes_nothing() {
        let items = [Item::Str("howdy"), Item::Int(5)];
        let mut bytes = encode(&items);
        let before = bytes.clone();
        let layout = Layout::read(&bytes).unwrap();
        let err = layout
            .set(atomic_slice(&mut bytes), 0, &Item::Str("far too many"))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::ValueTooLarge {
                needed: 12,
                allocated: 8
            }
        ));
        assert!(err.to_string().contains("exceeds available storage"));
        assert_eq!(bytes, before);
    }

    #[test]
    fn python_equality() {
        assert!(python_eq(&Item::Int(1), &Item::Float(1.0)));
        assert!(python_eq(&Item::Int(1), &Item::Bool(true)));
        assert!(python_eq(&Item::Float(0.0), &Item::Bool(false)));
        assert!(!python_eq(&Item::Float(f64::NAN), &Item::Float(f64::NAN)));
        assert!(!python_eq(
            &Item::Int((1 << 53) + 1),
            &Item::Float(9_007_199_254_740_992.0)
        ));
        assert!(!python_eq(&Item::Int(i64::MAX), &Item::Float(9.223_372_036_854_776e18)));
        assert!(!python_eq(&Item::Str("a"), &Item::Bytes(b"a")));
        assert!(python_eq(&Item::None, &Item::None));
        assert!(!python_eq(&Item::None, &Item::Int(0)));
    }

    #[test]
    fn string_formats_parse_strictly() {
        assert_eq!(parse_string_format(b"8s\0\0\0\0\0\0"), Some(8));
        assert_eq!(parse_string_format(b"9999992s"), Some(9_999_992));
        for bad in [
            b"s\0\0\0\0\0\0\0",
            b"08s\0\0\0\0\0",
            b"8s\0x\0\0\0\0",
            b"-8s\0\0\0\0\0",
            b"8\0\0\0\0\0\0\0",
        ] {
            assert_eq!(parse_string_format(bad), None, "{bad:?}");
        }
    }
}
