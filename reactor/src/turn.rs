//! The turn: repairs, idle hooks, one `epoll_wait`, dispatch, deferred work.
//!
//! ```text
//! turn_with(data, timeout)
//!   heal            retry what the loop owes (a stranded clock, a parked DEL)
//!   idle hooks      each with a Context
//!   epoll_wait      unless a batch cut short by a panic is still being delivered
//!   for each event  token -> slab entry (generation checked) -> its callback
//!   stranded clocks a pass from the clock reading, for a clock whose timerfd could not be armed
//!   deferred        the callbacks queued before this phase began
//!   return          the first failure recorded on the loop's behalf, or the event count
//! ```
//!
//! # One callback protocol
//!
//! Every callback, of every kind, runs the same way ([`Reactor::call`]):
//! take it out of its slot under the core's borrow, release the borrow, run
//! it with a [`Context`] held by a guard that removes its source if it
//! unwinds, then put it back, unless its source was removed meanwhile
//! (then drop it, outside the borrow). So the panic rule holds for every
//! kind because it is written once. The dedicated timer is the one
//! documented fast path: its callback sits behind an `Rc`, which dispatch
//! clones instead of taking, so nothing has to be put back (see
//! `sources::DedicatedCallback`); the same guard covers it.

mod guards;

use std::rc::Rc;
use std::time::Duration;

use guards::{InPass, InTurn, RemoveOnUnwind};

use crate::sources::Source;
use crate::stats::bump;
use crate::token::SourceId;
use crate::trace::{TraceEvent, chrome};
use crate::{Context, Error, Reactor, Readiness, Token};

/// Signals read per signalfd event at most, so a signal storm cannot starve
/// the other sources of a turn.
const SIGNALS_PER_EVENT: usize = 64;

