//! The reactor's state: the slab of registered fds, the shared clocks, the
//! turn's event buffer, and the repairs the loop owes. Everything here runs
//! under one `RefCell` borrow, and nothing here calls user code except the
//! trace observer. Timers of both modes are in `core/timers.rs`.
//!
//! # Ground rules
//!
//! * **No user callback runs while `Core` is borrowed.** The turn
//!   (`turn.rs`) takes a callback out of its entry, releases the borrow,
//!   calls it, and borrows again to put it back.
//! * **Nothing user-owned is dropped while `Core` is borrowed.** Removing a
//!   source returns what it held ([`Leftover`]); the caller drops it after
//!   the borrow ends, because a callback's captures may include handles
//!   whose `Drop` borrows `Core` again. Fds released by a repair wait in
//!   the graveyard for the same reason.
//! * **Generations.** A slab slot gets a new generation per occupant; tokens
//!   and handles carry it, and every lookup checks it. A stale event or a
//!   handle whose source removed itself finds a mismatch, never another
//!   source.
//! * **A registration never outlives what the reactor knows of it.** If
//!   `EPOLL_CTL_DEL` fails, the fd is parked, still open, so its number
//!   cannot be reused while epoll may still hold it; every turn retries the
//!   DEL, and a re-add of the same fd (the same number, so the same open
//!   file) retries it first instead of failing with `EEXIST`.

mod timers;
mod turn_state;

pub(crate) use timers::errno_of;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use rustix::io::Errno;
use slab::Slab;

use crate::deferred::{Deferred, DeferredFn, HookFn};
use crate::poller::{Events, Poller};
use crate::shared::{CLOCKS, SharedClock};
use crate::sources::{Entry, Leftover, Source, TimerFn};
use crate::stats::{Counters, bump, gauge};
use crate::token::SourceId;
use crate::trace::{Observer, TraceEvent, Tracer};
use crate::waker::WakerInner;
use crate::{Error, Interest, Readiness, Token};

/// Events fetched per `epoll_wait`.
pub(crate) const EVENTS_PER_TURN: usize = 1024;

/// An fd whose `EPOLL_CTL_DEL` failed, kept open until a retry succeeds.
struct Parked {
    fd: Box<dyn AsFd>,
    raw: RawFd,
}

pub(crate) struct Core<D> {
    poller: Rc<Poller>,
    counters: Rc<Counters>,
    sources: Slab<Entry<D>>,
    next_generation: u32,
    /// One owner per clock in [`CLOCKS`]: heap, timerfd, armed-for deadline.
    clocks: [SharedClock<TimerFn<D>>; CLOCKS.len()],
    tracer: Tracer,
    waker: Option<Arc<WakerInner>>,
    /// The last wait's events. Each is fetched under the borrow that
    /// dispatches it, so the buffer never leaves `Core`.
    events: Events,
    /// The next event of `events` to dispatch. Below `events.len()` between
    /// turns only when a callback's panic cut a turn short: the next turn
    /// then resumes here instead of waiting.
    next_event: usize,
    in_turn: bool,
    deferred: Deferred<D>,
    parked: Vec<Parked>,
    /// Fds a repair released, dropped once the borrow ends.
    graveyard: Vec<Box<dyn AsFd>>,
    /// The first failure of a step taken on the loop's behalf since `turn`
    /// last returned, for the next return of `turn` to report.
    fault: Option<Error>,
    /// A repair may be owed (an fd parked, a clock stranded): set when one
    /// is made, cleared by [`heal`](Self::heal) once none is left. The turn
    /// checks this one flag, not the clocks.
    owes: bool,
}

