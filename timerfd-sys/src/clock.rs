//! The five clocks a timerfd can run on, and a point on one of them.

use core::fmt;
use core::time::Duration;

use rustix::time::{ClockId, TimerfdClockId, clock_gettime};

use crate::Error;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// The clock a [`TimerFd`](crate::TimerFd) measures time on
/// (the `clockid` argument of [timerfd_create(2)]).
///
/// [timerfd_create(2)]: https://man7.org/linux/man-pages/man2/timerfd_create.2.html
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Time since some unspecified start, never set, stops during suspend.
    /// The right clock for timeouts and heartbeats.
    #[doc(alias = "CLOCK_MONOTONIC")]
    Monotonic,
    /// Like `Monotonic`, but keeps counting while the system is suspended.
    #[doc(alias = "CLOCK_BOOTTIME")]
    Boottime,
    /// Wall-clock time since the Unix epoch. It can jump when an administrator
    /// or NTP sets it; see [`TimerFd::set_cancel_on_set`](crate::TimerFd::set_cancel_on_set).
    #[doc(alias = "CLOCK_REALTIME")]
    Realtime,
    /// Like `Realtime`, and wakes a suspended system. Needs `CAP_WAKE_ALARM`.
    #[doc(alias = "CLOCK_REALTIME_ALARM")]
    RealtimeAlarm,
    /// Like `Boottime`, and wakes a suspended system. Needs `CAP_WAKE_ALARM`.
    #[doc(alias = "CLOCK_BOOTTIME_ALARM")]
    BoottimeAlarm,
}

impl Clock {
    /// All five clocks, in declaration order.
    pub const ALL: [Clock; 5] = [
        Clock::Monotonic,
        Clock::Boottime,
        Clock::Realtime,
        Clock::RealtimeAlarm,
        Clock::BoottimeAlarm,
    ];

    /// The current time on this clock ([clock_gettime(2)]).
    ///
    /// The alarm clocks read their base clock (`CLOCK_REALTIME` or
    /// `CLOCK_BOOTTIME`): that is the time the kernel compares their absolute
    /// deadlines with, and, unlike `clock_gettime(CLOCK_*_ALARM)`, it works
    /// on machines without an RTC. So this cannot fail, and returns a plain
    /// `ClockTime`.
    ///
    /// ```
    /// use timerfd_sys::Clock;
    /// let a = Clock::Monotonic.now();
    /// let b = Clock::Monotonic.now();
    /// assert!(b >= a);
    /// ```
    ///
    /// [clock_gettime(2)]: https://man7.org/linux/man-pages/man2/clock_gettime.2.html
    #[doc(alias = "clock_gettime")]
    pub fn now(self) -> ClockTime {
        let ts = clock_gettime(self.base_clock_id());
        // The kernel keeps tv_nsec in [0, 1e9); rem_euclid just makes the
        // conversion total instead of trusting that.
        ClockTime { secs: ts.tv_sec, nanos: ts.tv_nsec.rem_euclid(NANOS_PER_SEC as i64) as u32 }
    }

    /// The C name of this clock, as `/proc/PID/fdinfo` and the man pages spell it.
    pub const fn c_name(self) -> &'static str {
        match self {
            Clock::Monotonic => "CLOCK_MONOTONIC",
            Clock::Boottime => "CLOCK_BOOTTIME",
            Clock::Realtime => "CLOCK_REALTIME",
            Clock::RealtimeAlarm => "CLOCK_REALTIME_ALARM",
            Clock::BoottimeAlarm => "CLOCK_BOOTTIME_ALARM",
        }
    }

    /// Whether `TFD_TIMER_CANCEL_ON_SET` means anything on this clock.
    pub const fn is_realtime(self) -> bool {
        matches!(self, Clock::Realtime | Clock::RealtimeAlarm)
    }

    pub(crate) const fn timerfd_id(self) -> TimerfdClockId {
        match self {
            Clock::Monotonic => TimerfdClockId::Monotonic,
            Clock::Boottime => TimerfdClockId::Boottime,
            Clock::Realtime => TimerfdClockId::Realtime,
            Clock::RealtimeAlarm => TimerfdClockId::RealtimeAlarm,
            Clock::BoottimeAlarm => TimerfdClockId::BoottimeAlarm,
        }
    }

    const fn base_clock_id(self) -> ClockId {
        match self {
            Clock::Monotonic => ClockId::Monotonic,
            Clock::Boottime | Clock::BoottimeAlarm => ClockId::Boottime,
            Clock::Realtime | Clock::RealtimeAlarm => ClockId::Realtime,
        }
    }
}

/// A point on a [`Clock`]: seconds and nanoseconds since that clock's epoch.
///
/// It is what `struct timespec` means when used with `TFD_TIMER_ABSTIME`.
/// The seconds are signed like `tv_sec`, so a `ClockTime` can name instants
/// the kernel will not accept as deadlines (before the epoch); the mapping
/// to `itimerspec` rejects those with [`Error::OutOfRange`].
///
/// Fields are ordered seconds first, so the derived `Ord` is time order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime {
    secs: i64,
    nanos: u32,
}

