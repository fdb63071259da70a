//! Shared mode: many timers on one timerfd, ordered in a binary heap.
//!
//! This is how Go's runtime, libuv and systemd's sd-event avoid one fd per
//! timer: keep deadlines in user space, and point a single kernel timer at
//! the earliest one. The trade against dedicated mode:
//!
//! | | dedicated | shared |
//! |---|---|---|
//! | kernel objects | one timerfd + one epoll registration per timer | one timerfd in all |
//! | arm / cancel | one `timerfd_settime` (~230 ns here) | a heap push, O(log n); a syscall only if it becomes the earliest |
//! | fd limit | caps the number of timers | irrelevant: a million timers fit |
//! | clocks | any of the five | monotonic, boottime, boottime-alarm (a heap and a timerfd each) |
//! | visible in `/proc/PID/fd` | yes, each one | only the one fd |
//!
//! Pick dedicated to learn, to see every timer in `/proc`, for a few
//! long-lived timers, or for the realtime clocks; pick shared for many timers or
//! high churn (per-connection timeouts).
//!
//! # Ground rules
//!
//! * **Deadlines** are nanoseconds on the heap's clock, absolute. Only
//!   clocks that are never set get a heap: a realtime jump would change
//!   what every stored deadline means.
//! * **Lazy deletion.** Every arm takes a fresh `seq` from one counter;
//!   cancelling or re-arming a timer leaves its old heap entry in place, and
//!   that entry is skipped when it surfaces because its `seq` no longer
//!   matches the timer's (even if the slab slot now holds another timer).
//!   Dead entries are counted as `heap.len() - armed`, so the count cannot
//!   drift. When they outnumber live ones (and exceed [`COMPACT_MIN`]) the
//!   heap is rebuilt without them: memory stays within about twice the live
//!   count, amortised O(1) per cancel. `seq` is a `u32`: a dead entry is
//!   collected long before 2^32 further arms could wrap onto it.
//! * **48 bytes a timer.** A 32-byte slab entry (the slab's vacant/occupied
//!   tag lives in the never-zero generation) plus a 16-byte heap entry;
//!   "armed" is `seq != NOT_ARMED`, and "detached" is a bit in a side bitmap.
//! * **The fd is armed no later than the earliest live deadline.** It is
//!   re-armed only when a push makes a new earliest deadline (armed before
//!   the push, so a failed `timerfd_settime` leaves the heap as it was), and
//!   after a firing pass. A deadline past [`MAX_TIME`] from the epoch is armed
//!   at `MAX_TIME`: the kernel's range, where it saturates dedicated timers too. Cancelling the earliest timer does not re-arm: the fd
//!   fires early once, the pass finds nothing due, and re-arms for the real
//!   earliest. So arm + cancel of a timer that is not the earliest makes no
//!   syscall at all.
//! * **A pass fires only what was due when it started.** Due entries are
//!   collected first; a callback that re-arms a timer (even into the past)
//!   pushes a new entry for the next pass, so a pass always ends. If a
//!   callback panics, the due entries not yet reached go back on the heap
//!   and the fd is re-armed as the panic unwinds, so none is lost.
//! * **Missed ticks fold** as the kernel folds them: a periodic timer found
//!   `k` periods late fires once with `ticks = k + 1` and is pushed to its
//!   next deadline on the original grid.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;

use slab::Slab;
use timerfd_sys::{ClockTime, Expiration, MAX_TIME};

use crate::Error;
use crate::context::TimerCallback;

/// Dead heap entries tolerated before a compaction is considered.
pub const COMPACT_MIN: usize = 1024;

/// One shared timer: 32 bytes plus what its callback captures. With its
/// 16-byte heap entry, 48 bytes per timer.
pub(crate) struct SharedEntry {
    /// 0 for a one-shot.
    period_ns: u64,
    /// The `seq` of this timer's live heap entry, or [`NOT_ARMED`].
    seq: u32,
    /// Distinguishes successive occupants of one slab slot, for handles.
    /// Never zero, so the slab can keep its vacant/occupied tag in this
    /// field's niche instead of in 8 more bytes.
    generation: NonZeroU32,
    /// `None` while the callback runs.
    pub(crate) callback: Option<TimerCallback>,
}

/// `SharedEntry::seq` of a timer with no live heap entry. `take_seq` never
/// hands it out.
const NOT_ARMED: u32 = u32::MAX;

/// A heap entry: 16 bytes, ordered by deadline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HeapEntry {
    deadline: u64,
    key: u32,
    seq: u32,
}

/// A shared timer found due in a pass.
#[derive(Clone, Copy)]
pub(crate) struct Due {
    entry: HeapEntry,
}

