//! The crate's one error type.
//!
//! Every fallible call returns [`Error`]. Input mistakes (a zero period, a
//! value the kernel cannot hold, nanoseconds out of range) are caught before
//! any syscall, so a rejected [`set`](crate::TimerFd::set) leaves the timer
//! exactly as it was.

use core::fmt;
use rustix::io::Errno;

/// Which half of an `itimerspec` a range error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `it_value`: the first expiry (relative duration or absolute time).
    Value,
    /// `it_interval`: the period of an interval timer.
    Interval,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Value => "it_value",
            Field::Interval => "it_interval",
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An interval timer was given a zero period. The kernel would read a zero
    /// `it_interval` as "one-shot", which is not what was asked for.
    ZeroPeriod,
    /// A duration or time the kernel cannot hold exactly: negative, or past
    /// [`MAX_TIME`](crate::MAX_TIME) (the kernel clamps those silently).
    OutOfRange {
        /// The `itimerspec` field that would have been out of range.
        field: Field,
    },
    /// [`ClockTime::new`](crate::ClockTime::new) was given `nanos >= 1_000_000_000`.
    InvalidNanos {
        /// The rejected value.
        nanos: u32,
    },
    /// `ECANCELED`: the realtime clock was set while a
    /// [`set_cancel_on_set`](crate::TimerFd::set_cancel_on_set) timer was armed.
    /// The timer stays armed; read again to clear the condition.
    Canceled,
    /// `TFD_TIMER_CANCEL_ON_SET` only means something for an absolute
    /// expiration on [`Clock::Realtime`](crate::Clock::Realtime) or
    /// [`Clock::RealtimeAlarm`](crate::Clock::RealtimeAlarm); the kernel
    /// would silently ignore it anywhere else.
    CancelOnSetNotApplicable,
    /// The kernel lacks the feature: `TFD_IOC_SET_TICKS` needs
    /// `CONFIG_CHECKPOINT_RESTORE` (`ENOTTY`).
    Unsupported,
    /// Any other error the kernel returned.
    Os(Errno),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroPeriod => f.write_str("interval timer with a zero period"),
            Error::OutOfRange { field } => write!(
                f,
                "{field} out of range: must be between 0 and {:?} (the kernel's ktime_t limit)",
                crate::MAX_TIME
            ),
            Error::InvalidNanos { nanos } => {
                write!(f, "nanoseconds must be below 1_000_000_000, got {nanos}")
            }
            Error::Canceled => f.write_str("timer canceled: the realtime clock was set (ECANCELED)"),
            Error::CancelOnSetNotApplicable => f.write_str(
                "TFD_TIMER_CANCEL_ON_SET needs an absolute expiration on a realtime clock",
            ),
            Error::Unsupported => f.write_str(
                "operation not supported by this kernel (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE)",
            ),
            Error::Os(errno) => write!(f, "timerfd syscall failed: {errno}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Errno> for Error {
    fn from(errno: Errno) -> Self {
        if errno == Errno::CANCELED { Error::Canceled } else { Error::Os(errno) }
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Os(errno) => errno.into(),
            Error::Canceled => Errno::CANCELED.into(),
            Error::Unsupported => std::io::Error::new(std::io::ErrorKind::Unsupported, err),
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other),
        }
    }
}
