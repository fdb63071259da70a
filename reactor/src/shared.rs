//! Shared mode: many timers on one timerfd per clock, ordered in a heap.
//!
//! This is how Go's runtime, libuv and systemd's sd-event avoid one fd per
//! timer: keep deadlines in user space, and point a single kernel timer at
//! the earliest one. The trade against dedicated mode:
//!
//! | | dedicated | shared |
//! |---|---|---|
//! | kernel objects | one timerfd + one epoll registration per timer | one timerfd per clock in use |
//! | arm / cancel | one `timerfd_settime` (~230 ns here) | a heap push, O(log n); a syscall only if it becomes the earliest |
//! | fd limit | caps the number of timers | irrelevant: a million timers fit |
//! | clocks | any of the five | monotonic, boottime, boottime-alarm (a heap and a timerfd each) |
//! | visible in `/proc/PID/fd` | yes, each one | only its clock's one fd |
//!
//! Pick dedicated to learn, to see every timer in `/proc`, for a few
//! long-lived timers, or for the realtime clocks; pick shared for many timers or
//! high churn (per-connection timeouts).
//!
//! # One owner per clock
//!
//! Like sd-event's `clock_data`, a `SharedClock` owns everything about
//! one clock: its heap of timers, its timerfd (created with the clock's
//! first timer) and the deadline that timerfd is armed for. The rules:
//!
//! * **Only clocks that never jump.** A deadline stored in the heap is a
//!   reading of the clock, taken when the timer was armed. Monotonic and
//!   boottime readings only move forward with time, so that deadline keeps
//!   its meaning. A realtime clock can be set: after a jump every stored
//!   relative deadline would be wrong, and the kernel's own rule for
//!   relative realtime timers (they are not moved by a jump) could not be
//!   followed without re-reading every timer. Realtime clocks are refused
//!   with [`Error::SharedClock`]; a dedicated timer follows the kernel's
//!   rules for them exactly.
//! * **The timerfd is armed no later than the heap's wake-up**
//!   (`Heap::wake_at`: the earliest deadline, or for a timer with a
//!   leeway the end of its window). It is re-armed only when a push makes
//!   a new earliest wake-up (armed
//!   before the push, so a failed `timerfd_settime` leaves the heap as it
//!   was), and after a firing pass. A deadline past [`MAX_TIME`] is armed at
//!   `MAX_TIME`, where the kernel saturates dedicated timers too. Cancelling
//!   the earliest timer does not re-arm: the fd fires early once, the pass
//!   finds nothing due, and re-arms for the real earliest. So arm + cancel of
//!   a timer that is not the earliest makes no syscall at all.
//! * **A failed re-arm strands the clock, it never stops it.** The re-arm
//!   after a pass runs where no caller can be told (at the end of a pass,
//!   or while a panic unwinds). If it fails, the clock is marked stranded:
//!   every turn retries the re-arm first and reports the failure
//!   ([`Error::Retrying`]) until it succeeds; meanwhile a turn never blocks
//!   past the stranded clock's earliest deadline and runs its pass from the
//!   clock reading, so every timer keeps its schedule.
//!
//! [`MAX_TIME`]: timerfd_sys::MAX_TIME

mod heap;

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use timerfd_sys::{Clock, ClockTime, Setting, TimerFd};

pub use heap::COMPACT_MIN;
pub(crate) use heap::{Fired, Heap, Schedule, window};

use crate::{Error, Token};

/// The clocks a shared heap can run on, in the order of their index.
pub(crate) const CLOCKS: [Clock; 3] = [Clock::Monotonic, Clock::Boottime, Clock::BoottimeAlarm];

/// The index in [`CLOCKS`] of `clock`.
pub(crate) fn clock_index(clock: Clock) -> Result<u8, Error> {
    let i = CLOCKS.iter().position(|&c| c == clock).ok_or(Error::SharedClock(clock))?;
    Ok(i as u8)
}