/// What a firing hands to the dispatcher.
pub(crate) struct Fired {
    pub(crate) key: u32,
    pub(crate) generation: u32,
    pub(crate) ticks: u64,
    pub(crate) callback: TimerCallback,
}

#[derive(Default)]
pub(crate) struct SharedTimers {
    timers: Slab<SharedEntry>,
    heap: BinaryHeap<Reverse<HeapEntry>>,
    /// Timers that are armed: each has exactly one live heap entry (or one
    /// in the due list during a pass).
    armed: usize,
    /// Source of `seq` values, one per arm.
    next_seq: u32,
    /// One bit per slab key: set for a detached timer. Kept out of
    /// `SharedEntry` so that an entry stays at 32 bytes.
    detached: Vec<u64>,
    /// The deadline the shared timerfd is armed for, if it is armed.
    pub(crate) armed_for: Option<u64>,
    /// Reused across passes, so a pass allocates nothing once warm.
    due: Vec<Due>,
    next_generation: u32,
}

/// A clock reading in nanoseconds: 0 before the epoch, `u64::MAX` past it
/// (clamped, never wrapped; a heap's clocks are never negative).
pub(crate) fn nanos(t: ClockTime) -> u64 {
    t.as_nanos().unwrap_or(if t.secs() < 0 { 0 } else { u64::MAX })
}

/// The latest deadline the shared timerfd can be armed for: [`MAX_TIME`]
/// as nanoseconds. Later deadlines (a relative expiry near `MAX_TIME`) are
/// armed at this instant, just as the kernel saturates a dedicated timer's
/// relative expiry at `KTIME_MAX` (0.85 s later, about 292 years from boot).
pub(crate) const MAX_DEADLINE: u64 = MAX_TIME.as_nanos() as u64;

/// What an expiration means for the heap, from `now`: an absolute deadline
/// and a period (0 for a one-shot), both in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) deadline: u64,
    period_ns: u64,
}

impl Schedule {
    /// Validation is `Expiration::to_itimerspec`'s, so both modes refuse the
    /// same inputs with the same errors; pure, so a refusal changes nothing.
    pub(crate) fn new(exp: Expiration, now: u64) -> Result<Schedule, Error> {
        exp.to_itimerspec()?;
        // Validated above: every duration is within MAX_TIME, so it fits.
        let ns = |d: core::time::Duration| d.as_nanos() as u64;
        let (deadline, period_ns) = match exp {
            Expiration::Once(d) => (now.saturating_add(ns(d).max(1)), 0),
            Expiration::Every { first, period } => {
                (now.saturating_add(ns(first).max(1)), ns(period))
            }
            Expiration::OnceAt(t) => (nanos(t).max(1), 0),
            Expiration::EveryAt { first, period } => (nanos(first).max(1), ns(period)),
        };
        Ok(Schedule { deadline, period_ns })
    }
}

impl SharedTimers {
    /// Live shared timers.
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    /// Heap entries, dead ones included.
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// The one generation-checked lookup: whether slot `key` still holds
    /// the timer a handle or callback of `generation` names.
    pub(crate) fn is_current(&self, key: u32, generation: u32) -> bool {
        self.timers.get(key as usize).is_some_and(|e| e.generation.get() == generation)
    }

    /// Refuse an insert the slab could not key with a `u32`, before anything
    /// changes.
    pub(crate) fn check_room(&self) -> Result<(), Error> {
        u32::try_from(self.timers.vacant_key())
            .map(drop)
            .map_err(|_| Error::Os(rustix::io::Errno::NOSPC))
    }

    /// Add a timer, armed per `schedule`. Returns its key and generation.
    /// Infallible once [`check_room`](Self::check_room) passed.
    pub(crate) fn insert(&mut self, schedule: Schedule, callback: TimerCallback) -> (u32, u32) {
        let generation = NonZeroU32::new(self.next_generation).unwrap_or(NonZeroU32::MIN);
        self.next_generation = generation.get().checked_add(1).unwrap_or(1);
        let seq = self.take_seq();
        let Schedule { deadline, period_ns } = schedule;
        let entry = SharedEntry { period_ns, seq, generation, callback: Some(callback) };
        let key = self.timers.insert(entry) as u32; // check_room: the key fits
        self.heap.push(Reverse(HeapEntry { deadline, key, seq }));
        self.armed += 1;
        (key, generation.get())
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = match seq.wrapping_add(1) {
            NOT_ARMED => 0,
            next => next,
        };
        seq
    }

