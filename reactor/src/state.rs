//! The reactor's state: the poller, the slab of sources, the shared-timer
//! heap, counters. Everything here runs under one `RefCell` borrow, and
//! nothing here calls user code except the trace observer.
//!
//! # Ground rules
//!
//! * **No user callback runs while `Core` is borrowed.** Dispatch takes a
//!   callback out of its entry (`Option::take`), releases the borrow, calls
//!   it, and borrows again to put it back. A dedicated timer's callback is
//!   shared instead ([`DedicatedCallback`]): dispatch clones the `Rc`,
//!   releases the borrow and calls it, and has nothing to put back. So a
//!   callback may call any handle method, add sources, or drop its own handle.
//! * **Nothing user-owned is dropped while `Core` is borrowed.** Removing a
//!   source returns the entry ([`Removed`]); the caller drops it after the
//!   borrow ends, because a callback's captures may include handles whose
//!   `Drop` borrows `Core` again.
//! * **Generations.** A slab slot gets a new generation per occupant; tokens
//!   and handles carry it, and every lookup checks it. A stale event or a
//!   handle whose source removed itself finds a mismatch, never another
//!   source.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use slab::Slab;
use timerfd_sys::{Clock, ClockTime, Expiration, TimerFd};

use crate::Context;
use crate::context::{IoCallback, SignalCallback, TimerCallback};
use crate::deferred::Deferred;
use crate::poller::{Events, Poller};
use crate::shared::{MAX_DEADLINE, Schedule, SharedEntry, SharedTimers, nanos};
use crate::signal::SignalFd;
use crate::token::SourceId;
use crate::trace::{TraceEvent, Tracer};
use crate::waker::WakerInner;
use crate::{Error, Interest, Stats, Token};

/// The clocks a shared heap can run on: those that never jump, so a
/// deadline computed from their reading keeps its meaning. Heap `i` runs on
/// `SHARED_CLOCKS[i]`. The realtime clocks can be set, which would need
/// every deadline recomputed (`TFD_TIMER_CANCEL_ON_SET`); they are refused
/// with [`Error::SharedClock`] instead: use a dedicated timer.
pub(crate) const SHARED_CLOCKS: [Clock; 3] =
    [Clock::Monotonic, Clock::Boottime, Clock::BoottimeAlarm];

/// The shared heap for `clock`.
fn shared_heap(clock: Clock) -> Result<u8, Error> {
    let heap = SHARED_CLOCKS.iter().position(|&c| c == clock).ok_or(Error::SharedClock(clock))?;
    Ok(heap as u8)
}

/// Events fetched per `epoll_wait`.
pub(crate) const EVENTS_PER_TURN: usize = 1024;

/// A registered fd the reactor may or may not own.
pub(crate) enum IoFd {
    /// Closed when the source is removed (whatever `Drop` of the box does).
    Owned(Box<dyn AsFd>),
    /// The caller's; a lifetime on the handle keeps it open while registered.
    Borrowed(RawFd),
}

/// A dedicated timer's callback, shared between its entry and a dispatch
/// that is running it: one allocation, like the `Box` it replaces.
///
/// Dispatch clones the `Rc` (one increment), releases `Core` and hands the
/// clone to [`RunTimer::run`], which calls the callback and drops it. Nothing goes back into the entry, so
/// the hot path visits the slab once per event, not twice. If the
/// callback's source was removed while it ran, the entry's clone is already
/// gone and the dispatch's clone, dropped after the call with no borrow
/// held, is the last: the callback is dropped then.
pub(crate) type DedicatedCallback = Rc<dyn RunTimer>;

/// A timer callback behind its own `RefCell`, called through one virtual
/// call: the borrow check, the closure's body and the release of the
/// caller's `Rc` are compiled together, where the layout is known.
pub(crate) trait RunTimer {
    /// Run the callback, then drop `self`, the dispatch's clone. The
    /// `RefCell` is never found borrowed, as a callback cannot run inside
    /// itself (turns do not nest); if it were, the call would be skipped.
    fn run(self: Rc<Self>, ctx: &mut Context<'_>, ticks: u64);
}

impl<F: FnMut(&mut Context<'_>, u64)> RunTimer for RefCell<F> {
    #[inline]
    fn run(self: Rc<Self>, ctx: &mut Context<'_>, ticks: u64) {
        if let Ok(mut f) = self.try_borrow_mut() {
            f(ctx, ticks);
        }
    }
}

pub(crate) enum Source {
    Timer {
        fd: TimerFd,
        callback: DedicatedCallback,
    },
    Io {
        fd: IoFd,
        callback: Option<IoCallback>,
    },
    /// Boxed: a `sigset_t` is 128 bytes, and every slab entry would pay for it.
    Signal {
        fd: Box<SignalFd>,
        callback: Option<SignalCallback>,
    },
    Waker,
    /// The timerfd under shared heap `.0` (see [`SHARED_CLOCKS`]).
    SharedFd(u8),
}

impl Source {
    /// The fd a user source registered; `None` for the internal ones (waker,
    /// shared timerfds), which live as long as the reactor and no handle names.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Source::Timer { fd, .. } => Some(fd.as_fd()),
            Source::Io { fd, .. } => Some(fd.as_fd()),
            Source::Signal { fd, .. } => Some(fd.as_fd()),
            Source::Waker | Source::SharedFd(_) => None,
        }
    }
}

