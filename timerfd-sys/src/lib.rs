//! A thin, exact and safe binding to Linux's timerfd
//! ([timerfd_create(2)]).
//!
//! A timerfd is a kernel timer (an hrtimer) that you talk to through a file
//! descriptor: arm it with `timerfd_settime`, and it becomes readable when it
//! expires, so `epoll` can wait on it next to sockets. This crate gives that
//! object a Rust shape and nothing more:
//!
//! | item | what it is |
//! |---|---|
//! | [`Clock`], [`ClockTime`] | the five timer clocks, and a point on one |
//! | [`Expiration`] | once or every, relative or absolute; [`Expiration::to_itimerspec`] is the pure mapping |
//! | [`Setting`] | an expiration validated once ([`Expiration::validate`]), applied with [`TimerFd::apply`] |
//! | [`TimerFd`] | the owned fd: `set`, `apply`, `set_deadline`, `disarm`, `get`, `read`, `set_ticks` |
//! | [`TimerState`] | what `get` reports |
//! | [`Error`] | every failure, typed |
//! | [`raw`] | the rustix types the mapping produces |
//!
//! Every `TimerFd` method is one syscall and no allocation.
//!
//! ```
//! use std::time::Duration;
//! use timerfd_sys::{Clock, Expiration, TimerFd};
//!
//! let t = TimerFd::new(Clock::Monotonic)?; // nonblocking, close-on-exec
//! t.set(Expiration::every(Duration::from_millis(2)))?;
//! assert_eq!(t.read()?, 0); // nothing expired yet: EAGAIN reads as 0
//! let state = t.get()?.expect("armed");
//! assert_eq!(state.period, Some(Duration::from_millis(2)));
//! t.disarm()?;
//! assert_eq!(t.get()?, None);
//! # Ok::<(), timerfd_sys::Error>(())
//! ```
//!
//! # From `Expiration` to `itimerspec`
//!
//! [`TimerFd::set`] passes exactly this to `timerfd_settime(fd, flags, &spec, NULL)`:
//!
//! | call | flags | `it_value` | `it_interval` |
//! |---|---|---|---|
//! | `set(Once(d))` | `0` | `max(d, 1 ns)` | `0` |
//! | `set(Every { first, period })` | `0` | `max(first, 1 ns)` | `period` (zero: [`Error::ZeroPeriod`]) |
//! | `set(Expiration::every(p))` | `0` | `p` | `p` |
//! | `set(OnceAt(t))` | `TFD_TIMER_ABSTIME` | `t`, with `(0, 0)` raised to 1 ns | `0` |
//! | `set(EveryAt { first, period })` | `TFD_TIMER_ABSTIME` | `first`, `(0, 0)` raised to 1 ns | `period` (zero: [`Error::ZeroPeriod`]) |
//! | `set_cancel_on_set(OnceAt(..) / EveryAt { .. })` | `TFD_TIMER_ABSTIME \| TFD_TIMER_CANCEL_ON_SET` | as above | as above |
//! | `disarm()` | `0` | `0` | `0` |
//!
//! Every `tv_nsec` is in `[0, 1e9)`. Durations, periods and absolute times
//! must lie in `[0, MAX_TIME]` ([`MAX_TIME`] is just under 292 years): the
//! kernel stores them as signed 64-bit nanoseconds and would silently clamp
//! larger ones, so they are [`Error::OutOfRange`] here. Negative absolute
//! times, which the kernel refuses with `EINVAL`, are the same error.
//!
//! # The zero-disarm pitfall
//!
//! To `timerfd_settime`, an `it_value` of zero does not mean "now": it means
//! "disarm". A binding that maps `Duration::ZERO` straight through hands its
//! user a timer that silently never fires, a bug that has shipped in more than
//! one timer crate. Here the first expiry is raised to [`MIN_VALUE`] (1 ns),
//! which fires on the kernel's next hrtimer check. Absolute `(0, 0)` gets the
//! same treatment; any other past absolute time already fires at once.
//!
//! # Read semantics
//!
//! [`TimerFd::read`] is `read(fd, &u64, 8)`:
//!
//! * It returns the number of expirations since the last read or `set`,
//!   and resets that count. An interval timer that was not read for ten
//!   periods returns 10 at once: missed ticks are folded, never queued.
//! * On a nonblocking fd with nothing expired the kernel says `EAGAIN`;
//!   this crate returns `Ok(0)`, so a spurious wake-up is harmless.
//! * On a blocking fd ([`TimerFd::new_blocking`]) it waits.
//! * After the realtime clock is set under a timer armed with
//!   [`TimerFd::set_cancel_on_set`], the kernel answers `ECANCELED`:
//!   [`Error::Canceled`].
//! * [`TimerFd::set_ticks`] (`TFD_IOC_SET_TICKS`) overwrites the count.
//!
//! # Signatures refined from the plain C shape
//!
//! * [`Clock::now`] on an alarm clock reads the alarm's base clock, because
//!   `clock_gettime(CLOCK_*_ALARM)` fails with `EINVAL` on machines without
//!   an RTC even though timerfds on those clocks work.
//! * Cancel-on-set is its own method, [`TimerFd::set_cancel_on_set`], because
//!   the flag only has an effect on an absolute realtime timer; elsewhere it
//!   is a typed error instead of a flag the kernel would silently ignore.
//!
//! [timerfd_create(2)]: https://man7.org/linux/man-pages/man2/timerfd_create.2.html

#![cfg(target_os = "linux")]

mod clock;
mod error;
mod expiration;
mod timerfd;

pub use clock::{Clock, ClockTime};
pub use error::{Error, Field};
pub use expiration::{Expiration, MAX_TIME, MIN_VALUE, Setting, TimerState};
pub use timerfd::TimerFd;

/// The raw `timerfd_settime` argument types that [`Expiration::to_itimerspec`]
/// produces, re-exported from rustix so callers need not depend on it.
pub mod raw {
    pub use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec};

    /// The `TFD_IOC_SET_TICKS` ioctl request number, `_IOW('T', 0, __u64)`,
    /// used by [`TimerFd::set_ticks`](crate::TimerFd::set_ticks). Neither
    /// rustix nor libc defines it; rustix's `opcode::write` computes it.
    pub const TFD_IOC_SET_TICKS: u32 = rustix::ioctl::opcode::write::<u64>(b'T', 0) as u32;
}

/// The crate README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
