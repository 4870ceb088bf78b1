//! `SharedMemoryManager`: owns the segments it creates and unlinks them on `shutdown()`, on
//! dispose, when garbage collected, and when its JS environment (process or worker) ends.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use shmkit_core::Manager;

use crate::args;
use crate::error::{closed, from_core, guard, Code};
use crate::item::OwnedItem;
use crate::raw::Held;
use crate::shareable_list::{items_of, ShareableList};
use crate::shared_memory::{checked_size, SharedMemory};

thread_local! {
    /// The live managers of the JS environment on this thread, shut down by its cleanup hook.
    static LIVE: RefCell<Vec<Weak<RefCell<Manager>>>> = const { RefCell::new(Vec::new()) };
}

/// Shuts down every live manager of the environment that is ending (process exit or worker
/// termination). Registered once per environment in `module_exports`.
pub fn shut_down_live_managers() {
    let live = LIVE.with(|live| std::mem::take(&mut *live.borrow_mut()));
    for manager in live.iter().filter_map(Weak::upgrade) {
        manager.borrow_mut().shutdown();
    }
}

/// Creates segments and lists, and unlinks all of them on `shutdown()` — as CPython's
/// `multiprocessing.managers.SharedMemoryManager`, without a server process: segments are
/// created here and named for any process to attach. Every segment it made is also unlinked
/// if it is garbage collected (together with all its segments), when its environment ends,
/// and, through tracking, if the process dies.
#[napi]
pub struct SharedMemoryManager {
    inner: Rc<RefCell<Manager>>,
}

#[napi]
impl SharedMemoryManager {
    /// A manager that owns nothing yet; usable at once (`start()` is optional).
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        let inner = Rc::new(RefCell::new(Manager::new()));
        LIVE.with(|live| {
            let mut live = live.borrow_mut();
            live.retain(|m| m.strong_count() > 0);
            live.push(Rc::downgrade(&inner));
        });
        SharedMemoryManager { inner }
    }

    /// Kept for parity with Python (`smm.start()`); returns the manager. Calling it again is
    /// harmless. After `shutdown()` it throws `ERR_SHM_CLOSED`.
    #[napi(ts_return_type = "this", catch_unwind)]
    pub fn start<'a>(&self, this: This<'a>) -> Result<This<'a>, Code> {
        self.ensure_running()?;
        Ok(this)
    }

    /// A new segment of `size` bytes, owned (and eventually unlinked) by this manager.
    #[napi(js_name = "SharedMemory", catch_unwind)]
    pub fn shared_memory(
        &mut self,
        env: Env,
        this: This,
        #[napi(ts_arg_type = "number")] size: Unknown,
    ) -> Result<SharedMemory, Code> {
        guard(|| {
            let size = checked_size(args::number(&env, size, "size")?)?;
            let segment = self.inner.borrow_mut().create(size).map_err(from_core)?;
            Ok(SharedMemory::owned_by(segment, self.held(&env, &this)?))
        })
    }

    /// A strong hold on this manager's JS object, for a segment it hands out.
    fn held(&mut self, env: &Env, this: &This) -> Result<Held<SharedMemoryManager>, Code> {
        Held::this(env, this, self)
    }

    /// A new ShareableList holding `sequence`, owned (and eventually unlinked) by this manager.
    #[napi(
        js_name = "ShareableList",
        ts_generic_types = "T extends Item = Item",
        ts_args_type = "sequence?: Iterable<T> | null",
        ts_return_type = "ShareableList<T>",
        catch_unwind
    )]
    pub fn shareable_list(&mut self, env: Env, this: This, sequence: Option<Unknown>) -> Result<ShareableList, Code> {
        guard(|| self.make_list(env, this, sequence))
    }

    fn make_list(&mut self, env: Env, this: This, sequence: Option<Unknown>) -> Result<ShareableList, Code> {
        self.ensure_running()?;
        let sequence = sequence.filter(|s| !matches!(s.get_type(), Ok(ValueType::Null | ValueType::Undefined)));
        let items: Vec<OwnedItem> = match sequence {
            Some(sequence) => items_of(&env, sequence)?,
            None => Vec::new(),
        };
        let (segment, layout) =
            ShareableList::make(&items, |size, fill| self.inner.borrow_mut().create_filled(size, fill))?;
        let owner = self.held(&env, &this)?;
        ShareableList::wrap(env, SharedMemory::owned_by(segment, owner), layout)
    }

    /// Names of the segments this manager made and will unlink.
    #[napi(getter, catch_unwind)]
    pub fn segments(&self) -> Vec<String> {
        self.inner.borrow().segments().to_vec()
    }

    /// Whether `shutdown()` has run.
    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.inner.borrow().is_shut_down()
    }

    /// Unlinks every segment this manager made. Handles already held in this process stay
    /// readable until closed, as in CPython. Calling it again does nothing; creating through
    /// the manager afterwards throws `ERR_SHM_CLOSED`.
    #[napi(catch_unwind)]
    pub fn shutdown(&self) {
        self.inner.borrow_mut().shutdown();
    }

    fn ensure_running(&self) -> Result<(), Code> {
        if self.inner.borrow().is_shut_down() {
            return Err(closed(&shmkit_core::Closed::Manager));
        }
        Ok(())
    }
}

impl Default for SharedMemoryManager {
    fn default() -> Self {
        Self::new()
    }
}
