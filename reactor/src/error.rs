//! The reactor's error type, and the one rule for deciding what a failure
//! means.
//!
//! # How a failed system call is decided
//!
//! Every failed system call in this crate is decided by its kind, the same
//! way everywhere ([`Error::is_transient`] answers the question in code):
//!
//! | kind | errno | what happens |
//! |---|---|---|
//! | interrupted | `EINTR` | retried at once, in a loop, with no sleep and no cap |
//! | transient | `ENOMEM`, `ENOSPC`, `EMFILE`, `ENFILE`, `ENOBUFS`, `EAGAIN` (where it means "try later") | an operation you called returns it and changes nothing; a step the loop takes on its own behalf is retried at the start of every turn, and [`turn`](crate::Reactor::turn) returns [`Error::Retrying`] until it succeeds |
//! | fatal | anything else (`EBADF`, `EINVAL` on the reactor's own fds, ...) | returned, by the operation or by `turn`; the loop cannot go on as it was |
//!
//! "On its own behalf" means the steps no caller asked for at that moment:
//! reading a ready timerfd, signalfd or eventfd, re-arming a shared clock's
//! timerfd after a pass, and the `epoll_ctl(EPOLL_CTL_DEL)` that a handle's
//! `Drop` makes (a `Drop` cannot return an error). Until such a step
//! succeeds the loop keeps every promise it can: a shared clock whose
//! timerfd cannot be armed is served from the clock reading, with `turn`
//! never blocking past its earliest deadline; an fd whose `EPOLL_CTL_DEL`
//! failed stays open (so its number cannot be reused) until the retry
//! succeeds; and the reactor's fd stays readable, so a host loop comes back
//! for the retry. A caller that gets a transient error back from `turn` in
//! a loop should back off before the next turn (the demo server sleeps
//! 1 ms, doubling to 100 ms) rather than spin on it.

use core::fmt;

use rustix::io::Errno;

/// Everything a reactor call can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The timer's [`Expiration`](timerfd_sys::Expiration) was rejected, or
    /// a timerfd call failed.
    Timer(timerfd_sys::Error),
    /// A syscall failed (`epoll_ctl`, `eventfd`, `signalfd`, ...).
    Os(Errno),
    /// The handle's source no longer exists: the reactor was dropped, or the
    /// source removed itself with [`Context::remove`](crate::Context::remove).
    Gone,
    /// The call needs a timer but the current source is not one.
    NotATimer,
    /// `turn` was called from inside a callback, or a trace observer called
    /// back into the reactor.
    Reentrant,
    /// Shared timers cannot run on this clock: a realtime clock can be set,
    /// and a heap of deadlines cannot follow it. Use a dedicated timer.
    SharedClock(timerfd_sys::Clock),
    /// [`add_io`](crate::Reactor::add_io) was given a socket, pipe or
    /// character device in blocking mode. A callback's read or write on it
    /// would block the whole loop (and every signal source with it), so it
    /// is refused; set `O_NONBLOCK` first (`set_nonblocking(true)` on std's
    /// sockets).
    Blocking,
    /// A step the loop takes on its own behalf failed during this turn (see
    /// [How a failed system call is decided](self#how-a-failed-system-call-is-decided)):
    /// `call` names the system call. The turn still waited and dispatched
    /// everything else; the step is retried at the start of every turn, and
    /// `turn` returns this error each time the retry fails, until it heals.
    Retrying {
        /// The system call that failed: `timerfd_settime`, `read`,
        /// `epoll_ctl(EPOLL_CTL_DEL)`, `eventfd write`.
        call: &'static str,
        /// What it failed with.
        errno: Errno,
    },
}

impl Error {
    /// The errno underneath, if a system call failed.
    pub fn errno(&self) -> Option<Errno> {
        match *self {
            Error::Os(e) | Error::Retrying { errno: e, .. } => Some(e),
            Error::Timer(timerfd_sys::Error::Os(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: `ENOMEM`, `ENOSPC`, `EMFILE`,
    /// `ENFILE`, `ENOBUFS`, `EAGAIN` or `EINTR` underneath. Everything else
    /// (a bad input, a bad fd, a gone source) fails the same way again.
    pub fn is_transient(&self) -> bool {
        self.errno().is_some_and(is_transient)
    }
}

/// The transient errnos of the table in the [module docs](self).
pub(crate) fn is_transient(e: Errno) -> bool {
    matches!(
        e,
        Errno::NOMEM | Errno::NOSPC | Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::AGAIN
    ) || e == Errno::INTR
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timer(e) => write!(f, "timer: {e}"),
            Error::Os(e) => write!(f, "syscall failed: {e}"),
            Error::Gone => f.write_str("the source or its reactor is gone"),
            Error::NotATimer => f.write_str("the current source is not a timer"),
            Error::Reentrant => f.write_str("reactor called re-entrantly"),
            Error::SharedClock(c) => write!(
                f,
                "shared timers cannot run on {}, which can be set; use a dedicated timer",
                c.c_name()
            ),
            Error::Blocking => f.write_str(
                "the fd is in blocking mode, and a read on it would block the whole loop; set O_NONBLOCK",
            ),
            Error::Retrying { call, errno } => write!(f, "{call} failed underneath the loop ({errno})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Timer(e) => Some(e),
            _ => None,
        }
    }
}

impl From<timerfd_sys::Error> for Error {
    fn from(e: timerfd_sys::Error) -> Self {
        Error::Timer(e)
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        Error::Os(e)
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Os(errno) | Error::Retrying { errno, .. } => errno.into(),
            Error::Timer(t) => t.into(),
            other => std::io::Error::other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_means_the_table_and_nothing_else() {
        for e in [Errno::NOMEM, Errno::NOSPC, Errno::MFILE, Errno::NFILE, Errno::NOBUFS] {
            assert!(Error::Os(e).is_transient(), "{e}");
            assert!(Error::Retrying { call: "read", errno: e }.is_transient());
            assert!(Error::Timer(timerfd_sys::Error::Os(e)).is_transient());
        }
        for e in [Errno::BADF, Errno::INVAL, Errno::PERM, Errno::EXIST] {
            assert!(!Error::Os(e).is_transient(), "{e}");
        }
        assert!(!Error::Gone.is_transient());
        assert!(!Error::Timer(timerfd_sys::Error::ZeroPeriod).is_transient());
    }
}
