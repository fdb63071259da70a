//! `Reactor`: the public face. Adding sources, running, stopping, stats.
//! The turn itself is `turn.rs`; the state it runs on is `core.rs`.

use std::cell::{Cell, RefCell, RefMut};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use timerfd_sys::{Clock, Expiration};

use crate::core::Core;
use crate::handle::{Owner, WeakOwner};
use crate::poller::Poller;
use crate::shared::duration_ns;
use crate::signal::SignalFd;
use crate::sources::Source;
use crate::stats::Counters;
use crate::token::SourceId;
use crate::trace::Observer;
use crate::{
    Context, Error, Interest, Io, Readiness, Signal, SignalInfo, Signals, Stats, Timer, TimerMode,
    Token, Waker,
};

/// A single-threaded epoll event loop, whose callbacks share a `&mut D`.
///
/// `Reactor` alone is `Reactor<()>`: callbacks keep their state in what
/// they capture, and [`turn`](Reactor::turn) and [`run`](Reactor::run)
/// drive it. With a data type, `Reactor::<App>::try_new()` makes a loop
/// whose callbacks all reach one `&mut App` through
/// [`Context::data`], handed in by [`turn_with`](Reactor::turn_with) or
/// [`run_with`](Reactor::run_with): no `Rc<RefCell<_>>` needed.
///
/// Not `Clone`, not `Send`: one reactor per thread. Handles hold a weak
/// reference, so a callback that captures a handle does not keep the
/// reactor alive, and dropping the reactor closes every fd it owns.
pub struct Reactor<D = ()> {
    pub(crate) inner: Rc<Inner<D>>,
}

/// What a reactor is: its state behind a `RefCell`, and beside it what must
/// stay readable while the state is borrowed (the epoll fd, the counters,
/// the stop request).
pub(crate) struct Inner<D> {
    pub(crate) core: RefCell<Core<D>>,
    poller: Rc<Poller>,
    pub(crate) counters: Rc<Counters>,
    stop: Cell<bool>,
}

impl Reactor<()> {
    /// A reactor with no sources: one epoll fd, nothing else.
    /// `REACTOR_TRACE=1` in the environment turns the lifecycle trace on.
    pub fn new() -> Result<Reactor, Error> {
        Reactor::try_new()
    }

    /// One turn: one `epoll_wait` (at most `timeout`; `None` blocks until an
    /// event), then every returned event dispatched in order. Returns the
    /// number of events. [`turn_with`](Reactor::turn_with) with no data.
    ///
    /// # Errors
    ///
    /// A failed `epoll_wait` ([`Error::Os`]), or a step the loop took on its
    /// own behalf that failed in this turn ([`Error::Retrying`]: the turn
    /// still dispatched everything else, and the step is retried next turn;
    /// see [the rule](crate::error#how-a-failed-system-call-is-decided)).
    ///
    /// # Panics
    ///
    /// A panic in a callback unwinds out of `turn`, and the reactor stays
    /// fully usable (see [Callbacks that panic](crate#callbacks-that-panic)):
    /// the source whose callback panicked is removed, and the rest of this
    /// turn's events are delivered by the next turn, which then does not
    /// wait. A trace observer's panic resumes here too.
    pub fn turn(&self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.turn_with(&mut (), timeout)
    }

    /// Run turns until [`stop`](Reactor::stop) is called (from a callback,
    /// or a [`Waker::stop`] from another thread).
    pub fn run(&self) -> Result<(), Error> {
        self.run_with(&mut ())
    }

    /// Run turns until `done()` holds (checked before each turn) or the
    /// reactor is stopped.
    #[deprecated(note = "use `run_until_timeout(Duration::MAX, done)`, or `run` and `stop`")]
    pub fn run_until(&self, done: impl FnMut() -> bool) -> Result<(), Error> {
        self.run_until_timeout(Duration::MAX, done).map(drop)
    }

    /// Run turns until `done()` holds (checked before each turn), the
    /// reactor is stopped, or `limit` has passed. Returns whether `done()`
    /// held. A `limit` too far for [`Instant`] (`Duration::MAX`, say)
    /// saturates: it never runs out.
    pub fn run_until_timeout(
        &self,
        limit: Duration,
        mut done: impl FnMut() -> bool,
    ) -> Result<bool, Error> {
        self.run_until_timeout_with(&mut (), limit, |_| done())
    }
}

