//! Work that is not an event: callbacks deferred to the end of a turn, and
//! idle hooks that run each time the loop is about to wait.
//!
//! These are sd-event's defer and prepare sources, and libuv's check and
//! prepare handles. Neither touches the kernel on its own: a deferred
//! callback queued while a turn dispatches runs at the end of that same
//! turn with no syscall. Only work the current turn will not reach (a defer
//! from outside a turn, or from another deferred callback) costs one
//! eventfd write, so that the next `epoll_wait` returns at once and a host
//! loop waiting on the reactor's fd sees it readable.
//!
//! Both get a [`Context`] like every other callback: the caller's data, and
//! for a hook, [`Context::remove`] to take itself out.
//!
//! Storage is reused: the queue and the hook slab keep their capacity, so a
//! warm loop allocates only what a boxed closure's captures need (none for
//! a closure that captures nothing).

use std::collections::VecDeque;

use slab::Slab;

use crate::{Context, Error, Idle, Reactor};

/// A callback deferred with [`Reactor::defer`].
pub(crate) type DeferredFn<D> = Box<dyn FnOnce(&mut Context<'_, D>)>;
/// An idle hook added with [`Reactor::add_idle`].
pub(crate) type HookFn<D> = Box<dyn FnMut(&mut Context<'_, D>)>;

/// Where a turn is, for deciding whether a new deferred callback will run
/// in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// No turn is running.
    #[default]
    Outside,
    /// Idle hooks, the wait or dispatch: the deferred phase is still to come.
    BeforeDeferred,
    /// Running deferred callbacks: new ones wait for the next turn.
    Deferred,
}

pub(crate) struct Hook<D> {
    generation: u32,
    /// `None` while it runs.
    callback: Option<HookFn<D>>,
}

pub(crate) struct Deferred<D> {
    queue: VecDeque<DeferredFn<D>>,
    pub(crate) phase: Phase,
    hooks: Slab<Hook<D>>,
    next_generation: u32,
    /// Keys of the hooks to run this turn, reused.
    scratch: Vec<u32>,
}

impl<D> Default for Deferred<D> {
    fn default() -> Self {
        Deferred {
            queue: VecDeque::new(),
            phase: Phase::Outside,
            hooks: Slab::new(),
            next_generation: 0,
            scratch: Vec::new(),
        }
    }
}

impl<D> Deferred<D> {
    /// Queue `callback`; returns whether the loop must be woken for it (it
    /// will not run in the current turn, and the queue was empty).
    pub(crate) fn push(&mut self, callback: DeferredFn<D>) -> bool {
        let was_empty = self.queue.is_empty();
        self.queue.push_back(callback);
        self.phase != Phase::BeforeDeferred && was_empty
    }

    /// Take back the callback [`push`](Self::push) just queued, when the
    /// wake it needed failed: the defer is refused instead of left waiting.
    pub(crate) fn unpush(&mut self) -> Option<DeferredFn<D>> {
        self.queue.pop_back()
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn pop(&mut self) -> Option<DeferredFn<D>> {
        self.queue.pop_front()
    }

    pub(crate) fn add_hook(&mut self, callback: HookFn<D>) -> Result<(u32, u32), Error> {
        let key = u32::try_from(self.hooks.vacant_key())
            .map_err(|_| Error::Os(rustix::io::Errno::NOSPC))?;
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        self.hooks.insert(Hook { generation, callback: Some(callback) });
        Ok((key, generation))
    }

    /// Take hook `key` out if it is still that generation's; returns its
    /// callback, to be dropped outside the core's borrow.
    pub(crate) fn remove_hook(&mut self, key: u32, generation: u32) -> Option<Option<HookFn<D>>> {
        match self.hooks.get(key as usize) {
            Some(h) if h.generation == generation => {
                self.hooks.try_remove(key as usize).map(|h| h.callback)
            }
            _ => None,
        }
    }

    /// Whether any idle hook exists: a turn skips the hook pass without.
    #[inline]
    pub(crate) fn has_hooks(&self) -> bool {
        !self.hooks.is_empty()
    }

    pub(crate) fn hook_is_live(&self, key: u32, generation: u32) -> bool {
        self.hooks.get(key as usize).is_some_and(|h| h.generation == generation)
    }

    /// Where hook `key` of `generation` keeps its callback.
    pub(crate) fn hook(&mut self, key: u32, generation: u32) -> Option<&mut Option<HookFn<D>>> {
        let h = self.hooks.get_mut(key as usize)?;
        (h.generation == generation).then_some(&mut h.callback)
    }

    /// The hooks to run this turn, as (key, generation), in a reused list
    /// the caller hands back with [`return_scratch`](Self::return_scratch).
    pub(crate) fn hooks_to_run(&mut self) -> Vec<u32> {
        let mut keys = std::mem::take(&mut self.scratch);
        keys.clear();
        keys.extend(self.hooks.iter().map(|(k, _)| k as u32));
        keys
    }

    pub(crate) fn generation_of(&self, key: u32) -> Option<u32> {
        self.hooks.get(key as usize).map(|h| h.generation)
    }

    pub(crate) fn return_scratch(&mut self, keys: Vec<u32>) {
        self.scratch = keys;
    }
}

impl<D: 'static> Reactor<D> {
    /// Run `callback` once, after the current turn's dispatch: at the end
    /// of the turn a callback is running in, or of the next turn when
    /// called from outside one (that turn then does not block). Deferred
    /// callbacks run in the order they were deferred; one deferred from a
    /// deferred callback runs in the next turn, so a chain of them cannot
    /// starve the loop.
    ///
    /// From inside a callback this makes no syscall. Otherwise it writes
    /// the reactor's eventfd; if that fails the callback is refused (and
    /// dropped) with the error, never left waiting for a wake-up that did
    /// not happen. A callback that panics unwinds out of `turn`; the ones
    /// after it stay queued.
    pub fn defer(&self, callback: impl FnOnce(&mut Context<'_, D>) + 'static) -> Result<(), Error> {
        let refused = {
            let mut core = self.core()?;
            if !core.defer(Box::new(callback)) {
                return Ok(());
            }
            match core.notify() {
                Ok(()) => return Ok(()),
                Err(e) => (core.undefer(), e),
            }
        };
        drop(refused.0); // outside the borrow: its captures may be handles
        Err(refused.1)
    }

    /// Run `callback` each time the loop is about to wait: at the start of
    /// every turn, before its `epoll_wait` (also before a zero-timeout poll).
    /// Work a hook defers or makes ready is seen by that same wait. A hook
    /// removes itself with [`Context::remove`].
    ///
    /// A hook that panics is removed, like any source whose callback panics.
    pub fn add_idle(
        &self,
        callback: impl FnMut(&mut Context<'_, D>) + 'static,
    ) -> Result<Idle, Error> {
        let (key, generation) = self.core()?.add_hook(Box::new(callback))?;
        Ok(Idle { owner: self.owner(), key, generation })
    }
}
