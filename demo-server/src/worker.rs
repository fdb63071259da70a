//! One reactor thread: its listener, its connections, and what each event
//! does to them.
//!
//! Every callback reaches the worker through a `Weak` and borrows it for the
//! length of the callback; the reactor holds no borrow of itself meanwhile,
//! so handlers may add and drop sources freely. Connections own their
//! sources (socket registration, deadline timer, fixed heartbeat timer), so
//! removing a connection from the slab releases all of them at once. The
//! one exception is the leaky heartbeat: detached on purpose.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reactor::{
    Clock, ClockTime, Context, Expiration, Interest, Io, Reactor, Readiness, Timer, TimerMode,
};
use rustix::io::Errno;
use rustix::net::recv;
use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Deadline, Gone, Stream};
use crate::http::{self, Parsed, Request, Route, Status};
use crate::metrics::Metrics;
use crate::procfs::FdCounts;
use crate::sse;

mod accept;

use accept::open_spare;

/// Accepts per listener event, so one busy listener cannot starve streams.
const ACCEPTS_PER_EVENT: usize = 64;
/// Reads per connection event (the socket is level-triggered: more next turn).
const READS_PER_EVENT: usize = 4;
/// Unparsed request bytes a connection may hold before it is cut off.
const MAX_INBUF: usize = 64 * 1024;
/// How long accepting pauses after EMFILE/ENFILE, instead of spinning.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
/// How often `/stream/stats` subscribers get a snapshot.
const STATS_PERIOD: Duration = Duration::from_millis(500);

const HOUSEKEEPING: TimerMode = TimerMode::Shared;
const CLIENT: Interest = Interest::READABLE.union(Interest::RDHUP);

pub(crate) struct Worker {
    me: Weak<RefCell<Worker>>,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    conns: Slab<Conn>,
    next_generation: u64,
    listener: Option<Rc<OwnedFd>>,
    listener_io: Option<Io<'static>>,
    accept_paused: Option<Timer>,
    /// The spare-fd trick: an fd given up at EMFILE to accept and refuse one client.
    spare: Option<OwnedFd>,
    scratch: Box<[u8; 16 * 1024]>,
    stats_timer: Option<Timer>,
    draining: bool,
}

/// Run `f` on the worker behind `me`, if it still exists.
fn with_worker(me: &Weak<RefCell<Worker>>, f: impl FnOnce(&mut Worker)) {
    if let Some(w) = me.upgrade() {
        f(&mut w.borrow_mut());
    }
}

