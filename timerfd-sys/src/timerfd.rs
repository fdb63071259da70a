//! `TimerFd`: one kernel timer, owned through its file descriptor.
//!
//! Every method is exactly one syscall on the success path and allocates
//! nothing, so it can sit in the hottest loop and be benchmarked against the
//! raw call. The only retry is `read` on `EINTR`, which only a blocking fd
//! interrupted by a signal can see.

use core::fmt;
use core::num::NonZeroU64;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::ioctl::{Opcode, Setter, ioctl};
use rustix::time::{Itimerspec, TimerfdFlags, TimerfdTimerFlags, timerfd_create, timerfd_gettime};

use crate::expiration::DISARM;
use crate::raw::TFD_IOC_SET_TICKS;
use crate::{Clock, Error, Expiration, MAX_TIME, Setting, TimerState};

/// A Linux timerfd: a kernel timer whose expirations are read from a file
/// descriptor, so it can be waited on with `epoll` like a socket.
///
/// It owns its fd and closes it on drop. See the [crate docs](crate) for the
/// mapping from [`Expiration`] to the kernel's arguments and for what `read`
/// returns.
///
/// ```
/// use std::time::Duration;
/// use timerfd_sys::{Clock, Expiration, TimerFd};
///
/// let t = TimerFd::new_blocking(Clock::Monotonic)?;
/// t.set(Expiration::Once(Duration::from_millis(1)))?;
/// assert_eq!(t.read()?, 1); // blocks about 1 ms, then: one expiration
/// assert_eq!(t.get()?, None); // a fired one-shot is disarmed
/// # Ok::<(), timerfd_sys::Error>(())
/// ```
pub struct TimerFd {
    fd: OwnedFd,
    clock: Clock,
}

impl TimerFd {
    /// A disarmed timer on `clock`, nonblocking and close-on-exec: the form
    /// an event loop wants ([timerfd_create(2)]).
    ///
    /// [timerfd_create(2)]: https://man7.org/linux/man-pages/man2/timerfd_create.2.html
    #[doc(alias = "timerfd_create", alias = "TFD_NONBLOCK", alias = "TFD_CLOEXEC")]
    pub fn new(clock: Clock) -> Result<TimerFd, Error> {
        Self::create(clock, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)
    }

    /// A disarmed timer on `clock` whose [`read`](Self::read) blocks until
    /// the next expiry; close-on-exec. For a thread that just sleeps on one
    /// timer.
    #[doc(alias = "timerfd_create")]
    pub fn new_blocking(clock: Clock) -> Result<TimerFd, Error> {
        Self::create(clock, TimerfdFlags::CLOEXEC)
    }

    fn create(clock: Clock, flags: TimerfdFlags) -> Result<TimerFd, Error> {
        let fd = timerfd_create(clock.timerfd_id(), flags)?;
        Ok(TimerFd { fd, clock })
    }

    /// The clock this timer was created on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Arm (or re-arm) the timer ([timerfd_settime(2)]). Replaces any
    /// previous setting and resets the unread expiration count to zero.
    ///
    /// An invalid `exp` is rejected before the syscall and leaves the timer
    /// as it was.
    ///
    /// [timerfd_settime(2)]: https://man7.org/linux/man-pages/man2/timerfd_settime.2.html
    #[doc(alias = "timerfd_settime")]
    #[inline]
    pub fn set(&self, exp: Expiration) -> Result<(), Error> {
        self.apply(&exp.validate()?)
    }

    /// Arm with a setting validated earlier ([`Expiration::validate`]):
    /// `timerfd_settime` and nothing else, no check repeated.
    #[doc(alias = "timerfd_settime")]
    #[inline]
    pub fn apply(&self, setting: &Setting) -> Result<(), Error> {
        self.settime(setting.flags(), &setting.itimerspec())
    }

    /// Arm once, absolute, for `nanos` on the timer's clock: the call a
    /// user-space timer heap makes for its earliest deadline, with no
    /// [`Expiration`] in between. `nanos` is clamped to [`MAX_TIME`] (where
    /// the kernel saturates a relative expiry too), and 0 is raised to 1 ns,
    /// which fires at once instead of disarming.
    #[doc(alias = "timerfd_settime", alias = "TFD_TIMER_ABSTIME")]
    #[inline]
    pub fn set_deadline(&self, nanos: u64) -> Result<(), Error> {
        const MAX: u64 = MAX_TIME.as_nanos() as u64;
        let nanos = nanos.clamp(1, MAX);
        let it_value = rustix::time::Timespec {
            tv_sec: (nanos / 1_000_000_000) as i64,
            tv_nsec: (nanos % 1_000_000_000) as _,
        };
        let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
        self.settime(TimerfdTimerFlags::ABSTIME, &Itimerspec { it_value, it_interval: zero })
    }