/// A clock reading in nanoseconds: 0 before the epoch, `u64::MAX` past it
/// (clamped, never wrapped; a heap's clocks are never negative).
pub(crate) fn nanos(t: ClockTime) -> u64 {
    t.as_nanos().unwrap_or(if t.secs() < 0 { 0 } else { u64::MAX })
}

/// A duration in nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What `setting` means on `clock`, read now: the exact deadline (a
/// leeway is applied by the heap, when it decides when to wake).
pub(crate) fn schedule(clock: Clock, setting: &Setting) -> Schedule {
    let first = duration_ns(setting.first());
    let deadline =
        if setting.is_absolute() { first } else { nanos(clock.now()).saturating_add(first) };
    let period_ns = setting.period().map_or(0, duration_ns);
    Schedule { deadline, period_ns }
}

/// One clock's shared timers: their heap, their timerfd, and what it is
/// armed for.
pub(crate) struct SharedClock<C> {
    pub(crate) heap: Heap<C>,
    /// Created with the clock's first timer, kept until the reactor drops.
    fd: Option<(TimerFd, Token)>,
    /// The deadline the timerfd is armed for, if it is armed.
    armed_for: Option<u64>,
    /// The last re-arm after a pass failed: the timerfd may not fire by the
    /// earliest deadline, so the loop serves this clock from its reading.
    stranded: bool,
}

impl<C> Default for SharedClock<C> {
    fn default() -> Self {
        SharedClock { heap: Heap::default(), fd: None, armed_for: None, stranded: false }
    }
}

impl<C> SharedClock<C> {
    /// Whether this clock still needs its timerfd.
    pub(crate) fn has_fd(&self) -> bool {
        self.fd.is_some()
    }

    pub(crate) fn install_fd(&mut self, fd: TimerFd, token: Token) {
        self.fd = Some((fd, token));
    }

    /// Give the timerfd back, to undo an add that failed after creating it.
    pub(crate) fn take_fd(&mut self) -> Option<(TimerFd, Token)> {
        self.armed_for = None;
        self.fd.take()
    }

    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|(fd, _)| fd.as_raw_fd())
    }

    pub(crate) fn is_stranded(&self) -> bool {
        self.stranded
    }

    /// Make sure the timerfd fires no later than `deadline` (and, while
    /// stranded, no later than the earliest deadline either). Returns the
    /// deadline it was armed for now, or `None` if it already fires in time
    /// (or there is no timerfd yet). On error nothing changes.
    pub(crate) fn arm_for(&mut self, deadline: u64) -> Result<Option<u64>, timerfd_sys::Error> {
        let target = match self.stranded {
            true => self.heap.wake_at().map_or(deadline, |e| e.min(deadline)),
            false if self.armed_for.is_some_and(|armed| armed <= deadline) => return Ok(None),
            false => deadline,
        };
        let Some((fd, _)) = &self.fd else { return Ok(None) };
        fd.set_deadline(target)?;
        self.armed_for = Some(target);
        self.stranded = false;
        Ok(Some(target))
    }

    /// After a pass, or to heal a stranded clock: point the timerfd at
    /// [`Heap::wake_at`]. On error the clock is stranded until a later call
    /// succeeds.
    pub(crate) fn sync(&mut self) -> Result<Option<u64>, timerfd_sys::Error> {
        let Some(earliest) = self.heap.wake_at() else {
            self.stranded = false; // nothing to wait for
            return Ok(None);
        };
        match self.arm_for(earliest) {
            Ok(armed) => Ok(armed),
            Err(e) => {
                self.stranded = true;
                Err(e)
            }
        }
    }

    /// Read the timerfd after it fired. It is a one-shot, so it is now
    /// disarmed (a failed read leaves it readable, for the next turn).
    pub(crate) fn ack(&mut self) -> Result<u64, timerfd_sys::Error> {
        self.armed_for = None;
        self.fd.as_ref().map_or(Ok(0), |(fd, _)| fd.read())
    }

    /// For a stranded clock: when it must wake, which no timerfd is sure to
    /// wake the loop for.
    pub(crate) fn stranded_deadline(&mut self) -> Option<u64> {
        if self.stranded { self.heap.wake_at() } else { None }
    }
}
