//! The reactor's state: the poller, the slab of sources, the shared-timer
//! heap, counters. Everything here runs under one `RefCell` borrow, and
//! nothing here calls user code except the trace observer.
//!
//! # Ground rules
//!
//! * **No user callback runs while `Core` is borrowed.** Dispatch takes a
//!   callback out of its entry (`Option::take`), releases the borrow, calls
//!   it, and borrows again to put it back. So a callback may call any handle
//!   method, add sources, or drop its own handle.
//! * **Nothing user-owned is dropped while `Core` is borrowed.** Removing a
//!   source returns the entry ([`Removed`]); the caller drops it after the
//!   borrow ends, because a callback's captures may include handles whose
//!   `Drop` borrows `Core` again.
//! * **Generations.** A slab slot gets a new generation per occupant; tokens
//!   and handles carry it, and every lookup checks it. A stale event or a
//!   handle whose source removed itself finds a mismatch, never another
//!   source.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use rustix::event::epoll::EventFlags;
use slab::Slab;
use timerfd_sys::{Clock, ClockTime, Expiration, TimerFd};

use crate::context::{IoCallback, SignalCallback, TimerCallback};
use crate::poller::{Events, Poller};
use crate::shared::{SharedEntry, SharedTimers, nanos};
use crate::signal::SignalFd;
use crate::trace::{TraceEvent, Tracer};
use crate::waker::WakerInner;
use crate::{Error, Stats, Token};

/// Events fetched per `epoll_wait`.
pub(crate) const EVENTS_PER_TURN: usize = 1024;

/// Which source a handle or a callback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceId {
    Dedicated(Token),
    Shared { key: u32, generation: u32 },
    Io(Token),
    Signal(Token),
}

impl SourceId {
    pub(crate) fn timer(self) -> Result<SourceId, Error> {
        match self {
            SourceId::Dedicated(_) | SourceId::Shared { .. } => Ok(self),
            _ => Err(Error::NotATimer),
        }
    }
}

/// A registered fd the reactor may or may not own.
pub(crate) enum IoFd {
    /// Closed when the source is removed (whatever `Drop` of the box does).
    Owned(Box<dyn AsFd>),
    /// The caller's; a lifetime on the handle keeps it open while registered.
    Borrowed(RawFd),
}

pub(crate) enum Source {
    Timer {
        fd: TimerFd,
        callback: Option<TimerCallback>,
    },
    Io {
        fd: IoFd,
        callback: Option<IoCallback>,
    },
    /// Boxed: a `sigset_t` is 128 bytes, and every slab entry would pay for it.
    Signal {
        fd: Box<SignalFd>,
        callback: Option<SignalCallback>,
    },
    Waker,
    SharedClock,
}

impl Source {
    /// The fd a user source registered; `None` for the internal ones (waker,
    /// shared clock), which live as long as the reactor and no handle names.
    fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Source::Timer { fd, .. } => Some(fd.as_raw_fd()),
            Source::Io { fd, .. } => Some(fd.as_fd().as_raw_fd()),
            Source::Signal { fd, .. } => Some(fd.as_raw_fd()),
            Source::Waker | Source::SharedClock => None,
        }
    }
}

pub(crate) struct Entry {
    pub(crate) generation: u32,
    pub(crate) detached: bool,
    pub(crate) source: Source,
}

/// What a removal hands back, to be dropped once `Core` is released.
#[allow(dead_code)] // held only for its Drop
pub(crate) enum Removed {
    Slot(Entry),
    Shared(SharedEntry),
}

pub(crate) struct Core {
    pub(crate) poller: Poller,
    pub(crate) sources: Slab<Entry>,
    next_generation: u32,
    pub(crate) shared: SharedTimers,
    /// The one timerfd under all shared timers, created with the first one.
    shared_clock: Option<(TimerFd, Token)>,
    pub(crate) stats: Stats,
    pub(crate) tracer: Tracer,
    pub(crate) stop: bool,
    pub(crate) waker: Option<Arc<WakerInner>>,
    /// Taken out for the length of a turn, so callbacks can borrow `Core`.
    pub(crate) events: Option<Events>,
}

impl Core {
    pub(crate) fn new() -> Result<Core, Error> {
        Ok(Core {
            poller: Poller::new()?,
            sources: Slab::new(),
            next_generation: 0,
            shared: SharedTimers::default(),
            shared_clock: None,
            stats: Stats::default(),
            tracer: Tracer::from_env(),
            stop: false,
            waker: None,
            events: Some(Events::with_capacity(EVENTS_PER_TURN)),
        })
    }

