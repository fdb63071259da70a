//! What `/stream/stats` sends the dashboard: a [`Snapshot`] every
//! [`PERIOD`], and, first thing on connect, the
//! [`History`] of the last [`HISTORY_SPAN`] of them, so that a page opened
//! on a server that has been leaking for minutes shows the climb at once,
//! not an empty chart.
//!
//! Worker 0 records one snapshot per period into the history, whether or
//! not anyone watches; every worker broadcasts the latest recorded one to
//! its own subscribers. (With several workers a subscriber may get the same
//! snapshot twice; its `t` says so, and the page keeps one.)
//!
//! The history goes out as one `history` event whose points are arrays in
//! the order of [`POINT_COLUMNS`]: 600 points as objects would be about
//! 57 KiB, close to the default `--max-buffered` of 64 KiB; as arrays about
//! 27 KiB. Whatever does not fit in half of `--max-buffered` is left out,
//! oldest first.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// How often a snapshot is taken and sent.
pub const PERIOD: Duration = Duration::from_millis(500);

/// How far back the history reaches.
pub const HISTORY_SPAN: Duration = Duration::from_secs(5 * 60);

/// Snapshots held: [`HISTORY_SPAN`] / [`PERIOD`].
pub const HISTORY_LEN: usize = (HISTORY_SPAN.as_millis() / PERIOD.as_millis()) as usize;

/// A count per heartbeat route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerRoute {
    /// On `/stream/fixed`.
    pub fixed: u64,
    /// On `/stream/leaky`.
    pub leaky: u64,
}

/// Live reactor timers per timer mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByMode {
    /// One timerfd each.
    pub dedicated: u64,
    /// Heap entries on one timerfd.
    pub shared: u64,
}

/// One `/stream/stats` event: the server as the dashboard shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// When it was taken: milliseconds since the Unix epoch.
    pub t: u64,
    /// Age of the fd census behind `open_fds` and `timerfds`, in ms.
    pub census_age_ms: u64,
    /// Open fds of the server process.
    pub open_fds: u64,
    /// Its soft `RLIMIT_NOFILE`.
    pub max_fds: u64,
    /// Its timerfds, counted from `/proc/self/fd`.
    pub timerfds: u64,
    /// Open streams per route.
    pub streams: PerRoute,
    /// Heartbeat timers per route: open streams plus orphans.
    pub timers_by_route: PerRoute,
    /// Heartbeat timers whose client is gone, per route.
    pub orphans: PerRoute,
    /// Live reactor timers per mode, over all workers.
    pub timers_by_mode: ByMode,
    /// Returns from `epoll_wait`, over all workers.
    pub wakeups: u64,
    /// Timer expirations delivered, over all workers.
    pub expirations: u64,
    /// Heartbeats written to clients.
    pub heartbeats: u64,
    /// Client connections open now.
    pub connections: u64,
}

/// The columns of a history point, in order.
pub const POINT_COLUMNS: [&str; 7] =
    ["t", "open_fds", "max_fds", "timerfds", "fixed_timers", "leaky_timers", "leaky_orphans"];

/// A [`Snapshot`] reduced to what the chart draws, as a JSON array in the
/// order of [`POINT_COLUMNS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point(pub u64, pub u64, pub u64, pub u64, pub u64, pub u64, pub u64);

impl From<&Snapshot> for Point {
    fn from(s: &Snapshot) -> Point {
        Point(
            s.t,
            s.open_fds,
            s.max_fds,
            s.timerfds,
            s.timers_by_route.fixed,
            s.timers_by_route.leaky,
            s.orphans.leaky,
        )
    }
}

/// The `history` event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEvent<'a> {
    /// The snapshot period, in milliseconds (a gap of more means an outage).
    pub period_ms: u64,
    /// The names of each point's columns.
    pub columns: [&'static str; 7],
    /// Oldest first.
    pub points: &'a [Point],
}

/// The last [`HISTORY_LEN`] snapshots, oldest first.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<Point>,
    latest: Snapshot,
}

impl History {
    /// Record `s`, dropping the oldest point past [`HISTORY_LEN`]. O(1).
    pub fn record(&mut self, s: Snapshot) {
        if self.points.len() == HISTORY_LEN {
            self.points.pop_front();
        }
        self.points.push_back(Point::from(&s));
        self.latest = s;
    }

    /// The latest snapshot recorded (all zeros before the first).
    pub fn latest(&self) -> Snapshot {
        self.latest
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether none is held yet.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The `history` event, as SSE bytes no longer than `budget` when that
    /// can be done: the newest points that fit, oldest first.
    pub fn event(&self, budget: usize) -> Vec<u8> {
        let points: Vec<Point> = self.points.iter().copied().collect();
        let mut keep = points.len();
        loop {
            let data = HistoryEvent {
                period_ms: PERIOD.as_millis() as u64,
                columns: POINT_COLUMNS,
                points: &points[points.len() - keep..],
            };
            let mut out = Vec::new();
            crate::sse::json_event(&mut out, Some("history"), &data);
            if out.len() <= budget || keep == 0 {
                return out;
            }
            // Shrink in proportion, at least one point per round.
            let fit = keep * budget / out.len();
            keep = fit.min(keep - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t: u64) -> Snapshot {
        Snapshot { t, open_fds: 10 + t, max_fds: 1024, ..Snapshot::default() }
    }

    #[test]
    fn the_history_is_bounded_and_keeps_the_newest() {
        let mut h = History::default();
        for t in 0..HISTORY_LEN as u64 + 50 {
            h.record(snap(t));
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.latest().t, HISTORY_LEN as u64 + 49);
        let event = String::from_utf8(h.event(1 << 20)).unwrap();
        let data = event.strip_prefix("event: history\ndata: ").unwrap().trim_end();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        let points = v["points"].as_array().unwrap();
        assert_eq!(points.len(), HISTORY_LEN);
        assert_eq!(points[0][0], 50, "the 50 oldest were dropped");
        assert_eq!(v["columns"][1], "open_fds");
        assert_eq!(points[0][1], 60);
    }

    #[test]
    fn the_history_event_fits_its_budget_newest_first() {
        let mut h = History::default();
        for t in 0..HISTORY_LEN as u64 {
            h.record(snap(1_764_000_000_000 + t * 500));
        }
        let full = h.event(usize::MAX);
        assert!(full.len() < 32 * 1024, "600 points in {} bytes", full.len());
        let small = h.event(2048);
        assert!(small.len() <= 2048, "{}", small.len());
        let text = String::from_utf8(small).unwrap();
        let last = format!("{}", 1_764_000_000_000 + (HISTORY_LEN as u64 - 1) * 500);
        assert!(text.contains(&last), "the newest point is kept: {text}");
    }
}
