//! Timers of both modes, under the core's borrow: adding, re-arming,
//! leeway, and the shared clocks' passes. An [`Expiration`] is validated
//! once, by the caller, into a [`Setting`]; nothing here validates again.
//!
//! * Dedicated: the setting goes to the timer's own timerfd, as it is
//!   ([`TimerFd::apply`]), or moved onto its leeway grid first.
//! * Shared: the setting becomes a [`Schedule`] (nanoseconds on the clock)
//!   once, and the clock's timerfd is armed from its heap's wake-ups
//!   ([`TimerFd::set_deadline`]).

use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;

use timerfd_sys::{Clock, ClockTime, Expiration, Setting, TimerFd};

use super::Core;
use crate::shared::{self, CLOCKS, Fired, Schedule, clock_index, duration_ns, nanos};
use crate::sources::{DedicatedCallback, Entry, Source, TimerFn};
use crate::stats::gauge;
use crate::token::SourceId;
use crate::trace::TraceEvent;
use crate::{Error, Interest, Token, leeway};

/// Arm a dedicated timer: exactly as set, or (with a leeway) absolute at
/// its first expiry moved onto the leeway grid. Returns what was armed.
fn arm_dedicated(fd: &TimerFd, setting: &Setting, leeway_ns: u64) -> Result<Setting, Error> {
    let period_ns = setting.period().map_or(0, duration_ns);
    let step = leeway::step(period_ns, leeway_ns);
    if step == 0 {
        fd.apply(setting)?;
        return Ok(*setting);
    }
    let first = duration_ns(setting.first());
    let first = if setting.is_absolute() {
        first
    } else {
        // Read after the kernel would have: never earlier than its deadline.
        nanos(fd.clock().now()).saturating_add(first)
    };
    let first = ClockTime::from_nanos(leeway::align(first, step));
    let aligned = match setting.period() {
        Some(period) => Expiration::EveryAt { first, period },
        None => Expiration::OnceAt(first),
    };
    // Past MAX_TIME the grid cannot be armed: arm exactly instead.
    let aligned = aligned.validate().unwrap_or(*setting);
    fd.apply(&aligned)?;
    Ok(aligned)
}

