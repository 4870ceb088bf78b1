//! `ShareableList`: CPython's fixed-length list in a segment, read and written in place.
#![allow(unsafe_code)]

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use shmkit_core::list::Layout;
use shmkit_core::{Segment, SegmentOptions, ShmName};

use crate::args;
use crate::error::{error, from_core, guard, range_error, type_error, Code, INVALID_ARG_TYPE};
use crate::held::Held;
use crate::item::{from_js, to_js, OwnedItem};
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
        ts_args_type = "sequence?: Iterable<Item> | null, options?: ShareableListOptions | null"
    )]
    pub fn new(env: Env, sequence: Option<Unknown>, options: Option<Unknown>) -> Result<Self, Code> {
        guard(|| Self::construct(env, sequence, options))
    }

    fn construct(env: Env, sequence: Option<Unknown>, options: Option<Unknown>) -> Result<Self, Code> {
        let options: Option<ShareableListOptions> = crate::error::options(&env, options, "options")?;
        let (name, track) = options.map_or((None, None), |o| (o.name, o.track));
        let sequence = sequence.filter(|s| !matches!(s.get_type(), Ok(ValueType::Null | ValueType::Undefined)));
        match (sequence, name) {
            (None, Some(name)) => Self::attach(env, &name),
            (sequence, name) => {
                let items = match sequence {
                    Some(sequence) => items_of(&env, sequence)?,
                    None => Vec::new(),
                };
                Self::create(env, &items, name, track.unwrap_or(true))
            }
        }
    }

    /// Attaches to the list in an existing segment; its layout is validated first.
    #[napi(factory, catch_unwind)]
    pub fn open(env: Env, #[napi(ts_arg_type = "string")] name: Unknown) -> Result<Self, Code> {
        guard(|| Self::attach(env, &args::string(&env, name, "name")?))
    }

    fn attach(env: Env, name: &str) -> Result<Self, Code> {
        let segment = Segment::open(name).map_err(from_core)?;
        // SAFETY: the mapping is brand new; nothing else in this process can see it yet.
        let layout = Layout::read(unsafe { segment.bytes_mut() }).map_err(|e| corrupt_in(name, e))?;
        Self::wrap(env, SharedMemory::wrap(segment, false), layout)
    }

    fn create(env: Env, items: &[OwnedItem], name: Option<String>, track: bool) -> Result<Self, Code> {
        let mut options = SegmentOptions::new();
        options.track(track);
        if let Some(name) = name {
            options.name(ShmName::new(&name).map_err(from_core)?);
        }
        let (segment, layout) = Self::make(items, |size| options.create(size))?;
        Self::wrap(env, SharedMemory::wrap(segment, track), layout)
    }

    /// Lays out `items` in a segment from `create(size)`; the segment is unlinked again if
    /// anything fails after it exists.
    pub(crate) fn make(
        items: &[OwnedItem],
        create: impl FnOnce(usize) -> shmkit_core::Result<Segment>,
    ) -> Result<(Segment, Layout), Code> {
        let items: Vec<_> = items.iter().map(OwnedItem::item).collect();
        let layout = Layout::for_items(&items).map_err(from_core)?;
        let segment = create(layout.total_len()).map_err(from_core)?;
        // SAFETY: the mapping is brand new; nothing else in this process can see it yet.
        let written = layout.write_all(unsafe { segment.bytes_mut() }, &items);
        if let Err(e) = written {
            let _ = segment.unlink();
            return Err(from_core(e));
        }
        Ok((segment, layout))
    }

    pub(crate) fn wrap(env: Env, shm: SharedMemory, layout: Layout) -> Result<Self, Code> {
        let instance = shm
            .into_instance(&env)
            .map_err(|e| error(Code("ERR_SHM_NAPI"), e.to_string()))?;
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
        guard(|| {
            let value = self.shm.value(env)?;
            // SAFETY: `value` was just produced by this env.
            Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
        })
    }

    /// Number of items (fixed at creation).
    #[napi(getter, catch_unwind)]
    pub fn length(&self) -> u32 {
        self.layout.len() as u32
    }

    /// The struct formats of all items, concatenated: the same string as Python's `.format`.
    #[napi(getter, catch_unwind)]
    pub fn format(&self) -> Result<String, Code> {
        guard(|| {
            let name = self.shm_ref().name();
            self.layout.format_live(self.bytes()?).map_err(|e| corrupt_in(&name, e))
        })
    }

    /// The item at `index` (see `fast.rs`, which exposes it to JS as `get`).
    pub(crate) fn get_raw(&self, env: &Env, index: sys::napi_value) -> Result<sys::napi_value, Code> {
        let position = self.position(env, index)?;
        let bytes = self.bytes()?;
        // str/bytes are copied out under the item's lock; reuse one buffer per thread for that.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let item = self
                .layout
                .read_live(bytes, position, &mut scratch)
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            to_js(env.raw(), &item)
        })
    }

    /// Replaces the item at `index`; validated completely before any byte changes.
    pub(crate) fn set_raw(&self, env: &Env, index: sys::napi_value, value: sys::napi_value) -> Result<(), Code> {
        let position = self.position(env, index)?;
        let value = from_js(env, value)?;
        let bytes = self.bytes()?;
        self.layout.set(bytes, position, &value.item()).map_err(from_core)
    }

    /// Every item, as JS values in `out` (cleared first).
    pub(crate) fn values_raw(&self, env: &Env, out: &mut Vec<sys::napi_value>) -> Result<(), Code> {
        out.clear();
        out.reserve(self.layout.len());
        let bytes = self.bytes()?;
        let mut scratch = Vec::new();
        for i in 0..self.layout.len() {
            let item = self
                .layout
                .read_live(bytes, i, &mut scratch)
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            out.push(to_js(env.raw(), &item)?);
        }
        Ok(())
    }

    /// How many items equal `value` (Python's `==`: `1`, `1.0`, `true` and `1n` are equal).
    #[napi(ts_args_type = "value: Item", catch_unwind)]
    pub fn count(&self, env: Env, value: Unknown) -> Result<u32, Code> {
        guard(|| {
            let needle = from_js(&env, value.raw())?;
            let count = self
                .layout
                .count(self.bytes()?, &needle.item())
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            Ok(count as u32)
        })
    }

    /// The first index holding `value` (Python's `==`); throws `ERR_SHM_VALUE_NOT_FOUND` when
    /// absent, as Python's `index()` raises ValueError.
    #[napi(ts_args_type = "value: Item", catch_unwind)]
    pub fn index(&self, env: Env, value: Unknown) -> Result<u32, Code> {
        guard(|| {
            let needle = from_js(&env, value.raw())?;
            let found = self
                .layout
                .index_of(self.bytes()?, &needle.item())
                .map_err(|e| corrupt_in(&self.shm_ref().name(), e))?;
            found.map(|i| i as u32).ok_or_else(|| {
                error(
                    Code("ERR_SHM_VALUE_NOT_FOUND"),
                    format!("{} is not in the list", needle.item()),
                )
            })
        })
    }

    /// Closes the underlying segment (`shm.close()`); the list is unusable afterwards.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: Env) -> Result<(), Code> {
        guard(|| self.shm.get_mut().close(&env))
    }

    #[allow(clippy::mut_from_ref)] // the mapping is shared memory; see the SAFETY note
    fn bytes(&self) -> Result<&mut [u8], Code> {
        let segment = self.shm_ref().segment()?;
        // SAFETY: JS is single-threaded in this env and cannot run during this native call,
        // so no typed array over the mapping is in use while the slice lives; the layout code
        // treats the bytes as untrusted.
        Ok(unsafe { segment.bytes_mut() })
    }

    fn position(&self, env: &Env, index: sys::napi_value) -> Result<usize, Code> {
        let mut number = 0f64;
        // SAFETY: `index` is an argument of the current call (possibly `undefined`).
        let status = unsafe { sys::napi_get_value_double(env.raw(), index, &mut number) };
        if status != sys::Status::napi_ok {
            return Err(type_error(env, "The \"index\" argument must be of type number"));
        }
        let len = self.layout.len();
        if number.fract() != 0.0 || !number.is_finite() {
            return Err(range_error(
                env,
                Code("ERR_OUT_OF_RANGE"),
                format!("index out of range: {number} is not an integer"),
            ));
        }
        let index = number.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
        self.layout.position(index).map_err(|_| {
            range_error(
                env,
                Code("ERR_OUT_OF_RANGE"),
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

fn corrupt_in(name: &str, err: shmkit_core::Error) -> Error<Code> {
    error(Code(err.code()), format!("segment '{name}': {err}"))
}

/// The items of any iterable: arrays directly, anything else through `Array.from`.
pub(crate) fn items_of(env: &Env, sequence: Unknown) -> Result<Vec<OwnedItem>, Code> {
    let napi_err = |e: napi::Error| error(INVALID_ARG_TYPE, format!("sequence must be iterable: {e}"));
    let array: Array = if sequence.is_array().map_err(napi_err)? {
        // SAFETY: `sequence` is an array, as just checked.
        unsafe { sequence.cast() }.map_err(napi_err)?
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
        // SAFETY: `Array` is a function, and every function is an object.
        let array_ctor: Object = unsafe { array_ctor.cast() }.map_err(napi_err)?;
        let from: Function<Unknown, Unknown> = array_ctor.get_named_property("from").map_err(napi_err)?;
        // An exception thrown by the iterable (a failing generator) propagates as it is.
        let converted = from
            .apply(array_ctor, sequence)
            .map_err(|_| Error::new(crate::error::PENDING, String::new()))?;
        // SAFETY: Array.from always returns an array.
        unsafe { converted.cast() }.map_err(napi_err)?
    };
    let mut items = Vec::with_capacity(array.len() as usize);
    for i in 0..array.len() {
        let value: Unknown = array.get_element(i).map_err(napi_err)?;
        items.push(from_js(env, value.raw())?);
    }
    Ok(items)
}

/// A string, or an object with a `[Symbol.iterator]` method.
fn is_iterable(env: &Env, value: &Unknown) -> napi::Result<bool> {
    match value.get_type()? {
        ValueType::String => Ok(true),
        ValueType::Object | ValueType::Function => {
            let symbol_ctor: Unknown = env.get_global()?.get_named_property("Symbol")?;
            // SAFETY: `Symbol` is a function, and every function is an object.
            let symbol_ctor: Object = unsafe { symbol_ctor.cast() }?;
            let iterator: Unknown = symbol_ctor.get_named_property("iterator")?;
            let mut method = std::ptr::null_mut();
            // SAFETY: `value` is an object and `iterator` a symbol, both live in this env.
            let status = unsafe { sys::napi_get_property(env.raw(), value.raw(), iterator.raw(), &mut method) };
            if status != sys::Status::napi_ok {
                return Ok(false);
            }
            let mut kind = 0;
            // SAFETY: `method` was just produced by this env.
            unsafe { sys::napi_typeof(env.raw(), method, &mut kind) };
            Ok(kind == sys::ValueType::napi_function)
        }
        _ => Ok(false),
    }
}
