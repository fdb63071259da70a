//! What a timer should do, and its exact translation to `itimerspec`.
//!
//! This file is pure: nothing here makes a syscall, so every rule of the
//! mapping is testable without a kernel. [`Expiration::validate`] checks an
//! expiration once and keeps the result as a [`Setting`];
//! [`TimerFd::apply`](crate::TimerFd::apply) hands that to
//! `timerfd_settime` unchanged, as many times as it is applied.
//!
//! Two kernel facts shape it:
//!
//! * A zero `it_value` means "disarm". A caller who asks for "now" must not
//!   get a timer that never fires, so a zero first expiry becomes
//!   [`MIN_VALUE`] (1 ns): the earliest possible expiry.
//! * The kernel keeps timer values as signed 64-bit nanoseconds (`ktime_t`)
//!   and silently clamps any `timespec` with `tv_sec >= KTIME_SEC_MAX` to
//!   `KTIME_MAX`. A value past [`MAX_TIME`] would therefore not round-trip,
//!   so it is an [`Error::OutOfRange`] here instead of a quiet change.

use core::time::Duration;

use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec};

use crate::error::Field;
use crate::{ClockTime, Error};

/// The largest duration, and the latest absolute time, the kernel stores
/// exactly: 9,223,372,035.999999999 s (just under 292 years).
///
/// It is `(KTIME_SEC_MAX - 1)` seconds plus 999,999,999 ns, where
/// `KTIME_SEC_MAX = i64::MAX / 1e9`; from `KTIME_SEC_MAX` seconds on, the
/// kernel clamps.
///
/// One more kernel rule applies to relative values: the kernel adds them to
/// the clock's current reading and saturates the sum at `KTIME_MAX`. A
/// relative expiry that far out (within the clock's current reading of
/// `MAX_TIME`) therefore fires at `KTIME_MAX` instead, about 292 years after
/// the clock's epoch. Periods are stored as given.
pub const MAX_TIME: Duration = Duration::new(9_223_372_035, 999_999_999);

/// What a zero first expiry is raised to, so that it fires instead of disarming.
pub const MIN_VALUE: Duration = Duration::from_nanos(1);

/// When a timer fires: once or periodically, relative to now or at an
/// absolute [`ClockTime`] on the timer's clock.
///
/// See the [crate docs](crate#from-expiration-to-itimerspec) for the table of
/// how each one maps to `itimerspec` and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiration {
    /// Fire once, this long from now. `Duration::ZERO` fires as soon as possible.
    Once(Duration),
    /// Fire after `first`, then every `period`. A zero `first` fires as soon
    /// as possible; a zero `period` is [`Error::ZeroPeriod`].
    Every {
        /// Time until the first expiry.
        first: Duration,
        /// Time between expiries after that.
        period: Duration,
    },
    /// Fire once when the clock reads this time; at once if it is past.
    #[doc(alias = "TFD_TIMER_ABSTIME")]
    OnceAt(ClockTime),
    /// Fire when the clock reads `first`, then every `period`. If `first` is
    /// past, the ticks missed since then are counted on the first read.
    #[doc(alias = "TFD_TIMER_ABSTIME")]
    EveryAt {
        /// Clock reading of the first expiry.
        first: ClockTime,
        /// Time between expiries after that.
        period: Duration,
    },
}

impl Expiration {
    /// A relative interval whose first expiry is one `period` from now, like
    /// a ticker.
    ///
    /// ```
    /// use std::time::Duration;
    /// use timerfd_sys::Expiration;
    /// let p = Duration::from_millis(250);
    /// assert_eq!(Expiration::every(p), Expiration::Every { first: p, period: p });
    /// ```
    pub const fn every(period: Duration) -> Expiration {
        Expiration::Every { first: period, period }
    }

    /// Whether this is an absolute (`TFD_TIMER_ABSTIME`) expiration.
    pub const fn is_absolute(&self) -> bool {
        matches!(self, Expiration::OnceAt(_) | Expiration::EveryAt { .. })
    }

