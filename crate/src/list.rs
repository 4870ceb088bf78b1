//! CPython's `ShareableList` layout (3.9 – 3.14): encode a list into bytes, validate bytes
//! read from a segment, read and write single items. Works on byte slices only: no mapping,
//! no `unsafe`, and every offset, length, format and code read from the bytes is untrusted.
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

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// One item of a list, borrowed: what is written, and what is read (borrowing the segment).
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
/// silently truncate the format of a larger one.
pub const MAX_SLOT_LEN: usize = 9_999_992;

const FORMAT_INT: &[u8; 8] = b"q\0\0\0\0\0\0\0";
const FORMAT_FLOAT: &[u8; 8] = b"d\0\0\0\0\0\0\0";
const FORMAT_BOOL: &[u8; 8] = b"xxxxxxx?";
const FORMAT_NONE: &[u8; 8] = b"xxxxxx?x";

const CODE_PLAIN: u8 = 0;
const CODE_STR: u8 = 1;
const CODE_BYTES: u8 = 2;
const CODE_NONE: u8 = 3;
/// Written to an item's code while its type changes (CPython never writes it: as a signed
/// byte it is -1, which CPython does not map to anything).
const CODE_BUSY: u8 = 0xff;

/// Start of the data area for `n` items: after the count and the `n + 1` offsets.
pub fn data_start(n: usize) -> usize {
    8 * (n + 2)
}

/// Start of the formats for `n` items whose slots take `data_len` bytes.
pub fn formats_start(n: usize, data_len: usize) -> usize {
    data_start(n) + data_len
}

/// Start of the back-transform codes.
pub fn codes_start(n: usize, data_len: usize) -> usize {
    formats_start(n, data_len) + FORMAT_LEN * n
}

/// Total bytes of a list of `n` items whose slots take `data_len` bytes.
pub fn total_len(n: usize, data_len: usize) -> usize {
    codes_start(n, data_len) + n
}

/// The slot CPython gives a str/bytes of `units` (code points or bytes): `8 * (units // 8 + 1)`.
fn cpython_slot(units: usize) -> usize {
    SLOT_ALIGN * (units / SLOT_ALIGN + 1)
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
                s.len().div_ceil(SLOT_ALIGN) * SLOT_ALIGN
            }
        }
        Item::Bytes(b) => cpython_slot(b.len()),
        _ => 8,
    }
}

/// The validated shape of a list: its count and slot offsets, read once at attach. CPython
/// never changes them after creation, so later accesses use these and never trust the
/// segment's copy again; formats and codes are re-read on every access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    offsets: Vec<usize>,
}

impl Layout {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn data_len(&self) -> usize {
        self.offsets[self.len()]
    }

    /// Bytes the whole list takes.
    pub fn total_len(&self) -> usize {
        total_len(self.len(), self.data_len())
    }

    /// Bytes needed to hold `items`.
    ///
    /// # Errors
    /// [`Error::ValueTooLarge`] when a str/bytes needs a slot over [`MAX_SLOT_LEN`].
    pub fn for_items(items: &[Item<'_>]) -> Result<Layout> {
        let mut offsets = Vec::with_capacity(items.len() + 1);
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
            end = end.checked_add(slot).ok_or(Error::ValueTooLarge {
                needed: usize::MAX,
                allocated: isize::MAX as usize,
            })?;
            offsets.push(end);
        }
        Ok(Layout { offsets })
    }

