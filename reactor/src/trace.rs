//! The lifecycle trace: one line per step a timer takes through the kernel.
//!
//! With `REACTOR_TRACE=1` in the environment, every reactor prints these to
//! stderr; [`Reactor::set_observer`](crate::Reactor::set_observer) sends
//! them to a closure instead. For a dedicated timer a learner sees the whole
//! path in order:
//!
//! ```text
//! reactor: timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK|TFD_CLOEXEC) = 5
//! reactor: timerfd_settime(5, Every { first: 10ms, period: 10ms })
//! reactor: epoll_ctl(EPOLL_CTL_ADD, 5, EPOLLIN, token 3/7)
//! reactor: read(5) = 1 expiration -> callback
//! reactor: timerfd_settime(5, disarm)
//! reactor: epoll_ctl(EPOLL_CTL_DEL, 5)
//! reactor: close(5)
//! ```
//!
//! `REACTOR_TRACE=chrome:PATH` writes the same steps, and spans for each
//! `epoll_wait`, `read` and callback, as a timeline to open in Perfetto
//! (see [`chrome`]).
//!
//! Shared timers never touch the kernel one by one, so their lines name heap
//! operations; each shared clock's timerfd shows up with the lines above,
//! re-armed at the heap's earliest deadline (`timerfd_settime(fd,
//! TFD_TIMER_ABSTIME, N ns)`).

pub mod chrome;

use core::fmt;
use std::os::fd::RawFd;

use timerfd_sys::{Clock, Expiration};

use crate::{Interest, Token};

/// One step in a timer's life. `Display` renders it like an strace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceEvent {
    /// `timerfd_create` returned `fd`.
    Create {
        /// The new timerfd.
        fd: RawFd,
        /// Its clock.
        clock: Clock,
    },
    /// `timerfd_settime` armed `fd`.
    Arm {
        /// The timerfd.
        fd: RawFd,
        /// What it was armed with.
        expiration: Expiration,
    },
    /// `epoll_ctl(EPOLL_CTL_ADD)` registered `fd` under `token`.
    EpollAdd {
        /// The registered fd.
        fd: RawFd,
        /// What its events will carry.
        token: Token,
        /// What it is watched for.
        interest: Interest,
    },
    /// `epoll_ctl(EPOLL_CTL_MOD)` changed what `fd` is watched for.
    EpollMod {
        /// The registered fd.
        fd: RawFd,
        /// What its events carry.
        token: Token,
        /// What it is watched for now.
        interest: Interest,
    },
    /// `read` on `fd` returned `ticks` expirations; its callback runs next.
    Fire {
        /// The timerfd.
        fd: RawFd,
        /// Expirations, missed ticks folded in.
        ticks: u64,
    },
    /// `timerfd_settime` armed a shared clock's timerfd `fd` once, absolute,
    /// for the earliest deadline of its heap.
    ArmDeadline {
        /// The shared clock's timerfd.
        fd: RawFd,
        /// The deadline, nanoseconds on the clock.
        deadline_ns: u64,
    },
    /// `timerfd_settime` disarmed `fd`.
    Disarm {
        /// The timerfd.
        fd: RawFd,
    },
    /// `epoll_ctl(EPOLL_CTL_DEL)` removed `fd`.
    EpollDel {
        /// The fd.
        fd: RawFd,
    },
    /// `fd` is being closed.
    Close {
        /// The fd.
        fd: RawFd,
    },
    /// Shared timer `timer` was pushed on its clock's heap, due at
    /// `deadline_ns` on that clock.
    HeapPush {
        /// The shared timer's slab key.
        timer: u32,
        /// Its deadline, nanoseconds on its clock.
        deadline_ns: u64,
    },
    /// Shared timer `timer` expired `ticks` times; its callback runs next.
    HeapFire {
        /// The shared timer's slab key.
        timer: u32,
        /// Expirations, missed ticks folded in.
        ticks: u64,
    },
    /// Shared timer `timer` was disarmed or dropped; its heap entry is now
    /// dead and will be skipped (lazy deletion).
    HeapCancel {
        /// The shared timer's slab key.
        timer: u32,
    },
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TraceEvent::Create { fd, clock } => {
                write!(f, "timerfd_create({}, TFD_NONBLOCK|TFD_CLOEXEC) = {fd}", clock.c_name())
            }
            TraceEvent::Arm { fd, expiration } => {
                write!(f, "timerfd_settime({fd}, {expiration:?})")
            }
            TraceEvent::EpollAdd { fd, token, interest } => write!(
                f,
                "epoll_ctl(EPOLL_CTL_ADD, {fd}, {interest}, token {}/{})",
                token.key(),
                token.generation()
            ),
            TraceEvent::EpollMod { fd, token, interest } => write!(
                f,
                "epoll_ctl(EPOLL_CTL_MOD, {fd}, {interest}, token {}/{})",
                token.key(),
                token.generation()
            ),
            TraceEvent::Fire { fd, ticks } => {
                let s = if ticks == 1 { "" } else { "s" };
                write!(f, "read({fd}) = {ticks} expiration{s} -> callback")
            }
            TraceEvent::ArmDeadline { fd, deadline_ns } => {
                write!(f, "timerfd_settime({fd}, TFD_TIMER_ABSTIME, {deadline_ns} ns)")
            }
            TraceEvent::Disarm { fd } => write!(f, "timerfd_settime({fd}, disarm)"),
            TraceEvent::EpollDel { fd } => write!(f, "epoll_ctl(EPOLL_CTL_DEL, {fd})"),
            TraceEvent::Close { fd } => write!(f, "close({fd})"),
            TraceEvent::HeapPush { timer, deadline_ns } => {
                write!(f, "heap push: shared timer {timer} due at {deadline_ns} ns")
            }
            TraceEvent::HeapFire { timer, ticks } => {
                write!(f, "heap pop: shared timer {timer}, {ticks} expiration(s) -> callback")
            }
            TraceEvent::HeapCancel { timer } => {
                write!(f, "heap cancel: shared timer {timer} (entry left for lazy deletion)")
            }
        }
    }
}