impl<D: 'static> Reactor<D> {
    /// A reactor whose callbacks share a `&mut D` (see [`Reactor`]).
    pub fn try_new() -> Result<Reactor<D>, Error> {
        let poller = Rc::new(Poller::new()?);
        let counters = Rc::new(Counters::default());
        let core = RefCell::new(Core::new(Rc::clone(&poller), Rc::clone(&counters)));
        Ok(Reactor { inner: Rc::new(Inner { core, poller, counters, stop: Cell::new(false) }) })
    }

    pub(crate) fn core(&self) -> Result<RefMut<'_, Core<D>>, Error> {
        self.inner.core()
    }

    pub(crate) fn owner(&self) -> WeakOwner {
        let weak: std::rc::Weak<dyn Owner> = Rc::downgrade(&self.inner) as _;
        weak
    }

    /// Add a timer on `CLOCK_MONOTONIC`, armed with `exp`, in `mode`:
    /// [`add_timer_on`](Self::add_timer_on) with [`Clock::Monotonic`], the
    /// common case kept to one call. `callback` gets the expiration count
    /// (at least 1) each time it fires.
    pub fn add_timer(
        &self,
        mode: TimerMode,
        exp: Expiration,
        callback: impl FnMut(&mut Context<'_, D>, u64) + 'static,
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
    /// [`Error::SharedClock`] (the [`shared`](crate::shared) module says why).
    ///
    /// Atomic: `exp` is validated once, before anything is created, and on
    /// any error no fd, slab or heap entry, or `Stats` change is left
    /// behind, and `callback` is dropped before this returns. Both modes
    /// accept and refuse exactly the same expirations.
    pub fn add_timer_on(
        &self,
        clock: Clock,
        mode: TimerMode,
        exp: Expiration,
        callback: impl FnMut(&mut Context<'_, D>, u64) + 'static,
    ) -> Result<Timer, Error> {
        let setting = exp.validate()?;
        // On error, `callback` is dropped after the borrow ends: its captures
        // may be handles whose `Drop` needs the reactor.
        let id = match mode {
            TimerMode::Dedicated => {
                let callback = Core::dedicated_callback(callback);
                SourceId::Dedicated(self.with_core(|c| c.add_dedicated(clock, &setting, callback))?)
            }
            TimerMode::Shared => {
                let callback = Box::new(callback);
                self.with_core(|c| c.add_shared(clock, &setting, callback))?
            }
        };
        Ok(Timer { owner: self.owner(), id })
    }

    /// Watch an fd the reactor takes ownership of (an `OwnedFd`, a
    /// `TcpStream`, or an `Rc` of one to keep using it elsewhere). It is
    /// closed (dropped) when the handle is dropped, or when this fails.
    ///
    /// The fd must be nonblocking: a socket, pipe or character device in
    /// blocking mode is refused with [`Error::Blocking`] (a callback reading
    /// it would block the loop, and every signal source with it). Epoll,
    /// timer, event and signal fds are accepted either way, since the
    /// reactor's users read their readiness, not their data, so nesting one
    /// reactor in another works. A regular file gets `EPERM` from epoll.
    pub fn add_io(
        &self,
        fd: impl AsFd + 'static,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_, D>, Readiness) + 'static,
    ) -> Result<Io<'static>, Error> {
        crate::sources::check_nonblocking(fd.as_fd())?;
        let (fd, callback): (Box<dyn AsFd>, _) = (Box::new(fd), Box::new(callback));
        let token = self.with_core(|core| {
            let token = core.watch(fd.as_fd(), interest)?;
            Ok(token)
        })?;
        let raw = fd.as_fd().as_raw_fd();
        // Cannot fail: `watch` reserved the slot.
        self.with_core(|core| {
            core.insert(token, Source::Io { fd, callback: Some(callback) }, raw, interest);
            Ok(())
        })?;
        Ok(Io { owner: self.owner(), token, _fd: PhantomData })
    }

    /// Watch an fd the caller keeps: the reactor registers its own copy
    /// (`fcntl(F_DUPFD_CLOEXEC)`, one more fd) and closes that copy when
    /// the handle drops, so the caller may close theirs whenever it likes
    /// and no handle, forgotten or not, can ever touch another registration.
    /// Otherwise as [`add_io`](Self::add_io).
    pub fn add_io_borrowed<'fd>(
        &self,
        fd: BorrowedFd<'fd>,
        interest: Interest,
        callback: impl FnMut(&mut Context<'_, D>, Readiness) + 'static,
    ) -> Result<Io<'fd>, Error> {
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
        let mut io = self.add_io(copy, interest, callback)?;
        let owner = std::mem::replace(&mut io.owner, crate::handle::nobody());
        Ok(Io { owner, token: io.token, _fd: PhantomData })
    }

    /// Deliver `signals` to `callback` through a signalfd. Blocks them in
    /// this thread while any source wants them (see the
    /// [`signal`](crate::signal) module docs).
    pub fn add_signals(
        &self,
        signals: &[Signal],
        callback: impl FnMut(&mut Context<'_, D>, SignalInfo) + 'static,
    ) -> Result<Signals, Error> {
        let fd = Box::new(SignalFd::open(signals)?);
        let callback = Box::new(callback);
        let token = self.with_core(|core| core.watch(fd.as_fd(), Interest::READABLE))?;
        let raw = fd.as_raw_fd();
        self.with_core(|core| {
            core.insert(
                token,
                Source::Signal { fd, callback: Some(callback) },
                raw,
                Interest::READABLE,
            );
            Ok(())
        })?;
        Ok(Signals { owner: self.owner(), token })
    }

    /// A [`Waker`] for this reactor; the first call creates its eventfd.
    pub fn waker(&self) -> Result<Waker, Error> {
        Ok(Waker { inner: self.core()?.waker()? })
    }

    /// Send lifecycle trace events to `observer` (`None`: turn the trace off).
    /// The observer must not call back into the reactor; if it does, that
    /// call fails with [`Error::Reentrant`] (reading [`stats`](Self::stats)
    /// is fine).
    pub fn set_observer(&self, observer: Option<Observer>) {
        // Only an observer calling this from inside itself finds the core
        // borrowed; it then stays as it is, as documented above.
        if let Ok(mut core) = self.core() {
            core.set_observer(observer);
        }
    }

    /// A snapshot of the sources and counters. Always true: the counters
    /// live outside the reactor's borrowed state.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Ask [`run`](Self::run) (or [`run_with`](Self::run_with),
    /// [`run_until_timeout`](Self::run_until_timeout)) to return after the
    /// current turn: the one way to stop the loop. From a callback,
    /// `ctx.stop()`; from another thread, [`Waker::stop`], which asks the
    /// same and wakes the loop.
    pub fn stop(&self) {
        self.inner.stop.set(true);
    }

    /// Whether a stop was requested; clears the request.
    fn take_stop(&self) -> bool {
        let waker = self.inner.core.try_borrow().is_ok_and(|c| c.take_stop_request());
        self.inner.stop.take() | waker
    }

    /// Run turns, handing each callback `data`, until stopped.
    pub fn run_with(&self, data: &mut D) -> Result<(), Error> {
        loop {
            self.turn_with(data, None)?;
            if self.take_stop() {
                return Ok(());
            }
        }
    }

    /// Run turns, handing each callback `data`, until `done(data)` holds
    /// (checked before each turn), the reactor is stopped, or `limit` has
    /// passed. Returns whether `done` held.
    pub fn run_until_timeout_with(
        &self,
        data: &mut D,
        limit: Duration,
        mut done: impl FnMut(&mut D) -> bool,
    ) -> Result<bool, Error> {
        let deadline = Instant::now().checked_add(limit);
        loop {
            if done(data) {
                return Ok(true);
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => limit,
            };
            if left.is_zero() {
                return Ok(false);
            }
            self.turn_with(data, Some(left))?;
            if self.take_stop() {
                return Ok(done(data));
            }
        }
    }

    /// Run `f` on the core, then drop what it released outside the borrow.
    pub(crate) fn with_core<T>(
        &self,
        f: impl FnOnce(&mut Core<D>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.inner.with_core(f)
    }

    pub(crate) fn set_timer(&self, id: SourceId, exp: Option<Expiration>) -> Result<(), Error> {
        self.inner.set_timer(id, exp)
    }

    pub(crate) fn set_leeway(&self, id: SourceId, leeway: Duration) -> Result<(), Error> {
        self.inner.set_leeway(id, leeway)
    }

    /// Remove any source by id, dropping it outside the borrow.
    pub(crate) fn remove(&self, id: SourceId) {
        self.inner.remove(id);
    }

    pub(crate) fn is_live(&self, id: SourceId) -> bool {
        self.inner.is_live(id)
    }

    pub(crate) fn fault(&self, call: &'static str, errno: Errno) {
        if let Ok(mut core) = self.core() {
            core.fault(call, errno);
        }
    }
}

impl<D: 'static> Inner<D> {
    pub(crate) fn core(&self) -> Result<RefMut<'_, Core<D>>, Error> {
        self.core.try_borrow_mut().map_err(|_| Error::Reentrant)
    }

    pub(crate) fn with_core<T>(
        &self,
        f: impl FnOnce(&mut Core<D>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut core = self.core()?;
        let result = f(&mut core);
        // Fds a removal closed are dropped after the borrow ends (their
        // owners' `Drop` may call back in); most calls close none.
        if core.has_graveyard() {
            let released = core.take_graveyard();
            drop(core);
            drop(released);
        }
        result
    }
}

impl<D: 'static> Owner for Inner<D> {
    fn remove(&self, id: SourceId) {
        let (removed, released) = match self.core.try_borrow_mut() {
            Ok(mut core) => (core.remove(id), core.take_graveyard()),
            // Only a trace observer dropping a handle gets here; the source then
            // lives until the reactor is dropped.
            Err(_) => (None, Vec::new()),
        };
        drop(removed);
        drop(released);
    }

    fn set_timer(&self, id: SourceId, exp: Option<Expiration>) -> Result<(), Error> {
        let setting = exp.map(Expiration::validate).transpose()?;
        self.with_core(|c| c.set_timer(id, setting.as_ref()))
    }

    fn set_leeway(&self, id: SourceId, leeway: Duration) -> Result<(), Error> {
        self.with_core(|c| c.set_leeway(id, duration_ns(leeway)))
    }

    fn is_live(&self, id: SourceId) -> bool {
        self.core.try_borrow().is_ok_and(|c| c.is_live(id))
    }

    fn detach(&self, id: SourceId) {
        // Only a trace observer detaching a handle finds the core borrowed;
        // the source then stays attached, and its handle's drop removes it.
        if let Ok(mut core) = self.core() {
            core.detach(id);
        }
    }

    fn modify_io(&self, token: Token, interest: Interest) -> Result<(), Error> {
        self.with_core(|c| c.modify_io(token, interest))
    }

    fn timer_fd(&self, token: Token) -> Option<RawFd> {
        self.core().ok()?.timer_fd(token)
    }
}

/// The epoll fd, for nesting this reactor in another event loop.
///
/// It is readable (level-triggered) whenever a turn has something to
/// dispatch: a ready source, a due timer of either mode (each shared
/// clock's timerfd is one of its fds), a deferred callback, events a panic
/// left for the next turn, or a repair to retry. So a host loop (`poll(2)`,
/// another `Reactor`, GLib, tokio's `AsyncFd`) waits on it and calls
/// [`turn`](Reactor::turn) with `Some(Duration::ZERO)` when it is readable;
/// no deadline is missed while nested. One turn dispatches at most 1,024
/// events, so it may leave work for the next: the fd then stays readable.
/// Do not read from it or register it edge-triggered: an edge can be
/// consumed by a turn that leaves work behind.
impl<D> AsFd for Reactor<D> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.poller.as_fd()
    }
}

impl<D> AsRawFd for Reactor<D> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.poller.as_fd().as_raw_fd()
    }
}

impl<D: 'static> std::fmt::Debug for Reactor<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("stats", &self.stats()).finish()
    }
}