    /// Reads and validates a list from a segment's bytes: header, offsets (starting at 0,
    /// non-decreasing, multiples of 8, inside the bytes), and every item's format and code.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming what is wrong. A CPython 3.8 list (per-item sizes instead of
    /// offsets) is recognised and refused as such.
    pub fn read(bytes: &[u8]) -> Result<Layout> {
        let count = read_i64(bytes, 0).ok_or_else(|| corrupt("shorter than the 8-byte item count"))?;
        let n = usize::try_from(count).map_err(|_| corrupt(format!("item count {count} is negative")))?;
        // Even empty slots need 8 (offset) + 8 (format) + 1 (code) bytes each.
        if n > bytes.len() / 17 {
            return Err(corrupt(format!("item count {n} cannot fit in {} bytes", bytes.len())));
        }
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let raw = read_i64(bytes, 8 + 8 * i).ok_or_else(|| corrupt("offsets run past the end"))?;
            let off = usize::try_from(raw).map_err(|_| corrupt(format!("offset {i} is negative ({raw})")))?;
            offsets.push(off);
        }
        if offsets[0] != 0 {
            return Err(legacy_or_bad_start(bytes, n, &offsets));
        }
        for i in 0..n {
            let (start, end) = (offsets[i], offsets[i + 1]);
            if end < start + 8 || (end - start) % SLOT_ALIGN != 0 {
                return Err(corrupt(format!(
                    "slot {i} spans [{start}, {end}): not a positive multiple of 8 bytes"
                )));
            }
        }
        let data_len = offsets[n];
        let total = data_len
            .checked_add(data_start(n) + 9 * n)
            .ok_or_else(|| corrupt("offsets overflow"))?;
        if total > bytes.len() {
            return Err(corrupt(format!(
                "the list needs {total} bytes; the segment has {}",
                bytes.len()
            )));
        }
        let layout = Layout { offsets };
        for i in 0..n {
            // An item another process is writing right now is checked when it is read.
            if bytes.get(layout.code_at(i)) == Some(&CODE_BUSY) {
                continue;
            }
            layout.kind(bytes, i)?;
        }
        Ok(layout)
    }

    /// Writes `items` into `bytes` (at least [`Layout::total_len`] long) in CPython's layout.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if `bytes` is too short (a caller bug; nothing is written then).
    pub fn write_all(&self, bytes: &mut [u8], items: &[Item<'_>]) -> Result<()> {
        if bytes.len() < self.total_len() || items.len() != self.len() {
            return Err(corrupt("buffer too small for the list"));
        }
        bytes[0..8].copy_from_slice(&(self.len() as i64).to_ne_bytes());
        for (i, off) in self.offsets.iter().enumerate() {
            bytes[8 + 8 * i..16 + 8 * i].copy_from_slice(&(*off as i64).to_ne_bytes());
        }
        for (i, item) in items.iter().enumerate() {
            self.write_item(bytes, i, item);
        }
        Ok(())
    }

    /// Bytes a str/bytes item at `index` can hold.
    pub fn slot_len(&self, index: usize) -> usize {
        self.offsets[index + 1] - self.offsets[index]
    }

    fn slot_range(&self, index: usize) -> std::ops::Range<usize> {
        let base = data_start(self.len());
        base + self.offsets[index]..base + self.offsets[index + 1]
    }

    fn format_range(&self, index: usize) -> std::ops::Range<usize> {
        let at = formats_start(self.len(), self.data_len()) + FORMAT_LEN * index;
        at..at + FORMAT_LEN
    }

    fn code_at(&self, index: usize) -> usize {
        codes_start(self.len(), self.data_len()) + index
    }

    /// Checks `index` against the count; negative indices count from the end, as in Python.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] outside `[-len, len)`.
    pub fn position(&self, index: i64) -> Result<usize> {
        let len = self.len() as i64;
        let pos = if index < 0 { index.checked_add(len) } else { Some(index) };
        match pos {
            Some(p) if (0..len).contains(&p) => Ok(p as usize),
            _ => Err(Error::IndexOutOfRange { index, len: self.len() }),
        }
    }

    /// What the item at `index` currently holds, from its format and code.
    fn kind(&self, bytes: &[u8], index: usize) -> Result<Kind> {
        let code = *bytes
            .get(self.code_at(index))
            .ok_or_else(|| corrupt("codes run past the end"))?;
        self.kind_with_code(bytes, index, code)
    }

    /// As [`Layout::kind`], with the code given (a locked item's code byte reads "busy").
    fn kind_with_code(&self, bytes: &[u8], index: usize, code: u8) -> Result<Kind> {
        let format = bytes
            .get(self.format_range(index))
            .ok_or_else(|| corrupt("formats run past the end"))?;
        let kind = match (format, code) {
            (f, CODE_PLAIN) if f == FORMAT_INT => Kind::Int,
            (f, CODE_PLAIN) if f == FORMAT_FLOAT => Kind::Float,
            (f, CODE_PLAIN) if f == FORMAT_BOOL => Kind::Bool,
            (f, CODE_NONE) if f == FORMAT_NONE => Kind::None,
            (f, CODE_STR | CODE_BYTES) => {
                let n = parse_string_format(f)
                    .ok_or_else(|| corrupt(format!("item {index} has format {:?} with code {code}", show_format(f))))?;
                if n > self.slot_len(index) {
                    return Err(corrupt(format!(
                        "item {index} claims {n} bytes in a {}-byte slot",
                        self.slot_len(index)
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

    /// Reads item `index` (already checked by [`Layout::position`]); str/bytes borrow `bytes`
    /// with trailing NULs stripped. For bytes no other process writes; a live segment is read
    /// with [`Layout::read_live`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] when its format or code is invalid or a str is not UTF-8.
    pub fn get<'a>(&self, bytes: &'a [u8], index: usize) -> Result<Item<'a>> {
        let kind = self.kind(bytes, index)?;
        let slot = bytes
            .get(self.slot_range(index))
            .ok_or_else(|| corrupt("slot past the end"))?;
        decode(kind, slot, index)
    }

    /// Reads item `index` of a segment other processes may be writing, under the item's lock
    /// (see [`Layout::set`]): format, code and data are read as one consistent whole, and
    /// str/bytes are copied into `scratch`. int, float and bool never tear; a read never pairs
    /// one write's format with another's data.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the item is invalid or not UTF-8, or stayed mid-write past the
    /// limit (its writer died between its stores; setting the item again repairs it).
    pub fn read_live<'s>(&self, bytes: &mut [u8], index: usize, scratch: &'s mut Vec<u8>) -> Result<Item<'s>> {
        let code_at = self.code_at(index);
        if code_at >= bytes.len() || self.slot_range(index).end > bytes.len() {
            return Err(corrupt("the segment is shorter than the list"));
        }
        let Some(code) = lock_item(&mut bytes[code_at]) else {
            return Err(corrupt(format!(
                "item {index} stays mid-write: its writer may have died (set it again to repair it)"
            )));
        };
        // Under the lock the code byte reads "busy"; never write anything else there until the
        // release, or another writer could take the lock meanwhile.
        let kind = self.kind_with_code(bytes, index, code);
        let mut word = [0u8; 8];
        if let Ok(kind) = kind {
            let slot = &bytes[self.slot_range(index)];
            match kind {
                Kind::Str(n) | Kind::Bytes(n) => {
                    scratch.clear();
                    scratch.extend_from_slice(&slot[..n]);
                }
                _ => word = first8(slot),
            }
        }
        crate::segment::atomic_byte(&mut bytes[code_at]).store(code, Ordering::Release);
        match kind? {
            kind @ (Kind::Str(n) | Kind::Bytes(n)) => decode(kind, &scratch[..n], index),
            kind => Ok(decode_word(kind, word)),
        }
    }

    /// The item's 8-byte format as CPython shows it (`q`, `8s`, …).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the format or code is invalid.
    pub fn item_format(&self, bytes: &[u8], index: usize) -> Result<String> {
        self.kind(bytes, index)?;
        Ok(show_format(&bytes[self.format_range(index)]))
    }

    /// All formats concatenated, as CPython's `ShareableList.format`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when any format or code is invalid.
    pub fn format(&self, bytes: &[u8]) -> Result<String> {
        (0..self.len()).map(|i| self.item_format(bytes, i)).collect()
    }

    /// [`Layout::format`] of a segment other processes may be writing: each item's format is
    /// read under its lock (see [`Layout::read_live`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when any format or code is invalid or stays mid-write.
    pub fn format_live(&self, bytes: &mut [u8]) -> Result<String> {
        if bytes.len() < self.total_len() {
            return Err(corrupt("the segment is shorter than the list"));
        }
        let mut formats = String::new();
        for index in 0..self.len() {
            let code_at = self.code_at(index);
            let Some(code) = lock_item(&mut bytes[code_at]) else {
                return Err(corrupt(format!(
                    "item {index} stays mid-write: its writer may have died"
                )));
            };
            let checked = self.kind_with_code(bytes, index, code);
            let format = show_format(&bytes[self.format_range(index)]);
            crate::segment::atomic_byte(&mut bytes[code_at]).store(code, Ordering::Release);
            checked?;
            formats.push_str(&format);
        }
        Ok(formats)
    }

    /// How many items equal `needle` under Python's `==` ([`python_eq`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when an item cannot be read.
    pub fn count(&self, bytes: &mut [u8], needle: &Item<'_>) -> Result<usize> {
        let mut scratch = Vec::new();
        let mut count = 0;
        for i in 0..self.len() {
            count += usize::from(python_eq(&self.read_live(bytes, i, &mut scratch)?, needle));
        }
        Ok(count)
    }

    /// The first index whose item equals `needle` under Python's `==`, if any.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when an item cannot be read.
    pub fn index_of(&self, bytes: &mut [u8], needle: &Item<'_>) -> Result<Option<usize>> {
        let mut scratch = Vec::new();
        for i in 0..self.len() {
            if python_eq(&self.read_live(bytes, i, &mut scratch)?, needle) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Writes `item` at `index` (checked by [`Layout::position`]). All or nothing: a value
    /// that does not fit changes no byte (CPython zeroes the slot first).
    ///
    /// # Errors
    /// [`Error::ValueTooLarge`] when a str/bytes is longer than the slot, with both lengths.
    pub fn set(&self, bytes: &mut [u8], index: usize, item: &Item<'_>) -> Result<()> {
        let allocated = self.slot_len(index);
        let needed = match item {
            Item::Str(s) => s.len(),
            Item::Bytes(b) => b.len(),
            _ => 0,
        };
        if needed > allocated {
            return Err(Error::ValueTooLarge { needed, allocated });
        }
        if bytes.len() < self.total_len() {
            return Err(corrupt("the segment is shorter than the list"));
        }
        self.write_item(bytes, index, item);
        Ok(())
    }

    /// Writes an item known to fit, under the item's lock: its code byte is compare-and-swapped
    /// to "busy" (waiting while another shmkit writer holds it), then data and format are
    /// stored and the final code released. Two writers of one item never interleave, and
    /// [`Layout::read_live`] never pairs an old format with new data. A writer that died
    /// holding the lock is overtaken after about a millisecond.
    fn write_item(&self, bytes: &mut [u8], index: usize, item: &Item<'_>) {
        let slot_len = self.slot_len(index);
        let (format, code) = match item {
            Item::Int(_) => (*FORMAT_INT, CODE_PLAIN),
            Item::Float(_) => (*FORMAT_FLOAT, CODE_PLAIN),
            Item::Bool(_) => (*FORMAT_BOOL, CODE_PLAIN),
            Item::None => (*FORMAT_NONE, CODE_NONE),
            Item::Str(_) => (string_format(slot_len), CODE_STR),
            Item::Bytes(_) => (string_format(slot_len), CODE_BYTES),
        };
        let code_at = self.code_at(index);
        // A writer takes the item even from a dead holder: this write repairs it.
        let _ = lock_item(&mut bytes[code_at]);
        let slot = &mut bytes[self.slot_range(index)];
        match item {
            Item::Int(v) => slot[..8].copy_from_slice(&v.to_ne_bytes()),
            Item::Float(v) => slot[..8].copy_from_slice(&v.to_ne_bytes()),
            Item::Bool(v) => slot[..8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, u8::from(*v)]),
            Item::None => slot[..8].fill(0),
            Item::Str(s) => write_padded(slot, s.as_bytes()),
            Item::Bytes(b) => write_padded(slot, b),
        }
        bytes[self.format_range(index)].copy_from_slice(&format);
        crate::segment::atomic_byte(&mut bytes[code_at]).store(code, Ordering::Release);
    }
}

/// How long an item may stay busy before its writer is presumed dead (SIGKILLed mid-write).
/// Far longer than any write, and than a scheduler time slice a live writer may lose.
const BUSY_LIMIT: Duration = Duration::from_millis(200);

/// Waits politely: spins first, then yields the CPU to the writer that holds the item.
struct Backoff {
    spins: u32,
    deadline: Option<Instant>,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            spins: 0,
            deadline: None,
        }
    }

    /// Waits a little; `false` once [`BUSY_LIMIT`] has passed.
    fn wait(&mut self) -> bool {
        self.spins += 1;
        if self.spins < 200 {
            std::hint::spin_loop();
            return true;
        }
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + BUSY_LIMIT);
        std::thread::yield_now();
        Instant::now() < deadline
    }
}

/// Takes an item's lock: its code byte becomes [`CODE_BUSY`]. Returns the code it held, or
/// `None` when the item was taken over from a holder that stayed busy past [`BUSY_LIMIT`]
/// (it died mid-write, so the real code is unknown).
fn lock_item(code: &mut u8) -> Option<u8> {
    let code = crate::segment::atomic_byte(code);
    let mut backoff = Backoff::new();
    let mut holder_alive = true;
    loop {
        let current = code.load(Ordering::Relaxed);
        if (current != CODE_BUSY || !holder_alive)
            && code
                .compare_exchange(current, CODE_BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return (current != CODE_BUSY).then_some(current);
        }
        holder_alive = backoff.wait();
    }
}

/// Decodes an int, float, bool or None from its 8-byte word.
fn decode_word(kind: Kind, word: [u8; 8]) -> Item<'static> {
    match kind {
        Kind::Int => Item::Int(i64::from_ne_bytes(word)),
        Kind::Float => Item::Float(f64::from_ne_bytes(word)),
        Kind::Bool => Item::Bool(word[7] != 0),
        _ => Item::None,
    }
}