impl<D: 'static> Core<D> {
    pub(crate) fn new(poller: Rc<Poller>, counters: Rc<Counters>) -> Core<D> {
        Core {
            poller,
            counters,
            sources: Slab::new(),
            next_generation: 0,
            clocks: Default::default(),
            tracer: Tracer::from_env(),
            waker: None,
            events: Events::with_capacity(EVENTS_PER_TURN),
            next_event: 0,
            in_turn: false,
            deferred: Deferred::default(),
            parked: Vec::new(),
            graveyard: Vec::new(),
            fault: None,
            owes: false,
        }
    }

    pub(crate) fn set_observer(&mut self, observer: Option<Observer>) {
        self.tracer.set(observer);
    }

    #[inline]
    pub(crate) fn emit(&mut self, event: impl FnOnce() -> TraceEvent) {
        self.tracer.emit(event);
    }

    /// Whether this reactor writes the timeline.
    #[inline(always)]
    pub(crate) fn timeline(&self) -> bool {
        self.tracer.timeline()
    }

    /// Register `fd` with epoll under the token the next [`insert`](Self::insert)
    /// will use. Nothing else changes, so a failure leaves no trace. An
    /// `EEXIST` for a parked fd (the same number, so the same open file)
    /// retries the parked DEL first.
    pub(crate) fn watch(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> Result<Token, Error> {
        let key = u32::try_from(self.sources.vacant_key()).map_err(|_| Error::Os(Errno::NOSPC))?;
        let token = Token::new(key, self.next_generation);
        match self.poller.add(fd, token, interest) {
            Err(Errno::EXIST) if self.unpark(fd.as_raw_fd()) => {
                self.poller.add(fd, token, interest)?;
            }
            result => result?,
        }
        Ok(token)
    }

    /// Put `source` in the slot [`watch`](Self::watch) reserved for `token`.
    /// Cannot fail: this is the commit point of every add.
    pub(crate) fn insert(
        &mut self,
        token: Token,
        source: Source<D>,
        fd: RawFd,
        interest: Interest,
    ) {
        debug_assert_eq!(self.sources.vacant_key(), token.key());
        self.next_generation = self.next_generation.wrapping_add(1);
        self.gauge(&source, false, 1);
        self.sources.insert(Entry { generation: token.generation(), detached: false, source });
        self.tracer.emit(|| TraceEvent::EpollAdd { fd, token, interest });
    }

    /// Move the gauges of `source` by `delta` (+1 added, -1 removed): the
    /// one place where `Stats` gauges for slab sources change.
    fn gauge(&self, source: &Source<D>, detached: bool, delta: isize) {
        let c = &*self.counters;
        let (live, detached_gauge) = match source {
            Source::Timer { .. } => {
                gauge(&c.timerfds_open, delta);
                (&c.dedicated_timers, Some(&c.detached_timers))
            }
            Source::Io { .. } => (&c.io_sources, Some(&c.detached_io)),
            Source::Signal { .. } => (&c.signal_sources, None),
            Source::Waker => (&c.wakers, None),
            Source::SharedFd(_) => (&c.timerfds_open, None),
        };
        gauge(live, delta);
        if let (true, Some(d)) = (detached, detached_gauge) {
            gauge(d, delta);
        }
    }

    pub(crate) fn entry(&mut self, token: Token) -> Option<&mut Entry<D>> {
        self.sources.get_mut(token.key()).filter(|e| e.generation == token.generation())
    }

    /// Whether the source `id` names still exists.
    pub(crate) fn is_live(&self, id: SourceId) -> bool {
        match id {
            SourceId::Shared { clock, key, generation } => {
                self.clocks[clock as usize].heap.is_current(key, generation)
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => {
                self.sources.get(t.key()).is_some_and(|e| e.generation == t.generation())
            }
            SourceId::Idle { key, generation } => self.deferred.hook_is_live(key, generation),
            SourceId::Deferred => false,
        }
    }

    /// Change an I/O source's interest (`EPOLL_CTL_MOD`, which the kernel
    /// applies whole or not at all).
    pub(crate) fn modify_io(&mut self, token: Token, interest: Interest) -> Result<(), Error> {
        let Some(Entry { source: Source::Io { fd, .. }, .. }) =
            self.sources.get(token.key()).filter(|e| e.generation == token.generation())
        else {
            return Err(Error::Gone);
        };
        let raw = fd.as_fd().as_raw_fd();
        self.poller.modify(fd.as_fd(), token, interest)?;
        self.tracer.emit(|| TraceEvent::EpollMod { fd: raw, token, interest });
        Ok(())
    }

    /// Unregister and take out a source; the caller drops the result after
    /// releasing `Core`. `None` if it is already gone. Cannot fail: a failed
    /// `EPOLL_CTL_DEL` parks the fd, and the next turn retries and reports it.
    pub(crate) fn remove(&mut self, id: SourceId) -> Option<Leftover<D>> {
        let token = match id {
            SourceId::Shared { clock, key, generation } => {
                let heap = &mut self.clocks[clock as usize].heap;
                if !heap.is_current(key, generation) {
                    return None;
                }
                let (callback, detached) = heap.remove(key)?;
                gauge(&self.counters.shared_timers, -1);
                if detached {
                    gauge(&self.counters.detached_timers, -1);
                }
                self.heap_gauges();
                self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                return Some(Leftover::Shared(callback));
            }
            SourceId::Idle { key, generation } => {
                return self.deferred.remove_hook(key, generation).map(Leftover::Hook);
            }
            SourceId::Deferred => return None,
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => t,
        };
        let entry = self.entry(token)?;
        entry.source.fd()?; // the waker and shared timerfds are never removed
        let entry = self.sources.remove(token.key());
        self.gauge(&entry.source, entry.detached, -1);
        let raw = entry.source.fd().map_or(-1, |fd| fd.as_raw_fd());
        let is_timer = matches!(entry.source, Source::Timer { .. });
        let deleted = entry.source.fd().map(|fd| self.poller.delete(fd));
        self.tracer.emit(|| TraceEvent::EpollDel { fd: raw });
        match deleted {
            Some(Err(errno)) => {
                self.fault("epoll_ctl(EPOLL_CTL_DEL)", errno);
                let (fd, rest) = entry.source.split();
                if let Some(fd) = fd {
                    self.parked.push(Parked { fd, raw });
                    self.owes = true;
                }
                // No wake-up may be needed for the retry otherwise.
                self.notify_or_fault();
                Some(rest)
            }
            _ => {
                if is_timer {
                    self.tracer.emit(|| TraceEvent::Close { fd: raw });
                }
                Some(Leftover::Source(entry.source))
            }
        }
    }

    /// Retry the DEL of the parked fd numbered `raw`; true if it is gone
    /// from epoll now (its fd then waits in the graveyard).
    fn unpark(&mut self, raw: RawFd) -> bool {
        let Some(i) = self.parked.iter().position(|p| p.raw == raw) else { return false };
        match self.poller.delete(self.parked[i].fd.as_fd()) {
            Ok(()) | Err(Errno::NOENT) => {
                let parked = self.parked.swap_remove(i);
                self.tracer.emit(|| TraceEvent::EpollDel { fd: raw });
                self.graveyard.push(parked.fd);
                true
            }
            Err(errno) => {
                self.fault("epoll_ctl(EPOLL_CTL_DEL)", errno);
                false
            }
        }
    }

    /// Mark a source detached: it lives on with no handle until the reactor
    /// is dropped (or it removes itself).
    pub(crate) fn detach(&mut self, id: SourceId) {
        match id {
            SourceId::Shared { clock, key, generation } => {
                let heap = &mut self.clocks[clock as usize].heap;
                if heap.is_current(key, generation) && heap.set_detached(key) {
                    gauge(&self.counters.detached_timers, 1);
                }
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => {
                let Some(e) = self.entry(t) else { return };
                if std::mem::replace(&mut e.detached, true) {
                    return;
                }
                match e.source {
                    Source::Timer { .. } => gauge(&self.counters.detached_timers, 1),
                    Source::Io { .. } => gauge(&self.counters.detached_io, 1),
                    _ => {}
                }
            }
            SourceId::Idle { .. } | SourceId::Deferred => {}
        }
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
    /// turn, events left by a panic, a repair to retry): make the next wait
    /// return at once, and the epoll fd readable for a host loop, with one
    /// eventfd write.
    pub(crate) fn notify(&mut self) -> Result<(), Error> {
        self.waker()?.wake()
    }

    /// [`notify`](Self::notify) where no caller can be told: a failure is
    /// recorded for `turn` to report.
    pub(crate) fn notify_or_fault(&mut self) {
        if let Err(e) = self.notify() {
            self.fault("eventfd write", e.errno().unwrap_or(Errno::IO));
        }
    }

    /// Drain the reactor's eventfd after it woke the loop.
    pub(crate) fn drain_waker(&mut self) {
        let Some(waker) = &self.waker else { return };
        if let Err(errno) = waker.drain() {
            self.fault("read", errno); // it stays readable: the next turn retries
        }
    }

    pub(crate) fn take_stop_request(&self) -> bool {
        self.waker.as_ref().is_some_and(|w| w.take_stop())
    }

    /// Record a failed step the loop took on its own behalf: counted, and
    /// the first since `turn` last returned is what it returns next.
    pub(crate) fn fault(&mut self, call: &'static str, errno: Errno) {
        bump(&self.counters.faults, 1);
        self.fault.get_or_insert(Error::Retrying { call, errno });
    }

    pub(crate) fn take_fault(&mut self) -> Option<Error> {
        self.fault.take()
    }

    /// Retry what the loop owes, at the start of a turn: parked DELs, and
    /// the timerfds of stranded shared clocks. Failures are recorded, and
    /// while any remains the reactor's fd is kept readable.
    pub(crate) fn heal(&mut self) {
        for raw in self.parked.iter().map(|p| p.raw).collect::<Vec<_>>() {
            self.unpark(raw);
        }
        for c in 0..CLOCKS.len() {
            if self.clocks[c].is_stranded() {
                self.sync_clock(c as u8);
            }
        }
        self.owes = !self.parked.is_empty() || self.clocks.iter().any(SharedClock::is_stranded);
        if self.owes {
            self.notify_or_fault();
        }
    }

    /// Whether a repair may be owed: a turn that finds one heals first.
    #[inline]
    pub(crate) fn owes_repairs(&self) -> bool {
        self.owes
    }

    /// Fds released by repairs, to drop once the borrow ends.
    #[inline]
    pub(crate) fn has_graveyard(&self) -> bool {
        !self.graveyard.is_empty()
    }

    pub(crate) fn take_graveyard(&mut self) -> Vec<Box<dyn AsFd>> {
        std::mem::take(&mut self.graveyard)
    }

    // ---- deferred work and idle hooks ----

    /// Queue a deferred callback; true if the loop must be woken for it.
    pub(crate) fn defer(&mut self, callback: DeferredFn<D>) -> bool {
        self.deferred.push(callback)
    }

    pub(crate) fn undefer(&mut self) -> Option<DeferredFn<D>> {
        self.deferred.unpush()
    }

    pub(crate) fn add_hook(&mut self, callback: HookFn<D>) -> Result<(u32, u32), Error> {
        self.deferred.add_hook(callback)
    }

    pub(crate) fn deferred(&mut self) -> &mut Deferred<D> {
        &mut self.deferred
    }
}

impl<D> Drop for Core<D> {
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
        for raw in self.clocks.iter().filter_map(SharedClock::raw_fd) {
            self.tracer.emit(|| TraceEvent::Close { fd: raw });
        }
        crate::trace::chrome::flush();
    }
}