    /// Put `source` in the slab and register `fd` with epoll under its token.
    /// On failure the source is dropped (closing what it owns).
    pub(crate) fn register(
        &mut self,
        source: Source,
        fd: RawFd,
        flags: EventFlags,
    ) -> Result<Token, Error> {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.sources.vacant_entry();
        let key = u32::try_from(slot.key()).map_err(|_| Error::Os(rustix::io::Errno::NOSPC))?;
        let token = Token::new(key, generation);
        // SAFETY: `fd` belongs to `source`, or for a borrowed fd is kept open by the handle's lifetime.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.add(borrowed, token, flags)?;
        self.tracer.emit(|| TraceEvent::EpollAdd { fd, token });
        slot.insert(Entry { generation, detached: false, source });
        Ok(token)
    }

    pub(crate) fn entry(&mut self, token: Token) -> Option<&mut Entry> {
        self.sources.get_mut(token.key()).filter(|e| e.generation == token.generation())
    }

    pub(crate) fn entry_ref(&self, token: Token) -> Option<&Entry> {
        self.sources.get(token.key()).filter(|e| e.generation == token.generation())
    }

    /// Change an I/O source's interest (`EPOLL_CTL_MOD`).
    pub(crate) fn modify_io(&self, token: Token, flags: EventFlags) -> Result<(), Error> {
        match self.entry_ref(token) {
            Some(Entry { source: Source::Io { fd, .. }, .. }) => {
                Ok(self.poller.modify(fd.as_fd(), token, flags)?)
            }
            _ => Err(Error::Gone),
        }
    }

