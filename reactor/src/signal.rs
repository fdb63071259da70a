//! Signals as events: a signalfd source, for graceful shutdown on SIGINT or
//! SIGTERM.
//!
//! signalfd only sees signals that are blocked; otherwise the default action
//! (or a handler) takes them first. So adding a signal source blocks its
//! signals in the calling thread. Blocking is shared by count: each thread
//! keeps, per signal, how many live sources watch it, and a signal returns
//! to the thread's original state only when the last of them is dropped (a
//! signal that was blocked before any source wanted it stays blocked).
//! Threads inherit the mask of the thread that spawns them, so add signal
//! sources before spawning threads, or every thread that does not block the
//! signal is a place it can be delivered instead.
//!
//! **Two sources watching one signal.** A delivered signal is pending once,
//! and the first signalfd read takes it. So exactly one source receives each
//! delivery: the one dispatched first in that turn, in the order
//! `epoll_wait` returned their fds, which is not specified. The other sees a
//! spurious wake-up and nothing else. Use one source per signal when it
//! matters which callback runs.
//!
//! libc, not rustix: rustix wraps neither `signalfd(2)` nor
//! `pthread_sigmask(3)`/`sigset_t` (outside its unstable runtime module).

use std::cell::RefCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::io::Errno;

use crate::Error;