/// Every `period`, on a grid shared by all streams: the first expiry is the
/// next multiple of `period` on `CLOCK_MONOTONIC`. Heartbeats of all streams
/// then fall due together, so one wake-up serves a whole batch of them
/// instead of one each (what timer slack and coalescing do in the kernel and
/// in Go's runtime). The first heartbeat comes within one period.
fn on_grid(period: Duration) -> Expiration {
    let now = Clock::Monotonic.now();
    let p = period.as_nanos().max(1);
    let now_ns = now.secs().max(0) as u128 * 1_000_000_000 + u128::from(now.nanos());
    let next = (now_ns / p + 1) * p;
    match ClockTime::new((next / 1_000_000_000) as i64, (next % 1_000_000_000) as u32) {
        Ok(first) => Expiration::EveryAt { first, period },
        Err(_) => Expiration::every(period),
    }
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Run one worker until `shutdown` is set and its connections have ended.
pub(crate) fn run(
    index: usize,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    listener: OwnedFd,
    shutdown: &AtomicBool,
    reactor: &Reactor,
) -> Result<(), reactor::Error> {
    let worker = Rc::new_cyclic(|me| {
        RefCell::new(Worker {
            me: me.clone(),
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            conns: Slab::new(),
            next_generation: 0,
            listener: Some(Rc::new(listener)),
            listener_io: None,
            accept_paused: None,
            spare: open_spare(),
            scratch: Box::new([0; 16 * 1024]),
            stats_timer: None,
            draining: false,
        })
    });
    {
        let mut w = worker.borrow_mut();
        w.listen(reactor)?;
        let me = w.me.clone();
        let every = Expiration::every(STATS_PERIOD);
        w.stats_timer = Some(reactor.add_timer(HOUSEKEEPING, every, move |_, _| {
            with_worker(&me, |w| w.broadcast_stats())
        })?);
    }
    let mut drain_until: Option<Instant> = None;
    loop {
        let timeout = drain_until.map(|t| t.saturating_duration_since(Instant::now()));
        reactor.turn(timeout)?;
        metrics.publish(index, reactor.stats());
        if shutdown.load(Relaxed) && drain_until.is_none() {
            worker.borrow_mut().begin_drain();
            drain_until = Some(Instant::now() + cfg.shutdown_grace);
        }
        if let Some(until) = drain_until {
            if worker.borrow().conns.is_empty() || Instant::now() >= until {
                break;
            }
        }
    }
    let mut w = worker.borrow_mut();
    let keys: Vec<usize> = w.conns.iter().map(|(k, _)| k).collect();
    for key in keys {
        w.close(key);
    }
    w.stats_timer = None;
    drop(w);
    metrics.publish(index, reactor.stats());
    Ok(())
}

impl Worker {
    fn conn(&mut self, key: usize, generation: u64) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.generation == generation)
    }

    /// A header or idle deadline for connection `key`: a shared timer,
    /// dropped (cancelled) the moment it is no longer needed.
    fn deadline(
        &self,
        ctx: &mut Context<'_>,
        key: usize,
        generation: u64,
        kind: Deadline,
    ) -> Option<(Deadline, Timer)> {
        let after = match kind {
            Deadline::Header => self.cfg.header_timeout,
            Deadline::Idle => self.cfg.idle_timeout,
        };
        let me = self.me.clone();
        let timer = ctx.reactor().add_timer(HOUSEKEEPING, Expiration::Once(after), move |_, _| {
            with_worker(&me, |w| w.deadline_passed(key, generation, kind))
        });
        timer.ok().map(|t| (kind, t))
    }

    fn deadline_passed(&mut self, key: usize, generation: u64, kind: Deadline) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else { return };
        conn.deadline = None;
        if kind == Deadline::Header {
            let mut out = Vec::new();
            http::error_response(&mut out, Status::RequestTimeout, false, false);
            let _ = conn.send(&out, max);
            conn.closing = true;
            self.metrics.response(Status::RequestTimeout);
        } else {
            conn.closing = true;
        }
        self.settle(key);
    }

    fn on_conn(&mut self, ctx: &mut Context<'_>, key: usize, generation: u64, r: Readiness) {
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
            if eof {
                // Answer what arrived, then close: the client sends no more.
                self.conns[key].closing = true;
            }
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
                Ok((n, _)) => {
                    // A streaming client has nothing to say; discard it.
                    if conn.stream.is_none() {
                        conn.inbuf.extend_from_slice(&scratch[..n]);
                        if conn.inbuf.len() > MAX_INBUF {
                            return Err(());
                        }
                    }
                }
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => continue,
                Err(_) => return Err(()),
            }
        }
        Ok(false)
    }

    /// Answer every complete request in the buffer, in order (pipelining).
    fn process_requests(&mut self, ctx: &mut Context<'_>, key: usize) {
        let max = self.cfg.max_buffered;
        loop {
            let conn = &mut self.conns[key];
            if conn.stream.is_some() || conn.closing {
                return;
            }
            match http::parse(&conn.inbuf) {
                Parsed::Partial => {
                    if !conn.inbuf.is_empty()
                        && matches!(conn.deadline, Some((Deadline::Idle, _)) | None)
                    {
                        let generation = conn.generation;
                        let d = self.deadline(ctx, key, generation, Deadline::Header);
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
        // Between requests on a keep-alive connection: wait, but not forever.
        let conn = &self.conns[key];
        if conn.stream.is_none()
            && !conn.closing
            && conn.inbuf.is_empty()
            && conn.deadline.is_none()
        {
            let generation = conn.generation;
            let d = self.deadline(ctx, key, generation, Deadline::Idle);
            self.conns[key].deadline = d;
        }
    }

    fn respond(&mut self, ctx: &mut Context<'_>, key: usize, req: Request) {
        let max = self.cfg.max_buffered;
        let mut out = Vec::new();
        let mut status = Status::Ok;
        let mut keep_alive = req.keep_alive && !self.draining;
        match req.route {
            Route::Dashboard => http::response(
                &mut out,
                Status::Ok,
                "text/html; charset=utf-8",
                crate::DASHBOARD.as_bytes(),
                keep_alive,
                req.head_only,
            ),
            Route::Metrics => {
                let body = self.metrics.render(FdCounts::read());
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

    fn start_stream(
        &mut self,
        ctx: &mut Context<'_>,
        key: usize,
        route: Route,
        last_event_id: Option<u64>,
    ) {
        let (max, interval, mode) = (self.cfg.max_buffered, self.cfg.interval, self.cfg.timer_mode);
        let generation = self.conns[key].generation;
        let timer = match route {
            Route::Fixed | Route::Leaky => {
                let me = self.me.clone();
                let made = ctx.reactor().add_timer(mode, on_grid(interval), move |_, ticks| {
                    with_worker(&me, |w| w.heartbeat(key, generation, route, ticks))
                });
                match made {
                    Ok(t) => Some(t),
                    Err(_) => {
                        // No timer (EMFILE in dedicated mode): refuse, loudly.
                        let conn = &mut self.conns[key];
                        let _ = conn.send(http::OVERLOADED, max);
                        conn.closing = true;
                        self.metrics.response(Status::Unavailable);
                        return;
                    }
                }
            }
            _ => None,
        };
        let timer = match (route, timer) {
            (Route::Leaky, Some(t)) => {
                // The bug, on purpose: like `for range ticker.C` with no
                // `ticker.Stop()`, nothing will ever cancel this timer.
                t.detach();
                None
            }
            (_, t) => t,
        };
        let mode_label = match mode {
            TimerMode::Dedicated => "dedicated",
            TimerMode::Shared => "shared",
        };
        let mut out = http::SSE_HEAD.to_vec();
        sse::opening(
            &mut out,
            route,
            if route == Route::Stats { STATS_PERIOD } else { interval },
            mode_label,
            last_event_id,
        );
        let conn = &mut self.conns[key];
        conn.inbuf = Vec::new();
        conn.deadline = None;
        conn.stream = Some(Stream { route, seq: last_event_id.unwrap_or(0), timer });
        self.metrics.response(Status::Ok);
        self.metrics.stream_opened(route);
        if conn.send(&out, max).is_err() {
            conn.closing = true;
            conn.out.clear();
        }
    }

    fn heartbeat(&mut self, key: usize, generation: u64, route: Route, ticks: u64) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else {
            // A leaky timer whose client left long ago: a wake-up for nobody.
            self.metrics.orphan_tick(ticks);
            return;
        };
        let Some(stream) = &mut conn.stream else { return };
        stream.seq += 1;
        let mut buf = [0u8; 160];
        let n = sse::heartbeat(&mut buf, route, stream.seq, ticks);
        match conn.send(&buf[..n], max) {
            Ok(()) => {
                self.metrics.heartbeat();
                self.settle(key);
            }
            // EPIPE/ECONNRESET: gone; or too far behind: cut off.
            Err(Gone::Peer | Gone::TooSlow) => self.close(key),
        }
    }

    fn broadcast_stats(&mut self) {
        let max = self.cfg.max_buffered;
        let subscribers: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stream.as_ref().is_some_and(|s| s.route == Route::Stats))
            .map(|(k, _)| k)
            .collect();
        if subscribers.is_empty() {
            return;
        }
        let mut event = Vec::new();
        sse::data_event(&mut event, &self.metrics.snapshot_json(FdCounts::read(), unix_ms()));
        for key in subscribers {
            if self.conns[key].send(&event, max).is_err() {
                self.close(key);
            } else {
                self.settle(key);
            }
        }
    }

    /// After handling an event: close if done, else match the epoll interest
    /// to whether output is queued.
    fn settle(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        if conn.closing && conn.out.is_empty() {
            return self.close(key);
        }
        let want_write = !conn.out.is_empty();
        if want_write != conn.want_write {
            conn.want_write = want_write;
            let interest = if want_write { CLIENT | Interest::WRITABLE } else { CLIENT };
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
    fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.try_remove(key) else { return };
        self.metrics.connections.fetch_sub(1, Relaxed);
        if let Some(stream) = &conn.stream {
            self.metrics.stream_closed(stream.route, stream.route == Route::Leaky);
        }
        drop(conn);
    }

    /// Shutdown: stop accepting, end every stream with a last event, and let
    /// idle keep-alive connections ask once more (stream requests get 204).
    fn begin_drain(&mut self) {
        self.draining = true;
        self.listener_io = None;
        self.listener = None;
        self.accept_paused = None;
        let max = self.cfg.max_buffered;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.stream.is_some() {
                let _ = conn.send(sse::SHUTDOWN, max);
                conn.closing = true;
            }
            self.settle(key);
        }
    }
}