pub(crate) struct Entry {
    pub(crate) generation: u32,
    pub(crate) detached: bool,
    pub(crate) source: Source,
}

/// What a removal hands back, to be dropped once `Core` is released.
#[allow(dead_code)] // held only for its Drop
pub(crate) enum Removed {
    Slot(Entry),
    Shared(SharedEntry),
}

pub(crate) struct Core {
    /// Shared with [`Reactor`](crate::Reactor), whose `AsFd` lends its fd.
    pub(crate) poller: Rc<Poller>,
    pub(crate) sources: Slab<Entry>,
    next_generation: u32,
    /// One heap per clock in [`SHARED_CLOCKS`].
    pub(crate) shared: [SharedTimers; SHARED_CLOCKS.len()],
    /// The one timerfd under all shared timers, created with the first one.
    shared_fd: [Option<(TimerFd, Token)>; SHARED_CLOCKS.len()],
    pub(crate) stats: Stats,
    pub(crate) tracer: Tracer,
    pub(crate) stop: bool,
    pub(crate) waker: Option<Arc<WakerInner>>,
    /// The last wait's events. Each is fetched under the borrow that
    /// dispatches it, so the buffer never leaves `Core`.
    pub(crate) events: Events,
    /// The next event of `events` to dispatch. Below `events.len()` between
    /// turns only when a callback's panic cut a turn short: the next turn
    /// then resumes here instead of waiting, so that the rest of the batch
    /// (edge-triggered readiness included) is still delivered.
    pub(crate) next_event: usize,
    /// Set while a turn runs: a nested turn is refused.
    pub(crate) in_turn: bool,
    /// Deferred callbacks and idle hooks.
    pub(crate) deferred: Deferred,
}

impl Core {
    pub(crate) fn new() -> Result<Core, Error> {
        Ok(Core {
            poller: Rc::new(Poller::new()?),
            sources: Slab::new(),
            next_generation: 0,
            shared: Default::default(),
            shared_fd: Default::default(),
            stats: Stats::default(),
            tracer: Tracer::from_env(),
            stop: false,
            waker: None,
            events: Events::with_capacity(EVENTS_PER_TURN),
            next_event: 0,
            in_turn: false,
            deferred: Deferred::default(),
        })
    }

    /// Register `fd` with epoll under the token the next [`insert`](Self::insert)
    /// will use. Nothing else changes, so a failure leaves no trace; the
    /// caller still holds the source and drops it after releasing `Core`.
    pub(crate) fn watch(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<Token, Error> {
        let key = u32::try_from(self.sources.vacant_key())
            .map_err(|_| Error::Os(rustix::io::Errno::NOSPC))?;
        let token = Token::new(key, self.next_generation);
        self.poller.add(fd, token, interest.flags())?;
        Ok(token)
    }

    /// Put `source` in the slot [`watch`](Self::watch) reserved for `token`.
    /// Cannot fail: this is the commit point of every add.
    pub(crate) fn insert(&mut self, token: Token, source: Source, fd: RawFd, interest: Interest) {
        debug_assert_eq!(self.sources.vacant_key(), token.key());
        self.next_generation = self.next_generation.wrapping_add(1);
        self.gauge(&source, false, 1);
        self.sources.insert(Entry { generation: token.generation(), detached: false, source });
        self.tracer.emit(|| TraceEvent::EpollAdd { fd, token, interest });
    }

    /// The reactor's eventfd, created and registered on first use: for
    /// [`Waker`](crate::Waker)s and for [`notify`](Self::notify).
    pub(crate) fn waker(&mut self) -> Result<Arc<WakerInner>, Error> {
        if let Some(inner) = &self.waker {
            return Ok(Arc::clone(inner));
        }
        let inner = Arc::new(WakerInner::new()?);
        let token = self.watch(inner.fd.as_fd(), Interest::READABLE)?;
        self.insert(token, Source::Waker, inner.fd.as_raw_fd(), Interest::READABLE);
        self.waker = Some(Arc::clone(&inner));
        Ok(inner)
    }

    /// Work is pending that no fd shows (a deferred callback for the next
    /// turn, events left by a panic): make the next wait return at once, and
    /// the epoll fd readable for a host loop, with one eventfd write. If the
    /// eventfd cannot be created, the work still runs at the next turn that
    /// wakes for another reason.
    pub(crate) fn notify(&mut self) {
        if let Ok(waker) = self.waker() {
            let _ = waker.wake();
        }
    }

    /// Whether a turn must not block: work is pending that no fd shows.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.deferred.queue.is_empty() || self.next_event < self.events.len()
    }

