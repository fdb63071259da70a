//! Signals as events: a signalfd source, for graceful shutdown on SIGINT or
//! SIGTERM.
//!
//! signalfd only sees signals that are blocked; otherwise the default action
//! (or a handler) takes them first. So adding a signal source blocks its
//! signals in the calling thread, and dropping it unblocks the ones it
//! blocked. Threads inherit the mask of the thread that spawns them, so add
//! signal sources before spawning threads, or every thread that does not
//! block the signal is a place it can be delivered instead.
//!
//! libc, not rustix: rustix wraps neither `signalfd(2)` nor
//! `pthread_sigmask(3)`/`sigset_t` (outside its unstable runtime module).

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::process::Signal;

use crate::Error;

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

/// An open signalfd plus the mask change it made.
pub(crate) struct SignalFd {
    fd: OwnedFd,
    /// Signals this source blocked that were not blocked before.
    newly_blocked: libc::sigset_t,
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

impl SignalFd {
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
        let mut newly_blocked = empty_set();
        for s in signals {
            // SAFETY: `old` was filled by pthread_sigmask; `newly_blocked` is initialised.
            if unsafe { libc::sigismember(&old, s.as_raw()) } == 0 {
                // SAFETY: as above; the number was accepted by sigaddset.
                unsafe { libc::sigaddset(&mut newly_blocked, s.as_raw()) };
            }
        }
        // SAFETY: -1 asks for a new fd; `set` is initialised; flags are valid.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            let errno = last_errno();
            unblock(&newly_blocked);
            return Err(Error::Os(errno));
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(SignalFd { fd, newly_blocked })
    }

    /// The next pending signal, or `None` when there is none.
    pub(crate) fn read(&self) -> Result<Option<SignalInfo>, Error> {
        // struct signalfd_siginfo: 128 bytes; ssi_signo at 0, ssi_pid at 12, ssi_uid at 16.
        let mut buf = [0u8; 128];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(128) => {
                let field =
                    |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or([0; 4]));
                let signo = i32::try_from(field(0)).map_err(|_| Error::Os(Errno::INVAL))?;
                let signal = Signal::from_named_raw(signo).ok_or(Error::Os(Errno::INVAL))?;
                Ok(Some(SignalInfo { signal, pid: field(12), uid: field(16) }))
            }
            Ok(_) => Err(Error::Os(Errno::IO)),
            Err(Errno::AGAIN) => Ok(None),
            Err(Errno::INTR) => self.read(),
            Err(e) => Err(e.into()),
        }
    }
}

fn unblock(set: &libc::sigset_t) {
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, set, std::ptr::null_mut()) };
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        unblock(&self.newly_blocked);
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
