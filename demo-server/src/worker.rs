//! One reactor thread: its listener, its connections, and what each event
//! does to them.
//!
//! # One event table
//!
//! The worker is the reactor's user data (`Reactor<Worker>`). Every
//! source's callback only names its event, a [`WorkerEvent`], and hands it
//! to [`Worker::handle`]: one `match`, the whole table of what a worker
//! reacts to. No callback captures the worker; none needs a `Weak`.
//!
//! # The HTTP data path, from accept to a heartbeat
//!
//! ```text
//! listener readable          WorkerEvent::Accept        accept.rs    accept_ready: accept4, admit
//! admit                      a socket Io + a deadline   accept.rs    Conn in State::Reading { deadline }
//! socket readable            WorkerEvent::Conn          requests.rs  on_conn: recv into inbuf
//! a complete head            http::parse                requests.rs  respond: route it
//! a stream route             start_stream               stream.rs    State::Streaming, a heartbeat timer
//! the timer fires            WorkerEvent::Heartbeat     stream.rs    heartbeat: sse::heartbeat
//! the bytes                  Conn::send                 conn.rs      send(MSG_NOSIGNAL), queue the rest
//! the client goes            RDHUP / HUP / EPIPE        requests.rs  close: the conn and all it owns
//! ```
//!
//! A connection is a state machine (`conn.rs`): `Reading { deadline }`,
//! `Streaming`, `Closing { linger }`. Every state but `Streaming` holds the
//! timer that will end it, and a stream ends when its client goes or falls
//! `--max-buffered` behind, so no connection lives forever unread.
//!
//! # Failures
//!
//! Decided by kind, as the reactor decides its own (see `reactor::error`):
//! a transient failure (ENOMEM, ENOSPC, EMFILE, ...) is logged once per
//! episode, counted in `demo_server_faults_total`, and retried with a
//! bounded backoff; a fatal one ends the worker, and the process exits
//! non-zero naming it. Watching the listening socket is a repair the run
//! loop owns (`accept.rs`): after an accept pause, or when its
//! `epoll_ctl(ADD)` fails, the loop retries it on a deadline of its own,
//! so no timer that could fail stands between a full server and a deaf one.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use reactor::{Context, Expiration, Interest, Reactor, Readiness, Timer, TimerMode};
use slab::Slab;

use crate::config::Config;
use crate::metrics::{Fault, Metrics};
use crate::sse;

mod accept;
mod conn;
mod faults;
mod refuse;
mod requests;
mod stream;

use accept::Listener;
use conn::Conn;
use faults::Episodes;

/// Reads per connection event (the socket is level-triggered: more next turn).
const READS_PER_EVENT: usize = 4;
/// Pipelined requests served per connection event, so that no client
/// monopolizes a worker: the rest wait for the next turn (see `backlog`).
const REQUESTS_PER_EVENT: usize = 8;
/// Unparsed request bytes a connection may hold before it is cut off.
const MAX_INBUF: usize = 64 * 1024;
/// How long a closing connection may take to read the output still queued
/// for it before it is closed anyway.
const LINGER: Duration = Duration::from_secs(2);
/// How long a shutdown keeps answering after it ended the streams, for
/// their clients to come back (after `sse::SHUTDOWN_RETRY_MS`) and be told
/// 204: four retry periods.
const RECONNECT_WINDOW: Duration = Duration::from_millis(4 * sse::SHUTDOWN_RETRY_MS as u64);
/// How often `/stream/stats` subscribers get a snapshot.
const STATS_PERIOD: Duration = crate::stats::PERIOD;

/// Deadlines and the stats timer: many, short-lived, never visible in
/// `/proc` on purpose, so heartbeats alone are what `timerfds_open` counts.
const HOUSEKEEPING: TimerMode = TimerMode::Shared;
const CLIENT: Interest = Interest::READABLE.union(Interest::RDHUP);

/// Everything a worker reacts to: each source's callback names one of these.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorkerEvent {
    /// The listening socket is readable.
    Accept,
    /// Connection `key`'s socket is ready.
    Conn { key: usize, readiness: Readiness },
    /// Connection `key`'s deadline (header, idle or linger) passed.
    Deadline { key: usize },
    /// Connection `key`'s fixed heartbeat timer fired.
    Heartbeat { key: usize, ticks: u64 },
    /// A leaky heartbeat timer fired. It is detached and outlives its
    /// connection, so it carries its stream's own id: the one source whose
    /// connection may be gone (its slot perhaps reused) when it fires.
    LeakyHeartbeat { key: usize, leak: u64, ticks: u64 },
    /// Time to send `/stream/stats` subscribers a snapshot.
    Stats,
}

/// The callback of every source: name the event, let the worker handle it.
pub(crate) fn on(ctx: &mut Context<'_, Worker>, event: WorkerEvent) {
    let reactor = ctx.reactor();
    ctx.data().handle(reactor, event);
}

