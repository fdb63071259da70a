//! Reading requests and answering them: the socket's readiness, the
//! request buffer, pipelining, and the routing of each request.

use reactor::{Reactor, Readiness};
use rustix::io::Errno;
use rustix::net::recv;

use super::conn::{State, Wait, reserve_bounded};
use super::{MAX_INBUF, READS_PER_EVENT, REQUESTS_PER_EVENT, Worker};
use crate::http::{self, Parsed, Request, Status};
use crate::wire::Route;

impl Worker {
    pub(super) fn on_conn(&mut self, r: &Reactor<Worker>, key: usize, readiness: Readiness) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conns.get_mut(key) else { return };
        if readiness.is_error() {
            return self.close(key);
        }
        if readiness.is_writable() && conn.flush(max).is_err() {
            return self.close(key);
        }
        let mut eof = readiness.is_read_closed() || readiness.is_hangup();
        if readiness.is_readable() || eof {
            match self.read_in(key) {
                Ok(saw_eof) => eof |= saw_eof,
                Err(()) => return self.close(key),
            }
        }
        if self.conns[key].is_streaming() {
            // RDHUP, HUP or a read of 0: the client is gone. A fixed stream
            // drops its timer right here; a leaky one leaves it running.
            return if eof { self.close(key) } else { self.settle(key) };
        }
        if self.conns[key].is_reading() && !self.process_requests(r, key) {
            return; // closed while answering
        }
        if eof && !self.conns[key].backlog && self.conns[key].is_reading() {
            // Answer what arrived, then close: the client sends no more.
            // (With a backlog, RDHUP comes again next turn.)
            self.finish(r, key);
        }
        self.settle(key);
    }

    /// Read what the socket has. `Ok(true)` on end of stream, `Err` when the
    /// connection must close (reset, or a flood of unparsed bytes).
    fn read_in(&mut self, key: usize) -> Result<bool, ()> {
        let Worker { conns, scratch, .. } = self;
        let conn = &mut conns[key];
        for _ in 0..READS_PER_EVENT {
            match recv(&*conn.sock, &mut scratch[..], rustix::net::RecvFlags::empty()) {
                Ok((0, _)) => return Ok(true),
                // Only a reading connection keeps what its client says.
                Ok((n, _)) if conn.is_reading() => {
                    if !reserve_bounded(&mut conn.inbuf, n, MAX_INBUF) {
                        return Err(());
                    }
                    conn.inbuf.extend_from_slice(&scratch[..n]);
                }
                Ok(_) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(_) => return Err(()),
            }
        }
        Ok(false)
    }

    /// Answer the complete requests in the buffer, in order (pipelining),
    /// up to [`REQUESTS_PER_EVENT`] and only while the socket takes the
    /// answers; the rest are a backlog for a later turn. Then wait for the
    /// next one with the right deadline. Returns false if the connection
    /// was closed meanwhile.
    fn process_requests(&mut self, r: &Reactor<Worker>, key: usize) -> bool {
        self.conns[key].backlog = false;
        let mut answered = false;
        for served in 0.. {
            let Some(conn) = self.conns.get_mut(key) else { return false };
            if !conn.is_reading() {
                return true; // streaming now, or closing
            }
            // Serve no more while answers wait in the queue (the client is
            // not keeping up), nor past this turn's budget.
            if served == REQUESTS_PER_EVENT || !conn.out.is_empty() {
                conn.backlog = !conn.inbuf.is_empty();
                break;
            }
            match http::parse(&conn.inbuf) {
                Parsed::Partial => break,
                Parsed::Request(req, used) => {
                    conn.inbuf.drain(..used);
                    answered = true;
                    self.respond(r, key, req);
                }
                Parsed::Reject { status, close, head_only, consumed } => {
                    let mut out = Vec::new();
                    http::error_response(&mut out, status, !close, head_only);
                    self.metrics.response(status);
                    match close {
                        true => conn.inbuf = Vec::new(),
                        false => drop(conn.inbuf.drain(..consumed)),
                    }
                    answered = true;
                    if !self.send(key, &out) {
                        return false;
                    }
                    if close {
                        self.finish(r, key);
                    }
                }
            }
        }
        let Some(conn) = self.conns.get(key) else { return false };
        let State::Reading { wait, .. } = conn.state else { return true };
        // A head under way must complete in time; between requests, or with
        // a backlog waiting for the client to read, wait, but not forever.
        let next = if conn.inbuf.is_empty() || conn.backlog { Wait::Idle } else { Wait::Header };
        if answered || next != wait {
            self.read_next(r, key, next);
        }
        self.conns.contains(key)
    }

    /// Leaky heartbeat timers: orphans, and live leaky streams (each one an
    /// orphan to be), over all workers.
    fn leaky_timers(&self) -> u64 {
        self.metrics.orphans(Route::Leaky) + self.metrics.active(Route::Leaky)
    }

    fn respond(&mut self, r: &Reactor<Worker>, key: usize, req: Request) {
        let mut out = Vec::new();
        let mut status = Status::Ok;
        let mut keep_alive = req.keep_alive && !self.draining;
        match req.route {
            _ if req.preflight => {
                status = Status::NoContent;
                http::preflight(&mut out, keep_alive);
            }
            Route::Dashboard => http::response(
                &mut out,
                Status::Ok,
                "text/html; charset=utf-8",
                crate::DASHBOARD.as_bytes(),
                keep_alive,
                req.head_only,
            ),
            Route::Metrics => {
                let body = self.metrics.render();
                let ct = "text/plain; version=0.0.4; charset=utf-8";
                http::response(&mut out, status, ct, body.as_bytes(), keep_alive, req.head_only);
            }
            Route::DebugFds if self.cfg.serves_debug_fds() => {
                // The process's own fd table: same-origin only, no CORS.
                let body = self.metrics.debug_report();
                let ct = "application/json";
                http::private_response(&mut out, ct, body.as_bytes(), keep_alive, req.head_only);
            }
            Route::DebugFds => {
                status = Status::NotFound;
                let body = b"404: /debug/fds shows this process's fd table, so it is served only on loopback; start the server with --debug-fds to serve it here.\n";
                let ct = "text/plain; charset=utf-8";
                http::response(&mut out, status, ct, body, keep_alive, req.head_only);
            }
            _ if self.draining => {
                // A stream route during a shutdown: 204 tells EventSource to
                // stop reconnecting.
                status = Status::NoContent;
                keep_alive = false;
                out.extend_from_slice(http::GONE_FOR_GOOD);
            }
            _ if self.conns[key].reserved => {
                // A connection past the limits, kept for monitoring: no streams.
                status = Status::Unavailable;
                keep_alive = false;
                let body = "503: the server is full; this connection is kept for /metrics. Try again in a second.\n";
                http::unavailable(&mut out, body, Some(1), req.head_only);
            }
            Route::Leaky if !self.cfg.leaky_route => {
                status = Status::NotFound;
                let body = b"404: /stream/leaky is turned off on this server (--no-leaky).\n";
                let ct = "text/plain; charset=utf-8";
                http::response(&mut out, status, ct, body, keep_alive, req.head_only);
            }
            Route::Leaky if self.leaky_timers() >= self.cfg.max_orphans => {
                // Every leaky stream leaves a timer behind for good: past the
                // cap, refuse rather than let anyone exhaust the server. It
                // lasts until a restart, so no Retry-After.
                status = Status::Unavailable;
                keep_alive = false;
                let body = format!(
                    "503: this server holds {} leaked heartbeat timers, its cap (--max-orphans {}); /stream/leaky is refused until it restarts. /stream/fixed still works.\n",
                    self.leaky_timers(),
                    self.cfg.max_orphans
                );
                http::unavailable(&mut out, &body, None, req.head_only);
            }
            _ if req.head_only => {
                keep_alive = false;
                out.extend_from_slice(http::SSE_HEAD);
            }
            route => return self.start_stream(r, key, route, req.last_event_id),
        }
        self.metrics.response(status);
        if self.send(key, &out) && !keep_alive {
            self.finish(r, key);
        }
    }
}
