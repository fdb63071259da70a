//! `Reactor`: adding sources, and the turn: one `epoll_wait`, then dispatch.

use std::cell::{RefCell, RefMut};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use timerfd_sys::{Clock, Expiration};

use crate::context::IoCallback;
use crate::deferred::Phase;
use crate::shared::nanos;
use crate::signal::SignalFd;
use crate::state::{Core, DedicatedCallback, Entry, IoFd, SHARED_CLOCKS, Source};
use crate::token::SourceId;
use crate::trace::{Observer, TraceEvent};
use crate::{
    Context, Error, Interest, Io, Readiness, SignalInfo, Signals, Stats, Timer, TimerMode, Token,
    Waker,
};

/// Signals read per signalfd event at most, so a signal storm cannot starve
/// the other sources of a turn.
const SIGNALS_PER_EVENT: usize = 64;

/// A single-threaded epoll event loop.
///
/// Not `Clone`, not `Send`: one reactor per thread. Callbacks reach it
/// through their [`Context`]; handles hold a weak reference, so a callback
/// that captures a handle does not keep the reactor alive, and dropping the
/// reactor closes every fd it owns.
pub struct Reactor {
    pub(crate) core: Rc<RefCell<Core>>,
    /// The same poller `core` waits on, held here so [`AsFd`] can lend its fd.
    poller: Rc<crate::poller::Poller>,
}

impl Reactor {
    /// A reactor with no sources: one epoll fd, nothing else.
    /// `REACTOR_TRACE=1` in the environment turns the lifecycle trace on.
    pub fn new() -> Result<Reactor, Error> {
        let core = Core::new()?;
        let poller = Rc::clone(&core.poller);
        Ok(Reactor { core: Rc::new(RefCell::new(core)), poller })
    }

