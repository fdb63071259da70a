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
//! Storage is reused: the queue and the hook slab keep their capacity, so a
//! warm loop allocates only what a boxed closure's captures need (none for
//! a closure that captures nothing).

use std::collections::VecDeque;

use slab::Slab;

use crate::{Error, Idle, Reactor};

/// A callback deferred with [`Reactor::defer`].
pub type DeferredCallback = Box<dyn FnOnce(&Reactor)>;
/// An idle hook added with [`Reactor::add_idle`].
pub type IdleCallback = Box<dyn FnMut(&Reactor)>;

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

pub(crate) struct Hook {
    generation: u32,
    /// `None` while it runs.
    callback: Option<IdleCallback>,
}

#[derive(Default)]
pub(crate) struct Deferred {
    pub(crate) queue: VecDeque<DeferredCallback>,
    pub(crate) phase: Phase,
    hooks: Slab<Hook>,
    next_generation: u32,
    /// Keys of the hooks to run this turn, reused.
    scratch: Vec<usize>,
}

impl Deferred {
    /// Queue `callback`; returns whether the loop must be woken for it (it
    /// will not run in the current turn, and the queue was empty).
    pub(crate) fn push(&mut self, callback: DeferredCallback) -> bool {
        let was_empty = self.queue.is_empty();
        self.queue.push_back(callback);
        self.phase != Phase::BeforeDeferred && was_empty
    }

    pub(crate) fn add_hook(&mut self, callback: IdleCallback) -> (usize, u32) {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        (self.hooks.insert(Hook { generation, callback: Some(callback) }), generation)
    }

    /// Take hook `key` out of the slab if it is still that generation's.
    pub(crate) fn remove_hook(&mut self, key: usize, generation: u32) -> Option<Hook> {
        match self.hooks.get(key) {
            Some(h) if h.generation == generation => self.hooks.try_remove(key),
            _ => None,
        }
    }

    /// Whether any idle hook exists: a turn skips the hook pass without.
    #[inline]
    pub(crate) fn has_hooks(&self) -> bool {
        !self.hooks.is_empty()
    }

    pub(crate) fn hook_is_live(&self, key: usize, generation: u32) -> bool {
        self.hooks.get(key).is_some_and(|h| h.generation == generation)
    }
}

impl Reactor {
    /// Run `callback` once, after the current turn's dispatch: at the end
    /// of the turn a callback is running in, or of the next turn when
    /// called from outside one (that turn then does not block). Deferred
    /// callbacks run in the order they were deferred; one deferred from a
    /// deferred callback runs in the next turn, so a chain of them cannot
    /// starve the loop.
    ///
    /// From inside a callback this makes no syscall. A callback that
    /// panics unwinds out of `turn`; the ones after it stay queued.
    pub fn defer(&self, callback: impl FnOnce(&Reactor) + 'static) -> Result<(), Error> {
        let mut core = self.core()?;
        if core.deferred.push(Box::new(callback)) {
            core.notify();
        }
        Ok(())
    }

    /// Run `callback` each time the loop is about to wait: at the start of
    /// every turn, before its `epoll_wait` (also before a zero-timeout poll).
    /// Work a hook defers or makes ready is seen by that same wait.
    ///
    /// A hook that panics is removed, like any source whose callback panics.
    pub fn add_idle(&self, callback: impl FnMut(&Reactor) + 'static) -> Result<Idle, Error> {
        let (key, generation) = self.core()?.deferred.add_hook(Box::new(callback));
        Ok(Idle { core: std::rc::Rc::downgrade(&self.core), key, generation })
    }

    /// Run every idle hook once, with no borrow held.
    pub(crate) fn run_idle_hooks(&self) {
        let mut keys = {
            let mut core = self.core.borrow_mut();
            if core.deferred.hooks.is_empty() {
                return; // the common case: no scratch list to lend out and back
            }
            let mut keys = std::mem::take(&mut core.deferred.scratch);
            keys.clear();
            keys.extend(core.deferred.hooks.iter().map(|(k, _)| k));
            keys
        };
        for &key in &keys {
            let taken = {
                let mut core = self.core.borrow_mut();
                core.deferred
                    .hooks
                    .get_mut(key)
                    .and_then(|h| Some((h.generation, h.callback.take()?)))
            };
            let Some((generation, mut callback)) = taken else { continue };
            let unwinding = RemoveHookOnUnwind(self, key, generation);
            callback(self);
            std::mem::forget(unwinding);
            let mut core = self.core.borrow_mut();
            let leftover = match core.deferred.hooks.get_mut(key) {
                Some(h) if h.generation == generation => h.callback.replace(callback),
                _ => Some(callback),
            };
            drop(core);
            drop(leftover);
        }
        keys.clear();
        self.core.borrow_mut().deferred.scratch = keys;
    }

    /// Run the callbacks deferred before this phase began; later ones wait
    /// for the next turn, which is woken for them.
    pub(crate) fn run_deferred(&self) {
        let queued = {
            let mut core = self.core.borrow_mut();
            if core.deferred.queue.is_empty() {
                // Nothing to run, and nothing was queued for the next turn:
                // the turn's end sets the phase back to `Outside`.
                return;
            }
            core.deferred.phase = Phase::Deferred;
            core.deferred.queue.len()
        };
        let phase = DeferredPhase(self);
        for _ in 0..queued {
            let next = self.core.borrow_mut().deferred.queue.pop_front();
            let Some(callback) = next else { break };
            callback(self);
        }
        drop(phase);
    }
}

/// Ends the deferred phase, on return or while a deferred callback's panic
/// unwinds: what is still queued is for the next turn, so wake it.
struct DeferredPhase<'a>(&'a Reactor);

impl Drop for DeferredPhase<'_> {
    fn drop(&mut self) {
        if let Ok(mut core) = self.0.core.try_borrow_mut() {
            core.deferred.phase = Phase::Outside;
            if !core.deferred.queue.is_empty() {
                core.notify();
            }
        }
    }
}

struct RemoveHookOnUnwind<'a>(&'a Reactor, usize, u32);

impl Drop for RemoveHookOnUnwind<'_> {
    fn drop(&mut self) {
        let removed = self.0.core().ok().and_then(|mut c| c.deferred.remove_hook(self.1, self.2));
        drop(removed);
    }
}
