//! The heap of one shared clock: a slab of timers and a binary heap of
//! their deadlines, with lazy deletion. Pure data: no syscall, no clock
//! reading, no callback call happens here.
//!
//! # Ground rules
//!
//! * **Deadlines** are nanoseconds on the clock, absolute. A timer's
//!   current deadline is kept in its entry too; a heap entry is live only
//!   while its `seq` and its deadline are both the timer's current ones.
//! * **Lazy deletion.** Every arm takes a fresh `seq`; cancelling or
//!   re-arming a timer leaves its old heap entry in place, and that entry
//!   is skipped when it surfaces (even if the slab slot now holds another
//!   timer). Dead entries are counted as `heap.len() - armed`, so the count
//!   cannot drift. When they outnumber live ones (and exceed
//!   [`COMPACT_MIN`]) the heap is rebuilt without them: memory stays within
//!   about twice the live count, amortised O(1) per cancel. A `seq` that
//!   wrapped onto a dead entry's still finds a different deadline, and an
//!   entry whose deadline matches too is due exactly when the live one is.
//! * **64 bytes a timer.** A 48-byte slab entry (the slab's vacant/occupied
//!   tag lives in the never-zero generation) plus a 16-byte heap entry;
//!   "armed" is `seq != NOT_ARMED`, and "detached" is a bit in a side bitmap.
//! * **A pass fires only what was due when it started.** Due entries are
//!   collected first; a callback that re-arms a timer (even into the past)
//!   pushes a new entry for the next pass, so a pass always ends. A pass cut
//!   short by a panic puts the due entries it did not reach back.
//! * **Missed ticks fold** as the kernel folds them: a periodic timer found
//!   `k` periods late fires once with `ticks = k + 1` and is pushed to its
//!   next deadline on its original grid.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;

use slab::Slab;

use crate::Error;

/// Dead heap entries tolerated before a compaction is considered.
pub const COMPACT_MIN: usize = 1024;

/// `Timer::seq` of a timer with no live heap entry. `take_seq` never hands it out.
const NOT_ARMED: u32 = u32::MAX;

/// What an arm means for the heap: an absolute deadline and a period (0 for
/// a one-shot), both in nanoseconds on the heap's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) deadline: u64,
    pub(crate) period_ns: u64,
}

/// One shared timer: 48 bytes plus what its callback captures.
pub(crate) struct Timer<C> {
    /// The current deadline, while armed.
    deadline: u64,
    /// 0 for a one-shot.
    period_ns: u64,
    /// Applied at every arm (see the `leeway` module).
    leeway_ns: u64,
    /// The `seq` of this timer's live heap entry, or [`NOT_ARMED`].
    seq: u32,
    /// Distinguishes successive occupants of one slot, for handles. Never
    /// zero, so the slab can keep its vacant/occupied tag in this niche.
    generation: NonZeroU32,
    /// `None` while the callback runs.
    callback: Option<C>,
}

/// A heap entry: 16 bytes, ordered by deadline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: u64,
    key: u32,
    seq: u32,
}

/// A timer fired by a pass: its slot, and the expirations to report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fired {
    pub(crate) key: u32,
    pub(crate) generation: u32,
    pub(crate) ticks: u64,
}

pub(crate) struct Heap<C> {
    timers: Slab<Timer<C>>,
    heap: BinaryHeap<Reverse<Entry>>,
    /// Timers that are armed: each has exactly one live heap entry (or one
    /// in the due list during a pass).
    armed: usize,
    next_seq: u32,
    /// One bit per slab key: set for a detached timer.
    detached: Vec<u64>,
    /// The due entries of the pass in progress; reused, so a warm pass
    /// allocates nothing.
    due: Vec<Entry>,
    next_generation: u32,
}

impl<C> Default for Heap<C> {
    fn default() -> Self {
        Heap {
            timers: Slab::new(),
            heap: BinaryHeap::new(),
            armed: 0,
            next_seq: 0,
            detached: Vec::new(),
            due: Vec::new(),
            next_generation: 1,
        }
    }
}

impl<C> Heap<C> {
    /// Heap entries, dead ones included.
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Whether slot `key` still holds the timer of `generation`.
    pub(crate) fn is_current(&self, key: u32, generation: u32) -> bool {
        self.timers.get(key as usize).is_some_and(|t| t.generation.get() == generation)
    }