/// Decodes a slot's bytes (at least 8 for fixed kinds, at least n for str/bytes).
fn decode(kind: Kind, slot: &[u8], index: usize) -> Result<Item<'_>> {
    Ok(match kind {
        Kind::Int => Item::Int(i64::from_ne_bytes(first8(slot))),
        Kind::Float => Item::Float(f64::from_ne_bytes(first8(slot))),
        Kind::Bool => Item::Bool(slot[7] != 0),
        Kind::None => Item::None,
        Kind::Str(n) => {
            let raw = strip_nuls(&slot[..n]);
            Item::Str(std::str::from_utf8(raw).map_err(|e| corrupt(format!("item {index} is not UTF-8: {e}")))?)
        }
        Kind::Bytes(n) => Item::Bytes(strip_nuls(&slot[..n])),
    })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Float,
    Bool,
    None,
    Str(usize),
    Bytes(usize),
}

fn write_padded(slot: &mut [u8], value: &[u8]) {
    slot[..value.len()].copy_from_slice(value);
    slot[value.len()..].fill(0);
}

/// `<n>s`, NUL-padded to 8 bytes (n ≤ [`MAX_SLOT_LEN`], so it always fits).
fn string_format(slot_len: usize) -> [u8; 8] {
    let mut format = [0u8; 8];
    let text = format!("{slot_len}s");
    format[..text.len()].copy_from_slice(text.as_bytes());
    format
}