    pub(crate) fn core(&self) -> Result<RefMut<'_, Core>, Error> {
        self.core.try_borrow_mut().map_err(|_| Error::Reentrant)
    }

    /// Add a timer on `CLOCK_MONOTONIC`, armed with `exp`, in `mode`:
    /// [`add_timer_on`](Self::add_timer_on) with [`Clock::Monotonic`], the
    /// common case kept to one call. `callback` gets the expiration count
    /// (at least 1) each time it fires.
    pub fn add_timer(
        &self,
        mode: TimerMode,
        exp: Expiration,
        callback: impl FnMut(&mut Context<'_>, u64) + 'static,
    ) -> Result<Timer, Error> {
        self.add_timer_on(Clock::Monotonic, mode, exp, callback)
    }

    /// Add a timer on `clock`, armed with `exp`, in `mode`: the one way to
    /// add a timer.
    ///
    /// Dedicated timers run on any of the five clocks. Shared timers run on
    /// the clocks whose readings never jump, so that a heap of deadlines
    /// keeps its meaning: monotonic, boottime and boottime-alarm, each with
    /// its own heap and timerfd. A realtime clock is refused with
    /// [`Error::SharedClock`].
    ///
    /// Atomic: an invalid `exp` is refused before anything is created, and
    /// on any error no fd, slab or heap entry, or `Stats` change is left
    /// behind, and `callback` is dropped before this returns. Both modes
    /// accept and refuse exactly the same expirations.
    pub fn add_timer_on(
        &self,
        clock: Clock,
        mode: TimerMode,
        exp: Expiration,
        callback: impl FnMut(&mut Context<'_>, u64) + 'static,
    ) -> Result<Timer, Error> {
        match mode {
            TimerMode::Dedicated => self.add_dedicated(clock, exp, Rc::new(RefCell::new(callback))),
            TimerMode::Shared => {
                // On error, `callback` is dropped after the borrow ends: its
                // captures may be handles whose `Drop` needs the reactor.
                let (mut core, prepared) = self.core().and_then(|mut core| {
                    let prepared = core.prepare_shared(clock, exp)?;
                    Ok((core, prepared))
                })?;
                let id = core.insert_shared(prepared, Box::new(callback));
                Ok(Timer { core: Rc::downgrade(&self.core), id })
            }
        }
    }

    fn add_dedicated(
        &self,
        clock: Clock,
        exp: Expiration,
        callback: DedicatedCallback,
    ) -> Result<Timer, Error> {
        let (mut core, fd, token) = self.core().and_then(|mut core| {
            let (fd, token) = core.prepare_dedicated(clock, exp)?;
            Ok((core, fd, token))
        })?;
        let raw = fd.as_raw_fd();
        let source = Source::Timer { fd, callback };
        core.insert(token, source, raw, Interest::READABLE);
        Ok(Timer { core: Rc::downgrade(&self.core), id: SourceId::Dedicated(token) })
    }

    /// Watch an fd the reactor takes ownership of (an `OwnedFd`, a
    /// `TcpStream`, or an `Rc` of one to keep using it elsewhere). It is
    /// closed (dropped) when the handle is dropped, or when this fails.
    pub fn add_io(
        &self,
        fd: impl AsFd + 'static,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_>, Readiness) + 'static,
    ) -> Result<Io<'static>, Error> {
        self.register_io(IoFd::Owned(Box::new(fd)), interest, Box::new(callback))
    }

    /// Watch an fd the caller keeps. The handle borrows it, so the fd cannot
    /// be closed while it is registered.
    pub fn add_io_borrowed<'fd>(
        &self,
        fd: BorrowedFd<'fd>,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_>, Readiness) + 'static,
    ) -> Result<Io<'fd>, Error> {
        self.register_io(IoFd::Borrowed(fd.as_raw_fd()), interest, Box::new(callback))
    }

    /// `epoll_ctl(ADD)`, then the slab entry. On error `fd` and `callback`
    /// are dropped after the borrow ends (an owned fd's `Drop` is the caller's code).
    fn register_io<'fd>(
        &self,
        fd: IoFd,
        interest: Interest,
        callback: IoCallback,
    ) -> Result<Io<'fd>, Error> {
        let (mut core, token) = self.core().and_then(|mut core| {
            let token = core.watch(fd.as_fd(), interest)?;
            Ok((core, token))
        })?;
        let raw = fd.as_fd().as_raw_fd();
        core.insert(token, Source::Io { fd, callback: Some(callback) }, raw, interest);
        Ok(Io { core: Rc::downgrade(&self.core), token, _fd: PhantomData })
    }

    /// Deliver `signals` to `callback` through a signalfd. Blocks them in
    /// this thread while any source wants them (see the
    /// [`signal`](crate::signal) module docs).
    pub fn add_signals(
        &self,
        signals: &[Signal],
        callback: impl FnMut(&mut Context<'_>, SignalInfo) + 'static,
    ) -> Result<Signals, Error> {
        let fd = Box::new(SignalFd::open(signals)?);
        let (mut core, token) = self.core().and_then(|mut core| {
            let token = core.watch(fd.as_fd(), Interest::READABLE)?;
            Ok((core, token))
        })?;
        let raw = fd.as_raw_fd();
        let source = Source::Signal { fd, callback: Some(Box::new(callback)) };
        core.insert(token, source, raw, Interest::READABLE);
        Ok(Signals { core: Rc::downgrade(&self.core), token })
    }

    /// A [`Waker`] for this reactor; the first call creates its eventfd.
    pub fn waker(&self) -> Result<Waker, Error> {
        Ok(Waker { inner: self.core()?.waker()? })
    }

    /// Send lifecycle trace events to `observer` (`None`: turn the trace off).
    /// The observer must not call back into the reactor; if it does, that
    /// call fails with [`Error::Reentrant`].
    pub fn set_observer(&self, observer: Option<Observer>) {
        if let Ok(mut core) = self.core() {
            core.tracer.set(observer);
        }
    }

    /// A snapshot of the sources and counters.
    pub fn stats(&self) -> Stats {
        self.core.try_borrow().map(|c| c.snapshot()).unwrap_or_default()
    }

    /// Ask [`run`](Self::run) to return after the current turn.
    pub fn stop(&self) {
        if let Ok(mut core) = self.core() {
            core.stop = true;
        }
    }

    /// Whether a stop was requested (by [`stop`](Self::stop) or a
    /// [`Waker::stop`]); clears the request.
    fn take_stop(&self) -> bool {
        let Ok(mut core) = self.core() else { return false };
        let waker = core.waker.as_ref().is_some_and(|w| w.take_stop());
        std::mem::take(&mut core.stop) | waker
    }

    /// Run turns until stopped.
    pub fn run(&self) -> Result<(), Error> {
        self.run_until(|| false)
    }

    /// Run turns until `done()` holds (checked before each turn) or the
    /// reactor is stopped.
    pub fn run_until(&self, mut done: impl FnMut() -> bool) -> Result<(), Error> {
        while !done() {
            self.turn(None)?;
            if self.take_stop() {
                break;
            }
        }
        Ok(())
    }

    /// Like [`run_until`](Self::run_until), but give up after `limit`.
    /// Returns whether `done()` held. A `limit` too far for [`Instant`]
    /// (`Duration::MAX`, say) saturates: it never runs out.
    pub fn run_until_timeout(
        &self,
        limit: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Result<bool, Error> {
        let deadline = Instant::now().checked_add(limit);
        loop {
            if done() {
                return Ok(true);
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => limit,
            };
            if left.is_zero() {
                return Ok(false);
            }
            self.turn(Some(left))?;
            if self.take_stop() {
                return Ok(done());
            }
        }
    }

    /// One turn: one `epoll_wait` (at most `timeout`; `None` blocks until an
    /// event), then every returned event dispatched in order. Returns the
    /// number of events.
    ///
    /// # Panics
    ///
    /// A panic in a callback unwinds out of `turn`, and the reactor stays
    /// fully usable (see [Callbacks that panic](crate#callbacks-that-panic)):
    /// the source whose callback panicked is removed, and the rest of this
    /// turn's events are delivered by the next turn, which then does not
    /// wait. A trace observer's panic resumes here too.
    pub fn turn(&self, timeout: Option<Duration>) -> Result<usize, Error> {
        {
            let mut core = self.core()?;
            if core.in_turn {
                return Err(Error::Reentrant);
            }
            if let Some(panic) = core.tracer.take_panic() {
                drop(core);
                std::panic::resume_unwind(panic);
            }
            core.in_turn = true;
            core.deferred.phase = Phase::BeforeDeferred;
        }
        // From here on, returning or unwinding ends the turn.
        let turn = InTurn(self);
        let mut core = self.core.borrow_mut();
        // Events a panic left in the buffer are delivered before any wait.
        if core.next_event >= core.events.len() {
            if core.deferred.has_hooks() {
                drop(core);
                self.run_idle_hooks();
                core = self.core.borrow_mut();
            }
            let timeout = if core.has_pending_work() { Some(Duration::ZERO) } else { timeout };
            let core = &mut *core;
            core.next_event = 0;
            core.poller.wait(&mut core.events, timeout)?;
            core.stats.wakeups += 1;
        }
        let start = core.next_event;
        // One borrow per event: it fetches the event and dispatches it.
        while let Some((token, readiness)) = core.events.get(core.next_event) {
            core.next_event += 1;
            self.dispatch(core, token, readiness);
            core = self.core.borrow_mut();
        }
        let n = core.next_event - start;
        if core.deferred.queue.is_empty() {
            // The common end: nothing deferred, so end the turn in this borrow.
            core.end_turn();
            drop(core);
            std::mem::forget(turn);
        } else {
            drop(core);
            // Still inside the turn: a deferred callback cannot nest a turn either.
            self.run_deferred();
            drop(turn);
        }
        Ok(n)
    }

    /// Route one event to its source, unless it is stale.
    fn dispatch(&self, mut guard: RefMut<'_, Core>, token: Token, readiness: Readiness) {
        let core = &mut *guard;
        // The generation check: an event for a source dropped since the wait
        // (its slot perhaps reused) finds a mismatch here.
        let Some(entry) =
            core.sources.get_mut(token.key()).filter(|e| e.generation == token.generation())
        else {
            core.stats.stale_events += 1;
            return;
        };
        core.stats.events_dispatched += 1;
        // Dedicated timers first, the hot case: one borrow and one slab
        // visit, then the callback runs through its own `Rc` with no borrow
        // held, and there is nothing to put back.
        if let Source::Timer { fd, callback } = &mut entry.source {
            // One read per ready timer; 0 means it was re-armed after epoll
            // saw it ready (a spurious event).
            let ticks = fd.read().unwrap_or(0);
            if ticks == 0 {
                return;
            }
            let cb = Rc::clone(callback);
            let fd = fd.as_raw_fd();
            core.stats.timer_expirations += ticks;
            core.tracer.emit(|| TraceEvent::Fire { fd, ticks });
            drop(guard);
            let id = SourceId::Dedicated(token);
            let mut unwinding = RemoveOnUnwind(Context::new(self, id));
            // `run` drops `cb` when the callback returns: if the source was
            // removed meanwhile, that drops the callback, with no borrow held.
            cb.run(&mut unwinding.0, ticks);
            unwinding.returned();
            return;
        }
        match Job::of(&mut entry.source) {
            Job::Nothing => {}
            Job::Wake => {
                if let Some(w) = &core.waker {
                    w.drain();
                }
            }
            Job::Io(mut cb) => {
                drop(guard);
                let id = SourceId::Io(token);
                let mut unwinding = RemoveOnUnwind(Context::new(self, id));
                cb(&mut unwinding.0, readiness);
                unwinding.returned();
                self.restore(token, cb, |s| match s {
                    Source::Io { callback, .. } => Some(callback),
                    _ => None,
                });
            }
            Job::Signals => {
                drop(guard);
                self.deliver_signals(token);
            }
            Job::SharedPass(heap) => {
                drop(guard);
                self.shared_pass(heap);
            }
        }
    }

    /// Put a callback back in its entry after it ran, unless the entry was
    /// removed or its slot reused meanwhile; then drop it, outside the borrow.
    fn restore<C>(
        &self,
        token: Token,
        cb: C,
        slot: impl FnOnce(&mut Source) -> Option<&mut Option<C>>,
    ) {
        let leftover = match self.core.try_borrow_mut() {
            Ok(mut core) => match core.entry(token).and_then(|e| slot(&mut e.source)) {
                Some(empty @ None) => {
                    *empty = Some(cb);
                    None
                }
                _ => Some(cb),
            },
            Err(_) => Some(cb),
        };
        drop(leftover);
    }

    fn deliver_signals(&self, token: Token) {
        for _ in 0..SIGNALS_PER_EVENT {
            let (info, cb) = {
                let mut core = self.core.borrow_mut();
                let Some(Entry { source: Source::Signal { fd, callback }, .. }) = core.entry(token)
                else {
                    return;
                };
                match fd.read() {
                    Ok(Some(info)) => match callback.take() {
                        Some(cb) => (info, cb),
                        None => return,
                    },
                    _ => return,
                }
            };
            let mut cb = cb;
            let id = SourceId::Signal(token);
            let mut unwinding = RemoveOnUnwind(Context::new(self, id));
            cb(&mut unwinding.0, info);
            unwinding.returned();
            self.restore(token, cb, |s| match s {
                Source::Signal { callback, .. } => Some(callback),
                _ => None,
            });
        }
    }

    /// The shared timerfd fired: run every shared timer that is due, then
    /// point the fd at the next deadline.
    fn shared_pass(&self, heap: u8) {
        let h = heap as usize;
        let (due, now) = {
            let mut core = self.core.borrow_mut();
            core.ack_shared_fd(heap);
            let now = nanos(SHARED_CLOCKS[h].now());
            (core.shared[h].collect_due(now), now)
        };
        let mut pass = SharedPass { reactor: self, heap, next: 0 };
        while pass.next < due {
            let i = pass.next;
            pass.next += 1;
            let fired = {
                let mut core = self.core.borrow_mut();
                let d = core.shared[h].due(i);
                let fired = core.shared[h].fire(d, now);
                if let Some(f) = &fired {
                    let (timer, ticks) = (f.key, f.ticks);
                    core.stats.timer_expirations += ticks;
                    core.tracer.emit(|| TraceEvent::HeapFire { timer, ticks });
                }
                fired
            };
            let Some(mut f) = fired else { continue };
            let id = SourceId::Shared { heap, key: f.key, generation: f.generation };
            let mut unwinding = RemoveOnUnwind(Context::new(self, id));
            (f.callback)(&mut unwinding.0, f.ticks);
            unwinding.returned();
            let leftover =
                self.core.borrow_mut().shared[h].restore(f.key, f.generation, f.callback);
            drop(leftover);
        }
    }

    /// Remove any source by id, dropping it outside the borrow.
    pub(crate) fn remove(&self, id: SourceId) {
        let removed = self.core().ok().and_then(|mut c| c.remove(id));
        drop(removed);
    }
}

/// A turn in progress. Dropping it, at the end of the turn or while a
/// callback's panic unwinds through it, ends the turn; events the panic cut
/// off stay in the buffer for the next turn (see [`Core::end_turn`]).
struct InTurn<'a>(&'a Reactor);