    /// Re-arm timer `key` per `schedule`; its old deadline, if any, goes
    /// dead. Infallible: the caller checked the key's generation.
    pub(crate) fn set(&mut self, key: u32, schedule: Schedule) {
        let seq = self.take_seq();
        let Some(entry) = self.timers.get_mut(key as usize) else { return };
        if entry.seq == NOT_ARMED {
            self.armed += 1;
        }
        entry.seq = seq;
        entry.period_ns = schedule.period_ns;
        self.heap.push(Reverse(HeapEntry { deadline: schedule.deadline, key, seq }));
        self.maybe_compact();
    }

    /// Disarm timer `key`. Returns whether it was armed.
    pub(crate) fn cancel(&mut self, key: u32) -> bool {
        let Some(entry) = self.timers.get_mut(key as usize) else { return false };
        let was_armed = entry.seq != NOT_ARMED;
        if was_armed {
            entry.seq = NOT_ARMED;
            self.armed -= 1;
            self.maybe_compact();
        }
        was_armed
    }

    /// Remove timer `key`, returning it (so its callback can be dropped
    /// outside any borrow of the reactor) and whether it was detached.
    pub(crate) fn remove(&mut self, key: u32) -> Option<(SharedEntry, bool)> {
        let entry = self.timers.try_remove(key as usize)?;
        if entry.seq != NOT_ARMED {
            self.armed -= 1;
            self.maybe_compact();
        }
        let detached = self.is_detached(key);
        if detached {
            self.detached[key as usize / 64] &= !(1 << (key % 64));
        }
        Some((entry, detached))
    }

    /// Mark timer `key` detached; false if it already was.
    pub(crate) fn set_detached(&mut self, key: u32) -> bool {
        let (word, bit) = (key as usize / 64, 1u64 << (key % 64));
        if self.detached.len() <= word {
            self.detached.resize(word + 1, 0);
        }
        let was = self.detached[word] & bit != 0;
        self.detached[word] |= bit;
        !was
    }

    fn is_detached(&self, key: u32) -> bool {
        self.detached.get(key as usize / 64).is_some_and(|w| w & (1 << (key % 64)) != 0)
    }

    /// Heap entries whose timer has since been re-armed, cancelled or removed.
    pub(crate) fn dead(&self) -> usize {
        self.heap.len().saturating_sub(self.armed)
    }

    /// Rebuild the heap without dead entries once they outnumber live ones.
    fn maybe_compact(&mut self) {
        let dead = self.dead();
        if dead > COMPACT_MIN && dead > self.armed {
            let timers = &self.timers;
            self.heap.retain(|Reverse(h)| is_live(timers, h));
        }
    }

