//! The reactor's error type.

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
            Error::Os(errno) => errno.into(),
            Error::Timer(t) => t.into(),
            other => std::io::Error::other(other),
        }
    }
}