impl<D: 'static> Reactor<D> {
    /// One turn, handing every callback `data` through its
    /// [`Context::data`]: the idle hooks, one `epoll_wait` (at most
    /// `timeout`; `None` blocks until an event), every returned event
    /// dispatched in order, then the deferred callbacks. Returns the number
    /// of events. Errors and panics: as [`turn`](Reactor::turn).
    pub fn turn_with(&self, data: &mut D, timeout: Option<Duration>) -> Result<usize, Error> {
        let mut core = self.core()?;
        if let Some(panic) = core.take_observer_panic() {
            drop(core);
            std::panic::resume_unwind(panic);
        }
        core.begin_turn()?;
        // From here on, returning or unwinding ends the turn; on the common
        // path the turn ends in the last borrow and this guard is forgotten.
        let turn = InTurn(self);
        if core.owes_repairs() {
            core.heal();
            let released = core.take_graveyard();
            drop(core);
            drop(released);
            core = self.inner.core.borrow_mut();
        }
        // Events a panic left in the buffer are delivered before any wait.
        if core.batch_done() {
            if core.deferred().has_hooks() {
                drop(core);
                self.run_idle_hooks(data);
                core = self.inner.core.borrow_mut();
            }
            let timeout = match core.stranded_timeout() {
                _ if core.has_pending_work() => Some(Duration::ZERO),
                Some(bound) => Some(timeout.map_or(bound, |t| t.min(bound))),
                None => timeout,
            };
            let traced = core.timeline();
            if traced {
                let ms = timeout.map_or(-1.0, |t| t.as_secs_f64() * 1e3);
                chrome::span('B', "epoll_wait", format_args!("\"timeout_ms\":{ms}"));
            }
            let waited = core.wait(timeout);
            if traced {
                let events = waited.as_ref().map_or(0, |n| *n);
                chrome::span('E', "epoll_wait", format_args!("\"events\":{events}"));
            }
            if let Err(e) = waited {
                drop(core);
                drop(turn); // ends the turn
                return Err(e);
            }
        }
        let mut n = 0;
        // One borrow per event: it fetches the event and dispatches it. The
        // timeline's spans are compiled into a second copy of `dispatch`, so
        // the common one carries no trace of them.
        let traced = core.timeline();
        while let Some((token, readiness)) = core.next_event() {
            n += 1;
            match traced {
                false => self.dispatch::<false>(core, data, token, readiness),
                true => self.dispatch::<true>(core, data, token, readiness),
            }
            core = self.inner.core.borrow_mut();
        }
        while let Some(c) = core.due_stranded() {
            drop(core);
            self.shared_pass(data, c, false);
            core = self.inner.core.borrow_mut();
        }
        if core.deferred().has_queued() {
            drop(core);
            self.run_deferred(data);
            core = self.inner.core.borrow_mut();
        }
        core.end_turn();
        let fault = core.take_fault();
        drop(core);
        std::mem::forget(turn);
        match fault {
            Some(fault) => Err(fault),
            None => Ok(n),
        }
    }

    /// Route one event to its source, unless it is stale. `TRACED`: write
    /// the timeline's spans around the read and the callback.
    #[inline]
    fn dispatch<const TRACED: bool>(
        &self,
        mut core: std::cell::RefMut<'_, crate::core::Core<D>>,
        data: &mut D,
        token: Token,
        readiness: Readiness,
    ) {
        let traced = TRACED;
        let Some(source) = core.source_for(token) else { return };
        // Dedicated timers first, the hot case: one borrow and one slab
        // visit, then the callback runs through its own `Rc` with no borrow
        // held, and there is nothing to put back.
        let Source::Timer { fd, callback, .. } = source else {
            let job = Job::of(source);
            return self.dispatch_other(core, data, token, readiness, job);
        };
        let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
        if traced {
            chrome::span('B', "read", format_args!("\"fd\":{raw}"));
        }
        // One read per ready timer; 0 means it was re-armed after epoll
        // saw it ready (a spurious event).
        let read = fd.read();
        if traced {
            let got = read.as_ref().map_or(-1, |n| *n as i64);
            chrome::span('E', "read", format_args!("\"fd\":{raw},\"expirations\":{got}"));
        }
        let ticks = match read {
            Ok(0) => return,
            Ok(ticks) => ticks,
            Err(e) => {
                // It stays readable: the next turn reads it again.
                core.fault("read", crate::core::errno_of(e));
                return;
            }
        };
        let cb = Rc::clone(callback);
        bump(&core.counters().timer_expirations, ticks);
        core.emit(|| TraceEvent::Fire { fd: raw, ticks });
        drop(core);
        let mut guard = RemoveOnUnwind(Context::new(self, data, SourceId::Dedicated(token)));
        if traced {
            chrome::span(
                'B',
                "callback",
                format_args!("\"timer_fd\":{raw},\"expirations\":{ticks}"),
            );
        }
        // `run` drops `cb` when the callback returns: if the source was
        // removed meanwhile, that drops the callback, with no borrow held.
        cb.run(&mut guard.0, ticks);
        guard.returned();
        if traced {
            chrome::span('E', "callback", format_args!(""));
        }
    }

    /// Every event but a dedicated timer's. Out of line: the timer path
    /// stays a single compare.
    #[inline(never)]
    fn dispatch_other(
        &self,
        mut core: std::cell::RefMut<'_, crate::core::Core<D>>,
        data: &mut D,
        token: Token,
        readiness: Readiness,
        job: Job,
    ) {
        match job {
            Job::Nothing => {}
            Job::Wake => core.drain_waker(),
            Job::Io => {
                drop(core);
                self.call(data, SourceId::Io(token), |cb: &mut crate::sources::IoFn<D>, ctx| {
                    cb(ctx, readiness)
                });
            }
            Job::Signals => {
                drop(core);
                self.deliver_signals(data, token);
            }
            Job::SharedPass(c) => {
                drop(core);
                self.shared_pass(data, c, true);
            }
        }
    }

    /// The callback protocol (see the module docs): take the callback of
    /// source `id` out of its slot, run it with a [`Context`] under the
    /// unwind guard, put it back unless the source went away meanwhile.
    fn call<C: Callback<D>>(
        &self,
        data: &mut D,
        id: SourceId,
        run: impl FnOnce(&mut C, &mut Context<'_, D>),
    ) {
        let (taken, traced) = match self.inner.core.try_borrow_mut() {
            Ok(mut core) => (C::slot(&mut core, id).and_then(Option::take), core.timeline()),
            Err(_) => (None, false),
        };
        let Some(mut cb) = taken else { return };
        if traced {
            chrome::span('B', "callback", format_args!("{}", source_args(id)));
        }
        let mut guard = RemoveOnUnwind(Context::new(self, data, id));
        run(&mut cb, &mut guard.0);
        guard.returned();
        if traced {
            chrome::span('E', "callback", format_args!(""));
        }
        let leftover = match self.inner.core.try_borrow_mut() {
            Ok(mut core) => match C::slot(&mut core, id) {
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

    fn deliver_signals(&self, data: &mut D, token: Token) {
        let id = SourceId::Signal(token);
        for _ in 0..SIGNALS_PER_EVENT {
            let read = {
                let mut core = self.inner.core.borrow_mut();
                let Some(Source::Signal { fd, .. }) = core.entry(token).map(|e| &mut e.source)
                else {
                    return; // removed by the last signal's callback
                };
                match fd.read() {
                    Ok(read) => read,
                    Err(errno) => {
                        core.fault("read", errno); // still readable: retried next turn
                        return;
                    }
                }
            };
            let Some(info) = read else { return };
            self.call(data, id, |cb: &mut crate::sources::SignalFn<D>, ctx| cb(ctx, info));
        }
    }

    /// Run every shared timer of clock `c` that is due, then point its
    /// timerfd at the next deadline. `acked`: its timerfd fired and is read
    /// first (a stranded clock's pass runs from the clock reading alone).
    fn shared_pass(&self, data: &mut D, c: u8, acked: bool) {
        if chrome::on() {
            let clock = crate::shared::CLOCKS[c as usize].c_name();
            chrome::span(
                'B',
                "shared pass",
                format_args!("\"clock\":\"{clock}\",\"read\":{acked}"),
            );
        }
        let (due, now) = self.inner.core.borrow_mut().begin_pass(c, acked);
        let mut pass = InPass { reactor: self, clock: c, reached: 0 };
        while pass.reached < due {
            let i = pass.reached;
            pass.reached += 1;
            let fired = self.inner.core.borrow_mut().fire_shared(c, i, now);
            let Some(f) = fired else { continue };
            let id = SourceId::Shared { clock: c, key: f.key, generation: f.generation };
            self.call(data, id, |cb: &mut crate::sources::TimerFn<D>, ctx| cb(ctx, f.ticks));
        }
        drop(pass); // re-arms the clock's timerfd
        if chrome::on() {
            chrome::span('E', "shared pass", format_args!("\"fired\":{due}"));
        }
    }

    /// Run every idle hook once.
    fn run_idle_hooks(&self, data: &mut D) {
        let keys = self.inner.core.borrow_mut().deferred().hooks_to_run();
        for &key in &keys {
            let generation = self.inner.core.borrow_mut().deferred().generation_of(key);
            let Some(generation) = generation else { continue };
            let id = SourceId::Idle { key, generation };
            self.call(data, id, |cb: &mut crate::deferred::HookFn<D>, ctx| cb(ctx));
        }
        self.inner.core.borrow_mut().deferred().return_scratch(keys);
    }

    /// Run the callbacks deferred before this phase began; later ones wait
    /// for the next turn, which is woken for them.
    fn run_deferred(&self, data: &mut D) {
        let queued = {
            let mut core = self.inner.core.borrow_mut();
            let deferred = core.deferred();
            deferred.phase = crate::deferred::Phase::Deferred;
            deferred.queued()
        };
        for _ in 0..queued {
            let next = self.inner.core.borrow_mut().deferred().pop();
            let Some(callback) = next else { break };
            // A deferred callback is gone once taken: a panic removes nothing.
            callback(&mut Context::new(self, data, SourceId::Deferred));
        }
    }
}

/// A callback's source, as the timeline's args name it.
fn source_args(id: SourceId) -> String {
    match id {
        SourceId::Dedicated(t) => format!("\"timer\":\"{}/{}\"", t.key(), t.generation()),
        SourceId::Shared { key, .. } => format!("\"shared_timer\":{key}"),
        SourceId::Io(t) => format!("\"io\":\"{}/{}\"", t.key(), t.generation()),
        SourceId::Signal(t) => format!("\"signals\":\"{}/{}\"", t.key(), t.generation()),
        SourceId::Idle { key, .. } => format!("\"idle_hook\":{key}"),
        SourceId::Deferred => "\"deferred\":true".to_string(),
    }
}

/// What an event for a source other than a dedicated timer asks for.
#[derive(Clone, Copy)]
enum Job {
    Nothing,
    Wake,
    Io,
    Signals,
    SharedPass(u8),
}

impl Job {
    fn of<D>(source: &Source<D>) -> Job {
        match source {
            Source::Io { .. } => Job::Io,
            Source::Signal { .. } => Job::Signals,
            Source::SharedFd(c) => Job::SharedPass(*c),
            Source::Waker => Job::Wake,
            Source::Timer { .. } => Job::Nothing, // dispatched before this
        }
    }
}

/// Where each kind of callback lives, for [`Reactor::call`].
trait Callback<D>: Sized {
    fn slot(core: &mut crate::core::Core<D>, id: SourceId) -> Option<&mut Option<Self>>;
}

impl<D: 'static> Callback<D> for crate::sources::IoFn<D> {
    fn slot(core: &mut crate::core::Core<D>, id: SourceId) -> Option<&mut Option<Self>> {
        let SourceId::Io(token) = id else { return None };
        match &mut core.entry(token)?.source {
            Source::Io { callback, .. } => Some(callback),
            _ => None,
        }
    }
}

impl<D: 'static> Callback<D> for crate::sources::SignalFn<D> {
    fn slot(core: &mut crate::core::Core<D>, id: SourceId) -> Option<&mut Option<Self>> {
        let SourceId::Signal(token) = id else { return None };
        match &mut core.entry(token)?.source {
            Source::Signal { callback, .. } => Some(callback),
            _ => None,
        }
    }
}

impl<D: 'static> Callback<D> for crate::sources::TimerFn<D> {
    fn slot(core: &mut crate::core::Core<D>, id: SourceId) -> Option<&mut Option<Self>> {
        let SourceId::Shared { clock, key, generation } = id else { return None };
        core.shared_callback(clock, key, generation)
    }
}

impl<D: 'static> Callback<D> for crate::deferred::HookFn<D> {
    fn slot(core: &mut crate::core::Core<D>, id: SourceId) -> Option<&mut Option<Self>> {
        let SourceId::Idle { key, generation } = id else { return None };
        core.deferred().hook(key, generation)
    }
}
