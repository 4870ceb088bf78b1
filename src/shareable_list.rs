//! `ShareableList`: CPython's fixed-length list in a segment, read and written in place.
//! Every byte of the segment is untrusted: all layout work happens in `shmkit_core::list`,
//! through the segment's atomic view, and no size read from it sizes an allocation here.

use std::sync::atomic::AtomicU8;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::list::{Item, Layout};
use shmkit_core::{Segment, SegmentOptions, ShmName};

use crate::args;
use crate::error::{
    error, from_core, guard, napi_failure, range_error, type_error, Code, INVALID_ARG_TYPE, INVALID_ARG_VALUE,
    NO_MEMORY, OUT_OF_RANGE, PENDING, VALUE_NOT_FOUND,
};
use crate::item::{from_js, from_js_bounded, to_js, Converted, OwnedItem};
use crate::raw::{self, Held};
use crate::shared_memory::SharedMemory;

/// Options of `new ShareableList(sequence, ...)`.
#[napi(object)]
pub struct ShareableListOptions {
    /// Attach to this segment (without a sequence) or create under this name (with one).
    pub name: Option<String>,
    /// Unlink the segment if this process ends without unlinking it (default `true` when
    /// creating; attaching never tracks).
    pub track: Option<bool>,
}

thread_local! {
    /// Scratch space for `get`, reused across calls on this thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A fixed-length list of numbers, bigints, booleans, nulls, strings and bytes stored in a
/// shared-memory segment with CPython's exact layout: Python's
/// `multiprocessing.shared_memory.ShareableList(name=...)` opens it, and the other way round.
#[napi(custom_finalize)]
pub struct ShareableList {
    shm: Held<SharedMemory>,
    layout: Layout,
}

#[napi]
impl ShareableList {
    /// Creates a list holding the items of `sequence` (any iterable; none: an empty list),
    /// or, with only `options.name`, attaches to an existing list, as CPython's
    /// `ShareableList(sequence=None, *, name=None)`.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "sequence?: Iterable<T> | null, options?: ShareableListOptions | null"
    )]
    pub fn new(env: Env, sequence: Option<Unknown>, options: Option<Unknown>) -> Result<Self, Code> {
        guard(|| Self::construct(env, sequence, options))
    }

    fn construct(env: Env, sequence: Option<Unknown>, options: Option<Unknown>) -> Result<Self, Code> {
        let options: Option<ShareableListOptions> = crate::error::options(&env, options, "options")?;
        let given = options.is_some();
        let (name, track) = options.map_or((None, None), |o| (o.name, o.track));
        let sequence = sequence.filter(|s| !matches!(s.get_type(), Ok(ValueType::Null | ValueType::Undefined)));
        match (sequence, name) {
            (None, Some(name)) => Self::attach(env, &name),
            // Most often a list passed through structured clone (`{}`): making a new empty
            // list would silently lose the one that was meant.
            (None, None) if given => Err(error(
                INVALID_ARG_VALUE,
                "ShareableList options without a name and without a sequence: pass { name } to \
                 attach to a list (a list sent to another process arrives as { name } through \
                 toJSON()), or a sequence ([] for an empty list) to create one",
            )),
            (sequence, name) => {
                let items = match sequence {
                    Some(sequence) => items_of(&env, sequence)?,
                    None => Vec::new(),
                };
                Self::create(env, &items, name, track.unwrap_or(true))
            }
        }
    }

    /// Attaches to the list in an existing segment; its layout is validated first. Takes a
    /// name, or an object with one: what `toJSON()` makes, so a list that went through
    /// `child.send()` or `JSON.stringify` opens as it arrives.
    #[napi(
        factory,
        catch_unwind,
        ts_generic_types = "T extends Item = Item",
        ts_args_type = "name: string | { name: string }",
        ts_return_type = "ShareableList<T>"
    )]
    pub fn open(env: Env, name: Unknown) -> Result<Self, Code> {
        guard(|| Self::attach(env, &name_of(&env, name)?))
    }

    /// `{ name }`, so `child.send(sl)` and `JSON.stringify` pass the list by name (the items
    /// stay in the segment); `ShareableList.open()` takes it back.
    #[napi(js_name = "toJSON", catch_unwind)]
    pub fn to_json(&self) -> ShareableListJson {
        ShareableListJson {
            name: self.shm_ref().name(),
        }
    }

    fn attach(env: Env, name: &str) -> Result<Self, Code> {
        let segment = Segment::open(name).map_err(from_core)?;
        let layout = Layout::attach(segment.atomic_bytes()).map_err(|e| corrupt_in(name, e))?;
        Self::wrap(env, SharedMemory::wrap(segment, false), layout)
    }

    fn create(env: Env, items: &[OwnedItem], name: Option<String>, track: bool) -> Result<Self, Code> {
        let mut options = SegmentOptions::new();
        options.track(track);
        if let Some(name) = name {
            options.name(ShmName::new(&name).map_err(from_core)?);
        }
        let (segment, layout) = Self::make(items, |size, fill| options.create_filled(size, fill))?;
        Self::wrap(env, SharedMemory::wrap(segment, track), layout)
    }

    /// Lays out `items` in a segment from `create(size, fill)`, which runs `fill` before the
    /// segment's name appears where the OS allows (`SegmentOptions::create_filled`), so an
    /// open racing this create finds nothing or the whole list.
    pub(crate) fn make(
        items: &[OwnedItem],
        create: impl FnOnce(usize, Fill<'_>) -> shmkit_core::Result<Segment>,
    ) -> Result<(Segment, Layout), Code> {
        let items: Vec<Item<'_>> = items.iter().map(OwnedItem::item).collect();
        let layout = Layout::for_items(&items).map_err(from_core)?;
        let segment = create(layout.total_len(), Box::new(|mem| layout.fill(mem, &items))).map_err(from_core)?;
        Ok((segment, layout))
    }

    pub(crate) fn wrap(env: Env, shm: SharedMemory, layout: Layout) -> Result<Self, Code> {
        let instance = shm.into_instance(&env).map_err(|e| napi_failure(e.to_string()))?;
        Ok(ShareableList {
            shm: Held::new(&env, instance)?,
            layout,
        })
    }

    fn shm_ref(&self) -> &SharedMemory {
        self.shm.get()
    }

    /// The segment holding the list (the same object on every access).
    #[napi(getter, ts_return_type = "SharedMemory", catch_unwind)]
    pub fn shm<'env>(&self, env: &'env Env) -> Result<Unknown<'env>, Code> {
        guard(|| self.shm.value(env))
    }

    /// Number of items (fixed at creation).
    #[napi(getter, catch_unwind)]
    pub fn length(&self) -> u32 {
        // A list of 2^32 items would need 100 GiB; the count was validated at attach.
        u32::try_from(self.layout.len()).unwrap_or(u32::MAX)
    }

    /// The struct formats of all items, concatenated: the same string as Python's `.format`.
    #[napi(getter, catch_unwind)]
    pub fn format(&self) -> Result<String, Code> {
        guard(|| {
            let name = self.shm_ref().name();
            self.layout.format_live(self.mem()?).map_err(|e| corrupt_in(&name, e))
        })
    }

    /// For `manners.js` only: the layout validated at attach, as `[dataStart, formatsStart,
    /// codesStart, off[0], …, off[N]]`, so that the JS fast path reads where the core says
    /// and never trusts the segment's header. Positions fit a double exactly (segments are far
    /// below 2^53 bytes).
    #[napi(skip_typescript, js_name = "_layout", catch_unwind)]
    pub fn layout_positions(&self) -> Result<Vec<f64>, Code> {
        guard(|| {
            let offsets = self.layout.offsets();
            let n = self.layout.len();
            let data_len = offsets.last().copied().unwrap_or(0);
            let unplaceable = || error(Code("ERR_SHM_INTERNAL"), "the list's layout overflows");
            let starts = [
                shmkit_core::list::data_start(n).ok_or_else(unplaceable)?,
                shmkit_core::list::formats_start(n, data_len).ok_or_else(unplaceable)?,
                shmkit_core::list::codes_start(n, data_len).ok_or_else(unplaceable)?,
            ];
            let mut positions = Vec::new();
            positions
                .try_reserve_exact(offsets.len().saturating_add(starts.len()))
                .map_err(|_| error(Code("ENOMEM"), "not enough memory for the list's layout"))?;
            positions.extend(starts.iter().chain(offsets).map(|&p| p as f64));
            Ok(positions)
        })
    }

    /// The item at `index` (see `fast.rs`, which exposes it to JS as `get`).
    pub(crate) fn get_item<'env>(&self, env: &'env Env, index: &Unknown<'env>) -> Result<Unknown<'env>, Code> {
        let position = self.position(env, index)?;
        let mem = self.mem()?;
        // Items are copied out (twice, to check they did not change); reuse one buffer per
        // thread for that.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let item = self
                .layout
                .read_live(mem, position, &mut scratch)
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            to_js(env, &item)
        })
    }

    /// Replaces the item at `index`; validated completely before any byte changes.
    pub(crate) fn set_item(&self, env: &Env, index: &Unknown<'_>, value: &Unknown<'_>) -> Result<(), Code> {
        let position = self.position(env, index)?;
        // A str/bytes longer than any slot can hold is refused before it is copied.
        let value = match from_js_bounded(env, value)? {
            Converted::Item(value) => value,
            Converted::TooLarge(needed) => {
                return Err(from_core(shmkit_core::Error::ValueTooLarge {
                    needed,
                    allocated: self.layout.slot_len(position).min(MAX_SLOT_LEN),
                }))
            }
        };
        let mem = self.mem()?;
        self.layout.set(mem, position, &value.item()).map_err(from_core)
    }

    /// Every item, as JS values given to `push` in order (see `fast.rs`: `toArray`).
    pub(crate) fn each_item<'env>(
        &self,
        env: &'env Env,
        push: &mut dyn FnMut(Unknown<'env>) -> Result<(), Code>,
    ) -> Result<(), Code> {
        let mem = self.mem()?;
        let mut scratch = Vec::new();
        for i in 0..self.layout.len() {
            let item = self
                .layout
                .read_live(mem, i, &mut scratch)
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            push(to_js(env, &item)?)?;
        }
        Ok(())
    }

    /// How many items equal `value` (Python's `==`: `1`, `1.0`, `true` and `1n` are equal).
    #[napi(ts_args_type = "value: Item", catch_unwind)]
    pub fn count(&self, env: Env, value: Unknown) -> Result<u32, Code> {
        guard(|| {
            // No item holds more than MAX_SLOT_LEN bytes: a longer needle is never copied.
            let Converted::Item(needle) = from_js_bounded(&env, &value)? else {
                return Ok(0);
            };
            let count = self
                .layout
                .count(self.mem()?, &needle.item())
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            Ok(u32::try_from(count).unwrap_or(u32::MAX))
        })
    }

    /// The first index holding `value` (Python's `==`); throws `ERR_SHM_VALUE_NOT_FOUND` when
    /// absent, as Python's `index()` raises ValueError.
    #[napi(ts_args_type = "value: Item", catch_unwind)]
    pub fn index(&self, env: Env, value: Unknown) -> Result<u32, Code> {
        guard(|| {
            let needle = match from_js_bounded(&env, &value)? {
                Converted::Item(needle) => needle,
                Converted::TooLarge(len) => {
                    return Err(error(
                        VALUE_NOT_FOUND,
                        format!("a value of {len} bytes is not in the list"),
                    ))
                }
            };
            let found = self
                .layout
                .index_of(self.mem()?, &needle.item())
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            found
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| error(VALUE_NOT_FOUND, format!("{} is not in the list", needle.item())))
        })
    }

    /// For `list_fast.js` only, which first makes the SharedMemory a non-configurable property
    /// of this list: the list then stops holding it through a strong Node-API reference, so
    /// that a closed list and its SharedMemory are collected together (see `Held::weaken`).
    #[napi(skip_typescript, js_name = "_weakenShm", catch_unwind)]
    pub fn weaken_shm(&mut self, env: Env) -> Result<(), Code> {
        guard(|| self.shm.weaken(&env))
    }

    /// Closes the underlying segment (`shm.close()`); the list is unusable afterwards.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: Env) -> Result<(), Code> {
        guard(|| self.shm.get_mut().close(&env))
    }

    /// The segment's bytes, accessed only atomically (other processes write them).
    fn mem(&self) -> Result<&[AtomicU8], Code> {
        Ok(self.shm_ref().segment()?.atomic_bytes())
    }

    fn position(&self, env: &Env, index: &Unknown<'_>) -> Result<usize, Code> {
        let Some(number) = raw::number(index) else {
            return Err(type_error(env, "The \"index\" argument must be of type number"));
        };
        let len = self.layout.len();
        if number.fract() != 0.0 || !number.is_finite() {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("index out of range: {number} is not an integer"),
            ));
        }
        let index = number.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
        self.layout.position(index).map_err(|_| {
            range_error(
                env,
                OUT_OF_RANGE,
                format!("index out of range: {index} (the list has {len} items)"),
            )
        })
    }
}

