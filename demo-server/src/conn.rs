//! One client connection: its socket, buffers, timers and stream state.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use reactor::{Io, Timer};
use rustix::io::Errno;
use rustix::net::{SendFlags, send};

use crate::http::Route;

/// Which timer `deadline` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// The request head must be complete before it fires (408).
    Header,
    /// An idle keep-alive connection is closed when it fires.
    Idle,
}

/// An open event stream.
pub(crate) struct Stream {
    pub(crate) route: Route,
    /// The `id:` of the last heartbeat sent.
    pub(crate) seq: u64,
    /// The heartbeat timer of a `/stream/fixed` connection: owned here, so
    /// closing the connection drops it. `None` for leaky (detached) and stats.
    #[allow(dead_code)] // held for its Drop, which cancels the timer
    pub(crate) timer: Option<Timer>,
}

pub(crate) struct Conn {
    /// Distinguishes successive connections in one slab slot.
    pub(crate) generation: u64,
    pub(crate) sock: Rc<OwnedFd>,
    /// The epoll registration; dropping it deregisters (and, with the last
    /// `Rc`, closes) the socket.
    pub(crate) io: Option<Io<'static>>,
    /// Bytes of request heads not yet parsed.
    pub(crate) inbuf: Vec<u8>,
    /// Bytes the socket would not take yet.
    pub(crate) out: Vec<u8>,
    /// Whether WRITABLE is in the registered interest.
    pub(crate) want_write: bool,
    pub(crate) deadline: Option<(Deadline, Timer)>,
    pub(crate) stream: Option<Stream>,
    /// Close once `out` is flushed.
    pub(crate) closing: bool,
}

/// Why a write gave up on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// EPIPE, ECONNRESET or another write error: the client is gone.
    Peer,
    /// More than `--max-buffered` bytes queued: a reader too slow to keep up.
    TooSlow,
}

impl Conn {
    /// Send `bytes`, queueing what the socket will not take now. Writes use
    /// `MSG_NOSIGNAL`, so a vanished peer is an error here, never a SIGPIPE.
    pub(crate) fn send(&mut self, bytes: &[u8], max_buffered: usize) -> Result<(), Gone> {
        if !self.out.is_empty() {
            self.out.extend_from_slice(bytes);
            return self.flush(max_buffered);
        }
        let mut done = 0;
        while done < bytes.len() {
            match send(&*self.sock, &bytes[done..], SendFlags::NOSIGNAL) {
                Ok(n) => done += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => return Err(Gone::Peer),
            }
        }
        if done < bytes.len() {
            self.out.extend_from_slice(&bytes[done..]);
        }
        self.check_buffered(max_buffered)
    }

    /// Write out what is queued, as far as the socket takes it.
    pub(crate) fn flush(&mut self, max_buffered: usize) -> Result<(), Gone> {
        let mut done = 0;
        while done < self.out.len() {
            match send(&*self.sock, &self.out[done..], SendFlags::NOSIGNAL) {
                Ok(n) => done += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => return Err(Gone::Peer),
            }
        }
        self.out.drain(..done);
        if self.out.is_empty() {
            self.out = Vec::new(); // give the memory back: most streams never queue
        }
        self.check_buffered(max_buffered)
    }

    fn check_buffered(&self, max_buffered: usize) -> Result<(), Gone> {
        if self.out.len() > max_buffered { Err(Gone::TooSlow) } else { Ok(()) }
    }
}
