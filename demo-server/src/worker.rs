//! One reactor thread: its listener, its connections, and what each event
//! does to them. The run loop is here; the rest by responsibility:
//!
//! | file | what |
//! |---|---|
//! | `accept.rs` | taking connections in, the backlog at EMFILE |
//! | `refuse.rs` | answering a client that cannot be taken, so the answer arrives |
//! | `deadline.rs` | the timer that ends every connection |
//! | `request.rs` | reading request heads, pipelining, routing |
//! | `stream.rs` | event streams: start, heartbeats, stats |
//! | `lifecycle.rs` | epoll interest, closing, the shutdown drain |
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
use std::time::{Duration, Instant};

use reactor::{Expiration, Interest, Io, Reactor, Timer, TimerMode};
use slab::Slab;

use crate::config::Config;
use crate::conn::Conn;
use crate::metrics::Metrics;
use crate::sse;

mod accept;
mod deadline;
mod lifecycle;
mod refuse;
mod request;
mod stream;

use accept::open_spare;

/// Accepts per listener event, so one busy listener cannot starve streams.
const ACCEPTS_PER_EVENT: usize = 64;
/// Reads per connection event (the socket is level-triggered: more next turn).
const READS_PER_EVENT: usize = 4;
/// Pipelined requests served per connection event, so that no client
/// monopolizes a worker: the rest wait for the next turn (see `backlog`).
const REQUESTS_PER_EVENT: usize = 8;
/// Unparsed request bytes a connection may hold before it is cut off.
const MAX_INBUF: usize = 64 * 1024;
/// How long accepting pauses after EMFILE/ENFILE, instead of spinning.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
/// How long a closing connection may take to read the output still queued
/// for it before it is closed anyway.
const LINGER: Duration = Duration::from_secs(2);
/// How long a shutdown keeps answering after it ended the streams, for
/// their clients to come back (after `sse::SHUTDOWN_RETRY_MS`) and be told
/// 204: four retry periods.
const RECONNECT_WINDOW: Duration = Duration::from_millis(4 * sse::SHUTDOWN_RETRY_MS as u64);
/// How often `/stream/stats` subscribers get a snapshot.
const STATS_PERIOD: Duration = crate::stats::PERIOD;

const HOUSEKEEPING: TimerMode = TimerMode::Shared;
const CLIENT: Interest = Interest::READABLE.union(Interest::RDHUP);

pub(crate) struct Worker {
    me: Weak<RefCell<Worker>>,
    /// Which worker this is (worker 0 records the stats history).
    index: usize,
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    conns: Slab<Conn>,
    next_generation: u64,
    listener: Option<Rc<OwnedFd>>,
    listener_io: Option<Io<'static>>,
    accept_paused: Option<Timer>,
    /// The spare-fd trick: an fd given up at EMFILE to accept and refuse one client.
    spare: Option<OwnedFd>,
    /// A second spare fd, for a reserved (monitoring) connection at EMFILE.
    monitor_spare: Option<OwnedFd>,
    /// Reserved connections open now (see `refuse.rs`).
    reserved: usize,
    scratch: Box<[u8; 16 * 1024]>,
    stats_timer: Option<Timer>,
    /// `/stream/stats` connections, as (key, generation): the broadcast
    /// visits these, not every connection.
    stats_subscribers: Vec<(usize, u64)>,
    draining: bool,
    /// `DEMO_SERVER_TEST_PANIC` is set: panic on the first connection (tests
    /// check that a dead worker ends the process).
    test_panic: bool,
}

/// Run `f` on the worker behind `me`, if it still exists.
fn with_worker(me: &Weak<RefCell<Worker>>, f: impl FnOnce(&mut Worker)) {
    if let Some(w) = me.upgrade() {
        f(&mut w.borrow_mut());
    }
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
            index,
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            conns: Slab::new(),
            next_generation: 0,
            listener: Some(Rc::new(listener)),
            listener_io: None,
            accept_paused: None,
            spare: open_spare(),
            monitor_spare: open_spare(),
            reserved: 0,
            scratch: Box::new([0; 16 * 1024]),
            stats_timer: None,
            stats_subscribers: Vec::new(),
            draining: false,
            test_panic: index == 0 && std::env::var_os("DEMO_SERVER_TEST_PANIC").is_some(),
        })
    });
    {
        let mut w = worker.borrow_mut();
        w.listen(reactor)?;
        let me = w.me.clone();
        let every = Expiration::every(STATS_PERIOD);
        w.stats_timer = Some(reactor.add_timer(HOUSEKEEPING, every, move |ctx, _| {
            with_worker(&me, |w| w.broadcast_stats(ctx.reactor()))
        })?);
    }
    // During a shutdown: (no earlier than, at the latest).
    let mut drain: Option<(Instant, Instant)> = None;
    loop {
        let timeout = drain.map(|(quiet, until)| {
            let now = Instant::now();
            (if now < quiet { quiet } else { until }).saturating_duration_since(now)
        });
        reactor.turn(timeout)?;
        metrics.publish(index, reactor.stats());
        if shutdown.load(Relaxed) && drain.is_none() {
            let streams_ended = worker.borrow_mut().begin_drain(reactor);
            let now = Instant::now();
            // Ended streams reconnect after SHUTDOWN_RETRY_MS: stay to tell
            // them 204, or EventSource would retry a refused port forever.
            let quiet = if streams_ended { now + RECONNECT_WINDOW } else { now };
            drain = Some((quiet, now + cfg.shutdown_grace.max(RECONNECT_WINDOW)));
        }
        if let Some((quiet, until)) = drain {
            let now = Instant::now();
            if (worker.borrow().conns.is_empty() && now >= quiet) || now >= until {
                break;
            }
        }
    }
    let mut w = worker.borrow_mut();
    w.stop_listening();
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
}