    pub(crate) fn add_dedicated(
        &mut self,
        clock: Clock,
        exp: Expiration,
        callback: TimerCallback,
    ) -> Result<Token, Error> {
        exp.to_itimerspec()?; // refuse bad input before creating anything
        let fd = TimerFd::new(clock)?;
        let raw = fd.as_raw_fd();
        self.tracer.emit(|| TraceEvent::Create { fd: raw, clock });
        let armed = fd.set(exp);
        if armed.is_ok() {
            self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration: exp });
        }
        let registered = armed.map_err(Error::from).and_then(|()| {
            self.register(Source::Timer { fd, callback: Some(callback) }, raw, EventFlags::IN)
        });
        match registered {
            Ok(token) => {
                self.stats.dedicated_timers += 1;
                self.stats.timerfds_open += 1;
                Ok(token)
            }
            Err(e) => {
                self.tracer.emit(|| TraceEvent::Close { fd: raw });
                Err(e)
            }
        }
    }

    pub(crate) fn add_shared(
        &mut self,
        exp: Expiration,
        callback: TimerCallback,
    ) -> Result<(u32, u32), Error> {
        exp.to_itimerspec()?;
        if self.shared_clock.is_none() {
            let fd = TimerFd::new(Clock::Monotonic)?;
            let raw = fd.as_raw_fd();
            self.tracer.emit(|| TraceEvent::Create { fd: raw, clock: Clock::Monotonic });
            let token = self.register(Source::SharedClock, raw, EventFlags::IN)?;
            self.shared_clock = Some((fd, token));
            self.stats.timerfds_open += 1;
        }
        let now = nanos(Clock::Monotonic.now());
        let (key, generation, deadline_ns) = self.shared.insert(exp, now, callback)?;
        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns });
        self.sync_shared_clock()?;
        Ok((key, generation))
    }

    /// Arm (`Some`) or disarm (`None`) a timer of either mode.
    pub(crate) fn set_timer(&mut self, id: SourceId, exp: Option<Expiration>) -> Result<(), Error> {
        match id {
            SourceId::Dedicated(token) => {
                let Some(Entry { source: Source::Timer { fd, .. }, .. }) = self.entry(token) else {
                    return Err(Error::Gone);
                };
                let raw = fd.as_raw_fd();
                match exp {
                    Some(exp) => {
                        fd.set(exp)?;
                        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration: exp });
                    }
                    None => {
                        fd.disarm()?;
                        self.tracer.emit(|| TraceEvent::Disarm { fd: raw });
                    }
                }
                Ok(())
            }
            SourceId::Shared { key, generation } => {
                if self.shared.generation(key) != Some(generation) {
                    return Err(Error::Gone);
                }
                match exp {
                    Some(exp) => {
                        let deadline_ns =
                            self.shared.set(key, exp, nanos(Clock::Monotonic.now()))?;
                        self.tracer.emit(|| TraceEvent::HeapPush { timer: key, deadline_ns });
                        self.sync_shared_clock()
                    }
                    None => {
                        if self.shared.cancel(key) {
                            self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                        }
                        Ok(())
                    }
                }
            }
            SourceId::Io(_) | SourceId::Signal(_) => Err(Error::NotATimer),
        }
    }

    /// Point the shared timerfd at the earliest live deadline, if that is
    /// earlier than what it is armed for (see the `shared` module rules).
    pub(crate) fn sync_shared_clock(&mut self) -> Result<(), Error> {
        let Some(earliest) = self.shared.earliest() else { return Ok(()) };
        if self.shared.armed_for.is_some_and(|armed| armed <= earliest) {
            return Ok(());
        }
        let Some((fd, _)) = &self.shared_clock else { return Ok(()) };
        let at =
            ClockTime::new((earliest / 1_000_000_000) as i64, (earliest % 1_000_000_000) as u32)?;
        let expiration = Expiration::OnceAt(at);
        fd.set(expiration)?;
        let raw = fd.as_raw_fd();
        self.shared.armed_for = Some(earliest);
        self.tracer.emit(|| TraceEvent::Arm { fd: raw, expiration });
        Ok(())
    }

    /// Read the shared timerfd after it fired. It is a one-shot, so it is
    /// now disarmed.
    pub(crate) fn ack_shared_clock(&mut self) -> u64 {
        self.shared.armed_for = None;
        match &self.shared_clock {
            Some((fd, _)) => fd.read().unwrap_or(0),
            None => 0,
        }
    }

    pub(crate) fn shared_clock_fd(&self) -> Option<RawFd> {
        self.shared_clock.as_ref().map(|(fd, _)| fd.as_raw_fd())
    }

    /// Unregister and take out a source; the caller drops the result after
    /// releasing `Core`. `None` if it is already gone.
    pub(crate) fn remove(&mut self, id: SourceId) -> Option<Removed> {
        let token = match id {
            SourceId::Shared { key, generation } => {
                if self.shared.generation(key) != Some(generation) {
                    return None;
                }
                let (entry, detached) = self.shared.remove(key)?;
                if detached {
                    self.stats.detached_timers -= 1;
                }
                self.tracer.emit(|| TraceEvent::HeapCancel { timer: key });
                return Some(Removed::Shared(entry));
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => t,
        };
        let entry = self.entry_ref(token)?;
        let (raw, detached) = (entry.source.raw_fd()?, usize::from(entry.detached));
        let entry = self.sources.remove(token.key());
        match entry.source {
            Source::Timer { .. } => {
                self.stats.dedicated_timers -= 1;
                self.stats.timerfds_open -= 1;
                self.stats.detached_timers -= detached;
            }
            Source::Io { .. } => {
                self.stats.io_sources -= 1;
                self.stats.detached_io -= detached;
            }
            Source::Signal { .. } => self.stats.signal_sources -= 1,
            Source::Waker | Source::SharedClock => {} // raw_fd() turned these away above
        }
        // SAFETY: the fd is still open: the entry that owns (or borrows) it has not been dropped yet.
        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
        // ENOENT/EBADF here would mean the caller closed a borrowed fd early;
        // the registration is gone either way.
        let _ = self.poller.delete(borrowed);
        self.tracer.emit(|| TraceEvent::EpollDel { fd: raw });
        if matches!(entry.source, Source::Timer { .. }) {
            self.tracer.emit(|| TraceEvent::Close { fd: raw });
        }
        Some(Removed::Slot(entry))
    }

    /// Mark a source detached: it lives on with no handle until the reactor
    /// is dropped (or it removes itself).
    pub(crate) fn detach(&mut self, id: SourceId) {
        match id {
            SourceId::Shared { key, generation } => {
                if self.shared.generation(key) == Some(generation) && self.shared.set_detached(key)
                {
                    self.stats.detached_timers += 1;
                }
            }
            SourceId::Dedicated(t) | SourceId::Io(t) | SourceId::Signal(t) => {
                if let Some(e) = self.entry(t) {
                    e.detached = true;
                    match e.source {
                        Source::Timer { .. } => self.stats.detached_timers += 1,
                        Source::Io { .. } => self.stats.detached_io += 1,
                        _ => {}
                    }
                }
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            shared_timers: self.shared.len(),
            shared_heap_entries: self.shared.heap_len(),
            ..self.stats
        }
    }
}

impl Drop for Core {
    /// Closing the epoll fd drops every registration at once; what remains
    /// is closing the sources' own fds, which the slab's drop does. The trace
    /// still shows each timerfd close.
    fn drop(&mut self) {
        for (_, entry) in &self.sources {
            if let Source::Timer { fd, .. } = &entry.source {
                let raw = fd.as_raw_fd();
                self.tracer.emit(|| TraceEvent::Close { fd: raw });
            }
        }
        if let Some(raw) = self.shared_clock_fd() {
            self.tracer.emit(|| TraceEvent::Close { fd: raw });
        }
    }
}

impl AsFd for IoFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            IoFd::Owned(b) => b.as_fd(),
            // SAFETY: the handle's lifetime keeps the caller's fd open while registered.
            IoFd::Borrowed(raw) => unsafe { BorrowedFd::borrow_raw(*raw) },
        }
    }
}

#[cfg(test)]
mod tests {
    /// Dispatch touches one entry per event: keep them small. (A signalfd's
    /// 128-byte `sigset_t` once made every entry 168 bytes.)
    #[test]
    fn slab_entries_stay_small() {
        assert!(size_of::<super::Entry>() <= 48, "{}", size_of::<super::Entry>());
    }
}
