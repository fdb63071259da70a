//! Event streams: starting one, its heartbeats, and the stats broadcast.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reactor::{Clock, ClockTime, Context, Expiration, Reactor};

use super::{HOUSEKEEPING, STATS_PERIOD, Worker, with_worker};
use crate::conn::{Gone, Stream};
use crate::http::{self, Route, Status};
use crate::sse;

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

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Worker {
    pub(super) fn start_stream(
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
                let made = ctx.reactor().add_timer(mode, on_grid(interval), move |ctx, ticks| {
                    with_worker(&me, |w| w.heartbeat(ctx.reactor(), key, generation, route, ticks))
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
        // Stats come from the worker's housekeeping timer, not a heartbeat.
        let hello = match route {
            Route::Stats => sse::Hello::new(route, STATS_PERIOD, HOUSEKEEPING, last_event_id),
            _ => sse::Hello::new(route, interval, mode, last_event_id),
        };
        let mut out = http::SSE_HEAD.to_vec();
        sse::opening(&mut out, &hello);
        if route == Route::Stats {
            self.metrics.census_watched();
            out.extend(self.metrics.history_event(max / 2));
        }
        let conn = &mut self.conns[key];
        conn.inbuf = Vec::new();
        conn.deadline = None;
        conn.stream = Some(Stream { route, seq: last_event_id.unwrap_or(0), timer });
        if route == Route::Stats {
            self.stats_subscribers.push((key, generation));
        }
        self.metrics.response(Status::Ok);
        self.metrics.stream_opened(route);
        if conn.send(&out, max).is_err() {
            conn.closing = true;
            conn.out.clear();
        }
    }

    fn heartbeat(
        &mut self,
        reactor: &Reactor,
        key: usize,
        generation: u64,
        route: Route,
        ticks: u64,
    ) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else {
            // A leaky timer whose client left long ago: a wake-up for nobody.
            self.metrics.orphan_tick(ticks);
            return;
        };
        let Some(stream) = &mut conn.stream else { return };
        let Some(seq) = stream.seq.checked_add(1).filter(|&s| s <= sse::MAX_EVENT_ID) else {
            // Ids never go backwards: out of ids, the stream ends.
            return self.close(key);
        };
        stream.seq = seq;
        let mut buf = [0u8; 160];
        let n = sse::heartbeat(&mut buf, route, stream.seq, ticks);
        match conn.send(&buf[..n], max) {
            Ok(()) => {
                self.metrics.heartbeat();
                self.settle(reactor, key);
            }
            // EPIPE/ECONNRESET: gone; or too far behind: cut off.
            Err(Gone::Peer | Gone::TooSlow) => self.close(key),
        }
    }

    pub(super) fn broadcast_stats(&mut self, reactor: &Reactor) {
        let max = self.cfg.max_buffered;
        if self.index == 0 {
            self.metrics.record(unix_ms());
        }
        let Worker { conns, stats_subscribers, .. } = self;
        stats_subscribers.retain(|&(key, generation)| {
            conns.get(key).is_some_and(|c| c.generation == generation && c.stream.is_some())
        });
        if stats_subscribers.is_empty() {
            return;
        }
        self.metrics.census_watched();
        let latest = self.metrics.latest();
        if latest.t == 0 {
            return; // worker 0 has recorded nothing yet
        }
        let mut event = Vec::new();
        sse::json_event(&mut event, None, &latest);
        for (key, _) in self.stats_subscribers.clone() {
            if self.conns[key].send(&event, max).is_err() {
                self.close(key);
            } else {
                self.settle(reactor, key);
            }
        }
    }
}