    /// Refuse an insert the slab could not key with a `u32`, before anything
    /// changes.
    pub(crate) fn check_room(&self) -> Result<(), Error> {
        u32::try_from(self.timers.vacant_key())
            .map(drop)
            .map_err(|_| Error::Os(rustix::io::Errno::NOSPC))
    }

    /// Add a timer, armed per `schedule`. Infallible once
    /// [`check_room`](Self::check_room) passed. Returns its key and generation.
    pub(crate) fn insert(&mut self, schedule: Schedule, leeway_ns: u64, callback: C) -> (u32, u32) {
        let generation = NonZeroU32::new(self.next_generation).unwrap_or(NonZeroU32::MIN);
        self.next_generation = generation.get().checked_add(1).unwrap_or(1);
        let seq = self.take_seq();
        let Schedule { deadline, period_ns } = schedule;
        let timer =
            Timer { deadline, period_ns, leeway_ns, seq, generation, callback: Some(callback) };
        let key = self.timers.insert(timer) as u32; // check_room: the key fits
        self.heap.push(Reverse(Entry { deadline, key, seq }));
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

    /// Re-arm timer `key` per `schedule`; its old deadline, if any, goes dead.
    pub(crate) fn set(&mut self, key: u32, schedule: Schedule) {
        let seq = self.take_seq();
        let Some(t) = self.timers.get_mut(key as usize) else { return };
        if t.seq == NOT_ARMED {
            self.armed += 1;
        }
        (t.seq, t.deadline, t.period_ns) = (seq, schedule.deadline, schedule.period_ns);
        self.heap.push(Reverse(Entry { deadline: schedule.deadline, key, seq }));
        self.maybe_compact();
    }

    /// Disarm timer `key`. Returns whether it was armed.
    pub(crate) fn cancel(&mut self, key: u32) -> bool {
        let Some(t) = self.timers.get_mut(key as usize) else { return false };
        let was_armed = t.seq != NOT_ARMED;
        if was_armed {
            t.seq = NOT_ARMED;
            self.armed -= 1;
            self.maybe_compact();
        }
        was_armed
    }

    /// The current schedule of timer `key`, if it is armed.
    pub(crate) fn schedule(&self, key: u32) -> Option<Schedule> {
        let t = self.timers.get(key as usize).filter(|t| t.seq != NOT_ARMED)?;
        Some(Schedule { deadline: t.deadline, period_ns: t.period_ns })
    }

    /// Timer `key`'s leeway, in nanoseconds.
    pub(crate) fn leeway(&self, key: u32) -> u64 {
        self.timers.get(key as usize).map_or(0, |t| t.leeway_ns)
    }

    pub(crate) fn set_leeway(&mut self, key: u32, leeway_ns: u64) {
        if let Some(t) = self.timers.get_mut(key as usize) {
            t.leeway_ns = leeway_ns;
        }
    }

    /// Remove timer `key`, returning its callback (to be dropped outside
    /// any borrow of the reactor) and whether it was detached.
    pub(crate) fn remove(&mut self, key: u32) -> Option<(Option<C>, bool)> {
        let t = self.timers.try_remove(key as usize)?;
        if t.seq != NOT_ARMED {
            self.armed -= 1;
            self.maybe_compact();
        }
        let detached = self.is_detached(key);
        if detached {
            self.detached[key as usize / 64] &= !(1 << (key % 64));
        }
        Some((t.callback, detached))
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
            self.heap.retain(|Reverse(e)| is_live(timers, e));
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
                self.due.push(top);
            }
        }
        self.due.len()
    }

    /// Put the due entries from `from` on back in the heap: a pass cut short
    /// by a panicking callback leaves them for the next pass.
    pub(crate) fn requeue_due(&mut self, from: usize) {
        for e in self.due.drain(from.min(self.due.len())..) {
            self.heap.push(Reverse(e));
        }
    }

    /// Fire the `i`-th due entry of this pass, unless an earlier callback of
    /// the pass re-armed, cancelled or removed its timer. A periodic timer
    /// is pushed to its next deadline before its callback runs, so the
    /// callback may re-arm it.
    pub(crate) fn fire(&mut self, i: usize, now: u64) -> Option<Fired> {
        let e = *self.due.get(i)?;
        let t = self.timers.get_mut(e.key as usize).filter(|t| t.seq == e.seq)?;
        let late = now.saturating_sub(e.deadline);
        let ticks = match late.checked_div(t.period_ns) {
            None => {
                // A one-shot (period 0): fired, now disarmed.
                t.seq = NOT_ARMED;
                self.armed -= 1;
                1
            }
            Some(missed) => {
                let ticks = 1 + missed;
                let next = e.deadline.saturating_add(ticks.saturating_mul(t.period_ns));
                t.deadline = next;
                self.heap.push(Reverse(Entry { deadline: next, key: e.key, seq: e.seq }));
                ticks
            }
        };
        Some(Fired { key: e.key, generation: t.generation.get(), ticks })
    }

    /// Where timer `key` of `generation` keeps its callback.
    pub(crate) fn callback(&mut self, key: u32, generation: u32) -> Option<&mut Option<C>> {
        let t = self.timers.get_mut(key as usize)?;
        (t.generation.get() == generation).then_some(&mut t.callback)
    }
}

