//! Counters shared by every worker, rendered as Prometheus text (format
//! 0.0.4) for `/metrics` and as [`Snapshot`]s for `/stream/stats`.

mod render;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use reactor::{Stats, TimerMode};

use crate::census::Census;
use crate::http::{Route, Status};
use crate::stats::{ByMode, History, PerRoute, Snapshot};

/// Stream routes, in the order of the per-route arrays.
pub const STREAM_ROUTES: [Route; 3] = [Route::Fixed, Route::Leaky, Route::Stats];

/// Why an `accept` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// `EMFILE`: this process is at its fd limit.
    Emfile,
    /// `ENFILE`: the system is.
    Enfile,
    /// Anything else.
    Other,
}

impl AcceptError {
    const ALL: [AcceptError; 3] = [AcceptError::Emfile, AcceptError::Enfile, AcceptError::Other];
    fn label(self) -> &'static str {
        match self {
            AcceptError::Emfile => "emfile",
            AcceptError::Enfile => "enfile",
            AcceptError::Other => "other",
        }
    }
}

/// A failure that changed what a client got, or could have: each kind is
/// counted in `demo_server_faults_total{what}` and logged once per episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A turn of a worker's reactor reported a failure underneath
    /// (`reactor::Error::Retrying`, or a transient `epoll_wait` error).
    Reactor,
    /// The listening socket could not be watched (`epoll_ctl(ADD)`).
    Listen,
    /// A client's socket could not be watched: it was answered 503.
    Register,
    /// A connection's deadline could not be armed: it was refused or closed.
    Deadline,
    /// A stream's heartbeat timer could not be made: it was answered 503.
    Heartbeat,
    /// A socket's epoll interest could not be changed: it was closed.
    Modify,
}

impl Fault {
    /// Every kind, in label order.
    pub const ALL: [Fault; 6] = [
        Fault::Reactor,
        Fault::Listen,
        Fault::Register,
        Fault::Deadline,
        Fault::Heartbeat,
        Fault::Modify,
    ];

    /// Its `what` label.
    pub fn label(self) -> &'static str {
        match self {
            Fault::Reactor => "reactor",
            Fault::Listen => "listen",
            Fault::Register => "register",
            Fault::Deadline => "deadline",
            Fault::Heartbeat => "heartbeat",
            Fault::Modify => "modify",
        }
    }

    /// What failed, for the log.
    pub fn what(self) -> &'static str {
        match self {
            Fault::Reactor => "a system call under the event loop failed",
            Fault::Listen => "cannot watch the listening socket",
            Fault::Register => "cannot watch a client's socket",
            Fault::Deadline => "cannot arm a connection's deadline",
            Fault::Heartbeat => "cannot arm a stream's heartbeat timer",
            Fault::Modify => "cannot change a socket's epoll interest",
        }
    }

    /// What it costs while it lasts, for the log.
    pub fn cost(self) -> &'static str {
        match self {
            Fault::Reactor => "retrying every turn, backing off up to 100 ms",
            Fault::Listen => "new connections wait in the backlog; retrying, 20 ms to 1 s apart",
            Fault::Register | Fault::Deadline | Fault::Heartbeat => {
                "those clients get 503 until it passes"
            }
            Fault::Modify => "those connections are closed",
        }
    }
}

/// Everything `/metrics` reports, shared by the workers.
#[derive(Debug, Default)]
pub struct Metrics {
    streams_active: [AtomicU64; 3],
    streams_total: [AtomicU64; 3],
    orphans: [AtomicU64; 3],
    orphan_ticks: AtomicU64,
    heartbeats: AtomicU64,
    responses: [AtomicU64; Status::ALL.len()],
    accept_errors: [AtomicU64; 3],
    faults: [AtomicU64; Fault::ALL.len()],
    /// Connections open now, over all workers (for `--max-conns`).
    pub connections: AtomicU64,
    /// Each worker's reactor stats, published after every turn.
    workers: Vec<Mutex<Stats>>,
    /// The fd census, refreshed by its own thread.
    census: Option<Arc<Census>>,
    /// The dashboard's history of snapshots.
    history: Mutex<History>,
    /// The heartbeat timer mode, for `demo_server_build_info`.
    timer_mode: &'static str,
    /// The leaky heartbeats' timerfds, for `/debug/fds`.
    pub leaks: Arc<crate::debug_fds::Leaks>,
}

fn route_index(route: Route) -> usize {
    STREAM_ROUTES.iter().position(|r| *r == route).unwrap_or(0)
}

impl Metrics {
    /// Metrics for `workers` workers whose heartbeats use `mode`, with fd
    /// counts from `census`.
    pub fn new(
        workers: usize,
        mode: TimerMode,
        census: Arc<Census>,
        leaks: Arc<crate::debug_fds::Leaks>,
    ) -> Metrics {
        Metrics {
            leaks,
            workers: (0..workers).map(|_| Mutex::default()).collect(),
            census: Some(census),
            timer_mode: mode.name(),
            ..Metrics::default()
        }
    }