    /// End a turn, on return or while a callback's panic unwinds out of it.
    /// If the panic cut the batch short, the next turn resumes it, and a host
    /// loop must see the fd readable for that.
    pub(crate) fn end_turn(&mut self) {
        self.in_turn = false;
        self.deferred.phase = crate::deferred::Phase::Outside;
        if self.next_event < self.events.len() {
            self.notify();
        }
    }

    /// Move the gauges of `source` by `delta` (+1 added, -1 removed): the
    /// one place where `Stats` gauges for slab sources change.
    fn gauge(&mut self, source: &Source, detached: bool, delta: isize) {
        let s = &mut self.stats;
        let (live, detached_gauge) = match source {
            Source::Timer { .. } => {
                s.timerfds_open = s.timerfds_open.wrapping_add_signed(delta);
                (&mut s.dedicated_timers, Some(&mut s.detached_timers))
            }
            Source::Io { .. } => (&mut s.io_sources, Some(&mut s.detached_io)),
            Source::Signal { .. } => (&mut s.signal_sources, None),
            Source::Waker => (&mut s.wakers, None),
            Source::SharedFd(_) => (&mut s.timerfds_open, None),
        };
        *live = live.wrapping_add_signed(delta);
        if let (true, Some(d)) = (detached, detached_gauge) {
            *d = d.wrapping_add_signed(delta);
        }
    }

    pub(crate) fn entry(&mut self, token: Token) -> Option<&mut Entry> {
        self.sources.get_mut(token.key()).filter(|e| e.generation == token.generation())
    }

    pub(crate) fn entry_ref(&self, token: Token) -> Option<&Entry> {
        self.sources.get(token.key()).filter(|e| e.generation == token.generation())
    }