impl Drop for InTurn<'_> {
    fn drop(&mut self) {
        // Callbacks hold no borrow, and theirs end before this runs.
        if let Ok(mut core) = self.0.core.try_borrow_mut() {
            core.end_turn();
        }
    }
}

/// Armed around a callback, and holding the [`Context`] it gets: if the
/// callback panics, its source is removed while the panic unwinds. The
/// callback itself unwinds with the panic, so the source could never be
/// served again; removing it closes its fd, stops its wake-ups and keeps
/// `Stats` true. Defused when the callback returns.
struct RemoveOnUnwind<'a>(Context<'a>);

impl RemoveOnUnwind<'_> {
    fn returned(self) {
        std::mem::forget(self);
    }
}

impl Drop for RemoveOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// A shared pass in progress. Dropping it ends the pass, on return or
/// while a callback's panic unwinds through it: due entries the pass did
/// not reach go back on the heap (none, on return), and the shared timerfd
/// is armed for the earliest deadline, so no other shared timer is lost.
struct SharedPass<'a> {
    reactor: &'a Reactor,
    heap: u8,
    next: usize,
}

impl Drop for SharedPass<'_> {
    fn drop(&mut self) {
        if let Ok(mut core) = self.reactor.core.try_borrow_mut() {
            core.shared[self.heap as usize].requeue_due(self.next);
            let _ = core.sync_shared_fd(self.heap);
        }
    }
}
enum Job {
    Nothing,
    Wake,
    Io(IoCallback),
    Signals,
    SharedPass(u8),
}

