//! One client connection: its socket, buffers, timers and stream state.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use reactor::{Interest, Io, Timer};
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
    /// A connection that is closing but still has output queued: closed
    /// when it fires, whether or not the client read it all.
    Linger,
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
    /// The interest registered with epoll now.
    pub(crate) interest: Interest,
    /// Complete requests wait in `inbuf`, beyond this turn's budget: the
    /// socket is watched for WRITABLE (not READABLE) until they are served.
    pub(crate) backlog: bool,
    pub(crate) deadline: Option<(Deadline, Timer)>,
    pub(crate) stream: Option<Stream>,
    /// Close once `out` is flushed.
    pub(crate) closing: bool,
    /// Admitted past the limits for monitoring: no streams.
    pub(crate) reserved: bool,
}

/// Why a write gave up on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// EPIPE, ECONNRESET or another write error: the client is gone.
    Peer,
    /// More than `--max-buffered` bytes queued: a reader too slow to keep up.
    TooSlow,
}

/// Make room in `buf` for `extra` more bytes without letting its capacity
/// pass `cap`: `false` (and `buf` untouched) when they do not fit.
///
/// `Vec` doubles its capacity as it grows, so a buffer allowed `cap` bytes
/// could hold a `2 * cap` allocation, of which the pages touched by the copy
/// stay resident. Here the capacity grows by doubling too, but is clamped
/// to `cap`: a buffer's memory is bounded by its limit, not twice that.
pub(crate) fn reserve_bounded(buf: &mut Vec<u8>, extra: usize, cap: usize) -> bool {
    let need = buf.len().saturating_add(extra);
    if need > cap {
        return false;
    }
    if need > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).max(need).max(512).min(cap);
        buf.reserve_exact(target - buf.len());
    }
    true
}

impl Conn {
    /// Send `bytes`, queueing what the socket will not take now. Writes use
    /// `MSG_NOSIGNAL`, so a vanished peer is an error here, never a SIGPIPE.
    /// The queue never holds (nor has capacity for) more than `max_buffered`
    /// bytes: past that the client is [`Gone::TooSlow`].
    pub(crate) fn send(&mut self, bytes: &[u8], max_buffered: usize) -> Result<(), Gone> {
        if !self.out.is_empty() {
            if !reserve_bounded(&mut self.out, bytes.len(), max_buffered) {
                return Err(Gone::TooSlow);
            }
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
            if !reserve_bounded(&mut self.out, bytes.len() - done, max_buffered) {
                return Err(Gone::TooSlow);
            }
            self.out.extend_from_slice(&bytes[done..]);
        }
        Ok(())
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
        if self.out.len() > max_buffered { Err(Gone::TooSlow) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_never_reads_costs_at_most_max_buffered() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let sock = Rc::new(OwnedFd::from(ours));
        let mut conn = Conn {
            generation: 0,
            sock,
            io: None,
            inbuf: Vec::new(),
            out: Vec::new(),
            interest: Interest::READABLE,
            backlog: false,
            deadline: None,
            stream: None,
            closing: false,
            reserved: false,
        };
        let max = 10_000;
        let event = [b'x'; 90]; // about one heartbeat
        let mut sent = 0;
        let gone = loop {
            match conn.send(&event, max) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(conn.out.capacity() <= max, "capacity {} > {max}", conn.out.capacity());
            assert!(sent < 1_000_000, "the socket never filled");
        };
        assert_eq!(gone, Gone::TooSlow);
        assert!(conn.out.len() + event.len() > max, "cut off early at {}", conn.out.len());
        assert!(conn.out.capacity() <= max);
    }

    #[test]
    fn reserve_bounded_clamps_and_refuses() {
        let mut buf = Vec::new();
        assert!(reserve_bounded(&mut buf, 100, 1000));
        buf.extend_from_slice(&[0; 100]);
        assert!(reserve_bounded(&mut buf, 800, 1000));
        buf.extend_from_slice(&[0; 800]);
        assert!(buf.capacity() <= 1000);
        assert!(!reserve_bounded(&mut buf, 101, 1000));
        assert_eq!(buf.len(), 900);
    }
}
