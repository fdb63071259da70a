//! The kernel's fd census, taken off the reactor threads, and only as
//! often as someone reads it.
//!
//! Counting fds by kind means a `readlink` for every entry of
//! `/proc/self/fd`, about 4 µs each here: with 4,000 fds open that is
//! 15–30 ms. Done per `/metrics` request on a reactor thread, it stalled
//! every stream on that worker for as long, and a client that pipelined
//! scrapes could stall them for seconds. So one `fd-census` thread takes
//! the census into a shared [`Reading`]; `/metrics` and `/stream/stats`
//! only copy the latest one (O(1)) and export its age. The process
//! collector's numbers (`/proc/self/stat`) are read with it, for the same
//! reason.
//!
//! Taken every 500 ms for good, the census alone cost a fifth of what 2,000
//! streams' heartbeats cost, and while a scrape in the last minute kept it
//! at that cadence, Prometheus (every 15 s) kept the tax on for good. So:
//!
//! * it runs every [`IDLE_PERIOD`] (5 s) on its own, enough for the
//!   dashboard's history;
//! * a `/metrics` scrape asks for one census if the latest is older than
//!   [`PERIOD`]: at most one census per scrape, taken at once on the census
//!   thread, for the next scrape (the answer reports its reading's age);
//! * every [`PERIOD`] only while a dashboard watches (a `/stream/stats`
//!   subscriber, for [`WATCH_SPAN`] after its last snapshot).
//!
//! However many clients read, the census runs at most once per [`PERIOD`].
//! The first census is taken once the workers exist (`serve` starts the
//! census after them), so the first scrape counts their fds too.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::debug_fds::{self, Leaks};
use crate::procfs::{FdCounts, ProcessStats};

/// How long after a `/debug/fds` request the census keeps taking its report.
pub const DEBUG_SPAN: Duration = Duration::from_secs(5);

/// How often the census runs while someone watches.
pub const PERIOD: Duration = Duration::from_millis(500);

/// How often it runs while nobody does.
pub const IDLE_PERIOD: Duration = Duration::from_secs(5);

/// How long a read counts as someone watching.
pub const WATCH_SPAN: Duration = Duration::from_secs(60);

/// One census: the counts and when they were taken.
///
/// (A census a scrape asks for is taken right away, for the next scrape;
/// the scrape itself answers with the latest reading and its age.)
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// What `/proc/self/fd` held.
    pub counts: FdCounts,
    /// What `/proc/self/stat` said (`None` if it could not be read).
    pub process: Option<ProcessStats>,
    /// When it was read.
    pub taken: Instant,
}

impl Reading {
    /// Read both now.
    pub fn take() -> Reading {
        Reading { counts: FdCounts::read(), process: ProcessStats::read(), taken: Instant::now() }
    }

    /// How old the reading is now.
    pub fn age(&self) -> Duration {
        self.taken.elapsed()
    }
}

/// The latest [`Reading`], shared by the census thread and the workers.
#[derive(Debug)]
pub struct Census {
    latest: Mutex<Reading>,
    /// When someone last read the census as a watcher (see [`Census::watch`]),
    /// and whether a scrape asked for one census (see [`Census::scraped`]).
    watched: Mutex<Wanted>,
    /// Wakes the thread out of an idle wait.
    poke: Condvar,
    periods: (Duration, Duration),
    /// The `/debug/fds` report, taken with the census while someone asks.
    debug: Option<Debug>,
}

/// What `/debug/fds` needs of the census thread.
#[derive(Debug)]
struct Debug {
    leaks: Arc<Leaks>,
    budget: usize,
    /// The latest report, and when a request last asked for one.
    latest: Mutex<(Option<Arc<String>>, Option<Instant>)>,
}

/// What the readers want of the census thread.
#[derive(Debug, Default)]
struct Wanted {
    /// A dashboard read at this instant: every [`PERIOD`] for [`WATCH_SPAN`].
    watcher: Option<Instant>,
    /// A scrape asked for one census, the next that [`PERIOD`] allows.
    one: bool,
}