impl Job {
    /// What an event for a source other than a dedicated timer asks for.
    /// Kept out of line: inlined, its match became a jump table that every
    /// timer event went through too, where a single compare does.
    #[inline(never)]
    fn of(source: &mut Source) -> Job {
        match source {
            Source::Timer { .. } => Job::Nothing, // dispatched before this
            Source::Io { callback, .. } => callback.take().map_or(Job::Nothing, Job::Io),
            Source::Signal { .. } => Job::Signals,
            Source::Waker => Job::Wake,
            Source::SharedFd(heap) => Job::SharedPass(*heap),
        }
    }
}

/// The epoll fd, for nesting this reactor in another event loop.
///
/// It is readable (level-triggered) whenever a turn has something to
/// dispatch: a ready source, a due timer of either mode (the shared timerfd
/// is one of its fds), a deferred callback, or events a panic left for the
/// next turn. So a host loop (`poll(2)`, another `Reactor`, GLib, tokio's
/// `AsyncFd`) waits on it and calls [`turn`](Reactor::turn) with
/// `Some(Duration::ZERO)` when it is readable; no deadline is missed while
/// nested. One turn dispatches at most 1,024 events, so it may leave work
/// for the next: the fd then stays readable. Do not read from it or
/// register it edge-triggered: an edge can be consumed by a turn that
/// leaves work behind.
impl AsFd for Reactor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.poller.as_fd()
    }
}

impl AsRawFd for Reactor {
    fn as_raw_fd(&self) -> RawFd {
        self.poller.as_fd().as_raw_fd()
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("stats", &self.stats()).finish()
    }
}