    /// Whether the source `id` names still exists.
    pub(crate) fn is_live(&self, id: SourceId) -> bool {
        match id {
            SourceId::Shared { heap, key, generation } => {
                self.shared[heap as usize].is_current(key, generation)
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => {
                self.entry_ref(t).is_some()
            }
        }
    }

    /// Change an I/O source's interest (`EPOLL_CTL_MOD`, which the kernel
    /// applies whole or not at all).
    pub(crate) fn modify_io(&mut self, token: Token, interest: Interest) -> Result<(), Error> {
        let Some(Entry { source: Source::Io { fd, .. }, .. }) = self.entry_ref(token) else {
            return Err(Error::Gone);
        };
        let raw = fd.as_fd().as_raw_fd();
        self.poller.modify(fd.as_fd(), token, interest.flags())?;
        self.tracer.emit(|| TraceEvent::EpollMod { fd: raw, token, interest });
        Ok(())
    }

    /// Create, arm and register a dedicated timerfd, ready for
    /// [`insert`](Self::insert). Every step that can fail is here, before
    /// the commit, and the timerfd closes if one does, so a refusal leaves
    /// nothing behind.
    pub(crate) fn prepare_dedicated(
        &mut self,
        clock: Clock,
        exp: Expiration,
    ) -> Result<(TimerFd, Token), Error> {
        exp.to_itimerspec()?; // refuse bad input before creating anything
        let fd = TimerFd::new(clock)?;
        fd.set(exp)?;
        let token = self.watch(fd.as_fd(), Interest::READABLE)?;
        let raw = fd.as_raw_fd();
        self.tracer.emit(|| TraceEvent::Create { fd: raw, clock });
        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration: exp });
        Ok((fd, token))
    }

    /// Compute a shared timer's deadline on `clock` and make that clock's
    /// shared timerfd ready to fire by it, ready for
    /// [`insert_shared`](Self::insert_shared). The heap does not change
    /// here, and a shared timerfd created here is closed again on failure,
    /// so a refusal leaves no heap entry, no fd and no change in `Stats`.
    pub(crate) fn prepare_shared(
        &mut self,
        clock: Clock,
        exp: Expiration,
    ) -> Result<(u8, Schedule), Error> {
        let heap = shared_heap(clock)?;
        let schedule = Schedule::new(exp, nanos(clock.now()))?;
        self.shared[heap as usize].check_room()?;
        let created = self.open_shared_fd(heap)?;
        if let Err(e) = self.arm_shared_fd(heap, schedule.deadline) {
            if created {
                self.close_shared_fd(heap);
            }
            return Err(e);
        }
        Ok((heap, schedule))
    }

    /// The commit of a shared add: cannot fail.
    pub(crate) fn insert_shared(
        &mut self,
        (heap, schedule): (u8, Schedule),
        callback: TimerCallback,
    ) -> SourceId {
        let (key, generation) = self.shared[heap as usize].insert(schedule, callback);
        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns: schedule.deadline });
        SourceId::Shared { heap, key, generation }
    }

    /// Arm (`Some`) or disarm (`None`) a timer of either mode. On error the
    /// timer keeps its previous setting.
    pub(crate) fn set_timer(&mut self, id: SourceId, exp: Option<Expiration>) -> Result<(), Error> {
        match id {
            SourceId::Dedicated(token) => {
                let Some(Entry { source: Source::Timer { fd, .. }, .. }) = self.entry(token) else {
                    return Err(Error::Gone);
                };
                let raw = fd.as_raw_fd();
                // timerfd_settime validates before it changes anything.
                match exp {
                    Some(exp) => {
                        fd.set(exp)?;
                        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration: exp });
                    }
                    None => {
                        fd.disarm()?;
                        self.tracer.emit(|| TraceEvent::Disarm { fd: raw });
                    }
                }
                Ok(())
            }
            SourceId::Shared { heap, key, generation } => {
                let h = heap as usize;
                if !self.shared[h].is_current(key, generation) {
                    return Err(Error::Gone);
                }
                match exp {
                    Some(exp) => {
                        let schedule = Schedule::new(exp, nanos(SHARED_CLOCKS[h].now()))?;
                        self.arm_shared_fd(heap, schedule.deadline)?;
                        self.shared[h].set(key, schedule);
                        let deadline_ns = schedule.deadline;
                        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns });
                    }
                    None => {
                        if self.shared[h].cancel(key) {
                            self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                        }
                    }
                }
                Ok(())
            }
            SourceId::Io(_) | SourceId::Signal(_) => Err(Error::NotATimer),
        }
    }

    /// Create and register the timerfd of shared heap `heap` if there is
    /// none yet. Returns whether it was created now.
    fn open_shared_fd(&mut self, heap: u8) -> Result<bool, Error> {
        if self.shared_fd[heap as usize].is_some() {
            return Ok(false);
        }
        let clock = SHARED_CLOCKS[heap as usize];
        let fd = TimerFd::new(clock)?;
        let token = self.watch(fd.as_fd(), Interest::READABLE)?;
        let raw = fd.as_raw_fd();
        self.tracer.emit(|| TraceEvent::Create { fd: raw, clock });
        self.insert(token, Source::SharedFd(heap), raw, Interest::READABLE);
        self.shared_fd[heap as usize] = Some((fd, token));
        Ok(true)
    }

    /// Undo [`open_shared_fd`](Self::open_shared_fd), for an add that failed
    /// after it.
    fn close_shared_fd(&mut self, heap: u8) {
        let Some((fd, token)) = self.shared_fd[heap as usize].take() else { return };
        let _ = self.poller.delete(fd.as_fd());
        let entry = self.sources.remove(token.key());
        self.gauge(&entry.source, false, -1);
    }

    /// Make sure heap `heap`'s timerfd fires no later than `deadline` (see
    /// the `shared` module rules): re-arm it only if it is armed for later,
    /// or not at all. A deadline past the kernel's range is armed at
    /// [`MAX_DEADLINE`], as the kernel saturates a dedicated timer's.
    pub(crate) fn arm_shared_fd(&mut self, heap: u8, deadline: u64) -> Result<(), Error> {
        let h = heap as usize;
        if self.shared[h].armed_for.is_some_and(|armed| armed <= deadline) {
            return Ok(());
        }
        let Some((fd, _)) = &self.shared_fd[h] else { return Ok(()) };
        let expiration = Expiration::OnceAt(ClockTime::from_nanos(deadline.min(MAX_DEADLINE)));
        fd.set(expiration)?;
        let raw = fd.as_raw_fd();
        self.shared[h].armed_for = Some(deadline);
        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration });
        Ok(())
    }

    /// Point heap `heap`'s timerfd at its earliest live deadline, after a pass.
    pub(crate) fn sync_shared_fd(&mut self, heap: u8) -> Result<(), Error> {
        match self.shared[heap as usize].earliest() {
            Some(earliest) => self.arm_shared_fd(heap, earliest),
            None => Ok(()),
        }
    }

    /// Read heap `heap`'s timerfd after it fired. It is a one-shot, so it
    /// is now disarmed.
    pub(crate) fn ack_shared_fd(&mut self, heap: u8) -> u64 {
        self.shared[heap as usize].armed_for = None;
        match &self.shared_fd[heap as usize] {
            Some((fd, _)) => fd.read().unwrap_or(0),
            None => 0,
        }
    }

    /// Unregister and take out a source; the caller drops the result after
    /// releasing `Core`. `None` if it is already gone.
    pub(crate) fn remove(&mut self, id: SourceId) -> Option<Removed> {
        let token = match id {
            SourceId::Shared { heap, key, generation } => {
                let shared = &mut self.shared[heap as usize];
                if !shared.is_current(key, generation) {
                    return None;
                }
                let (entry, detached) = shared.remove(key)?;
                if detached {
                    self.stats.detached_timers -= 1;
                }
                self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                return Some(Removed::Shared(entry));
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => t,
        };
        let entry = self.entry_ref(token)?;
        entry.source.fd()?; // the waker and shared timerfds are never removed
        let entry = self.sources.remove(token.key());
        self.gauge(&entry.source, entry.detached, -1);
        let fd = entry.source.fd()?;
        let raw = fd.as_raw_fd();
        // ENOENT/EBADF here would mean the caller closed a borrowed fd early;
        // the registration is gone either way.
        let _ = self.poller.delete(fd);
        self.tracer.emit(|| TraceEvent::EpollDel { fd: raw });
        if matches!(entry.source, Source::Timer { .. }) {
            self.tracer.emit(|| TraceEvent::Close { fd: raw });
        }
        Some(Removed::Slot(entry))
    }

    /// Mark a source detached: it lives on with no handle until the reactor
    /// is dropped (or it removes itself).
    pub(crate) fn detach(&mut self, id: SourceId) {
        match id {
            SourceId::Shared { heap, key, generation } => {
                let shared = &mut self.shared[heap as usize];
                if shared.is_current(key, generation) && shared.set_detached(key) {
                    self.stats.detached_timers += 1;
                }
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => {
                let Some(e) = self.entry(t) else { return };
                if std::mem::replace(&mut e.detached, true) {
                    return;
                }
                match e.source {
                    Source::Timer { .. } => self.stats.detached_timers += 1,
                    Source::Io { .. } => self.stats.detached_io += 1,
                    _ => {}
                }
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            shared_timers: self.shared.iter().map(SharedTimers::len).sum(),
            shared_heap_entries: self.shared.iter().map(SharedTimers::heap_len).sum(),
            ..self.stats
        }
    }
}

impl Drop for Core {
    /// Closing the epoll fd drops every registration at once; what remains
    /// is closing the sources' own fds, which the slab's drop does. The trace
    /// still shows each timerfd close.
    fn drop(&mut self) {
        for (_, entry) in &self.sources {
            if let Source::Timer { fd, .. } = &entry.source {
                let raw = fd.as_raw_fd();
                self.tracer.emit(|| TraceEvent::Close { fd: raw });
            }
        }
        for (fd, _) in self.shared_fd.iter().flatten() {
            let raw = fd.as_raw_fd();
            self.tracer.emit(|| TraceEvent::Close { fd: raw });
        }
    }
}

impl AsFd for IoFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            IoFd::Owned(b) => b.as_fd(),
            // SAFETY: the handle's lifetime keeps the caller's fd open while registered.
            IoFd::Borrowed(raw) => unsafe { BorrowedFd::borrow_raw(*raw) },
        }
    }
}

#[cfg(test)]
mod tests {
    /// Dispatch touches one entry per event: keep them small. (A signalfd's
    /// 128-byte `sigset_t` once made every entry 168 bytes.)
    #[test]
    fn slab_entries_stay_small() {
        assert!(size_of::<super::Entry>() <= 48, "{}", size_of::<super::Entry>());
    }
}