fn is_live<C>(timers: &Slab<Timer<C>>, e: &Entry) -> bool {
    timers.get(e.key as usize).is_some_and(|t| t.seq == e.seq && t.deadline == e.deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(h: &mut Heap<()>, deadline: u64, period_ns: u64) -> u32 {
        h.insert(Schedule { deadline, period_ns }, 0, ()).0
    }

    #[test]
    fn entry_sizes_stay_within_the_64_byte_budget() {
        assert_eq!(size_of::<Entry>(), 16);
        assert!(
            size_of::<Timer<Box<dyn FnMut()>>>() <= 48,
            "{}",
            size_of::<Timer<Box<dyn FnMut()>>>()
        );
        // The slab's entry is this enum; its tag fits in the generation's niche.
        #[allow(dead_code)]
        enum SlabEntry<T> {
            Vacant(usize),
            Occupied(T),
        }
        assert_eq!(
            size_of::<SlabEntry<Timer<Box<dyn FnMut()>>>>(),
            size_of::<Timer<Box<dyn FnMut()>>>(),
            "the slab's tag lives in the generation's niche"
        );
    }

    #[test]
    fn periodic_fire_folds_missed_ticks_on_the_original_grid() {
        let mut h = Heap::default();
        let key = add(&mut h, 1_100, 100);
        assert_eq!(h.collect_due(1_450), 1);
        let fired = h.fire(0, 1_450).unwrap();
        assert_eq!((fired.key, fired.ticks), (key, 4)); // 1100, 1200, 1300, 1400
        assert_eq!(h.earliest(), Some(1_500));
    }

    #[test]
    fn cancel_is_lazy_and_compaction_bounds_dead_entries() {
        let mut h = Heap::default();
        let keep = add(&mut h, 1_000_000_000, 0);
        for _ in 0..10 * COMPACT_MIN {
            let k = add(&mut h, 2_000_000_000, 0);
            h.remove(k);
        }
        assert!(h.heap_len() <= 2 * COMPACT_MIN + 2, "heap grew to {}", h.heap_len());
        assert_eq!(h.earliest(), Some(1_000_000_000));
        assert!(h.cancel(keep));
        assert_eq!(h.earliest(), None);
        assert_eq!(h.heap_len(), h.dead(), "only dead entries remain, all counted");
    }

    #[test]
    fn a_timer_re_armed_during_a_pass_waits_for_the_next_pass() {
        let mut h = Heap::default();
        let a = add(&mut h, 10, 0);
        assert_eq!(h.collect_due(20), 1);
        assert!(h.fire(0, 20).is_some());
        h.set(a, Schedule { deadline: 1, period_ns: 0 }); // into the past
        assert_eq!(h.earliest(), Some(1), "pushed for the next pass, not fired in this one");
    }

    #[test]
    fn a_pass_cut_short_requeues_what_it_did_not_fire() {
        let mut h = Heap::default();
        let a = add(&mut h, 1, 0);
        let b = add(&mut h, 2, 0);
        assert_eq!(h.collect_due(10), 2);
        assert_eq!(h.fire(0, 10).unwrap().key, a);
        h.requeue_due(1); // the callback of `a` panicked: `b` must not be lost
        assert_eq!(h.earliest(), Some(2));
        assert_eq!(h.collect_due(10), 1);
        assert_eq!(h.fire(0, 10).map(|f| f.key), Some(b));
    }

    #[test]
    fn a_stale_entry_with_a_reused_seq_is_still_dead() {
        let mut h = Heap::default();
        let a = add(&mut h, 100, 0);
        h.next_seq = 0; // as if 2^32 arms later the counter came round
        h.set(a, Schedule { deadline: 500, period_ns: 0 });
        assert_eq!(h.earliest(), Some(500), "the entry at 100 has the same seq but is dead");
    }
}
