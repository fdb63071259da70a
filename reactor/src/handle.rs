//! Drop guards: the handles that own sources.
//!
//! A handle holds a weak reference to its reactor and the id of its source.
//! Dropping it removes the source: `epoll_ctl(DEL)`, `close` for what the
//! reactor owns, the slab entry, the callback. Its callback never runs again,
//! even if an event for it is already in the current `epoll_wait` batch (the
//! generation check in dispatch discards it).
//!
//! Handles do not name the reactor's data type: they reach it through
//! [`Owner`], so a `Timer` is a `Timer` whatever `Reactor<D>` made it.
//!
//! The only ways to keep a source without a handle are `detach()`, which the
//! reactor counts, and `mem::forget`, which it cannot see.

use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::rc::Weak;
use std::time::Duration;

use timerfd_sys::Expiration;

use crate::token::SourceId;
use crate::{Error, Interest, Token};

/// What a handle can ask of its reactor, whatever its data type.
pub(crate) trait Owner {
    fn remove(&self, id: SourceId);
    fn set_timer(&self, id: SourceId, exp: Option<Expiration>) -> Result<(), Error>;
    fn set_leeway(&self, id: SourceId, leeway: Duration) -> Result<(), Error>;
    fn is_live(&self, id: SourceId) -> bool;
    fn detach(&self, id: SourceId);
    fn modify_io(&self, token: Token, interest: Interest) -> Result<(), Error>;
    fn timer_fd(&self, token: Token) -> Option<RawFd>;
}

pub(crate) type WeakOwner = Weak<dyn Owner>;

fn owner(w: &WeakOwner) -> Result<std::rc::Rc<dyn Owner>, Error> {
    w.upgrade().ok_or(Error::Gone)
}

/// Remove a source; with the reactor gone there is nothing left to remove.
fn remove(w: &WeakOwner, id: SourceId) {
    if let Some(o) = w.upgrade() {
        o.remove(id);
    }
}

fn is_live(w: &WeakOwner, id: SourceId) -> bool {
    w.upgrade().is_some_and(|o| o.is_live(id))
}

/// A handle that no longer refers to any reactor: what `detach` leaves
/// behind, so that its `Drop` removes nothing. (Never upgraded: a `Weak`
/// made by `Weak::new` has no value, so these methods never run.)
pub(crate) fn nobody() -> WeakOwner {
    struct Nobody;
    impl Owner for Nobody {
        fn remove(&self, _: SourceId) {}
        fn set_timer(&self, _: SourceId, _: Option<Expiration>) -> Result<(), Error> {
            Err(Error::Gone)
        }
        fn set_leeway(&self, _: SourceId, _: Duration) -> Result<(), Error> {
            Err(Error::Gone)
        }
        fn is_live(&self, _: SourceId) -> bool {
            false
        }
        fn detach(&self, _: SourceId) {}
        fn modify_io(&self, _: Token, _: Interest) -> Result<(), Error> {
            Err(Error::Gone)
        }
        fn timer_fd(&self, _: Token) -> Option<RawFd> {
            None
        }
    }
    Weak::<Nobody>::new()
}

/// Whether a timer owns its own timerfd or shares its clock's heap.
/// See the [`shared`](crate::shared) module for when to pick which.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimerMode {
    /// One timerfd per timer, registered in epoll: visible in `/proc`, any clock.
    #[default]
    Dedicated,
    /// An entry in a heap under one timerfd per clock: cheap, no fd of its own.
    Shared,
}

impl TimerMode {
    /// Both modes, in a fixed order: for tests, benchmarks and tables that
    /// cover each.
    pub const ALL: [TimerMode; 2] = [TimerMode::Dedicated, TimerMode::Shared];

    /// Its name in lower case, as command lines and metrics labels spell
    /// it: `dedicated` or `shared`.
    pub const fn name(self) -> &'static str {
        match self {
            TimerMode::Dedicated => "dedicated",
            TimerMode::Shared => "shared",
        }
    }
}

/// A timer source. Dropping it cancels the timer and frees everything it holds.
#[must_use = "dropping the handle removes the timer at once"]
pub struct Timer {
    pub(crate) owner: WeakOwner,
    pub(crate) id: SourceId,
}

impl Timer {
    /// Re-arm with `exp`, replacing the current setting (with the timer's
    /// leeway applied). Unread expirations of a dedicated timer are
    /// discarded, as `timerfd_settime` does.
    pub fn set(&self, exp: Expiration) -> Result<(), Error> {
        owner(&self.owner)?.set_timer(self.id, Some(exp))
    }

    /// Stop the timer without removing it; [`set`](Self::set) re-arms it.
    pub fn disarm(&self) -> Result<(), Error> {
        owner(&self.owner)?.set_timer(self.id, None)
    }