impl<D: 'static> Core<D> {
    /// Create, arm and register a dedicated timerfd, then commit. Every step
    /// that can fail comes first, and the timerfd closes if one does.
    pub(crate) fn add_dedicated(
        &mut self,
        clock: Clock,
        setting: &Setting,
        callback: DedicatedCallback<D>,
    ) -> Result<Token, Error> {
        let fd = TimerFd::new(clock)?;
        let armed = arm_dedicated(&fd, setting, 0)?;
        let token = self.watch(fd.as_fd(), Interest::READABLE)?;
        let raw = fd.as_raw_fd();
        self.tracer.emit(|| TraceEvent::Create { fd: raw, clock });
        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration: armed.expiration() });
        let source = Source::Timer { fd, leeway_ns: 0, callback };
        self.insert(token, source, raw, Interest::READABLE);
        Ok(token)
    }

    /// Add a shared timer on `clock`: its schedule is computed, the clock's
    /// timerfd created (first timer) and armed if this is the new earliest
    /// deadline, then the heap push commits. A refusal leaves no heap entry,
    /// no fd and no change in `Stats`.
    pub(crate) fn add_shared(
        &mut self,
        clock: Clock,
        setting: &Setting,
        callback: TimerFn<D>,
    ) -> Result<SourceId, Error> {
        let c = clock_index(clock)?;
        let schedule = shared::schedule(clock, setting);
        self.clocks[c as usize].heap.check_room()?;
        let created = self.open_clock_fd(c)?;
        if let Err(e) = self.arm_clock(c, schedule.deadline) {
            if created {
                self.close_clock_fd(c);
            }
            return Err(e);
        }
        let (key, generation) = self.clocks[c as usize].heap.insert(schedule, 0, callback);
        gauge(&self.counters.shared_timers, 1);
        self.heap_gauges();
        let deadline_ns = schedule.deadline;
        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns });
        Ok(SourceId::Shared { clock: c, key, generation })
    }

    /// The timerfd of shared clock `c`, created and registered if there is
    /// none yet. Returns whether it was created now.
    fn open_clock_fd(&mut self, c: u8) -> Result<bool, Error> {
        if self.clocks[c as usize].has_fd() {
            return Ok(false);
        }
        let clock = CLOCKS[c as usize];
        let fd = TimerFd::new(clock)?;
        let token = self.watch(fd.as_fd(), Interest::READABLE)?;
        let raw = fd.as_raw_fd();
        self.tracer.emit(|| TraceEvent::Create { fd: raw, clock });
        self.insert(token, Source::SharedFd(c), raw, Interest::READABLE);
        self.clocks[c as usize].install_fd(fd, token);
        Ok(true)
    }

    /// Undo [`open_clock_fd`](Self::open_clock_fd), for an add that failed
    /// after it: the registration, the slab entry, the fd.
    fn close_clock_fd(&mut self, c: u8) {
        let Some((fd, token)) = self.clocks[c as usize].take_fd() else { return };
        let raw = fd.as_raw_fd();
        // The fd is the reactor's alone, so closing it below removes the
        // registration even if this DEL fails: nothing to retry.
        let _closing_removes_it_anyway = self.poller.delete(fd.as_fd());
        self.tracer.emit(|| TraceEvent::EpollDel { fd: raw });
        self.tracer.emit(|| TraceEvent::Close { fd: raw });
        if self.entry(token).is_some() {
            let entry = self.sources.remove(token.key());
            self.gauge(&entry.source, false, -1);
        }
    }

    /// Make shared clock `c`'s timerfd fire no later than `deadline`.
    fn arm_clock(&mut self, c: u8, deadline: u64) -> Result<(), Error> {
        let clock = &mut self.clocks[c as usize];
        if let Some(armed) = clock.arm_for(deadline)? {
            let fd = clock.raw_fd().unwrap_or(-1);
            self.tracer.emit(|| TraceEvent::ArmDeadline { fd, deadline_ns: armed });
        }
        Ok(())
    }

    /// Point shared clock `c`'s timerfd at its earliest deadline, after a
    /// pass or to heal it. A failure strands the clock and is recorded.
    pub(crate) fn sync_clock(&mut self, c: u8) {
        let clock = &mut self.clocks[c as usize];
        match clock.sync() {
            Ok(Some(armed)) => {
                let fd = clock.raw_fd().unwrap_or(-1);
                self.tracer.emit(|| TraceEvent::ArmDeadline { fd, deadline_ns: armed });
            }
            Ok(None) => {}
            Err(e) => {
                self.owes = true;
                self.fault("timerfd_settime", errno_of(e));
                // Stranded: keep the reactor's fd readable, so that a host
                // loop comes back for the retry and the due timers.
                self.notify_or_fault();
            }
        }
    }

    /// Keep the heap gauges of `Stats` true after a heap changed.
    pub(crate) fn heap_gauges(&self) {
        let entries = self.clocks.iter().map(|c| c.heap.heap_len()).sum();
        self.counters.shared_heap_entries.set(entries);
    }

    /// Arm (`Some`) or disarm (`None`) a timer of either mode, with its
    /// leeway. On error the timer keeps its previous setting.
    #[inline]
    pub(crate) fn set_timer(
        &mut self,
        id: SourceId,
        setting: Option<&Setting>,
    ) -> Result<(), Error> {
        match id {
            SourceId::Dedicated(token) => {
                let Some(Entry { source: Source::Timer { fd, leeway_ns, .. }, .. }) =
                    self.entry(token)
                else {
                    return Err(Error::Gone);
                };
                let raw = fd.as_raw_fd();
                // timerfd_settime validates before it changes anything.
                match setting {
                    Some(setting) => {
                        let armed = arm_dedicated(fd, setting, *leeway_ns)?;
                        let expiration = armed.expiration();
                        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration });
                    }
                    None => {
                        fd.disarm()?;
                        self.tracer.emit(|| TraceEvent::Disarm { fd: raw });
                    }
                }
                Ok(())
            }
            SourceId::Shared { clock: c, key, generation } => {
                let heap = &self.clocks[c as usize].heap;
                if !heap.is_current(key, generation) {
                    return Err(Error::Gone);
                }
                match setting {
                    Some(setting) => {
                        let schedule = shared::schedule(CLOCKS[c as usize], setting);
                        self.push_shared(c, key, schedule)?;
                    }
                    None => {
                        if self.clocks[c as usize].heap.cancel(key) {
                            self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                        }
                    }
                }
                Ok(())
            }
            _ => Err(Error::NotATimer),
        }
    }

    /// Re-arm shared timer `key` per `schedule`: the timerfd first (for the
    /// end of the timer's window), so a failure leaves the heap as it was.
    fn push_shared(&mut self, c: u8, key: u32, schedule: Schedule) -> Result<(), Error> {
        let window = shared::window(self.clocks[c as usize].heap.leeway(key), schedule.period_ns);
        self.arm_clock(c, schedule.deadline.saturating_add(window))?;
        self.clocks[c as usize].heap.set(key, schedule);
        self.heap_gauges();
        let deadline_ns = schedule.deadline;
        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns });
        Ok(())
    }

    /// Give a timer a leeway: a dedicated timer's current schedule moves
    /// onto the new grid, a shared timer's window widens in its heap (see
    /// the `leeway` module). On error it keeps its old leeway and schedule.
    pub(crate) fn set_leeway(&mut self, id: SourceId, leeway_ns: u64) -> Result<(), Error> {
        match id {
            SourceId::Dedicated(token) => {
                let Some(Entry { source: Source::Timer { fd, leeway_ns: current, .. }, .. }) =
                    self.entry(token)
                else {
                    return Err(Error::Gone);
                };
                // The kernel's view of the schedule, read back; a disarmed
                // timer just keeps the leeway for its next arm, and a leeway
                // that makes no grid (zero) moves nothing.
                let state = fd
                    .get()?
                    .filter(|s| leeway::step(s.period.map_or(0, duration_ns), leeway_ns) != 0);
                if let Some(state) = state {
                    let now = nanos(fd.clock().now()); // after the read: never early
                    let first =
                        ClockTime::from_nanos(now.saturating_add(duration_ns(state.remaining)));
                    let exp = match state.period {
                        Some(period) => Expiration::EveryAt { first, period },
                        None => Expiration::OnceAt(first),
                    };
                    // A relative timer the kernel saturated (at KTIME_MAX,
                    // past MAX_TIME) cannot be re-armed absolute; a grid
                    // would not matter there anyway: it keeps its setting.
                    if let Ok(setting) = exp.validate() {
                        let armed = arm_dedicated(fd, &setting, leeway_ns)?;
                        let raw = fd.as_raw_fd();
                        *current = leeway_ns;
                        self.tracer
                            .emit(|| TraceEvent::Arm { fd: raw, expiration: armed.expiration() });
                        return Ok(());
                    }
                }
                *current = leeway_ns;
                Ok(())
            }
            SourceId::Shared { clock: c, key, generation } => {
                let heap = &self.clocks[c as usize].heap;
                if !heap.is_current(key, generation) {
                    return Err(Error::Gone);
                }
                // The deadline stays; the window's new end may need the
                // timerfd sooner (armed first: on error nothing changed).
                if let Some(schedule) = heap.schedule(key) {
                    let window = shared::window(leeway_ns, schedule.period_ns);
                    self.arm_clock(c, schedule.deadline.saturating_add(window))?;
                }
                self.clocks[c as usize].heap.set_leeway(key, leeway_ns);
                self.heap_gauges();
                Ok(())
            }
            _ => Err(Error::NotATimer),
        }
    }

    /// The timerfd of a dedicated timer.
    pub(crate) fn timer_fd(&mut self, token: Token) -> Option<std::os::fd::RawFd> {
        match self.entry(token) {
            Some(Entry { source: Source::Timer { fd, .. }, .. }) => Some(fd.as_raw_fd()),
            _ => None,
        }
    }

    // ---- shared passes (see `turn.rs`) ----

    /// Shared clock `c`'s timerfd fired: read it (a failure is recorded; the
    /// pass runs anyway, from the clock), then collect what is due.
    /// Returns the count, and the reading the pass fires at.
    pub(crate) fn begin_pass(&mut self, c: u8, acked: bool) -> (usize, u64) {
        let clock = &mut self.clocks[c as usize];
        if acked {
            if let Err(e) = clock.ack() {
                self.fault("read", errno_of(e));
            }
        }
        let now = nanos(CLOCKS[c as usize].now());
        let due = self.clocks[c as usize].heap.collect_due(now);
        (due, now)
    }

    /// Fire the `i`-th due timer of the pass, if it is still armed for it.
    pub(crate) fn fire_shared(&mut self, c: u8, i: usize, now: u64) -> Option<Fired> {
        let fired = self.clocks[c as usize].heap.fire(i, now)?;
        let (timer, ticks) = (fired.key, fired.ticks);
        crate::stats::bump(&self.counters.timer_expirations, ticks);
        self.tracer.emit(|| TraceEvent::HeapFire { timer, ticks });
        Some(fired)
    }

    /// End a pass, on return or while a callback's panic unwinds: due
    /// timers it did not reach go back on the heap, and the timerfd is
    /// pointed at the earliest deadline.
    pub(crate) fn end_pass(&mut self, c: u8, reached: usize) {
        self.clocks[c as usize].heap.requeue_due(reached);
        self.heap_gauges();
        self.sync_clock(c);
    }

    /// Where shared timer `key` of `generation` on clock `c` keeps its callback.
    pub(crate) fn shared_callback(
        &mut self,
        c: u8,
        key: u32,
        generation: u32,
    ) -> Option<&mut Option<TimerFn<D>>> {
        self.clocks[c as usize].heap.callback(key, generation)
    }

    /// Stranded clocks that are due now: each gets a pass from the clock
    /// reading, as if its timerfd had fired.
    #[inline]
    pub(crate) fn due_stranded(&mut self) -> Option<u8> {
        if !self.owes {
            return None; // the common case: no clock reading at all
        }
        (0..CLOCKS.len() as u8).find(|&c| {
            let Some(deadline) = self.clocks[c as usize].stranded_deadline() else { return false };
            deadline <= nanos(CLOCKS[c as usize].now())
        })
    }

    /// How long a turn may block without sleeping past a stranded clock's
    /// earliest deadline; `None` when no clock is stranded.
    #[inline]
    pub(crate) fn stranded_timeout(&mut self) -> Option<std::time::Duration> {
        if !self.owes {
            return None;
        }
        (0..CLOCKS.len())
            .filter_map(|c| {
                let d = self.clocks[c].stranded_deadline()?;
                Some(d.saturating_sub(nanos(CLOCKS[c].now())))
            })
            .min()
            .map(std::time::Duration::from_nanos)
    }

    /// Wrap a dedicated callback for the slab.
    pub(crate) fn dedicated_callback(
        callback: impl FnMut(&mut crate::Context<'_, D>, u64) + 'static,
    ) -> DedicatedCallback<D> {
        Rc::new(std::cell::RefCell::new(callback))
    }
}

/// The errno behind a timerfd error (they are all syscall failures here:
/// settings were validated before).
pub(crate) fn errno_of(e: timerfd_sys::Error) -> rustix::io::Errno {
    match e {
        timerfd_sys::Error::Os(errno) => errno,
        timerfd_sys::Error::Canceled => rustix::io::Errno::CANCELED,
        _ => rustix::io::Errno::INVAL,
    }
}