    /// The earliest live deadline, dropping dead entries from the top.
    pub(crate) fn earliest(&mut self) -> Option<u64> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if is_live(&self.timers, top) {
                return Some(top.deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Start a pass: move every live entry due at `now` to the due list.
    /// Returns how many there are.
    pub(crate) fn collect_due(&mut self, now: u64) -> usize {
        self.due.clear();
        while let Some(&Reverse(top)) = self.heap.peek() {
            if top.deadline > now {
                break;
            }
            self.heap.pop();
            if is_live(&self.timers, &top) {
                self.due.push(Due { entry: top });
            }
        }
        self.due.len()
    }

    /// Put the due entries from `from` on back in the heap: a pass cut short
    /// by a panicking callback leaves them for the next pass instead of
    /// losing them. Entries that went dead meanwhile are skipped later, as
    /// usual.
    pub(crate) fn requeue_due(&mut self, from: usize) {
        for d in self.due.drain(from.min(self.due.len())..) {
            self.heap.push(Reverse(d.entry));
        }
    }

    /// The `i`-th due entry of this pass.
    pub(crate) fn due(&self, i: usize) -> Due {
        self.due[i]
    }

    /// Fire a due entry if an earlier callback of this pass has not re-armed,
    /// cancelled or removed it. A periodic timer is pushed to its next
    /// deadline before its callback runs, so the callback may re-arm it.
    pub(crate) fn fire(&mut self, due: Due, now: u64) -> Option<Fired> {
        let HeapEntry { deadline, key, seq } = due.entry;
        let entry = self.timers.get_mut(key as usize)?;
        if entry.seq != seq {
            return None;
        }
        let late = now.saturating_sub(deadline);
        let ticks = match late.checked_div(entry.period_ns) {
            None => {
                // A one-shot (period 0): fired, now disarmed.
                entry.seq = NOT_ARMED;
                self.armed -= 1;
                1
            }
            Some(missed) => {
                let ticks = 1 + missed;
                let next = deadline.saturating_add(ticks.saturating_mul(entry.period_ns));
                self.heap.push(Reverse(HeapEntry { deadline: next, key, seq }));
                ticks
            }
        };
        // A callback is out of its entry only while it runs, and passes do
        // not nest (`turn` refuses re-entry), so this is `Some` in practice.
        let callback = entry.callback.take()?;
        Some(Fired { key, generation: entry.generation.get(), ticks, callback })
    }

    /// Put a callback back after it ran, unless its timer was removed or its
    /// slot reused meanwhile; then hand it back to be dropped.
    pub(crate) fn restore(
        &mut self,
        key: u32,
        generation: u32,
        callback: TimerCallback,
    ) -> Option<TimerCallback> {
        match self.timers.get_mut(key as usize) {
            Some(e) if e.generation.get() == generation && e.callback.is_none() => {
                e.callback = Some(callback);
                None
            }
            _ => Some(callback),
        }
    }
}

fn is_live(timers: &Slab<SharedEntry>, h: &HeapEntry) -> bool {
    timers.get(h.key as usize).is_some_and(|e| e.seq == h.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn cb() -> TimerCallback {
        Box::new(|_, _| {})
    }

    fn add(s: &mut SharedTimers, exp: Expiration, now: u64) -> u32 {
        s.insert(Schedule::new(exp, now).unwrap(), cb()).0
    }

    #[test]
    fn entry_sizes_stay_within_the_64_byte_budget() {
        assert_eq!(size_of::<HeapEntry>(), 16);
        assert_eq!(size_of::<SharedEntry>(), 32);
        assert!(size_of::<slab::Slab<SharedEntry>>() > 0);
    }

    #[test]
    fn periodic_fire_folds_missed_ticks_on_the_original_grid() {
        let mut s = SharedTimers::default();
        let key = add(&mut s, Expiration::every(Duration::from_nanos(100)), 1_000);
        assert_eq!(s.earliest(), Some(1_100));
        assert_eq!(s.collect_due(1_450), 1);
        let fired = s.fire(s.due(0), 1_450).unwrap();
        assert_eq!((fired.key, fired.ticks), (key, 4)); // 1100, 1200, 1300, 1400
        assert_eq!(s.earliest(), Some(1_500));
    }

    #[test]
    fn cancel_is_lazy_and_compaction_bounds_dead_entries() {
        let mut s = SharedTimers::default();
        let keep = add(&mut s, Expiration::Once(Duration::from_secs(1)), 0);
        for _ in 0..10 * COMPACT_MIN {
            let k = add(&mut s, Expiration::Once(Duration::from_secs(2)), 0);
            s.remove(k);
        }
        assert!(s.heap_len() <= 2 * COMPACT_MIN + 2, "heap grew to {}", s.heap_len());
        assert_eq!(s.earliest(), Some(1_000_000_000));
        assert!(s.cancel(keep));
        assert_eq!(s.earliest(), None);
        assert_eq!(s.heap_len(), s.dead(), "only dead entries remain, all counted");
    }

    #[test]
    fn a_timer_re_armed_during_a_pass_waits_for_the_next_pass() {
        let mut s = SharedTimers::default();
        let a = add(&mut s, Expiration::Once(Duration::ZERO), 10);
        assert_eq!(s.collect_due(20), 1);
        let fired = s.fire(s.due(0), 20).unwrap();
        s.set(a, Schedule::new(Expiration::OnceAt(ClockTime::ZERO), 20).unwrap()); // into the past
        assert!(s.restore(a, 1, fired.callback).is_none()); // generations start at 1
        assert_eq!(s.earliest(), Some(1), "pushed for the next pass, not fired in this one");
    }

    #[test]
    fn a_pass_cut_short_requeues_what_it_did_not_fire() {
        let mut s = SharedTimers::default();
        let a = add(&mut s, Expiration::Once(Duration::from_nanos(1)), 0);
        let b = add(&mut s, Expiration::Once(Duration::from_nanos(2)), 0);
        assert_eq!(s.collect_due(10), 2);
        let first = s.fire(s.due(0), 10).unwrap();
        assert_eq!(first.key, a);
        s.requeue_due(1); // the callback of `a` panicked: `b` must not be lost
        assert_eq!(s.earliest(), Some(2));
        assert_eq!(s.collect_due(10), 1);
        assert_eq!(s.fire(s.due(0), 10).map(|f| f.key), Some(b));
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        let now = 5_000_000_000;
        let far = Schedule::new(Expiration::Once(MAX_TIME), now).unwrap();
        assert_eq!(far.deadline, now + MAX_DEADLINE, "u64 nanoseconds hold it; arming clamps");
        assert!(Schedule::new(Expiration::Once(Duration::MAX), now).is_err());
        let every =
            Schedule::new(Expiration::Every { first: MAX_TIME, period: MAX_TIME }, u64::MAX);
        assert_eq!(every.unwrap().deadline, u64::MAX, "saturates instead of wrapping");
    }
}
