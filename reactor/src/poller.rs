//! The thin epoll layer. All OS readiness code lives in this file.
//!
//! # What the rest of the crate relies on
//!
//! * **Tokens, not pointers.** Each registration carries a [`Token`] in
//!   `epoll_event.data`; the reactor maps it back to a slab entry and checks
//!   its generation, so an event can never reach a source that was dropped
//!   after `epoll_wait` returned it.
//! * **Spurious events.** epoll may report readiness that is gone by the time
//!   the callback runs (another callback consumed it, a timer was re-armed).
//!   Every consumer treats readiness as a hint: a timerfd read of `0`
//!   expirations or a socket read of `EAGAIN` is normal.
//! * **Draining.** Level-triggered sources are reported again next turn while
//!   still ready; edge-triggered ones are not, so their owner must read or
//!   write until `EAGAIN`.
//! * **One syscall per turn.** [`Poller::wait`] is one `epoll_wait` into a
//!   buffer allocated once; `EINTR` is retried with the time that remains.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, CreateFlags, Event, EventData};
use rustix::io::Errno;
use rustix::time::Timespec;

use crate::{Interest, Readiness, Token};

/// An epoll instance ([epoll(7)]).
///
/// [epoll(7)]: https://man7.org/linux/man-pages/man7/epoll.7.html
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    /// A new epoll instance, close-on-exec.
    #[doc(alias = "epoll_create1")]
    pub(crate) fn new() -> Result<Poller, Errno> {
        Ok(Poller { epoll: epoll::create(CreateFlags::CLOEXEC)? })
    }

    /// Start watching `fd` for `flags`, reporting `token` (`EPOLL_CTL_ADD`).
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_ADD")]
    pub(crate) fn add(
        &self,
        fd: BorrowedFd<'_>,
        token: Token,
        interest: Interest,
    ) -> Result<(), Errno> {
        let data = EventData::new_u64(token.as_u64());
        again(|| epoll::add(&self.epoll, fd, data, interest.flags()))
    }

    /// Change what `fd` is watched for (`EPOLL_CTL_MOD`).
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_MOD")]
    pub(crate) fn modify(
        &self,
        fd: BorrowedFd<'_>,
        token: Token,
        interest: Interest,
    ) -> Result<(), Errno> {
        let data = EventData::new_u64(token.as_u64());
        again(|| epoll::modify(&self.epoll, fd, data, interest.flags()))
    }

    /// Stop watching `fd` (`EPOLL_CTL_DEL`).
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_DEL")]
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        again(|| epoll::delete(&self.epoll, fd))
    }

    /// Wait for events, at most `timeout` (`None`: forever), and put them in
    /// `events`, replacing what it held. Returns how many arrived; `0` means
    /// the timeout passed.
    ///
    /// `epoll_wait` counts timeouts in whole milliseconds, rounded up here.
    /// A signal (`EINTR`) restarts the wait with the time that remains.
    #[doc(alias = "epoll_wait", alias = "epoll_pwait")]
    pub(crate) fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        // The clock is read only for a timeout that could be interrupted
        // and need its remainder: not for `None` (block) or zero (poll).
        let start = match timeout {
            Some(t) if !t.is_zero() => Some(Instant::now()),
            _ => None,
        };
        events.buf.clear();
        let ts = timeout.map(timespec);
        match epoll::wait(&self.epoll, spare_capacity(&mut events.buf), ts.as_ref()) {
            Err(Errno::INTR) => self.wait_after_signal(events, timeout, start),
            result => result,
        }
    }

    /// [`wait`](Self::wait) after an `EINTR`: wait again, for the time that
    /// remains of `timeout`, which started at `start` (`None`: blocking or
    /// polling, nothing to recompute). Out of line: signals are rare.
    #[cold]
    #[inline(never)]
    fn wait_after_signal(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        start: Option<Instant>,
    ) -> Result<usize, Errno> {
        // `Some(None)`: a timeout too far away to overflow Instant; keep it.
        let deadline = start.zip(timeout).map(|(start, t)| start.checked_add(t));
        loop {
            let left = match deadline {
                Some(Some(deadline)) => Some(deadline.saturating_duration_since(Instant::now())),
                _ => timeout,
            };
            events.buf.clear();
            let ts = left.map(timespec);
            match epoll::wait(&self.epoll, spare_capacity(&mut events.buf), ts.as_ref()) {
                Err(Errno::INTR) => continue,
                result => return result,
            }
        }
    }
}

/// `call`, retried at once while it fails with `EINTR` (which `epoll_ctl`
/// never returns on its own; a signal handler or a tracer's injection can).
fn again(mut call: impl FnMut() -> Result<(), Errno>) -> Result<(), Errno> {
    loop {
        match call() {
            Err(Errno::INTR) => continue,
            result => return result,
        }
    }
}

/// A timeout as the `timespec` `epoll_pwait2` takes (rustix falls back to
/// `epoll_pwait`'s milliseconds, rounded up, when that is exact enough).
fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: d.subsec_nanos().into() }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// The buffer `epoll_wait` fills: allocated once, reused every turn.
pub(crate) struct Events {
    buf: Vec<Event>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Events {
    /// Room for `capacity` events per wait (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events { buf: Vec::with_capacity(capacity.max(1)) }
    }

    /// Number of events from the last wait.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The `i`-th event of the last wait.
    pub(crate) fn get(&self, i: usize) -> Option<(Token, Readiness)> {
        self.buf.get(i).map(|e| {
            // Copy out of the packed struct before use.
            let (data, flags) = (e.data, e.flags);
            (Token::from_u64(data.u64()), Readiness::from_flags(flags))
        })
    }

    /// The events of the last wait, in the order the kernel gave them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Token, Readiness)> + '_ {
        self.buf.iter().map(|e| {
            // Copy out of the packed struct before use.
            let (data, flags) = (e.data, e.flags);
            (Token::from_u64(data.u64()), Readiness::from_flags(flags))
        })
    }
}
