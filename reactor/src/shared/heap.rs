//! The heap of one shared clock: a slab of timers and binary heaps of
//! their deadlines, with lazy deletion. Pure data: no syscall, no clock
//! reading, no callback call happens here.
//!
//! # Coalescing from the heap
//!
//! A timer with no leeway has one entry, in `heap`, at its deadline. A
//! timer with a leeway `L` has two: one in `lazy` at its deadline (when it
//! may fire) and one in `latest` at the end of its window, deadline + `L`
//! (when it must have fired). A periodic timer's window is at most half its
//! period ([`window`]): waiting for a window's end never folds one of the
//! timer's own ticks into the next. The clock wakes at [`wake_at`](Heap::wake_at), the earliest of
//! the precise deadlines and the `latest` instants, and a pass fires every
//! timer whose deadline has passed, from `heap` and `lazy` both. So a wake-up
//! due for one timer serves every lazy timer whose window has opened, and
//! lazy timers wake the loop only when the first of their windows closes:
//! never early, never scheduled past a window's end (the wake-up itself
//! takes its usual few microseconds), and for any period (sd-event's
//! accuracy, libdispatch's leeway). Timers with no leeway pay nothing for it.
//!
//! # Ground rules
//!
//! * **Deadlines** are nanoseconds on the clock, absolute. A timer's
//!   current deadline is kept in its entry too; a heap entry is live only
//!   while its `seq` and its deadline (in `latest`: deadline + leeway) are
//!   both the timer's current ones.
//! * **Lazy deletion.** Every arm takes a fresh `seq`; cancelling or
//!   re-arming a timer leaves its old heap entry in place, and that entry
//!   is skipped when it surfaces (even if the slab slot now holds another
//!   timer). Dead entries are counted as all entries minus live ones, so the count
//!   cannot drift. When they outnumber live ones (and exceed
//!   [`COMPACT_MIN`]) the heaps are rebuilt without them: memory stays within
//!   about twice the live count, amortised O(1) per cancel. A `seq` that
//!   wrapped onto a dead entry's still finds a different deadline, and an
//!   entry whose deadline matches too is due exactly when the live one is.
//! * **64 bytes a timer.** A 48-byte slab entry (the slab's vacant/occupied
//!   tag lives in the never-zero generation) plus a 16-byte heap entry (a
//!   second one for a timer with a leeway); "armed" is `seq != NOT_ARMED`,
//!   and "detached" is a bit in a side bitmap.
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
    /// How late it may fire: 0 puts it in `heap`, more in `lazy` and
    /// `latest` (see "Coalescing from the heap").
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
    /// The deadlines of timers with no leeway.
    heap: BinaryHeap<Reverse<Entry>>,
    /// The deadlines of timers with a leeway: when each may fire.
    lazy: BinaryHeap<Reverse<Entry>>,
    /// Their deadline + leeway: when each must have fired.
    latest: BinaryHeap<Reverse<Entry>>,
    /// Live entries over the three heaps: one per armed timer, two for an
    /// armed timer with a leeway (one may sit in the due list during a pass).
    live: usize,
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
            lazy: BinaryHeap::new(),
            latest: BinaryHeap::new(),
            live: 0,
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
        self.heap.len() + self.lazy.len() + self.latest.len()
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
        self.push(Entry { deadline, key, seq }, leeway_ns, period_ns);
        (key, generation.get())
    }

    /// Push the live entries of an arm: `e` at the deadline, and for a
    /// timer with a leeway the end of its window too.
    fn push(&mut self, e: Entry, leeway_ns: u64, period_ns: u64) {
        if leeway_ns == 0 {
            self.heap.push(Reverse(e));
            self.live += 1;
        } else {
            self.lazy.push(Reverse(e));
            let end = e.deadline.saturating_add(window(leeway_ns, period_ns));
            self.latest.push(Reverse(Entry { deadline: end, ..e }));
            self.live += 2;
        }
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = match seq.wrapping_add(1) {
            NOT_ARMED => 0,
            next => next,
        };
        seq
    }

    /// Re-arm timer `key` per `schedule`; its old entries, if any, go dead.
    pub(crate) fn set(&mut self, key: u32, schedule: Schedule) {
        let seq = self.take_seq();
        let Some(t) = self.timers.get_mut(key as usize) else { return };
        if t.seq != NOT_ARMED {
            self.live -= entries(t.leeway_ns);
        }
        (t.seq, t.deadline, t.period_ns) = (seq, schedule.deadline, schedule.period_ns);
        let leeway_ns = t.leeway_ns;
        self.push(Entry { deadline: schedule.deadline, key, seq }, leeway_ns, schedule.period_ns);
        self.maybe_compact();
    }

    /// Disarm timer `key`. Returns whether it was armed.
    pub(crate) fn cancel(&mut self, key: u32) -> bool {
        let Some(t) = self.timers.get_mut(key as usize) else { return false };
        let was_armed = t.seq != NOT_ARMED;
        if was_armed {
            t.seq = NOT_ARMED;
            self.live -= entries(t.leeway_ns);
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

    /// Give timer `key` a leeway. An armed timer keeps its deadline; its
    /// entries move to the heaps of the new leeway.
    pub(crate) fn set_leeway(&mut self, key: u32, leeway_ns: u64) {
        let Some(t) = self.timers.get_mut(key as usize) else { return };
        let old = std::mem::replace(&mut t.leeway_ns, leeway_ns);
        if t.seq != NOT_ARMED {
            // Its entries go dead; `set` pushes new ones where the new
            // leeway puts them.
            let schedule = Schedule { deadline: t.deadline, period_ns: t.period_ns };
            t.seq = NOT_ARMED;
            self.live -= entries(old);
            self.set(key, schedule);
        }
    }

    /// Remove timer `key`, returning its callback (to be dropped outside
    /// any borrow of the reactor) and whether it was detached.
    pub(crate) fn remove(&mut self, key: u32) -> Option<(Option<C>, bool)> {
        let t = self.timers.try_remove(key as usize)?;
        if t.seq != NOT_ARMED {
            self.live -= entries(t.leeway_ns);
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
        self.heap_len().saturating_sub(self.live)
    }

    /// Rebuild the heaps without dead entries once they outnumber live ones.
    fn maybe_compact(&mut self) {
        let dead = self.dead();
        if dead > COMPACT_MIN && dead > self.live {
            let timers = &self.timers;
            self.heap.retain(|Reverse(e)| is_live(timers, e));
            self.lazy.retain(|Reverse(e)| is_live(timers, e));
            self.latest.retain(|Reverse(e)| is_live_latest(timers, e));
        }
    }

    /// When the clock must wake: the earliest live deadline of a timer with
    /// no leeway, or deadline + leeway of one with a leeway, whichever
    /// comes first. Dead entries are dropped from the tops on the way.
    pub(crate) fn wake_at(&mut self) -> Option<u64> {
        let timers = &self.timers;
        let precise = top(&mut self.heap, |e| is_live(timers, e));
        let latest = top(&mut self.latest, |e| is_live_latest(timers, e));
        match (precise, latest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Start a pass: move every live entry due at `now` (its deadline
    /// passed, leeway or not) to the due list, in deadline order. Returns
    /// how many there are.
    pub(crate) fn collect_due(&mut self, now: u64) -> usize {
        self.due.clear();
        if self.lazy.is_empty() {
            // No timer has a leeway: one heap, as it was before leeways.
            while let Some(&Reverse(top)) = self.heap.peek() {
                if top.deadline > now {
                    break;
                }
                self.heap.pop();
                if is_live(&self.timers, &top) {
                    self.due.push(top);
                }
            }
            return self.due.len();
        }
        loop {
            let a = self.heap.peek().map(|Reverse(e)| e.deadline);
            let b = self.lazy.peek().map(|Reverse(e)| e.deadline);
            let from = match (a, b) {
                (Some(a), Some(b)) if a.min(b) <= now => {
                    if a <= b {
                        &mut self.heap
                    } else {
                        &mut self.lazy
                    }
                }
                (Some(a), None) if a <= now => &mut self.heap,
                (None, Some(b)) if b <= now => &mut self.lazy,
                _ => break,
            };
            let Some(Reverse(e)) = from.pop() else { break };
            if is_live(&self.timers, &e) {
                self.due.push(e);
            }
        }
        self.due.len()
    }

    /// Put the due entries from `from` on back in their heaps: a pass cut
    /// short by a panicking callback leaves them for the next pass.
    pub(crate) fn requeue_due(&mut self, from: usize) {
        for e in self.due.drain(from.min(self.due.len())..) {
            let lazy = self.timers.get(e.key as usize).is_some_and(|t| t.leeway_ns > 0);
            if lazy { &mut self.lazy } else { &mut self.heap }.push(Reverse(e));
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
        let generation = t.generation.get();
        let (leeway_ns, period_ns) = (t.leeway_ns, t.period_ns);
        let ticks = match late.checked_div(t.period_ns) {
            None => {
                // A one-shot (period 0): fired, now disarmed.
                t.seq = NOT_ARMED;
                self.live -= entries(leeway_ns);
                1
            }
            Some(missed) => {
                let ticks = 1 + missed;
                let next = e.deadline.saturating_add(ticks.saturating_mul(t.period_ns));
                t.deadline = next;
                // The entries of the fired deadline are gone or dead now.
                self.live -= entries(leeway_ns);
                self.push(Entry { deadline: next, key: e.key, seq: e.seq }, leeway_ns, period_ns);
                ticks
            }
        };
        Some(Fired { key: e.key, generation, ticks })
    }

    /// Where timer `key` of `generation` keeps its callback.
    pub(crate) fn callback(&mut self, key: u32, generation: u32) -> Option<&mut Option<C>> {
        let t = self.timers.get_mut(key as usize)?;
        (t.generation.get() == generation).then_some(&mut t.callback)
    }
}

/// How long after its deadline a timer may wait: its leeway, but for a
/// periodic timer at most half its period, so that waiting never folds one
/// of its ticks into the next.
pub(crate) fn window(leeway_ns: u64, period_ns: u64) -> u64 {
    if period_ns == 0 { leeway_ns } else { leeway_ns.min(period_ns / 2) }
}

/// Live entries of one arm: one, or two with a leeway.
fn entries(leeway_ns: u64) -> usize {
    if leeway_ns == 0 { 1 } else { 2 }
}

fn is_live<C>(timers: &Slab<Timer<C>>, e: &Entry) -> bool {
    timers.get(e.key as usize).is_some_and(|t| t.seq == e.seq && t.deadline == e.deadline)
}

/// An entry of `latest` is at the end of its timer's window.
fn is_live_latest<C>(timers: &Slab<Timer<C>>, e: &Entry) -> bool {
    timers.get(e.key as usize).is_some_and(|t| {
        t.seq == e.seq
            && t.leeway_ns > 0
            && t.deadline.saturating_add(window(t.leeway_ns, t.period_ns)) == e.deadline
    })
}

/// The top of `heap` once the dead entries above the first live one are
/// dropped.
fn top(heap: &mut BinaryHeap<Reverse<Entry>>, live: impl Fn(&Entry) -> bool) -> Option<u64> {
    while let Some(Reverse(e)) = heap.peek() {
        if live(e) {
            return Some(e.deadline);
        }
        heap.pop();
    }
    None
}

#[cfg(test)]
mod tests;
