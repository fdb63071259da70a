//! Drop guards: the handles that own sources.
//!
//! A handle holds a weak reference to its reactor and the id of its source.
//! Dropping it removes the source: `epoll_ctl(DEL)`, `close` for what the
//! reactor owns, the slab entry, the callback. Its callback never runs again,
//! even if an event for it is already in the current `epoll_wait` batch (the
//! generation check in dispatch discards it).
//!
//! The only ways to keep a source without a handle are `detach()`, which the
//! reactor counts, and `mem::forget`, which it cannot see.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::rc::Weak;

use timerfd_sys::Expiration;

use crate::state::{Core, Entry, Source};
use crate::token::SourceId;
use crate::{Error, Interest, Token};

/// Run `f` on the reactor's core, if the reactor still exists and is not
/// already borrowed (which only a trace observer calling back could cause).
fn with_core<T>(
    core: &Weak<RefCell<Core>>,
    f: impl FnOnce(&mut Core) -> Result<T, Error>,
) -> Result<T, Error> {
    let rc = core.upgrade().ok_or(Error::Gone)?;
    let mut core = rc.try_borrow_mut().map_err(|_| Error::Reentrant)?;
    f(&mut core)
}

/// Remove a source; drop what comes out only after the borrow is released.
fn remove(core: &Weak<RefCell<Core>>, id: SourceId) {
    let Some(rc) = core.upgrade() else { return }; // reactor gone: it closed everything
    let removed = match rc.try_borrow_mut() {
        Ok(mut core) => core.remove(id),
        // Only a trace observer dropping a handle gets here; the source then
        // lives until the reactor is dropped.
        Err(_) => None,
    };
    drop(removed);
}

/// Whether the source still exists: its reactor lives and it was not removed
/// (by its own callback, or because that callback panicked).
fn is_live(core: &Weak<RefCell<Core>>, id: SourceId) -> bool {
    with_core(core, |c| Ok(c.is_live(id))).unwrap_or(false)
}

fn detach(core: &Weak<RefCell<Core>>, id: SourceId) {
    let _ = with_core(core, |c| {
        c.detach(id);
        Ok(())
    });
}

/// Whether a timer owns its own timerfd or shares the reactor's heap.
/// See the [`shared`](crate::shared) module for when to pick which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimerMode {
    /// One timerfd per timer, registered in epoll: visible in `/proc`, any clock.
    #[default]
    Dedicated,
    /// An entry in a heap under one timerfd for the whole reactor: cheap, no fd.
    Shared,
}

/// A timer source. Dropping it cancels the timer and frees everything it holds.
#[must_use = "dropping the handle removes the timer at once"]
pub struct Timer {
    pub(crate) core: Weak<RefCell<Core>>,
    pub(crate) id: SourceId,
}

impl Timer {
    /// Re-arm with `exp`, replacing the current setting. Unread expirations
    /// of a dedicated timer are discarded, as `timerfd_settime` does.
    pub fn set(&self, exp: Expiration) -> Result<(), Error> {
        with_core(&self.core, |c| c.set_timer(self.id, Some(exp)))
    }

    /// Stop the timer without removing it; [`set`](Self::set) re-arms it.
    pub fn disarm(&self) -> Result<(), Error> {
        with_core(&self.core, |c| c.set_timer(self.id, None))
    }

    /// Whether the timer still exists. False once its reactor is dropped,
    /// once its callback removed it ([`Context::remove`](crate::Context::remove)),
    /// or once its callback panicked (see
    /// [Callbacks that panic](crate#callbacks-that-panic)); then every
    /// other method reports [`Error::Gone`].
    pub fn is_live(&self) -> bool {
        is_live(&self.core, self.id)
    }

    /// Its mode.
    pub fn mode(&self) -> TimerMode {
        match self.id {
            SourceId::Shared { .. } => TimerMode::Shared,
            _ => TimerMode::Dedicated,
        }
    }