/// `<n>s` NUL-padded, n in decimal without a sign or leading zeros.
fn parse_string_format(format: &[u8]) -> Option<usize> {
    let end = format.iter().position(|&b| b == 0).unwrap_or(format.len());
    let (text, padding) = format.split_at(end);
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    let digits = text.strip_suffix(b"s")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn show_format(format: &[u8]) -> String {
    let end = format.iter().position(|&b| b == 0).unwrap_or(format.len());
    String::from_utf8_lossy(&format[..end]).into_owned()
}

fn strip_nuls(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &bytes[..end]
}

fn first8(slot: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&slot[..8]);
    out
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(i64::from_ne_bytes(first8(field)))
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::Corrupt(why.into())
}

/// `off[0]` must be 0. CPython 3.8 stored each item's size there instead of offsets.
fn legacy_or_bad_start(bytes: &[u8], n: usize, sizes: &[usize]) -> Error {
    let looks_legacy = sizes[..n].iter().all(|&s| s >= 8 && s % 8 == 0)
        && sizes[..n]
            .iter()
            .try_fold(0usize, |acc, &s| acc.checked_add(s))
            .and_then(|data| data.checked_add(8 + 8 * n + 9 * n))
            .is_some_and(|total| total <= bytes.len());
    if looks_legacy {
        corrupt("this looks like a CPython 3.8 ShareableList (per-item sizes instead of offsets); only the 3.9+ layout is supported: recreate the list with CPython 3.9 or newer")
    } else {
        corrupt(format!("the first offset is {}, not 0", sizes[0]))
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
        let err = layout.set(&mut bytes, 0, &Item::Str("far too many")).unwrap_err();
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
            &b"s\0\0\0\0\0\0\0"[..],
            b"08s\0\0\0\0\0",
            b"8s\0x\0\0\0\0",
            b"-8s\0\0\0\0\0",
            b"8\0\0\0\0\0\0\0",
        ] {
            assert_eq!(parse_string_format(bad), None, "{bad:?}");
        }
    }
}
