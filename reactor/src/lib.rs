//! A minimal single-threaded epoll event loop that owns timerfds through
//! drop-guarded handles.
//!
//! Small enough to read in one sitting, and written to be read: each file
//! does one thing.
//!
//! | module | what it holds |
//! |---|---|
//! | [`Reactor`] (`reactor.rs`) | adding sources, running, stopping, stats; `AsFd` for nesting |
//! | `turn.rs` | the turn: repairs, idle hooks, one `epoll_wait`, dispatch by one callback protocol, deferred work |
//! | `core.rs`, `core/timers.rs` | the state under the borrow: the slab, the shared clocks, repairs owed; timers of both modes |
//! | `poller.rs` | the epoll layer: register, modify, deregister by token; wait |
//! | [`Token`] | slab key + generation, carried in `epoll_event.data` |
//! | `sources.rs` | what a slab entry holds, and the callback types |
//! | [`shared`] | shared mode: one owner per clock (heap, timerfd, armed-for deadline) |
//! | [`leeway`] | how late a timer may fire, so one wake-up serves many |
//! | [`Timer`], [`Io`], [`Signals`], [`Idle`] | drop guards: dropping one removes its source |
//! | [`Context`] | what a callback gets: the reactor, the turn's `&mut D`, its own source |
//! | [`Waker`] | wake a blocked loop from another thread (eventfd) |
//! | [`channel`] | messages from other threads to a callback, batched per wake-up |
//! | `deferred.rs` | [`Reactor::defer`] and idle hooks ([`Reactor::add_idle`]) |
//! | [`signal`] | SIGINT/SIGTERM as events (signalfd) |
//! | [`Stats`], [`trace`] | counters, and a line per kernel step |
//! | [`Error`] (`error.rs`) | every failure, and the one rule for what a failed syscall means |
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use reactor::{Expiration, Reactor, TimerMode};
//!
//! let reactor = Reactor::new()?;
//! let fired = Rc::new(Cell::new(0));
//! let seen = fired.clone();
//! let ticker = reactor.add_timer(TimerMode::Dedicated, Expiration::every(Duration::from_millis(1)), move |_ctx, ticks| {
//!     seen.set(seen.get() + ticks);
//! })?;
//! assert!(reactor.run_until_timeout(Duration::from_secs(2), || fired.get() >= 3)?);
//! drop(ticker); // epoll_ctl(DEL) + close: the timer is gone, its callback with it
//! assert_eq!(reactor.stats().timerfds_open, 0);
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The data path
//!
//! What happens between arming a dedicated timer and its callback, and where
//! in this crate each step lives (`REACTOR_TRACE=1` prints it as it runs):
//!
//! ```text
//! timerfd_create(CLOCK_MONOTONIC, NONBLOCK|CLOEXEC)   timerfd_sys::TimerFd::new      (Reactor::add_timer)
//! timerfd_settime(fd, flags, itimerspec)               timerfd_sys::Expiration -> itimerspec
//! epoll_ctl(ADD, fd, {EPOLLIN, data = token})          token = slab key + generation
//! hrtimer expires -> timerfd readable -> epoll wakes   the kernel
//! epoll_wait -> [token, ...]                           poller::Poller::wait, one call per turn
//! token -> slab entry, generation checked              Reactor::turn -> dispatch; stale events dropped
//! read(fd) -> u64 expirations (missed ticks folded)    one read per ready timer
//! callback(ctx, ticks)                                 your code; no borrow of the reactor held
//! drop(handle) -> epoll_ctl(DEL) + close(fd)           Timer's Drop
//! ```
//!
//! A turn allocates nothing: the event buffer is reused, callbacks are taken
//! out of their entries and put back (a dedicated timer's is shared through
//! an `Rc` instead), and shared-mode passes reuse their scratch list.
//!
//! # State in callbacks
//!
//! Callbacks of a `Reactor<D>` share one `&mut D`, handed to
//! [`turn_with`](Reactor::turn_with) or [`run_with`](Reactor::run_with) and
//! reached through [`Context::data`], in calloop's spirit: no
//! `Rc<RefCell<_>>` between callbacks. `Reactor` alone is `Reactor<()>`,
//! and [`turn`](Reactor::turn) and [`run`](Reactor::run) are
//! `turn_with(&mut ())` and `run_with(&mut ())`.
//!
//! ```
//! use std::time::Duration;
//! use reactor::{Expiration, Reactor, TimerMode};
//!
//! #[derive(Default)]
//! struct App { ticks: u64, bytes: usize }
//!
//! let reactor = Reactor::<App>::try_new()?;
//! let every = Expiration::every(Duration::from_millis(1));
//! let _t = reactor.add_timer(TimerMode::Shared, every, |ctx, n| ctx.data().ticks += n)?;
//! let mut app = App::default();
//! assert!(reactor.run_until_timeout_with(&mut app, Duration::from_secs(2), |app| app.ticks >= 3)?);
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # When a system call fails
//!
//! No failure is silent. An operation you call returns its error and
//! changes nothing. A step the loop takes on its own behalf (reading a
//! ready fd, re-arming a shared clock, the `EPOLL_CTL_DEL` of a handle's
//! drop) is retried at the start of every turn, and `turn` returns
//! [`Error::Retrying`] each time it fails, until it heals; meanwhile every
//! source keeps its schedule. The [`error`] module has the rule
//! (interrupted, transient, fatal) and what each case does.
//!
//! # Two timer modes
//!
//! [`TimerMode::Dedicated`] (the default) gives each timer its own timerfd:
//! the kernel does the timing, `/proc/PID/fd` lists every timer, and any
//! [`Clock`] works. It costs one fd and one `timerfd_settime` per arm.
//! [`TimerMode::Shared`] puts the timer in a heap under a single timerfd, as
//! Go's runtime, libuv and sd-event do: no fd per timer, and arming is a heap
//! push that only reaches the kernel when it becomes the earliest deadline.
//! A million shared timers fit on one fd. The [`shared`] module has the
//! comparison and the rules.
//!
//! # Handles and leaks
//!
//! Every add returns a handle; dropping it removes the source, closes what
//! the reactor owns, and guarantees its callback never runs again, even for
//! an event already fetched in the current turn. The deliberate leak is
//! [`Timer::detach`]: the timer keeps firing, with no way to stop it from
//! outside, until the reactor is dropped; [`Stats::detached_timers`] counts
//! them. That is the "ticker never stopped" bug made explicit.
//!
//! # Callbacks
//!
//! A callback may add sources ([`Context::reactor`]), re-arm or drop any
//! source whose handle it can reach, and re-arm, disarm or remove itself
//! ([`Context::rearm`], [`Context::remove`]). Callbacks run with no borrow of
//! the reactor held; only [`Reactor::turn`] itself cannot be nested.
//!
//! # Every operation is atomic
//!
//! Every `add_*`, [`Timer::set`], [`Timer::set_leeway`], [`Timer::disarm`],
//! [`Context::rearm`] and [`Io::modify`] either succeeds or returns an error
//! and leaves no trace: no fd, no slab or heap entry, no change in
//! [`Stats`]. A refused callback is dropped before the call returns, after
//! the reactor's borrow ends, so the handles it captured still work. Each
//! add does everything that can fail first (validate, `timerfd_create`,
//! `timerfd_settime`, `epoll_ctl(ADD)`, arming its clock's shared timerfd)
//! and then commits with a step that cannot.
//! Both timer modes accept and refuse exactly the same [`Expiration`]s,
//! whatever else is scheduled; a deadline past the kernel's range
//! ([`MAX_TIME`](timerfd_sys::MAX_TIME) from now) fires at the end of that
//! range in both. No `Duration` panics: deadlines too far for `Instant`
//! saturate.
//!
//! # Callbacks that panic
//!
//! A panic in any callback unwinds out of [`Reactor::turn`] (and so out of
//! `run`): nothing is swallowed, nothing aborts. Catch it around the call
//! if the loop should go on; the reactor is then fully usable:
//!
//! * **The source whose callback panicked is removed**, as if its handle
//!   had been dropped: `epoll_ctl(DEL)`, its fd closed if the reactor owns
//!   it, its slab or heap entry freed, its gauges in `Stats` decremented.
//!   Its callback unwound with the panic, so nothing could serve the source
//!   again; removing it is what stops a dead timer from waking the loop every
//!   period and a level-triggered fd from spinning it. Its handle can tell:
//!   `is_live()` is false and every method returns [`Error::Gone`].
//! * **Every other source keeps its schedule.** A shared pass puts the due
//!   timers it did not reach back on the heap and re-arms its clock's
//!   timerfd; the events of the turn that were not dispatched yet are
//!   delivered by the next turn, which then does not wait, so edge-triggered
//!   readiness is not lost either.
//! * A trace observer that panics is turned off; its panic resumes out of
//!   the next `turn`, after the operation it was reporting has finished.
//!
//! The same rule holds for every source kind (dedicated and shared timers,
//! I/O, signals, channels, idle hooks): it is written once, in the turn's
//! callback protocol, and tested for each in `tests/panics.rs` and by the
//! model test. A deferred callback that panics is simply gone (it runs
//! once); the ones after it stay queued for the next turn.

#![cfg(target_os = "linux")]

pub mod channel;
mod context;
mod core;
mod deferred;
pub mod error;
mod handle;
mod interest;
pub mod leeway;
mod poller;
mod reactor;
pub mod shared;
pub mod signal;
mod sources;
mod stats;
mod token;
pub mod trace;
mod turn;
mod waker;

pub use channel::{Channel, Sender};
pub use context::Context;
pub use error::Error;
pub use handle::{Idle, Io, Signals, Timer, TimerMode};
pub use interest::{Interest, Readiness};
pub use reactor::Reactor;
pub use signal::{Signal, SignalInfo};
pub use stats::Stats;
pub use token::Token;
pub use trace::TraceEvent;
pub use waker::Waker;

pub use timerfd_sys::{Clock, ClockTime, Expiration};

/// The crate README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