    /// The timerfd of a dedicated timer, for `/proc/self/fdinfo` or strace;
    /// `None` for a shared timer or one that is gone.
    pub fn fd(&self) -> Option<RawFd> {
        let SourceId::Dedicated(token) = self.id else { return None };
        with_core(&self.core, |c| match c.entry(token) {
            Some(Entry { source: Source::Timer { fd, .. }, .. }) => {
                Ok(std::os::fd::AsRawFd::as_raw_fd(fd))
            }
            _ => Err(Error::Gone),
        })
        .ok()
    }

    /// Give up the handle and keep the timer firing for as long as the
    /// reactor lives: the deliberate leak, like a Go `time.Ticker` that is
    /// never stopped. [`Stats::detached_timers`](crate::Stats::detached_timers)
    /// counts these. Only dropping the reactor, or the timer's own callback
    /// calling [`Context::remove`](crate::Context::remove), ends it.
    pub fn detach(mut self) {
        detach(&self.core, self.id);
        self.core = Weak::new(); // so that Drop finds no reactor and removes nothing
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        remove(&self.core, self.id);
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").field("id", &self.id).finish()
    }
}

/// An I/O source. `'fd` is the lifetime of a borrowed fd (`'static` when the
/// reactor owns it); dropping the handle deregisters it, and closes it if owned.
#[must_use = "dropping the handle deregisters the fd at once"]
pub struct Io<'fd> {
    pub(crate) core: Weak<RefCell<Core>>,
    pub(crate) token: Token,
    pub(crate) _fd: PhantomData<&'fd ()>,
}

impl Io<'_> {
    /// Change what the fd is watched for (`EPOLL_CTL_MOD`).
    pub fn modify(&self, interest: Interest) -> Result<(), Error> {
        with_core(&self.core, |c| c.modify_io(self.token, interest))
    }

    /// The epoll token its events carry.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Whether the source is still registered: false once its reactor is
    /// dropped, or its callback removed it or panicked.
    pub fn is_live(&self) -> bool {
        is_live(&self.core, SourceId::Io(self.token))
    }
}

impl Io<'static> {
    /// Keep the source registered, with no handle, for the reactor's
    /// lifetime. Only for fds the reactor owns or that live forever.
    pub fn detach(mut self) {
        detach(&self.core, SourceId::Io(self.token));
        self.core = Weak::new(); // so that Drop finds no reactor and removes nothing
    }
}

impl Drop for Io<'_> {
    fn drop(&mut self) {
        remove(&self.core, SourceId::Io(self.token));
    }
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").field("token", &self.token).finish()
    }
}

/// A signal source. Dropping it closes the signalfd; a signal it blocked is
/// unblocked when no other source in this thread still watches it.
#[must_use = "dropping the handle removes the signal source at once"]
pub struct Signals {
    pub(crate) core: Weak<RefCell<Core>>,
    pub(crate) token: Token,
}

impl Signals {
    /// Whether the source is still registered: false once its reactor is
    /// dropped, or its callback removed it or panicked.
    pub fn is_live(&self) -> bool {
        is_live(&self.core, SourceId::Signal(self.token))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        remove(&self.core, SourceId::Signal(self.token));
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").field("token", &self.token).finish()
    }
}

/// An idle hook from [`Reactor::add_idle`](crate::Reactor::add_idle). Dropping it removes the hook.
#[must_use = "dropping the handle removes the hook at once"]
pub struct Idle {
    pub(crate) core: Weak<RefCell<Core>>,
    pub(crate) key: usize,
    pub(crate) generation: u32,
}

impl Idle {
    /// Whether the hook still exists: false once its reactor is dropped or
    /// its callback panicked.
    pub fn is_live(&self) -> bool {
        let Some(core) = self.core.upgrade() else { return false };
        core.try_borrow().is_ok_and(|c| c.deferred.hook_is_live(self.key, self.generation))
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        let Some(rc) = self.core.upgrade() else { return };
        let removed = rc
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.deferred.remove_hook(self.key, self.generation));
        drop(removed);
    }
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("key", &self.key).finish()
    }
}