pub(crate) struct Worker {
    /// Which worker this is (worker 0 records the stats history).
    index: usize,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    conns: Slab<Conn>,
    listener: Listener,
    /// `/stream/stats` connections: the broadcast visits these, not every connection.
    stats_subscribers: Vec<usize>,
    /// Ids for leaky streams (see [`WorkerEvent::LeakyHeartbeat`]).
    next_leak: u64,
    stats_timer: Option<Timer>,
    draining: bool,
    episodes: Episodes,
    scratch: Box<[u8; 16 * 1024]>,
    /// `DEMO_SERVER_TEST_PANIC` is set: panic on the first connection (tests
    /// check that a dead worker ends the process).
    test_panic: bool,
}

impl Worker {
    fn handle(&mut self, r: &Reactor<Worker>, event: WorkerEvent) {
        match event {
            WorkerEvent::Accept => self.accept_ready(r),
            WorkerEvent::Conn { key, readiness } => self.on_conn(r, key, readiness),
            WorkerEvent::Deadline { key } => self.deadline_passed(r, key),
            WorkerEvent::Heartbeat { key, ticks } => self.heartbeat(key, ticks),
            WorkerEvent::LeakyHeartbeat { key, leak, ticks } => {
                if self.conns.get(key).is_some_and(|c| c.is_leak(leak)) {
                    self.heartbeat(key, ticks);
                } else {
                    // Its client left long ago: a wake-up for nobody.
                    self.metrics.orphan_tick(ticks);
                }
            }
            WorkerEvent::Stats => self.broadcast_stats(),
        }
    }

    /// A failure that changes what a client gets: counted, and logged once
    /// per episode of that kind.
    fn fault(&mut self, what: Fault, detail: impl std::fmt::Display) {
        self.metrics.fault(what);
        self.episodes.failed(self.index, what, detail);
    }
}

/// Run one worker until `shutdown` is set and its connections have ended.
pub(crate) fn run(
    index: usize,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    listener: OwnedFd,
    shutdown: &AtomicBool,
    reactor: &Reactor<Worker>,
    ready: impl FnOnce(),
) -> Result<(), reactor::Error> {
    let test_panic = index == 0 && std::env::var_os("DEMO_SERVER_TEST_PANIC").is_some();
    let mut w = Worker {
        index,
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        conns: Slab::new(),
        listener: Listener::new(listener),
        stats_subscribers: Vec::new(),
        next_leak: 0,
        stats_timer: None,
        draining: false,
        episodes: Episodes::default(),
        scratch: Box::new([0; 16 * 1024]),
        test_panic,
    };
    // At start, a listener that cannot be watched is a failure to start.
    w.listener.watch(reactor)?;
    let every = Expiration::every(STATS_PERIOD);
    w.stats_timer =
        Some(reactor.add_timer(HOUSEKEEPING, every, |ctx, _| on(ctx, WorkerEvent::Stats))?);
    metrics.publish(index, reactor.stats());
    ready();
    let mut backoff = Backoff::default();
    // During a shutdown: (no earlier than, at the latest).
    let mut drain: Option<(Instant, Instant)> = None;
    loop {
        let now = Instant::now();
        let drain_wait = drain.map(|(quiet, until)| {
            (if now < quiet { quiet } else { until }).saturating_duration_since(now)
        });
        let repair_wait = w.listener.repair_due().map(|at| at.saturating_duration_since(now));
        let timeout = [drain_wait, repair_wait].into_iter().flatten().min();
        match reactor.turn_with(&mut w, timeout) {
            Ok(_) => {
                if backoff.reset() {
                    w.episodes.healed(index, Fault::Reactor);
                }
            }
            Err(e) if e.is_transient() => {
                w.fault(Fault::Reactor, e);
                // Every source keeps its schedule (the reactor retries what
                // it owes each turn); back off so a lasting fault is no spin.
                std::thread::sleep(backoff.next());
            }
            Err(e) => return Err(e),
        }
        w.repair(reactor);
        metrics.publish(index, reactor.stats());
        if shutdown.load(Relaxed) && drain.is_none() {
            let streams_ended = w.begin_drain(reactor);
            let now = Instant::now();
            // Ended streams reconnect after SHUTDOWN_RETRY_MS: stay to tell
            // them 204, or EventSource would retry a refused port forever.
            let quiet = if streams_ended { now + RECONNECT_WINDOW } else { now };
            drain = Some((quiet, now + cfg.shutdown_grace.max(RECONNECT_WINDOW)));
        }
        if let Some((quiet, until)) = drain {
            let now = Instant::now();
            if (w.conns.is_empty() && now >= quiet) || now >= until {
                break;
            }
        }
    }
    w.listener.close();
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
    /// After every turn: the repairs the run loop owns.
    fn repair(&mut self, r: &Reactor<Worker>) {
        match self.listener.repair(r) {
            Ok(Some(after)) => self.episodes.healed_after(self.index, Fault::Listen, after),
            Ok(None) => {}
            Err(e) => self.fault(Fault::Listen, e),
        }
    }
}

/// A bounded, doubling sleep between turns that keep failing: 1 ms, 2 ms,
/// ... 100 ms at most; back to nothing after a turn that succeeds.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const MAX: Duration = Duration::from_millis(100);

    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(1u64 << self.failures.min(7).saturating_sub(1)).min(Self::MAX)
    }

    /// Forget the failures; true if there were any.
    fn reset(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }
}
