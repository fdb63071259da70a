//! Waking a blocked reactor from another thread, through an eventfd.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;

use crate::Error;

pub(crate) struct WakerInner {
    pub(crate) fd: OwnedFd,
    pub(crate) stop: AtomicBool,
}

impl WakerInner {
    pub(crate) fn new() -> Result<WakerInner, Error> {
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(WakerInner { fd, stop: AtomicBool::new(false) })
    }

    /// Clear the eventfd counter after it woke the loop. On error it stays
    /// set, so the loop wakes again and retries.
    pub(crate) fn drain(&self) -> Result<(), Errno> {
        drain(&self.fd)
    }

    /// Add 1 to the eventfd counter: the reactor's next (or current) wait
    /// returns.
    pub(crate) fn wake(&self) -> Result<(), Error> {
        Ok(wake(&self.fd)?)
    }

    pub(crate) fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::AcqRel)
    }
}

/// Read (reset) an eventfd counter. `EAGAIN`: it was clear already.
pub(crate) fn drain(fd: &OwnedFd) -> Result<(), Errno> {
    let mut buf = [0u8; 8];
    loop {
        return match rustix::io::read(fd, &mut buf) {
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => Err(e),
        };
    }
}

/// Add 1 to an eventfd counter, so that a wait on it returns. `EAGAIN`
/// means the counter is at its maximum: a wake is pending anyway, so it
/// counts as done; `EINTR` is retried.
pub(crate) fn wake(fd: &OwnedFd) -> Result<(), Errno> {
    loop {
        return match rustix::io::write(fd, &1u64.to_ne_bytes()) {
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => Err(e),
        };
    }
}

/// Wakes a reactor blocked in `epoll_wait`, from any thread.
///
/// `Send + Sync + Clone`; get one from [`Reactor::waker`](crate::Reactor::waker).
/// It writes to an eventfd the reactor watches, so [`wake`](Self::wake)
/// costs one `write` and wakes the loop exactly once however often it is
/// called before the loop runs.
///
/// The eventfd is shared by the reactor and every `Waker` clone, and closes
/// when the last of them is dropped. Waking a reactor that is gone is a
/// harmless write nobody reads.
#[derive(Clone)]
pub struct Waker {
    pub(crate) inner: Arc<WakerInner>,
}

impl Waker {
    /// Make the reactor's current or next `epoll_wait` return. `Ok` means
    /// the wake happened (or one was already pending); an error means it
    /// did not, and is never reported as success.
    #[doc(alias = "eventfd_write")]
    pub fn wake(&self) -> Result<(), Error> {
        self.inner.wake()
    }

    /// Ask the reactor to return from [`run`](crate::Reactor::run), and wake it.
    pub fn stop(&self) -> Result<(), Error> {
        self.inner.stop.store(true, Ordering::Release);
        self.wake()
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}