    /// The exact `timerfd_settime` arguments for this expiration. Pure: no syscall.
    ///
    /// Rules, in the order they are checked:
    /// 1. a zero `period` is [`Error::ZeroPeriod`];
    /// 2. a value or period past [`MAX_TIME`], or an absolute time before the
    ///    epoch, is [`Error::OutOfRange`];
    /// 3. a zero first expiry (relative `ZERO`, absolute `(0, 0)`) becomes
    ///    [`MIN_VALUE`], never a disarming zero.
    ///
    /// The resulting `tv_nsec` is always in `[0, 1e9)` and `tv_sec` in
    /// `[0, MAX_TIME.as_secs()]`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use timerfd_sys::{Expiration, raw::TimerfdTimerFlags};
    /// let (flags, spec) = Expiration::Once(Duration::ZERO).to_itimerspec()?;
    /// assert_eq!(flags, TimerfdTimerFlags::empty());
    /// assert_eq!((spec.it_value.tv_sec, spec.it_value.tv_nsec), (0, 1)); // not 0: that would disarm
    /// # Ok::<(), timerfd_sys::Error>(())
    /// ```
    #[doc(alias = "itimerspec")]
    #[inline]
    pub fn to_itimerspec(&self) -> Result<(TimerfdTimerFlags, Itimerspec), Error> {
        let s = self.validate()?;
        Ok((s.flags(), s.itimerspec()))
    }

    /// Check this expiration once, by the rules of
    /// [`to_itimerspec`](Self::to_itimerspec), and keep the result: a
    /// [`Setting`] applies with no further check
    /// ([`TimerFd::apply`](crate::TimerFd::apply)), and tells a user-space
    /// timer heap the same first expiry and period the kernel would get.
    ///
    /// ```
    /// use std::time::Duration;
    /// use timerfd_sys::Expiration;
    /// let s = Expiration::every(Duration::from_millis(5)).validate()?;
    /// assert_eq!((s.first(), s.period()), (Duration::from_millis(5), Some(Duration::from_millis(5))));
    /// assert!(Expiration::every(Duration::ZERO).validate().is_err());
    /// # Ok::<(), timerfd_sys::Error>(())
    /// ```
    #[inline]
    pub fn validate(self) -> Result<Setting, Error> {
        let (flags, value, period) = match self {
            Expiration::Once(d) => (TimerfdTimerFlags::empty(), relative(d)?, None),
            Expiration::Every { first, period } => {
                let period = nonzero(period)?;
                (TimerfdTimerFlags::empty(), relative(first)?, Some(period))
            }
            Expiration::OnceAt(t) => (TimerfdTimerFlags::ABSTIME, absolute(t)?, None),
            Expiration::EveryAt { first, period } => {
                let period = nonzero(period)?;
                (TimerfdTimerFlags::ABSTIME, absolute(first)?, Some(period))
            }
        };
        let interval = match period {
            Some(p) => relative(p).map_err(|_| Error::OutOfRange { field: Field::Interval })?,
            None => ZERO_TS,
        };
        let value = at_least_min(value);
        Ok(Setting {
            expiration: self,
            absolute: flags.contains(TimerfdTimerFlags::ABSTIME),
            value: (value.tv_sec, value.tv_nsec as u32),
            interval: (interval.tv_sec, interval.tv_nsec as u32),
        })
    }
}

/// An [`Expiration`] checked once ([`Expiration::validate`]): the exact
/// `timerfd_settime` arguments, kept so that arming again checks nothing.
///
/// Both halves are in the kernel's range (`tv_sec` in `[0, MAX_TIME]`,
/// `tv_nsec` below 1e9), and the first expiry is never the disarming zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting {
    expiration: Expiration,
    absolute: bool,
    /// `it_value` as (seconds, nanoseconds).
    value: (i64, u32),
    /// `it_interval`; (0, 0) for a one-shot.
    interval: (i64, u32),
}

impl Setting {
    /// The expiration this was made from.
    pub const fn expiration(&self) -> Expiration {
        self.expiration
    }

