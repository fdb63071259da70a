//! Reading requests and answering them: the socket's readiness, the
//! request buffer, pipelining, and the routing of each request.

use reactor::{Context, Readiness};
use rustix::io::Errno;
use rustix::net::recv;

use super::{MAX_INBUF, READS_PER_EVENT, REQUESTS_PER_EVENT, Worker};
use crate::conn::{Deadline, reserve_bounded};
use crate::http::{self, Parsed, Request, Route, Status};

impl Worker {
    pub(super) fn on_conn(
        &mut self,
        ctx: &mut Context<'_>,
        key: usize,
        generation: u64,
        r: Readiness,
    ) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else { return };
        if r.is_error() {
            return self.close(key);
        }
        if r.is_writable() && conn.flush(max).is_err() {
            return self.close(key);
        }
        let mut eof = r.is_read_closed() || r.is_hangup();
        if r.is_readable() || eof {
            match self.read_in(key) {
                Ok(saw_eof) => eof |= saw_eof,
                Err(()) => return self.close(key),
            }
        }
        let streaming = self.conns[key].stream.is_some();
        if streaming && eof {
            // RDHUP, HUP or a read of 0: the client is gone. A fixed stream
            // drops its timer right here; a leaky one leaves it running.
            return self.close(key);
        }
        if !streaming {
            self.process_requests(ctx, key);
            if eof && !self.conns[key].backlog {
                // Answer what arrived, then close: the client sends no more.
                // (With a backlog, RDHUP comes again next turn.)
                self.conns[key].closing = true;
            }
        }
        self.settle(ctx.reactor(), key);
    }

    /// Read what the socket has. `Ok(true)` on end of stream, `Err` when the
    /// connection must close (reset, or a flood of unparsed bytes).
    fn read_in(&mut self, key: usize) -> Result<bool, ()> {
        let Worker { conns, scratch, .. } = self;
        let conn = &mut conns[key];
        for _ in 0..READS_PER_EVENT {
            match recv(&*conn.sock, &mut scratch[..], rustix::net::RecvFlags::empty()) {
                Ok((0, _)) => return Ok(true),
                Ok((n, _)) => {
                    // A streaming client has nothing to say; discard it.
                    if conn.stream.is_none() {
                        if !reserve_bounded(&mut conn.inbuf, n, MAX_INBUF) {
                            return Err(());
                        }
                        conn.inbuf.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(_) => return Err(()),
            }
        }
        Ok(false)
    }

    /// Answer the complete requests in the buffer, in order (pipelining),
    /// up to [`REQUESTS_PER_EVENT`] and only while the socket takes the
    /// answers; the rest are a backlog for a later turn.
    fn process_requests(&mut self, ctx: &mut Context<'_>, key: usize) {
        let max = self.cfg.max_buffered;
        self.conns[key].backlog = false;
        for served in 0.. {
            let conn = &mut self.conns[key];
            if conn.stream.is_some() || conn.closing {
                return;
            }
            // Serve no more while answers wait in the queue (the client is
            // not keeping up), nor past this turn's budget.
            if served == REQUESTS_PER_EVENT || !conn.out.is_empty() {
                conn.backlog = !conn.inbuf.is_empty();
                break;
            }
            match http::parse(&conn.inbuf) {
                Parsed::Partial => {
                    if !conn.inbuf.is_empty()
                        && matches!(conn.deadline, Some((Deadline::Idle, _)) | None)
                    {
                        let generation = conn.generation;
                        let d = self.deadline(ctx.reactor(), key, generation, Deadline::Header);
                        self.conns[key].deadline = d;
                    }
                    break;
                }
                Parsed::Request(req, used) => {
                    conn.inbuf.drain(..used);
                    conn.deadline = None; // the head is complete: cancel its deadline now
                    self.respond(ctx, key, req);
                }
                Parsed::Reject { status, close, head_only, consumed } => {
                    let mut out = Vec::new();
                    http::error_response(&mut out, status, !close, head_only);
                    self.metrics.response(status);
                    conn.deadline = None;
                    if close {
                        conn.closing = true;
                        conn.inbuf = Vec::new();
                    } else {
                        conn.inbuf.drain(..consumed);
                    }
                    if conn.send(&out, max).is_err() {
                        conn.closing = true;
                        conn.out.clear();
                    }
                }
            }
        }
        // Between requests on a keep-alive connection, or with a backlog
        // waiting for the client to read: wait, but not forever.
        let conn = &self.conns[key];
        if conn.stream.is_none()
            && !conn.closing
            && (conn.inbuf.is_empty() || conn.backlog)
            && conn.deadline.is_none()
        {
            let generation = conn.generation;
            let d = self.deadline(ctx.reactor(), key, generation, Deadline::Idle);
            self.conns[key].deadline = d;
        }
    }

    /// Leaky heartbeat timers: orphans, and live leaky streams (each one an
    /// orphan to be), over all workers.
    fn leaky_timers(&self) -> u64 {
        self.metrics.orphans(Route::Leaky) + self.metrics.active(Route::Leaky)
    }

    fn respond(&mut self, ctx: &mut Context<'_>, key: usize, req: Request) {
        let max = self.cfg.max_buffered;
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
                http::response(
                    &mut out,
                    Status::Ok,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                    keep_alive,
                    req.head_only,
                );
            }
            route if self.draining => {
                // 204 tells EventSource to stop reconnecting.
                let _ = route;
                status = Status::NoContent;
                keep_alive = false;
                out.extend_from_slice(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
            route if route.is_stream() && self.conns[key].reserved => {
                // A connection past the limits, kept for monitoring: no streams.
                status = Status::Unavailable;
                keep_alive = false;
                http::error_response(&mut out, status, false, req.head_only);
            }
            Route::Leaky if !self.cfg.leaky_route => {
                status = Status::NotFound;
                let body = b"404: /stream/leaky is turned off on this server (--no-leaky).\n";
                let ct = "text/plain; charset=utf-8";
                http::response(&mut out, status, ct, body, keep_alive, req.head_only);
            }
            Route::Leaky if self.leaky_timers() >= self.cfg.max_orphans => {
                // Every leaky stream leaves a timer behind for good: past the
                // cap, refuse rather than let anyone exhaust the server.
                status = Status::Unavailable;
                keep_alive = false;
                let body = format!(
                    "503: this server holds {} leaked heartbeat timers, its cap (--max-orphans {}); /stream/leaky is refused until it restarts. /stream/fixed still works.\n",
                    self.leaky_timers(),
                    self.cfg.max_orphans
                );
                let ct = "text/plain; charset=utf-8";
                http::response(&mut out, status, ct, body.as_bytes(), false, req.head_only);
            }
            route if req.head_only => {
                keep_alive = false;
                let _ = route;
                out.extend_from_slice(http::SSE_HEAD);
            }
            route => return self.start_stream(ctx, key, route, req.last_event_id),
        }
        self.metrics.response(status);
        let conn = &mut self.conns[key];
        if !keep_alive {
            conn.closing = true;
        }
        if conn.send(&out, max).is_err() {
            conn.closing = true;
            conn.out.clear();
        }
    }
}