impl ObjectFinalize for ShareableList {
    fn finalize(self, env: Env) -> napi::Result<()> {
        self.shm.release(&env);
        Ok(())
    }
}

/// What `toJSON()` returns.
#[napi(object)]
pub struct ShareableListJson {
    /// The segment's name.
    pub name: String,
}

/// The name in `open(name)`: a string, or the `name` of an object such as `toJSON()` makes.
fn name_of(env: &Env, value: Unknown) -> Result<String, Code> {
    let expected = "a string or an object with a string `name`";
    let name = match value.get_type() {
        Ok(ValueType::String) => value,
        Ok(ValueType::Object) => {
            let object = raw::object(&value).ok_or_else(|| args::wrong_type(env, "name", expected, &value))?;
            let name: Unknown = object
                .get_named_property("name")
                .map_err(|_| args::wrong_type(env, "name", expected, &value))?;
            if !matches!(name.get_type(), Ok(ValueType::String)) {
                return Err(args::wrong_type(env, "name", expected, &value));
            }
            name
        }
        _ => return Err(args::wrong_type(env, "name", expected, &value)),
    };
    args::string(env, name, "name")
}

/// Writes a list into a fresh segment (see `ShareableList::make`).
pub(crate) type Fill<'a> = Box<dyn FnOnce(&[AtomicU8]) -> shmkit_core::Result<()> + 'a>;