    /// Whether it is absolute (`TFD_TIMER_ABSTIME`).
    pub const fn is_absolute(&self) -> bool {
        self.absolute
    }

    /// `it_value` as a duration: the time until the first expiry, or for an
    /// absolute setting the clock reading of it. At least [`MIN_VALUE`].
    pub const fn first(&self) -> Duration {
        Duration::new(self.value.0 as u64, self.value.1)
    }

    /// The period, or `None` for a one-shot.
    pub const fn period(&self) -> Option<Duration> {
        match self.interval {
            (0, 0) => None,
            (s, n) => Some(Duration::new(s as u64, n)),
        }
    }

    /// The flags `timerfd_settime` gets.
    pub fn flags(&self) -> TimerfdTimerFlags {
        if self.absolute { TimerfdTimerFlags::ABSTIME } else { TimerfdTimerFlags::empty() }
    }

    /// The `itimerspec` `timerfd_settime` gets.
    pub fn itimerspec(&self) -> Itimerspec {
        let ts = |(tv_sec, nanos): (i64, u32)| Timespec { tv_sec, tv_nsec: nanos.into() };
        Itimerspec { it_value: ts(self.value), it_interval: ts(self.interval) }
    }
}

/// The `itimerspec` that disarms a timer: both fields zero.
pub(crate) const DISARM: Itimerspec = Itimerspec { it_interval: ZERO_TS, it_value: ZERO_TS };
const ZERO_TS: Timespec = Timespec { tv_sec: 0, tv_nsec: 0 };

#[inline]
fn nonzero(period: Duration) -> Result<Duration, Error> {
    if period.is_zero() { Err(Error::ZeroPeriod) } else { Ok(period) }
}

/// A duration as a `timespec`. `MAX_TIME` has 999,999,999 ns, so comparing
/// whole seconds is the whole range check.
#[inline]
fn relative(d: Duration) -> Result<Timespec, Error> {
    if d.as_secs() > MAX_TIME.as_secs() {
        return Err(Error::OutOfRange { field: Field::Value });
    }
    // Lossless: secs <= MAX_TIME.as_secs() < i64::MAX, nanos < 1e9.
    Ok(Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) })
}

/// A point on the clock as a `timespec`: not before the epoch, not past `MAX_TIME`.
#[inline]
fn absolute(t: ClockTime) -> Result<Timespec, Error> {
    if t.secs() < 0 || t.secs() as u64 > MAX_TIME.as_secs() {
        return Err(Error::OutOfRange { field: Field::Value });
    }
    Ok(Timespec { tv_sec: t.secs(), tv_nsec: i64::from(t.nanos()) })
}

/// Zero would disarm: raise it to [`MIN_VALUE`].
#[inline]
fn at_least_min(ts: Timespec) -> Timespec {
    if ts.tv_sec == 0 && ts.tv_nsec == 0 {
        Timespec { tv_sec: 0, tv_nsec: MIN_VALUE.subsec_nanos() as i64 }
    } else {
        ts
    }
}

/// What `timerfd_gettime` says about an armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerState {
    /// Time until the next expiry, always relative, even for an absolute timer.
    pub remaining: Duration,
    /// The interval, or `None` for a one-shot.
    pub period: Option<Duration>,
}

impl TimerState {
    /// Decode a `timerfd_gettime` result. Pure: no syscall.
    ///
    /// `None` when `it_value` is zero, which is how the kernel reports a
    /// disarmed timer (never armed, disarmed, or a one-shot that has fired).
    /// A field the kernel could never produce (negative, or `tv_nsec`
    /// out of range) also counts as zero.
    pub fn from_itimerspec(spec: &Itimerspec) -> Option<TimerState> {
        let remaining = duration(&spec.it_value).filter(|d| !d.is_zero())?;
        let period = duration(&spec.it_interval).filter(|d| !d.is_zero());
        Some(TimerState { remaining, period })
    }
}

fn duration(ts: &Timespec) -> Option<Duration> {
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}