    /// The latest fd census (read on the spot, if no census thread was
    /// given), for a scrape (which asks for one census if it is old) or for
    /// the history's own sampling (which does not).
    fn census(&self, scrape: bool) -> crate::census::Reading {
        match &self.census {
            Some(c) if scrape => c.scraped(),
            Some(c) => c.latest(),
            None => Census::now().latest(),
        }
    }

    /// The latest `/debug/fds` report, asking for the next.
    pub fn debug_report(&self) -> Arc<String> {
        match &self.census {
            Some(c) => c.debug_report(),
            None => Arc::new(crate::debug_fds::PENDING.into()),
        }
    }

    /// Take a census now, on this thread (once, at start, when the workers
    /// are ready).
    pub fn census_now(&self) {
        if let Some(c) = &self.census {
            c.refresh();
        }
    }

    /// Someone is watching the stats stream: keep the census fresh.
    pub fn census_watched(&self) {
        if let Some(c) = &self.census {
            c.watch();
        }
    }

    /// A stream on `route` started.
    pub fn stream_opened(&self, route: Route) {
        self.streams_active[route_index(route)].fetch_add(1, Relaxed);
        self.streams_total[route_index(route)].fetch_add(1, Relaxed);
    }

    /// A stream on `route` ended; `orphaned` if it left its timer running.
    pub fn stream_closed(&self, route: Route, orphaned: bool) {
        self.streams_active[route_index(route)].fetch_sub(1, Relaxed);
        if orphaned {
            self.orphans[route_index(route)].fetch_add(1, Relaxed);
        }
    }

    /// A heartbeat was written to a client.
    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Relaxed);
    }

    /// An orphaned timer fired with nobody to write to.
    pub fn orphan_tick(&self, ticks: u64) {
        self.orphan_ticks.fetch_add(ticks, Relaxed);
    }

    /// A response with `status` was sent.
    pub fn response(&self, status: Status) {
        self.responses[status.index()].fetch_add(1, Relaxed);
    }

    /// `accept` failed.
    pub fn accept_error(&self, e: AcceptError) {
        self.accept_errors[e as usize].fetch_add(1, Relaxed);
    }

    /// A failure of kind `what` (see [`Fault`]).
    pub fn fault(&self, what: Fault) {
        self.faults[what as usize].fetch_add(1, Relaxed);
    }

    /// Publish worker `i`'s reactor stats.
    pub fn publish(&self, i: usize, stats: Stats) {
        if let Some(slot) = self.workers.get(i) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = stats;
        }
    }

    /// Active streams on `route`.
    pub fn active(&self, route: Route) -> u64 {
        self.streams_active[route_index(route)].load(Relaxed)
    }

    /// Orphaned timers left by `route`.
    pub fn orphans(&self, route: Route) -> u64 {
        self.orphans[route_index(route)].load(Relaxed)
    }

    /// The sum of every worker's published stats.
    pub fn reactor_totals(&self) -> Stats {
        let mut total = Stats::default();
        for w in &self.workers {
            total += *w.lock().unwrap_or_else(|p| p.into_inner());
        }
        total
    }

    /// Each worker's latest published stats, by worker index.
    fn per_worker(&self) -> Vec<Stats> {
        self.workers.iter().map(|w| *w.lock().unwrap_or_else(|p| p.into_inner())).collect()
    }

    /// The server now, as `/stream/stats` sends it.
    pub fn snapshot(&self, unix_ms: u64) -> Snapshot {
        let census = self.census(false);
        let fds = census.counts;
        let r = self.reactor_totals();
        let (fixed, leaky) = (Route::Fixed, Route::Leaky);
        let per_route = |f: u64, l: u64| PerRoute { fixed: f, leaky: l };
        Snapshot {
            t: unix_ms,
            census_age_ms: census.age().as_millis() as u64,
            open_fds: fds.open as u64,
            max_fds: fds.max,
            timerfds: fds.timerfds as u64,
            streams: per_route(self.active(fixed), self.active(leaky)),
            timers_by_route: per_route(
                self.active(fixed) + self.orphans(fixed),
                self.active(leaky) + self.orphans(leaky),
            ),
            orphans: per_route(self.orphans(fixed), self.orphans(leaky)),
            timers_by_mode: ByMode {
                dedicated: r.dedicated_timers as u64,
                shared: r.shared_timers as u64,
            },
            wakeups: r.wakeups,
            expirations: r.timer_expirations,
            heartbeats: self.heartbeats.load(Relaxed),
            connections: self.connections.load(Relaxed),
        }
    }

    /// Take a snapshot and add it to the history (worker 0 does, every
    /// [`stats::PERIOD`](crate::stats::PERIOD)).
    pub fn record(&self, unix_ms: u64) {
        let s = self.snapshot(unix_ms);
        self.history.lock().unwrap_or_else(|p| p.into_inner()).record(s);
    }

    /// The latest recorded snapshot.
    pub fn latest(&self) -> Snapshot {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).latest()
    }

    /// The `history` event for a new `/stream/stats` subscriber, at most
    /// `budget` bytes when it can be.
    pub fn history_event(&self, budget: usize) -> Vec<u8> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).event(budget)
    }
}