/// A signal, by its Linux number: what [`Reactor::add_signals`](crate::Reactor::add_signals)
/// watches and [`SignalInfo`] reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// `SIGHUP` (1): the terminal hung up; by convention, "reload".
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT` (2): Ctrl-C.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT` (3): Ctrl-\\.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGUSR1` (10).
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2` (12).
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGPIPE` (13): a write to a pipe or socket nobody reads.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGALRM` (14).
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM` (15): the polite "stop" of `kill` and supervisors.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGCHLD` (17): a child process changed state.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGWINCH` (28): the terminal was resized.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);

    /// The signal numbered `signo`, if it is one signalfd can watch: 1 to
    /// 64, but not `SIGKILL` or `SIGSTOP`, which cannot be blocked.
    pub const fn from_raw(signo: i32) -> Option<Signal> {
        match signo {
            libc::SIGKILL | libc::SIGSTOP => None,
            1..=64 => Some(Signal(signo)),
            _ => None,
        }
    }

    /// Its number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The C name: `SIGINT`, `SIGTERM`, ... (`SIG34` and up: real-time signals).
impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Signal::HUP, "SIGHUP"),
            (Signal::INT, "SIGINT"),
            (Signal::QUIT, "SIGQUIT"),
            (Signal::USR1, "SIGUSR1"),
            (Signal::USR2, "SIGUSR2"),
            (Signal::PIPE, "SIGPIPE"),
            (Signal::ALRM, "SIGALRM"),
            (Signal::TERM, "SIGTERM"),
            (Signal::CHLD, "SIGCHLD"),
            (Signal::WINCH, "SIGWINCH"),
        ];
        match names.iter().find(|(s, _)| s == self) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "SIG{}", self.0),
        }
    }
}

/// One delivered signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalInfo {
    /// Which signal.
    pub signal: Signal,
    /// The sending process (`ssi_pid`), 0 from the kernel.
    pub pid: u32,
    /// The sender's real user id (`ssi_uid`).
    pub uid: u32,
}

/// An open signalfd and the signals it claimed.
pub(crate) struct SignalFd {
    fd: OwnedFd,
    /// The signals this source watches: one claim each in [`CLAIMS`].
    set: libc::sigset_t,
}

/// Linux signal numbers run from 1 to 64.
const SIGNALS: std::ops::RangeInclusive<i32> = 1..=64;

/// Per thread, since the signal mask is per thread: how many live sources
/// watch each signal, and which signals a source had to block (bit `signo`).
struct Claims {
    count: [u32; 65],
    blocked_here: u128,
}

thread_local! {
    static CLAIMS: RefCell<Claims> = const { RefCell::new(Claims { count: [0; 65], blocked_here: 0 }) };
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

fn is_member(set: &libc::sigset_t, signo: i32) -> bool {
    // SAFETY: `set` is initialised; an invalid number gives -1, not UB.
    unsafe { libc::sigismember(set, signo) == 1 }
}

fn members(set: &libc::sigset_t) -> impl Iterator<Item = i32> + '_ {
    SIGNALS.filter(move |&signo| is_member(set, signo))
}

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

impl SignalFd {
    /// Block `signals` in this thread and open a signalfd for them. On
    /// error, the mask is as it was and no claim is taken.
    pub(crate) fn open(signals: &[Signal]) -> Result<SignalFd, Error> {
        let mut set = empty_set();
        for s in signals {
            // SAFETY: `set` is initialised; an invalid number gives EINVAL, not UB.
            if unsafe { libc::sigaddset(&mut set, s.as_raw()) } != 0 {
                return Err(Error::Os(Errno::INVAL));
            }
        }
        let mut old = empty_set();
        // SAFETY: both sets are initialised and live across the call.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if rc != 0 {
            return Err(Error::Os(Errno::from_raw_os_error(rc)));
        }
        // Blocked by this call: in `set`, not in `old`.
        let mut newly = empty_set();
        for signo in members(&set).filter(|&s| !is_member(&old, s)) {
            // SAFETY: `newly` is initialised; `signo` is a member of a valid set.
            unsafe { libc::sigaddset(&mut newly, signo) };
        }
        // SAFETY: -1 asks for a new fd; `set` is initialised; flags are valid.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            let errno = last_errno();
            unblock(&newly);
            return Err(Error::Os(errno));
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        CLAIMS.with_borrow_mut(|claims| {
            for signo in members(&set) {
                claims.count[signo as usize] += 1;
            }
            for signo in members(&newly) {
                claims.blocked_here |= 1 << signo;
            }
        });
        Ok(SignalFd { fd, set })
    }

    /// The next pending signal, or `None` when there is none. `EINTR` is
    /// retried at once, in a loop.
    pub(crate) fn read(&self) -> Result<Option<SignalInfo>, Errno> {
        // struct signalfd_siginfo: 128 bytes; ssi_signo at 0, ssi_pid at 12, ssi_uid at 16.
        let mut buf = [0u8; 128];
        let read = loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Err(Errno::INTR) => continue,
                other => break other,
            }
        };
        match read {
            Ok(128) => {
                let field =
                    |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]));
                // The kernel only reports signals this fd asked for, all valid.
                let signal = i32::try_from(field(0)).ok().and_then(Signal::from_raw);
                let signal = signal.ok_or(Errno::INVAL)?;
                Ok(Some(SignalInfo { signal, pid: field(12), uid: field(16) }))
            }
            // A signalfd read is one whole record or an error.
            Ok(_) => Err(Errno::IO),
            Err(Errno::AGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn unblock(set: &libc::sigset_t) {
    // pthread_sigmask fails only for an invalid `how`, and SIG_UNBLOCK is
    // valid: there is no error to handle.
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, set, std::ptr::null_mut()) };
}

impl Drop for SignalFd {
    /// Give up this source's claims; unblock each signal whose last claim
    /// this was, if a source blocked it.
    fn drop(&mut self) {
        let mut release = empty_set();
        // `try_with`: during thread exit the claims may already be gone, and
        // the mask with the thread, so there is nothing left to release.
        let _gone_at_thread_exit = CLAIMS.try_with(|claims| {
            let mut claims = claims.borrow_mut();
            for signo in members(&self.set) {
                let count = &mut claims.count[signo as usize];
                *count = count.saturating_sub(1);
                if *count == 0 && claims.blocked_here & (1 << signo) != 0 {
                    claims.blocked_here &= !(1 << signo);
                    // SAFETY: `release` is initialised; `signo` is valid.
                    unsafe { libc::sigaddset(&mut release, signo) };
                }
            }
        });
        unblock(&release);
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