use shmkit_core::list::MAX_SLOT_LEN;

fn corrupt_in(name: &str, err: shmkit_core::Error) -> Error<Code> {
    crate::error::from_core_in(name, err)
}

/// The items of any iterable: arrays directly, anything else through `Array.from`.
pub(crate) fn items_of(env: &Env, sequence: Unknown) -> Result<Vec<OwnedItem>, Code> {
    let napi_err = |e: napi::Error| error(INVALID_ARG_TYPE, format!("sequence must be iterable: {e}"));
    let not_an_array = || error(INVALID_ARG_TYPE, "sequence must be iterable: Array.from gave no array");
    let array: Array = if let Some(array) = raw::array(&sequence) {
        array
    } else {
        if !is_iterable(env, &sequence).map_err(napi_err)? {
            return Err(args::wrong_type(
                env,
                "sequence",
                "an iterable (an array, a generator, a Set, …) or null",
                &sequence,
            ));
        }
        let global = env.get_global().map_err(napi_err)?;
        let array_ctor: Unknown = global.get_named_property("Array").map_err(napi_err)?;
        let array_ctor = raw::object(&array_ctor).ok_or_else(not_an_array)?;
        let from: Function<Unknown, Unknown> = array_ctor.get_named_property("from").map_err(napi_err)?;
        // An exception thrown by the iterable (a failing generator) propagates as it is.
        let converted = from
            .apply(array_ctor, sequence)
            .map_err(|_| Error::new(PENDING, String::new()))?;
        raw::array(&converted).ok_or_else(not_an_array)?
    };
    // The array's length is the caller's claim (`new Array(1e9)` is all holes): grow with the
    // items converted, so the first hole fails before anything is reserved for the rest.
    let mut items = Vec::new();
    for i in 0..array.len() {
        let value: Unknown = array.get_element(i).map_err(napi_err)?;
        let item = from_js(env, &value)?;
        items
            .try_reserve(1)
            .map_err(|_| error(NO_MEMORY, "not enough memory for the list's items"))?;
        items.push(item);
    }
    Ok(items)
}

/// A string, or an object with a `[Symbol.iterator]` method.
fn is_iterable(env: &Env, value: &Unknown) -> napi::Result<bool> {
    match value.get_type()? {
        ValueType::String => Ok(true),
        ValueType::Object | ValueType::Function => {
            let symbol_ctor: Unknown = env.get_global()?.get_named_property("Symbol")?;
            let symbol_ctor =
                raw::object(&symbol_ctor).ok_or_else(|| napi::Error::from_reason("Symbol is not an object"))?;
            let iterator: Unknown = symbol_ctor.get_named_property("iterator")?;
            let method = raw::property(env, value, &iterator);
            Ok(method.is_some_and(|method| matches!(method.get_type(), Ok(ValueType::Function))))
        }
        _ => Ok(false),
    }
}