    /// `timerfd_settime(fd, flags, spec, NULL)`.
    ///
    /// libc, not rustix: rustix's `timerfd_settime` always asks the kernel
    /// for the old setting, and that extra copy-out measured 9% of the call
    /// here (`benches/examples/ab_settime.rs`); passing NULL skips it.
    #[inline]
    fn settime(&self, flags: TimerfdTimerFlags, spec: &Itimerspec) -> Result<(), Error> {
        let ts =
            |t: &rustix::time::Timespec| libc::timespec { tv_sec: t.tv_sec, tv_nsec: t.tv_nsec };
        let raw =
            libc::itimerspec { it_interval: ts(&spec.it_interval), it_value: ts(&spec.it_value) };
        // SAFETY: `self.fd` is open; `raw` outlives the call; a NULL old-value pointer is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                flags.bits() as i32,
                &raw,
                std::ptr::null_mut(),
            )
        };
        if rc == 0 { Ok(()) } else { Err(last_errno().into()) }
    }

    /// Arm an absolute timer on a realtime clock that is cancelled when
    /// someone sets that clock (`TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`).
    ///
    /// After such a jump, [`read`](Self::read) fails with [`Error::Canceled`]
    /// so the caller can recompute its deadline. Any other clock or a relative
    /// expiration is [`Error::CancelOnSetNotApplicable`], because the kernel
    /// would silently ignore the flag.
    #[doc(alias = "TFD_TIMER_CANCEL_ON_SET")]
    pub fn set_cancel_on_set(&self, exp: Expiration) -> Result<(), Error> {
        if !self.clock.is_realtime() || !exp.is_absolute() {
            return Err(Error::CancelOnSetNotApplicable);
        }
        let (flags, spec) = exp.to_itimerspec()?;
        self.settime(flags | TimerfdTimerFlags::CANCEL_ON_SET, &spec)
    }

    /// Stop the timer: `timerfd_settime` with a zero `itimerspec`. Unread
    /// expirations are discarded.
    #[doc(alias = "timerfd_settime")]
    #[inline]
    pub fn disarm(&self) -> Result<(), Error> {
        self.settime(TimerfdTimerFlags::empty(), &DISARM)
    }

    /// The current setting ([timerfd_gettime(2)]), or `None` if disarmed.
    /// A one-shot that has fired reads as disarmed.
    ///
    /// [timerfd_gettime(2)]: https://man7.org/linux/man-pages/man2/timerfd_gettime.2.html
    #[doc(alias = "timerfd_gettime")]
    pub fn get(&self) -> Result<Option<TimerState>, Error> {
        Ok(TimerState::from_itimerspec(&timerfd_gettime(&self.fd)?))
    }

    /// Expirations since the last read (or `set`), missed ticks folded in,
    /// and reset that count to zero ([read(2)] of 8 bytes).
    ///
    /// * Nonblocking fd, nothing expired: `Ok(0)` (the kernel's `EAGAIN`).
    /// * Blocking fd, nothing expired: waits for the next expiry.
    /// * After a realtime clock jump on a [`set_cancel_on_set`](Self::set_cancel_on_set)
    ///   timer: [`Error::Canceled`].
    ///
    /// [read(2)]: https://man7.org/linux/man-pages/man2/timerfd_create.2.html#DESCRIPTION
    #[inline]
    pub fn read(&self) -> Result<u64, Error> {
        let mut buf = [0u8; 8];
        loop {
            return match rustix::io::read(&self.fd, &mut buf) {
                Ok(8) => Ok(u64::from_ne_bytes(buf)),
                // A timerfd read is all 8 bytes or an error; anything else is a kernel bug.
                Ok(_) => Err(Error::Os(Errno::IO)),
                Err(Errno::AGAIN) => Ok(0),
                Err(Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Set the unread expiration count to `ticks` and wake any reader
    /// (`TFD_IOC_SET_TICKS`, meant for checkpoint/restore and handy for
    /// benchmarking a `read` that finds expirations).
    ///
    /// A kernel built without `CONFIG_CHECKPOINT_RESTORE` answers
    /// [`Error::Unsupported`].
    #[doc(alias = "TFD_IOC_SET_TICKS", alias = "ioctl")]
    pub fn set_ticks(&self, ticks: NonZeroU64) -> Result<(), Error> {
        const SET_TICKS: Opcode = TFD_IOC_SET_TICKS as Opcode;
        // TFD_IOC_SET_TICKS is `_IOW('T', 0, __u64)`: the kernel reads one u64
        // through the pointer `Setter` passes, and writes nothing.
        // SAFETY: the opcode and the input type match, as said above.
        let rc = unsafe { ioctl(&self.fd, Setter::<SET_TICKS, u64>::new(ticks.get())) };
        match rc {
            Ok(()) => Ok(()),
            Err(Errno::NOTTY) => Err(Error::Unsupported),
            Err(e) => Err(e.into()),
        }
    }
}

/// errno after a failed libc call.
fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<TimerFd> for OwnedFd {
    /// Give up the timer wrapper and keep the fd; it stays armed as it was.
    fn from(t: TimerFd) -> OwnedFd {
        t.fd
    }
}

impl fmt::Debug for TimerFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerFd")
            .field("fd", &self.fd.as_raw_fd())
            .field("clock", &self.clock)
            .finish()
    }
}
