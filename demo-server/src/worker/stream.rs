//! Event streams: starting one, its heartbeats, and the stats broadcast.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reactor::{Clock, ClockTime, Expiration, Reactor};

use super::conn::{State, Stream};
use super::{HOUSEKEEPING, STATS_PERIOD, Worker, WorkerEvent, on};
use crate::http::{self, Status};
use crate::metrics::Fault;
use crate::sse;
use crate::wire::Route;

/// Every `period`, on a grid shared by all streams: the first expiry is the
/// next multiple of `period` on `CLOCK_MONOTONIC`. Heartbeats of all streams
/// then fall due together, so one wake-up serves a whole batch of them
/// instead of one each (what timer slack and coalescing do in the kernel and
/// in Go's runtime). The first heartbeat comes within one period.
fn on_grid(period: Duration) -> Expiration {
    let p = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
    match Clock::Monotonic.now().as_nanos() {
        Some(now) => {
            let first = ClockTime::from_nanos((now / p).saturating_add(1).saturating_mul(p));
            Expiration::EveryAt { first, period }
        }
        None => Expiration::every(period),
    }
}

/// Milliseconds since the epoch; 0 for a clock set before 1970.
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Worker {
    pub(super) fn start_stream(
        &mut self,
        r: &Reactor<Worker>,
        key: usize,
        route: Route,
        last_event_id: Option<u64>,
    ) {
        let (interval, mode) = (self.cfg.interval, self.cfg.timer_mode);
        let mut leak = None;
        let timer = match route {
            Route::Fixed => Some(r.add_timer(mode, on_grid(interval), move |ctx, ticks| {
                on(ctx, WorkerEvent::Heartbeat { key, ticks })
            })),
            Route::Leaky => {
                let id = self.next_leak;
                self.next_leak += 1;
                leak = Some(id);
                Some(r.add_timer(mode, on_grid(interval), move |ctx, ticks| {
                    on(ctx, WorkerEvent::LeakyHeartbeat { key, leak: id, ticks })
                }))
            }
            _ => None,
        };
        let timer = match timer.transpose() {
            Ok(t) => t,
            Err(e) => {
                // No timer (EMFILE in dedicated mode): refuse, saying why.
                self.fault(Fault::Heartbeat, e);
                let mut out = Vec::new();
                let body = "503: the server cannot arm another heartbeat timer now (it is at a limit); try again in a second.\n";
                http::unavailable(&mut out, body, Some(1), false);
                self.metrics.response(Status::Unavailable);
                if self.send(key, &out) {
                    self.finish(r, key);
                }
                return;
            }
        };
        let mut leak_fd = None;
        let timer = match (route, timer) {
            (Route::Leaky, Some(t)) => {
                leak_fd = t.fd();
                if let Some(fd) = leak_fd {
                    self.metrics.leaks.streaming(fd);
                }
                // The bug, on purpose: like `for range ticker.C` with no
                // `ticker.Stop()`, nothing will ever cancel this timer.
                t.detach();
                None
            }
            (_, t) => t,
        };
        // Stats come from the worker's housekeeping timer, not a heartbeat.
        let hello = match route {
            Route::Stats => sse::Hello::new(route, STATS_PERIOD, HOUSEKEEPING, last_event_id),
            _ => sse::Hello::new(route, interval, mode, last_event_id),
        };
        let mut out = http::SSE_HEAD.to_vec();
        sse::opening(&mut out, &hello);
        if route == Route::Stats {
            self.metrics.census_watched();
            out.extend(self.metrics.history_event(self.cfg.max_buffered / 2));
            self.stats_subscribers.push(key);
        }
        let conn = &mut self.conns[key];
        conn.inbuf = Vec::new();
        let seq = last_event_id.unwrap_or(0);
        conn.state = State::Streaming(Stream { route, seq, _timer: timer, leak, leak_fd });
        self.metrics.response(Status::Ok);
        self.metrics.stream_opened(route);
        self.send(key, &out);
    }

    pub(super) fn heartbeat(&mut self, key: usize, ticks: u64) {
        let Some(stream) = self.conns.get_mut(key).and_then(|c| c.stream()) else { return };
        let Some(seq) = stream.seq.checked_add(1).filter(|&s| s <= sse::MAX_EVENT_ID) else {
            // Ids never go backwards: out of ids, the stream ends.
            return self.close(key);
        };
        stream.seq = seq;
        let mut buf = [0u8; 160];
        let n = sse::heartbeat(&mut buf, stream.route, seq, ticks);
        // EPIPE/ECONNRESET: gone; or too far behind: cut off (both closed).
        if self.send(key, &buf[..n]) {
            self.metrics.heartbeat();
            self.settle(key);
        }
    }

    pub(super) fn broadcast_stats(&mut self) {
        if self.index == 0 {
            self.metrics.record(unix_ms());
        }
        if self.stats_subscribers.is_empty() {
            return;
        }
        self.metrics.census_watched();
        let latest = self.metrics.latest();
        if latest.t == 0 {
            return; // worker 0 has recorded nothing yet
        }
        let mut event = Vec::new();
        sse::json_event(&mut event, None, &latest);
        for key in self.stats_subscribers.clone() {
            if self.send(key, &event) {
                self.settle(key);
            }
        }
    }
}
