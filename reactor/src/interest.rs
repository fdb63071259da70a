//! What an I/O source waits for, and what it was told.

use core::fmt;
use core::ops::BitOr;

use rustix::event::epoll::EventFlags;

/// The readiness an I/O source asks epoll to report.
///
/// Combine with `|`. Level-triggered unless [`Interest::EDGE`] is included:
/// level-triggered sources are reported on every turn while ready;
/// edge-triggered ones only when readiness changes, so their callback must
/// drain the fd (read or write until `EAGAIN`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(EventFlags);

impl Interest {
    /// Readable, or a peer that closed (a read returns 0).
    #[doc(alias = "EPOLLIN")]
    pub const READABLE: Interest = Interest(EventFlags::IN);
    /// Writable.
    #[doc(alias = "EPOLLOUT")]
    pub const WRITABLE: Interest = Interest(EventFlags::OUT);
    /// The peer shut down its writing half (`SHUT_WR`, or a close).
    #[doc(alias = "EPOLLRDHUP")]
    pub const RDHUP: Interest = Interest(EventFlags::RDHUP);
    /// Edge-triggered instead of level-triggered.
    #[doc(alias = "EPOLLET")]
    pub const EDGE: Interest = Interest(EventFlags::ET);
    /// When several epoll instances watch one file (say, worker threads
    /// each with a `dup` of one listening socket), wake one or more of them
    /// instead of all. Only at registration: the kernel refuses to
    /// [`modify`](crate::Io::modify) such a source (`EINVAL`), and the
    /// registration then stays as it was.
    #[doc(alias = "EPOLLEXCLUSIVE")]
    pub const EXCLUSIVE: Interest = Interest(EventFlags::EXCLUSIVE);

    /// The epoll flags this interest registers.
    pub(crate) const fn flags(self) -> EventFlags {
        self.0
    }

    /// The `epoll_event.events` bits this interest registers
    /// (`EPOLLIN = 0x1`, `EPOLLOUT = 0x4`, ...), as `/proc/PID/fdinfo` shows them.
    pub const fn bits(self) -> u32 {
        self.0.bits()
    }

    /// `self | other`, usable in constants.
    pub const fn union(self, other: Interest) -> Interest {
        Interest(self.0.union(other.0))
    }

    /// Whether every flag of `other` is in `self`.
    pub const fn contains(self, other: Interest) -> bool {
        self.0.contains(other.0)
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interest({:?})", self.0)
    }
}

/// The C names, as strace prints them: `EPOLLIN|EPOLLOUT|EPOLLET`.
impl fmt::Display for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (EventFlags::IN, "EPOLLIN"),
            (EventFlags::OUT, "EPOLLOUT"),
            (EventFlags::RDHUP, "EPOLLRDHUP"),
            (EventFlags::ET, "EPOLLET"),
            (EventFlags::EXCLUSIVE, "EPOLLEXCLUSIVE"),
        ];
        let mut sep = "";
        for (_, name) in names.iter().filter(|(flag, _)| self.0.contains(*flag)) {
            write!(f, "{sep}{name}")?;
            sep = "|";
        }
        if sep.is_empty() {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// The readiness epoll reported for an I/O source.
///
/// Hang-up and error are always reported, whatever the interest. Readiness
/// can be spurious: treat it as a hint and let `EAGAIN` have the last word.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Readiness(EventFlags);

impl Readiness {
    /// From the flags of an epoll event.
    pub(crate) const fn from_flags(flags: EventFlags) -> Readiness {
        Readiness(flags)
    }

    /// The `epoll_event.events` bits epoll reported.
    pub const fn bits(self) -> u32 {
        self.0.bits()
    }

    /// `EPOLLIN`: a read will not block (it may return 0 at end of stream).
    pub const fn is_readable(self) -> bool {
        self.0.contains(EventFlags::IN)
    }

    /// `EPOLLOUT`: a write will not block.
    pub const fn is_writable(self) -> bool {
        self.0.contains(EventFlags::OUT)
    }

    /// `EPOLLRDHUP`: the peer will send nothing more.
    pub const fn is_read_closed(self) -> bool {
        self.0.contains(EventFlags::RDHUP)
    }

    /// `EPOLLHUP`: both directions are closed (or the peer reset).
    pub const fn is_hangup(self) -> bool {
        self.0.contains(EventFlags::HUP)
    }

    /// `EPOLLERR`: an error is pending on the fd (`SO_ERROR` says which).
    pub const fn is_error(self) -> bool {
        self.0.contains(EventFlags::ERR)
    }

    /// Any of RDHUP, HUP or ERR: the usual "the peer is gone" test.
    pub const fn is_closed(self) -> bool {
        self.0.intersects(EventFlags::RDHUP.union(EventFlags::HUP).union(EventFlags::ERR))
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Readiness({:?})", self.0)
    }
}