    /// Let the timer fire up to `leeway` after each deadline (never before),
    /// so that one wake-up can serve it and other timers (see the
    /// [`leeway`](crate::leeway) module): a shared timer waits in its heap
    /// until some wake-up finds its window open, or its window ends (a
    /// periodic one waits at most half its period, never into its next
    /// tick); a
    /// dedicated timer's schedule moves forward, by less than `leeway`, onto
    /// a grid other timers share. Zero, the default, fires exactly on time.
    ///
    /// It applies to the current schedule at once, and to every later
    /// [`set`](Self::set). For an armed dedicated timer the next expiry is
    /// read back from the kernel (`timerfd_gettime`) and re-armed absolute;
    /// the clock is read after the kernel's answer, so the timer may land up
    /// to the microseconds between the two readings past its window, never
    /// before its deadline. On error the timer keeps its leeway and schedule.
    pub fn set_leeway(&self, leeway: Duration) -> Result<(), Error> {
        owner(&self.owner)?.set_leeway(self.id, leeway)
    }

    /// Whether the timer still exists. False once its reactor is dropped,
    /// once its callback removed it ([`Context::remove`](crate::Context::remove)),
    /// or once its callback panicked (see
    /// [Callbacks that panic](crate#callbacks-that-panic)); then every
    /// other method reports [`Error::Gone`].
    pub fn is_live(&self) -> bool {
        is_live(&self.owner, self.id)
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
        self.owner.upgrade()?.timer_fd(token)
    }

    /// Give up the handle and keep the timer firing for as long as the
    /// reactor lives: the deliberate leak, like a Go `time.Ticker` that is
    /// never stopped. [`Stats::detached_timers`](crate::Stats::detached_timers)
    /// counts these. Only dropping the reactor, or the timer's own callback
    /// calling [`Context::remove`](crate::Context::remove), ends it.
    pub fn detach(mut self) {
        if let Some(o) = self.owner.upgrade() {
            o.detach(self.id);
        }
        self.owner = nobody();
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        remove(&self.owner, self.id);
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").field("id", &self.id).finish()
    }
}

/// An I/O source. Dropping the handle deregisters the fd and closes the
/// reactor's copy of it. (`'fd` is kept for source compatibility: the
/// reactor now always owns what it registers, so it is unconstrained.)
#[must_use = "dropping the handle deregisters the fd at once"]
pub struct Io<'fd> {
    pub(crate) owner: WeakOwner,
    pub(crate) token: Token,
    pub(crate) _fd: PhantomData<&'fd ()>,
}

impl Io<'_> {
    /// Change what the fd is watched for (`EPOLL_CTL_MOD`).
    pub fn modify(&self, interest: Interest) -> Result<(), Error> {
        owner(&self.owner)?.modify_io(self.token, interest)
    }

    /// The epoll token its events carry.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Whether the source is still registered: false once its reactor is
    /// dropped, or its callback removed it or panicked.
    pub fn is_live(&self) -> bool {
        is_live(&self.owner, SourceId::Io(self.token))
    }

    /// Keep the source registered, with no handle, for the reactor's
    /// lifetime. [`Stats::detached_io`](crate::Stats::detached_io) counts these.
    pub fn detach(mut self) {
        if let Some(o) = self.owner.upgrade() {
            o.detach(SourceId::Io(self.token));
        }
        self.owner = nobody();
    }
}

impl Drop for Io<'_> {
    fn drop(&mut self) {
        remove(&self.owner, SourceId::Io(self.token));
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
    pub(crate) owner: WeakOwner,
    pub(crate) token: Token,
}

impl Signals {
    /// Whether the source is still registered: false once its reactor is
    /// dropped, or its callback removed it or panicked.
    pub fn is_live(&self) -> bool {
        is_live(&self.owner, SourceId::Signal(self.token))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        remove(&self.owner, SourceId::Signal(self.token));
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").field("token", &self.token).finish()
    }
}

/// An idle hook from [`Reactor::add_idle`](crate::Reactor::add_idle).
/// Dropping it removes the hook; so does the hook's own
/// [`Context::remove`](crate::Context::remove).
#[must_use = "dropping the handle removes the hook at once"]
pub struct Idle {
    pub(crate) owner: WeakOwner,
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl Idle {
    fn id(&self) -> SourceId {
        SourceId::Idle { key: self.key, generation: self.generation }
    }

    /// Whether the hook still exists: false once its reactor is dropped, or
    /// the hook removed itself or panicked.
    pub fn is_live(&self) -> bool {
        is_live(&self.owner, self.id())
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        remove(&self.owner, self.id());
    }
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("key", &self.key).finish()
    }
}
