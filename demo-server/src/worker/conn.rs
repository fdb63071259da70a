//! One client connection: its socket and buffers, its state, and its end.
//!
//! # The state machine
//!
//! ```text
//!             admit
//!               |
//!               v
//!   +---> Reading { Header | Idle deadline } --- deadline: 408 (header) / close (idle)
//!   |           |  a request answered, kept alive      |
//!   +-----------+                                      |
//!               |  a stream route                      v
//!               v                          Closing { linger } --- flushed, or linger: close
//!           Streaming  --- client gone, too slow: close
//!               |  shutdown: a last event
//!               v
//!          Closing { linger }
//! ```
//!
//! Every state but `Streaming` holds the timer that ends it, so a
//! connection without a deadline cannot be written down; a stream ends by
//! its own rules (its client goes, or falls `--max-buffered` behind).
//! Leaving a state drops what it held (a deadline, a fixed heartbeat), and
//! dropping a handle cancels its source: there is no flag to forget.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use reactor::{Expiration, Interest, Io, Reactor, Timer};
use rustix::io::Errno;
use rustix::net::{SendFlags, send};

use super::{CLIENT, HOUSEKEEPING, LINGER, Worker, WorkerEvent, on};
use crate::http::{self, Status};
use crate::metrics::Fault;
use crate::sse;
use crate::wire::Route;

/// What a reading connection waits for, and what happens if it does not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// A request head is arriving: `--header-timeout`, then 408.
    Header,
    /// Between keep-alive requests: `--idle-timeout`, then a quiet close.
    Idle,
}

/// An open event stream.
pub(super) struct Stream {
    pub(super) route: Route,
    /// The `id:` of the last heartbeat sent.
    pub(super) seq: u64,
    /// A `/stream/fixed` heartbeat timer: owned here, so leaving this state
    /// drops it. `None` for leaky (detached on purpose) and stats streams.
    pub(super) _timer: Option<Timer>,
    /// A leaky stream's id, which its detached timer carries.
    pub(super) leak: Option<u64>,
    /// A leaky stream's timerfd (dedicated mode), for `/debug/fds`.
    pub(super) leak_fd: Option<i32>,
}

pub(super) enum State {
    Reading {
        wait: Wait,
        _deadline: Timer,
    },
    Streaming(Stream),
    /// Output is still queued: closed once it is flushed, or when `linger` fires.
    Closing {
        _linger: Timer,
    },
}

pub(super) struct Conn {
    pub(super) sock: Rc<OwnedFd>,
    /// The epoll registration; dropping it deregisters (and, with the last
    /// `Rc`, closes) the socket.
    io: Io<'static>,
    /// Bytes of request heads not yet parsed.
    pub(super) inbuf: Vec<u8>,
    /// Bytes the socket would not take yet.
    pub(super) out: Vec<u8>,
    /// The interest registered with epoll now.
    interest: Interest,
    /// Complete requests wait in `inbuf`, beyond this turn's budget: the
    /// socket is watched for WRITABLE (not READABLE) until they are served.
    pub(super) backlog: bool,
    /// Admitted past the limits for monitoring: no streams.
    pub(super) reserved: bool,
    pub(super) state: State,
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

/// Write as much of `bytes` as the socket takes: how much it took.
fn write_some(sock: &OwnedFd, bytes: &[u8]) -> Result<usize, Gone> {
    let mut done = 0;
    while done < bytes.len() {
        match send(sock, &bytes[done..], SendFlags::NOSIGNAL) {
            Ok(n) => done += n,
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => continue,
            Err(_) => return Err(Gone::Peer),
        }
    }
    Ok(done)
}

impl Conn {
    pub(super) fn new(sock: Rc<OwnedFd>, io: Io<'static>, reserved: bool, deadline: Timer) -> Conn {
        Conn {
            sock,
            io,
            inbuf: Vec::new(),
            out: Vec::new(),
            interest: CLIENT,
            backlog: false,
            reserved,
            state: State::Reading { wait: Wait::Header, _deadline: deadline },
        }
    }

    /// The stream, if this connection is one.
    pub(super) fn stream(&mut self) -> Option<&mut Stream> {
        match &mut self.state {
            State::Streaming(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming(_))
    }

    pub(super) fn is_reading(&self) -> bool {
        matches!(self.state, State::Reading { .. })
    }

    /// Whether this is the leaky stream `leak`.
    pub(super) fn is_leak(&self, leak: u64) -> bool {
        matches!(&self.state, State::Streaming(s) if s.leak == Some(leak))
    }

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
        let done = write_some(&self.sock, bytes)?;
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
        let done = write_some(&self.sock, &self.out)?;
        self.out.drain(..done);
        if self.out.is_empty() {
            self.out = Vec::new(); // give the memory back: most streams never queue
        }
        if self.out.len() > max_buffered { Err(Gone::TooSlow) } else { Ok(()) }
    }
}

impl Worker {
    /// A one-shot housekeeping timer that ends connection `key` after `after`.
    pub(super) fn deadline(
        &self,
        r: &Reactor<Worker>,
        key: usize,
        after: Duration,
    ) -> Result<Timer, reactor::Error> {
        r.add_timer(HOUSEKEEPING, Expiration::Once(after), move |ctx, _| {
            on(ctx, WorkerEvent::Deadline { key })
        })
    }

