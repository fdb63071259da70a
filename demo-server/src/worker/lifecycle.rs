//! The end of connections: matching epoll interest to queued output,
//! closing, and the shutdown drain.

use std::sync::atomic::Ordering::Relaxed;

use reactor::{Interest, Reactor};

use super::{CLIENT, Worker};
use crate::conn::Deadline;
use crate::http::Route;
use crate::sse;

impl Worker {
    /// After handling an event: close if done, else match the epoll interest
    /// to whether output or requests are queued. A connection closing with output still
    /// queued gets a linger deadline, so it always has a timer that ends it.
    pub(super) fn settle(&mut self, reactor: &Reactor, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if conn.closing && conn.out.is_empty() {
            return self.close(key);
        }
        if conn.closing && !matches!(conn.deadline, Some((Deadline::Linger, _))) {
            let generation = conn.generation;
            match self.deadline(reactor, key, generation, Deadline::Linger) {
                Some(d) => self.conns[key].deadline = Some(d),
                // No timer to end it later: end it now.
                None => return self.close(key),
            }
        }
        let conn = &mut self.conns[key];
        // A backlog of pipelined requests is served one budget per turn,
        // when the socket is writable (at once, unless the client is not
        // reading its answers); meanwhile reading more of them can wait.
        let mut interest = if conn.backlog { Interest::RDHUP } else { CLIENT };
        if !conn.out.is_empty() || conn.backlog {
            interest = interest | Interest::WRITABLE;
        }
        if interest != conn.interest {
            conn.interest = interest;
            if let Some(io) = &conn.io {
                if io.modify(interest).is_err() {
                    self.close(key);
                }
            }
        }
    }

    /// Remove a connection and everything it owns: its registration, its
    /// socket, its deadline, its fixed heartbeat timer. A leaky stream's
    /// timer is not its to drop: it becomes an orphan.
    pub(super) fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.try_remove(key) else { return };
        self.metrics.connections.fetch_sub(1, Relaxed);
        if conn.reserved {
            drop(conn); // its fd first, so that the monitoring spare can have it
            self.release_reserved();
            return;
        }
        if let Some(stream) = &conn.stream {
            self.metrics.stream_closed(stream.route, stream.route == Route::Leaky);
        }
        drop(conn);
    }

    /// Shutdown: end every stream with a last event that asks the client to
    /// reconnect soon (`retry:` [`sse::SHUTDOWN_RETRY_MS`]), and keep
    /// accepting: a stream request now gets 204, which tells EventSource to
    /// stop reconnecting for good. Idle keep-alive connections may ask once
    /// more. Returns whether any stream was ended (then clients will be back).
    pub(super) fn begin_drain(&mut self, reactor: &Reactor) -> bool {
        self.draining = true;
        let max = self.cfg.max_buffered;
        let mut streams = false;
        let mut last = Vec::new();
        sse::shutdown(&mut last);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.stream.is_some() {
                streams = true;
                let _ = conn.send(&last, max);
                conn.closing = true;
            }
            self.settle(reactor, key);
        }
        streams
    }

    /// The end of a shutdown: nobody is let in any more.
    pub(super) fn stop_listening(&mut self) {
        self.listener_io = None;
        self.listener = None;
        self.accept_paused = None;
    }
}