impl TraceEvent {
    /// Write it to the timeline: an instant, or (`Fire`) nothing, as the
    /// `read` span that the dispatch wraps around the read ends with the
    /// same count.
    fn record(&self) {
        let (name, args) = match *self {
            TraceEvent::Create { fd, clock } => {
                ("timerfd_create", format!("\"fd\":{fd},\"clock\":\"{}\"", clock.c_name()))
            }
            TraceEvent::Arm { fd, expiration } => {
                ("timerfd_settime", format!("\"fd\":{fd},\"setting\":\"{expiration:?}\""))
            }
            TraceEvent::ArmDeadline { fd, deadline_ns } => {
                ("timerfd_settime", format!("\"fd\":{fd},\"deadline_ns\":{deadline_ns}"))
            }
            TraceEvent::Disarm { fd } => {
                ("timerfd_settime", format!("\"fd\":{fd},\"disarm\":true"))
            }
            TraceEvent::EpollAdd { fd, token, interest }
            | TraceEvent::EpollMod { fd, token, interest } => (
                if matches!(self, TraceEvent::EpollAdd { .. }) {
                    "epoll_ctl ADD"
                } else {
                    "epoll_ctl MOD"
                },
                format!(
                    "\"fd\":{fd},\"key\":{},\"generation\":{},\"interest\":\"{interest}\"",
                    token.key(),
                    token.generation()
                ),
            ),
            TraceEvent::EpollDel { fd } => ("epoll_ctl DEL", format!("\"fd\":{fd}")),
            TraceEvent::Close { fd } => ("close", format!("\"fd\":{fd}")),
            TraceEvent::Fire { .. } => return,
            TraceEvent::HeapPush { timer, deadline_ns } => {
                ("heap push", format!("\"timer\":{timer},\"deadline_ns\":{deadline_ns}"))
            }
            TraceEvent::HeapFire { timer, ticks } => {
                ("heap fire", format!("\"timer\":{timer},\"expirations\":{ticks}"))
            }
            TraceEvent::HeapCancel { timer } => ("heap cancel", format!("\"timer\":{timer}")),
        };
        chrome::record('i', name, &args);
    }
}

/// A closure that receives every trace event, set with
/// [`Reactor::set_observer`](crate::Reactor::set_observer).
pub type Observer = Box<dyn FnMut(&TraceEvent)>;

/// Where trace events go: nowhere (the default), stderr, or a closure.
///
/// An observer runs while the reactor's state is borrowed, in the middle of
/// an operation. If it panics there, unwinding would cut the operation in
/// half, so the panic is caught, the observer is dropped (the trace turns
/// off), and the panic resumes out of the next [`Reactor::turn`](crate::Reactor::turn),
/// after the operation has finished: nothing is swallowed or left halfway.
pub(crate) struct Tracer {
    observer: Option<Observer>,
    panic: Option<Box<dyn std::any::Any + Send>>,
    /// The process's timeline was on when this reactor started: read here,
    /// a plain field, rather than the global flag on every event (it only
    /// ever goes on once, at the first reactor; past its bound the writer
    /// drops what it is given).
    timeline: bool,
}

impl Tracer {
    /// From `REACTOR_TRACE`: `chrome:PATH` starts the timeline (the first
    /// reactor of the process opens the file); anything else but `0` or
    /// empty prints to stderr.
    pub(crate) fn from_env() -> Tracer {
        let value = std::env::var("REACTOR_TRACE").unwrap_or_default();
        if let Some(path) = value.strip_prefix("chrome:") {
            chrome::start(path);
            return Tracer { observer: None, panic: None, timeline: chrome::on() };
        }
        let on = !value.is_empty() && value != "0";
        let observer = on.then(|| Box::new(print) as Observer);
        Tracer { observer, panic: None, timeline: chrome::on() }
    }

    /// Whether this reactor writes the timeline (`REACTOR_TRACE=chrome:PATH`).
    #[inline(always)]
    pub(crate) fn timeline(&self) -> bool {
        self.timeline
    }

    /// The panic of an observer, if one panicked since the last call.
    pub(crate) fn take_panic(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.panic.take()
    }

    pub(crate) fn set(&mut self, observer: Option<Observer>) {
        self.observer = observer;
    }

    /// Report `event` (built only if someone listens). The check is inlined
    /// at every call site; the report itself is out of line.
    #[inline(always)]
    pub(crate) fn emit(&mut self, event: impl FnOnce() -> TraceEvent) {
        if self.observer.is_some() || self.timeline {
            self.report(event());
        }
    }

    #[cold]
    #[inline(never)]
    fn report(&mut self, event: TraceEvent) {
        if self.timeline {
            event.record();
        }
        let Some(observer) = &mut self.observer else { return };
        let call = std::panic::AssertUnwindSafe(|| observer(&event));
        if let Err(payload) = std::panic::catch_unwind(call) {
            self.observer = None;
            self.panic.get_or_insert(payload);
        }
    }
}

/// The `REACTOR_TRACE=1` observer. A failed write to stderr (closed, or a
/// full pipe) loses the line; it never panics as `eprintln!` would.
fn print(e: &TraceEvent) {
    use std::io::Write;
    let _lost_if_stderr_is_closed = writeln!(std::io::stderr().lock(), "reactor: {e}");
}