    /// Wait for the next request (or the rest of this one) with a fresh
    /// deadline of kind `wait`. No timer, no connection: it is closed.
    pub(super) fn read_next(&mut self, r: &Reactor<Worker>, key: usize, wait: Wait) {
        let after = match wait {
            Wait::Header => self.cfg.header_timeout,
            Wait::Idle => self.cfg.idle_timeout,
        };
        match self.deadline(r, key, after) {
            Ok(timer) => self.conns[key].state = State::Reading { wait, _deadline: timer },
            Err(e) => {
                self.fault(Fault::Deadline, e);
                self.close(key);
            }
        }
    }

    /// The connection will take no more requests: close it once what is
    /// queued is out, or after [`LINGER`] at the latest.
    pub(super) fn finish(&mut self, r: &Reactor<Worker>, key: usize) {
        if self.conns[key].out.is_empty() {
            return self.close(key);
        }
        match self.deadline(r, key, LINGER) {
            Ok(linger) => self.conns[key].state = State::Closing { _linger: linger },
            Err(e) => {
                // No timer to end it later: end it now.
                self.fault(Fault::Deadline, e);
                self.close(key);
            }
        }
    }

    /// Send `bytes` on connection `key`; a client that is gone or too slow
    /// is closed. Returns whether the connection is still open.
    pub(super) fn send(&mut self, key: usize, bytes: &[u8]) -> bool {
        let max = self.cfg.max_buffered;
        if self.conns[key].send(bytes, max).is_err() {
            self.close(key);
            return false;
        }
        true
    }

    /// After handling an event: close a closing connection whose output is
    /// out, else match the epoll interest to queued output and requests.
    pub(super) fn settle(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if matches!(conn.state, State::Closing { .. }) && conn.out.is_empty() {
            return self.close(key);
        }
        // A backlog of pipelined requests is served one budget per turn,
        // when the socket is writable (at once, unless the client is not
        // reading its answers); meanwhile reading more of them can wait.
        let mut interest = if conn.backlog { Interest::RDHUP } else { CLIENT };
        if !conn.out.is_empty() || conn.backlog {
            interest = interest | Interest::WRITABLE;
        }
        if interest != conn.interest {
            match conn.io.modify(interest) {
                Ok(()) => conn.interest = interest,
                Err(e) => {
                    self.fault(Fault::Modify, e);
                    self.close(key);
                }
            }
        }
    }

    /// Connection `key`'s deadline passed.
    pub(super) fn deadline_passed(&mut self, r: &Reactor<Worker>, key: usize) {
        let Some(conn) = self.conns.get(key) else { return };
        match conn.state {
            State::Reading { wait: Wait::Header, .. } => {
                let mut out = Vec::new();
                http::error_response(&mut out, Status::RequestTimeout, false, false);
                self.metrics.response(Status::RequestTimeout);
                if self.send(key, &out) {
                    self.finish(r, key);
                    self.settle(key);
                }
            }
            // Quiet: whatever is still queued gets the linger to go out.
            State::Reading { wait: Wait::Idle, .. } => {
                self.finish(r, key);
                self.settle(key);
            }
            State::Closing { .. } => self.close(key),
            State::Streaming(_) => {} // streams hold no deadline
        }
    }

    /// Remove a connection and everything it owns: its registration, its
    /// socket, its deadline, its fixed heartbeat timer. A leaky stream's
    /// timer is not its to drop: it becomes an orphan.
    pub(super) fn close(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else { return };
        self.metrics.connections.fetch_sub(1, Relaxed);
        if let Some(stream) = conn.stream() {
            self.metrics.stream_closed(stream.route, stream.leak.is_some());
            if let Some(fd) = stream.leak_fd {
                self.metrics.leaks.orphaned(fd);
            }
            if stream.route == Route::Stats {
                self.stats_subscribers.retain(|&k| k != key);
            }
        }
        let reserved = conn.reserved;
        drop(conn); // its fd first, so that the monitoring spare can have it
        if reserved {
            self.listener.release_reserved();
        }
    }

    /// Shutdown: end every stream with a last event that asks the client to
    /// reconnect soon (`retry:` [`sse::SHUTDOWN_RETRY_MS`]), and keep
    /// accepting: a stream request now gets 204, which tells EventSource to
    /// stop reconnecting for good. Idle keep-alive connections may ask once
    /// more. Returns whether any stream was ended (then clients will be back).
    pub(super) fn begin_drain(&mut self, r: &Reactor<Worker>) -> bool {
        self.draining = true;
        let mut last = Vec::new();
        sse::shutdown(&mut last);
        let streams: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.is_streaming()).map(|(k, _)| k).collect();
        for &key in &streams {
            if self.send(key, &last) {
                self.finish(r, key);
                self.settle(key);
            }
        }
        !streams.is_empty()
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
        // A connection needs its registration and its deadline: any reactor's.
        let r = reactor::Reactor::new().unwrap();
        let io = r.add_io(sock.clone(), CLIENT, |_, _| {}).unwrap();
        let far = Expiration::Once(Duration::from_secs(3600));
        let deadline = r.add_timer(HOUSEKEEPING, far, |_, _| {}).unwrap();
        let mut conn = Conn::new(sock, io, false, deadline);
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