impl ClockTime {
    /// The clock's epoch, `(0, 0)`.
    pub const ZERO: ClockTime = ClockTime { secs: 0, nanos: 0 };
    /// The latest representable point, where [`saturating_add`](Self::saturating_add) stops.
    pub const MAX: ClockTime = ClockTime { secs: i64::MAX, nanos: NANOS_PER_SEC - 1 };

    /// `secs` seconds and `nanos` nanoseconds after the epoch.
    ///
    /// ```
    /// use timerfd_sys::{ClockTime, Error};
    /// assert!(ClockTime::new(5, 999_999_999).is_ok());
    /// assert_eq!(ClockTime::new(5, 1_000_000_000), Err(Error::InvalidNanos { nanos: 1_000_000_000 }));
    /// ```
    pub const fn new(secs: i64, nanos: u32) -> Result<ClockTime, Error> {
        if nanos >= NANOS_PER_SEC {
            return Err(Error::InvalidNanos { nanos });
        }
        Ok(ClockTime { secs, nanos })
    }

    /// `nanos` nanoseconds after the epoch. Every `u64` fits (about 584
    /// years), so this cannot fail.
    ///
    /// ```
    /// use timerfd_sys::ClockTime;
    /// let t = ClockTime::from_nanos(5_000_000_007);
    /// assert_eq!((t.secs(), t.nanos()), (5, 7));
    /// assert_eq!(t.as_nanos(), Some(5_000_000_007));
    /// ```
    pub const fn from_nanos(nanos: u64) -> ClockTime {
        let per_sec = NANOS_PER_SEC as u64;
        ClockTime { secs: (nanos / per_sec) as i64, nanos: (nanos % per_sec) as u32 }
    }

    /// Nanoseconds since the epoch, or `None` before the epoch or past
    /// `u64::MAX` nanoseconds.
    ///
    /// ```
    /// use timerfd_sys::ClockTime;
    /// assert_eq!(ClockTime::new(-1, 0)?.as_nanos(), None);
    /// assert_eq!(ClockTime::MAX.as_nanos(), None);
    /// # Ok::<(), timerfd_sys::Error>(())
    /// ```
    pub const fn as_nanos(self) -> Option<u64> {
        if self.secs < 0 {
            return None;
        }
        match (self.secs as u64).checked_mul(NANOS_PER_SEC as u64) {
            Some(s) => s.checked_add(self.nanos as u64),
            None => None,
        }
    }

    /// Whole seconds since the epoch (`tv_sec`).
    pub const fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds past [`secs`](Self::secs), always below 1e9 (`tv_nsec`).
    pub const fn nanos(self) -> u32 {
        self.nanos
    }

    /// `self + d`, or `None` if it would pass [`ClockTime::MAX`].
    pub fn checked_add(self, d: Duration) -> Option<ClockTime> {
        let add_secs = i64::try_from(d.as_secs()).ok()?;
        let mut secs = self.secs.checked_add(add_secs)?;
        let mut nanos = self.nanos + d.subsec_nanos(); // both < 1e9: no u32 overflow
        if nanos >= NANOS_PER_SEC {
            nanos -= NANOS_PER_SEC;
            secs = secs.checked_add(1)?;
        }
        Some(ClockTime { secs, nanos })
    }

    /// `self + d`, stopping at [`ClockTime::MAX`].
    pub fn saturating_add(self, d: Duration) -> ClockTime {
        self.checked_add(d).unwrap_or(ClockTime::MAX)
    }

    /// How long after `earlier` this is, or `None` if `earlier` is later.
    ///
    /// ```
    /// use std::time::Duration;
    /// use timerfd_sys::ClockTime;
    /// let a = ClockTime::new(1, 900_000_000)?;
    /// let b = a.checked_add(Duration::from_millis(200)).unwrap();
    /// assert_eq!(b.duration_since(a), Some(Duration::from_millis(200)));
    /// assert_eq!(a.duration_since(b), None);
    /// # Ok::<(), timerfd_sys::Error>(())
    /// ```
    pub fn duration_since(self, earlier: ClockTime) -> Option<Duration> {
        if self < earlier {
            return None;
        }
        // i128 holds the difference of any two i64s without overflow.
        let mut secs = i128::from(self.secs) - i128::from(earlier.secs);
        let nanos = if self.nanos >= earlier.nanos {
            self.nanos - earlier.nanos
        } else {
            secs -= 1;
            self.nanos + NANOS_PER_SEC - earlier.nanos
        };
        // secs <= u64::MAX because both inputs are i64.
        Some(Duration::new(u64::try_from(secs).ok()?, nanos))
    }
}

impl fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClockTime({}.{:09})", self.secs, self.nanos)
    }
}