impl Census {
    /// Take a first reading now, then start the thread that refreshes it
    /// every `period` while watched and every `idle` otherwise. The thread
    /// runs for the rest of the process (a server has one census).
    pub fn start(period: Duration, idle: Duration) -> std::io::Result<Arc<Census>> {
        Census::start_with(Census::with_periods(period, idle))
    }

    /// [`start`](Self::start), also taking the `/debug/fds` report (of at
    /// most `budget` bytes, with `leaks` marked) while requests ask for it.
    pub fn start_with_debug(
        period: Duration,
        idle: Duration,
        leaks: Arc<Leaks>,
        budget: usize,
    ) -> std::io::Result<Arc<Census>> {
        let mut census = Census::with_periods(period, idle);
        census.debug = Some(Debug { leaks, budget, latest: Mutex::new((None, None)) });
        Census::start_with(census)
    }

    fn start_with(census: Census) -> std::io::Result<Arc<Census>> {
        let census = Arc::new(census);
        let ours = Arc::clone(&census);
        std::thread::Builder::new().name("fd-census".into()).spawn(move || {
            loop {
                ours.wait_for_next();
                ours.refresh();
            }
        })?;
        Ok(census)
    }

    /// A census read once, with no thread (for tools and tests).
    pub fn now() -> Census {
        Census::with_periods(PERIOD, IDLE_PERIOD)
    }

    fn with_periods(period: Duration, idle: Duration) -> Census {
        Census {
            latest: Mutex::new(Reading::take()),
            watched: Mutex::new(Wanted::default()),
            poke: Condvar::new(),
            periods: (period, idle),
            debug: None,
        }
    }

    /// Whether a dashboard read the census as a watcher within [`WATCH_SPAN`].
    fn is_watched(wanted: &Wanted) -> bool {
        wanted.watcher.is_some_and(|at| at.elapsed() < WATCH_SPAN)
    }

