//! What the slab holds: one entry per registered fd, and the callback
//! types of each kind of source.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use timerfd_sys::TimerFd;

use crate::signal::{SignalFd, SignalInfo};
use crate::{Context, Readiness};

/// A shared timer's callback (dedicated ones use [`DedicatedCallback`]).
pub(crate) type TimerFn<D> = Box<dyn FnMut(&mut Context<'_, D>, u64)>;
pub(crate) type IoFn<D> = Box<dyn FnMut(&mut Context<'_, D>, Readiness)>;
pub(crate) type SignalFn<D> = Box<dyn FnMut(&mut Context<'_, D>, SignalInfo)>;

/// A dedicated timer's callback, shared between its entry and a dispatch
/// that is running it: one allocation, like a `Box`.
///
/// This is the one documented exception to the callback protocol of
/// `turn.rs` (take the callback out, run it, put it back): dispatch clones
/// the `Rc` (one increment), releases the core and hands the clone to
/// [`RunTimer::run`], which calls the callback and drops the clone. Nothing
/// goes back into the entry, so the hot path visits the slab once per
/// event, not twice. If the source was removed while its callback ran, the
/// entry's clone is already gone and the dispatch's clone, dropped after the
/// call with no borrow held, is the last: the callback is dropped then.
pub(crate) type DedicatedCallback<D> = Rc<dyn RunTimer<D>>;

/// A timer callback behind its own `RefCell`, called through one virtual
/// call: the borrow check, the closure's body and the release of the
/// caller's `Rc` are compiled together, where the layout is known.
pub(crate) trait RunTimer<D> {
    /// Run the callback, then drop `self`, the dispatch's clone. The
    /// `RefCell` is never found borrowed, as a callback cannot run inside
    /// itself (turns do not nest); if it were, the call would be skipped.
    fn run(self: Rc<Self>, ctx: &mut Context<'_, D>, ticks: u64);
}

impl<D, F: FnMut(&mut Context<'_, D>, u64)> RunTimer<D> for RefCell<F> {
    #[inline]
    fn run(self: Rc<Self>, ctx: &mut Context<'_, D>, ticks: u64) {
        if let Ok(mut f) = self.try_borrow_mut() {
            f(ctx, ticks);
        }
    }
}

/// What a slab entry is.
pub(crate) enum Source<D> {
    Timer {
        fd: TimerFd,
        /// Applied at every arm (see the `leeway` module); 0: exact.
        leeway_ns: u64,
        callback: DedicatedCallback<D>,
    },
    /// Closed when the source is removed (whatever `Drop` of the box does).
    Io { fd: Box<dyn AsFd>, callback: Option<IoFn<D>> },
    /// Boxed: a `sigset_t` is 128 bytes, and every slab entry would pay for it.
    Signal { fd: Box<SignalFd>, callback: Option<SignalFn<D>> },
    /// The reactor's eventfd (wakers, deferred work, a resumed batch).
    Waker,
    /// The timerfd of shared clock `.0`; the clock owns it.
    SharedFd(u8),
}

impl<D> Source<D> {
    /// The fd a user source registered; `None` for the internal ones (waker,
    /// shared timerfds), which live as long as the reactor and no handle names.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Source::Timer { fd, .. } => Some(fd.as_fd()),
            Source::Io { fd, .. } => Some(fd.as_fd()),
            Source::Signal { fd, .. } => Some(fd.as_fd()),
            Source::Waker | Source::SharedFd(_) => None,
        }
    }

    /// Split a removed source into what keeps its fd open and the rest: the
    /// fd part is parked when its `EPOLL_CTL_DEL` failed, the rest dropped.
    pub(crate) fn split(self) -> (Option<Box<dyn AsFd>>, Leftover<D>) {
        match self {
            Source::Timer { fd, callback, .. } => (Some(Box::new(fd)), Leftover::Timer(callback)),
            Source::Io { fd, callback } => (Some(fd), Leftover::Io(callback)),
            Source::Signal { fd, callback } => (Some(fd), Leftover::Signal(callback)),
            Source::Waker | Source::SharedFd(_) => (None, Leftover::Nothing),
        }
    }
}

/// What a removal hands back, to be dropped once the core is released:
/// callbacks (and, unless parked, fds) are the caller's code and may touch
/// the reactor in their `Drop`.
#[allow(dead_code)] // held only for its Drop
pub(crate) enum Leftover<D> {
    Source(Source<D>),
    Timer(DedicatedCallback<D>),
    Io(Option<IoFn<D>>),
    Signal(Option<SignalFn<D>>),
    Shared(Option<TimerFn<D>>),
    Hook(Option<crate::deferred::HookFn<D>>),
    Nothing,
}

pub(crate) struct Entry<D> {
    pub(crate) generation: u32,
    pub(crate) detached: bool,
    pub(crate) source: Source<D>,
}

/// Refuse a socket, pipe or character device in blocking mode (see
/// [`Reactor::add_io`]).
pub(crate) fn check_nonblocking(fd: rustix::fd::BorrowedFd<'_>) -> Result<(), crate::Error> {
    if rustix::fs::fcntl_getfl(fd)?.contains(rustix::fs::OFlags::NONBLOCK) {
        return Ok(());
    }
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode);
    match kind {
        rustix::fs::FileType::Socket
        | rustix::fs::FileType::Fifo
        | rustix::fs::FileType::CharacterDevice => Err(crate::Error::Blocking),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// Dispatch touches one entry per event: keep them small. (A signalfd's
    /// 128-byte `sigset_t` once made every entry 168 bytes.)
    #[test]
    fn slab_entries_stay_small() {
        let size = size_of::<super::Entry<()>>();
        assert!(size <= 48, "{size}");
    }
}
