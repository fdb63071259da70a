//! Counters a reactor keeps about itself.
//!
//! They live in [`Counters`], cells outside the reactor's `RefCell`, so
//! [`Reactor::stats`](crate::Reactor::stats) reads the truth at any moment,
//! from a trace observer too, and bumping one in the hot path costs what a
//! plain field costs.

use std::cell::Cell;

/// A snapshot of a reactor's sources and counters, from
/// [`Reactor::stats`](crate::Reactor::stats).
///
/// Gauges (the `usize` fields) say what is live now; counters (the `u64`
/// fields) only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live timers in dedicated mode: one timerfd each.
    pub dedicated_timers: usize,
    /// Live timers in shared mode: entries in their clock's heap.
    pub shared_timers: usize,
    /// Live I/O sources (a channel's receiving end is one).
    pub io_sources: usize,
    /// Live signal sources.
    pub signal_sources: usize,
    /// 1 once the reactor's eventfd exists: made by the first
    /// [`Reactor::waker`](crate::Reactor::waker), by a
    /// [`defer`](crate::Reactor::defer) from outside a turn, or by a panic
    /// that left events for the next turn.
    pub wakers: usize,
    /// Timers (either mode) kept alive by `detach()`, with no handle left.
    pub detached_timers: usize,
    /// I/O sources kept alive by `detach()`.
    pub detached_io: usize,
    /// Timerfds this reactor holds: one per dedicated timer, plus one per
    /// clock on which a shared timer was ever added.
    pub timerfds_open: usize,
    /// Entries in the shared heaps, including cancelled ones not yet
    /// collected (deletion is lazy; see the `shared` module docs).
    pub shared_heap_entries: usize,
    /// Returns from `epoll_wait`, timeouts included.
    pub wakeups: u64,
    /// Events taken from `epoll_wait` and handed to a live source.
    pub events_dispatched: u64,
    /// Events discarded because their source was dropped, or its slot reused,
    /// after `epoll_wait` returned them.
    pub stale_events: u64,
    /// Timer expirations delivered to callbacks, missed ticks included.
    pub timer_expirations: u64,
    /// System calls the loop made on its own behalf that failed and were
    /// retried (see [`Error::Retrying`](crate::Error::Retrying)): each
    /// failed attempt counts once.
    pub faults: u64,
}

/// Sum two reactors' stats, e.g. one per worker thread. Destructured field by
/// field, so a field added later cannot be forgotten here.
impl core::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        let Stats {
            dedicated_timers,
            shared_timers,
            io_sources,
            signal_sources,
            wakers,
            detached_timers,
            detached_io,
            timerfds_open,
            shared_heap_entries,
            wakeups,
            events_dispatched,
            stale_events,
            timer_expirations,
            faults,
        } = o;
        self.dedicated_timers += dedicated_timers;
        self.shared_timers += shared_timers;
        self.io_sources += io_sources;
        self.signal_sources += signal_sources;
        self.wakers += wakers;
        self.detached_timers += detached_timers;
        self.detached_io += detached_io;
        self.timerfds_open += timerfds_open;
        self.shared_heap_entries += shared_heap_entries;
        self.wakeups += wakeups;
        self.events_dispatched += events_dispatched;
        self.stale_events += stale_events;
        self.timer_expirations += timer_expirations;
        self.faults += faults;
    }
}

impl Stats {
    /// Timers of both modes.
    pub fn timers(&self) -> usize {
        self.dedicated_timers + self.shared_timers
    }

    /// Every live source, of every kind.
    pub fn sources(&self) -> usize {
        self.timers() + self.io_sources + self.signal_sources + self.wakers
    }
}

/// The live counters behind [`Stats`]: one cell per field.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) dedicated_timers: Cell<usize>,
    pub(crate) shared_timers: Cell<usize>,
    pub(crate) io_sources: Cell<usize>,
    pub(crate) signal_sources: Cell<usize>,
    pub(crate) wakers: Cell<usize>,
    pub(crate) detached_timers: Cell<usize>,
    pub(crate) detached_io: Cell<usize>,
    pub(crate) timerfds_open: Cell<usize>,
    pub(crate) shared_heap_entries: Cell<usize>,
    pub(crate) wakeups: Cell<u64>,
    pub(crate) events_dispatched: Cell<u64>,
    pub(crate) stale_events: Cell<u64>,
    pub(crate) timer_expirations: Cell<u64>,
    pub(crate) faults: Cell<u64>,
}

/// Add `n` to a counter.
#[inline]
pub(crate) fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Move a gauge by `delta` (+1 added, -1 removed).
#[inline]
pub(crate) fn gauge(c: &Cell<usize>, delta: isize) {
    c.set(c.get().wrapping_add_signed(delta));
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            dedicated_timers: self.dedicated_timers.get(),
            shared_timers: self.shared_timers.get(),
            io_sources: self.io_sources.get(),
            signal_sources: self.signal_sources.get(),
            wakers: self.wakers.get(),
            detached_timers: self.detached_timers.get(),
            detached_io: self.detached_io.get(),
            timerfds_open: self.timerfds_open.get(),
            shared_heap_entries: self.shared_heap_entries.get(),
            wakeups: self.wakeups.get(),
            events_dispatched: self.events_dispatched.get(),
            stale_events: self.stale_events.get(),
            timer_expirations: self.timer_expirations.get(),
            faults: self.faults.get(),
        }
    }
}