    /// Sleep until the next census is due: `period` after the last one
    /// while watched or asked for by a scrape, `idle` after it otherwise
    /// (never sooner than `period` after the last).
    fn wait_for_next(&self) {
        let (period, idle) = self.periods;
        let last = self.latest().taken;
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let soon = Census::is_watched(&watched) || watched.one;
            let after = if soon { period } else { idle };
            // A period past `Instant`'s range (`Duration::MAX`) never falls
            // due: only a watcher's poke ends the wait.
            let Some(due) = last.checked_add(after) else {
                watched = self.poke.wait(watched).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let now = Instant::now();
            if now >= due {
                watched.one = false;
                return;
            }
            let wait = self.poke.wait_timeout(watched, due - now);
            watched = wait.unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Count again, now, on the calling thread; and take the `/debug/fds`
    /// report too if a request asked for one in the last [`DEBUG_SPAN`].
    pub fn refresh(&self) {
        let reading = Reading::take();
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = reading;
        let Some(debug) = &self.debug else { return };
        let asked = debug.latest.lock().unwrap_or_else(|p| p.into_inner()).1;
        if asked.is_some_and(|at| at.elapsed() < DEBUG_SPAN) {
            let report = Arc::new(debug_fds::report(&debug.leaks, debug.budget));
            debug.latest.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(report);
        }
    }

    /// The latest `/debug/fds` report (or [`debug_fds::PENDING`] before the
    /// first), asking for the next: one census, taken at once unless one
    /// was taken in the last period. O(1) on the caller's thread.
    pub fn debug_report(&self) -> Arc<String> {
        let Some(debug) = &self.debug else { return Arc::new(debug_fds::PENDING.into()) };
        let latest = {
            let mut state = debug.latest.lock().unwrap_or_else(|p| p.into_inner());
            state.1 = Some(Instant::now());
            state.0.clone()
        };
        self.scraped(); // asks for one census if the last is older than a period
        if latest.is_none() {
            // The first report: ask even if the census itself is fresh.
            let mut wanted = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            wanted.one = true;
            drop(wanted);
            self.poke.notify_one();
        }
        latest.unwrap_or_else(|| Arc::new(debug_fds::PENDING.into()))
    }

    /// The latest reading: a copy, O(1). Reading it does not count as
    /// watching (the dashboard's history reads it this way).
    pub fn latest(&self) -> Reading {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest reading, for a dashboard: from now on for [`WATCH_SPAN`]
    /// the census runs every period, and an idle census thread wakes at
    /// once. O(1); the reading returned is the one already taken.
    pub fn watch(&self) -> Reading {
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        let was_watched = Census::is_watched(&watched);
        watched.watcher = Some(Instant::now());
        drop(watched);
        if !was_watched {
            self.poke.notify_one();
        }
        self.latest()
    }

    /// The latest reading, for a scrape: if it is older than the period,
    /// one census is taken at once on the census thread, for the next
    /// scrape. The cadence does not change. O(1).
    pub fn scraped(&self) -> Reading {
        let latest = self.latest();
        if latest.age() >= self.periods.0 {
            let mut wanted = self.watched.lock().unwrap_or_else(|p| p.into_inner());
            if !wanted.one {
                wanted.one = true;
                drop(wanted);
                self.poke.notify_one();
            }
        }
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_secs(5);

    fn wait_for_new_reading(census: &Census, after: Instant) -> Duration {
        let start = Instant::now();
        while census.latest().taken == after {
            assert!(start.elapsed() < SOON, "never refreshed");
            std::thread::sleep(Duration::from_millis(2));
        }
        start.elapsed()
    }

    #[test]
    fn a_watched_census_keeps_fresh() {
        crate::procfs::init();
        let census = Census::start(Duration::from_millis(20), Duration::from_secs(3600)).unwrap();
        let first = census.watch().taken;
        wait_for_new_reading(&census, first);
        let second = census.watch().taken;
        wait_for_new_reading(&census, second);
        assert!(census.latest().age() < SOON);
        assert!(census.latest().counts.open > 0);
    }

    #[test]
    fn watchers_that_never_stop_get_one_census_per_period() {
        crate::procfs::init();
        let period = Duration::from_millis(50);
        let census = Census::start(period, Duration::from_secs(3600)).unwrap();
        // A client that scrapes as fast as it can, for 0.5 s.
        let mut taken = vec![census.watch().taken];
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end {
            let t = census.watch().taken;
            if t != *taken.last().unwrap() {
                taken.push(t);
            }
        }
        assert!(taken.len() >= 3, "the census kept running: {taken:?}");
        let gaps: Vec<Duration> = taken.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g >= period), "censuses closer than {period:?}: {gaps:?}");
    }

    /// A scrape asks for one census, and does not keep the cadence up:
    /// Prometheus scraping every 15 s costs one census per scrape.
    #[test]
    fn a_scrape_takes_one_census_and_leaves_the_cadence_idle() {
        crate::procfs::init();
        let census = Census::start(Duration::from_millis(20), Duration::MAX).unwrap();
        let first = census.latest().taken;
        std::thread::sleep(Duration::from_millis(30)); // older than the period
        assert_eq!(census.scraped().taken, first, "the scrape answers with what it has");
        wait_for_new_reading(&census, first);
        let second = census.latest().taken;
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(census.latest().taken, second, "one census per scrape, then idle again");
    }

    #[test]
    fn an_unwatched_census_waits_for_its_idle_period_until_someone_reads() {
        crate::procfs::init();
        // An idle period of Duration::MAX (past Instant's range): a new
        // reading can only come from the watcher's poke.
        let census = Census::start(Duration::from_millis(20), Duration::MAX).unwrap();
        let first = census.latest().taken;
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(census.latest().taken, first, "refreshed with nobody watching");
        census.watch();
        wait_for_new_reading(&census, first);
    }
}
