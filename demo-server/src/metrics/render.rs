//! `/metrics`: the Prometheus text exposition of [`Metrics`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use reactor::Stats;

use super::{AcceptError, Fault, Metrics, STREAM_ROUTES, route_index};
use crate::http::Status;
use crate::wire::Route;

/// One sample with these labels.
fn one_labeled(labels: String, value: &str) -> Vec<(String, String)> {
    vec![(labels, value.to_string())]
}

/// A counter per label value: `{key="value"} count`.
fn labeled<'a>(
    key: &str,
    counters: impl Iterator<Item = (String, &'a AtomicU64)>,
) -> Vec<(String, String)> {
    counters.map(|(v, c)| (format!("{{{key}=\"{v}\"}}"), c.load(Relaxed).to_string())).collect()
}

impl Metrics {
    /// The Prometheus text exposition, format 0.0.4; every family is listed
    /// in `docs/METRICS.md`. O(1) in fds and connections: the fd counts and
    /// the process numbers come from the census thread's latest reading.
    pub fn render(&self) -> String {
        let census = self.census(true);
        let fds = census.counts;
        let workers = self.per_worker();
        let mut out = String::with_capacity(8192);
        // `fmt::Write` for a `String` cannot fail.
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _infallible = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _infallible = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        let per_route = |a: &[AtomicU64; 3], routes: &[Route]| {
            labeled("route", routes.iter().map(|r| (r.label().into(), &a[route_index(*r)])))
        };
        let per_worker = |f: &dyn Fn(&Stats) -> String| -> Vec<(String, String)> {
            workers.iter().enumerate().map(|(i, s)| (format!("{{worker=\"{i}\"}}"), f(s))).collect()
        };

        // The process collector's families, with its names and help texts.
        if let Some(p) = census.process {
            family(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                &one(format!("{:.2}", p.cpu_seconds)),
            );
        }
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &one(fds.open.to_string()),
        );
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            &one(fds.max.to_string()),
        );
        if let Some(p) = census.process {
            family(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                &one(p.virtual_bytes.to_string()),
            );
            family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                &one(p.resident_bytes.to_string()),
            );
            family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                &one(format!("{:.2}", p.start_time_seconds)),
            );
        }

        // The reactor layer: one series per worker.
        family(
            "reactor_timers_active",
            "gauge",
            "Live reactor timers by worker and mode (dedicated: one timerfd each; shared: heap entries on one timerfd).",
            &workers
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    [
                        (
                            format!("{{worker=\"{i}\",mode=\"dedicated\"}}"),
                            s.dedicated_timers.to_string(),
                        ),
                        (
                            format!("{{worker=\"{i}\",mode=\"shared\"}}"),
                            s.shared_timers.to_string(),
                        ),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        family(
            "reactor_timerfds_open",
            "gauge",
            "Timerfds the reactor holds: one per dedicated timer, one per clock with shared timers.",
            &per_worker(&|s| s.timerfds_open.to_string()),
        );
        family(
            "reactor_detached_timers",
            "gauge",
            "Timers kept alive by detach(), with no handle left.",
            &per_worker(&|s| s.detached_timers.to_string()),
        );
        family(
            "reactor_shared_heap_entries",
            "gauge",
            "Entries in the shared-timer heap, cancelled ones not yet collected included.",
            &per_worker(&|s| s.shared_heap_entries.to_string()),
        );
        family(
            "reactor_wakeups_total",
            "counter",
            "Returns from epoll_wait.",
            &per_worker(&|s| s.wakeups.to_string()),
        );
        family(
            "reactor_stale_events_total",
            "counter",
            "Events discarded because their source was dropped in the same batch.",
            &per_worker(&|s| s.stale_events.to_string()),
        );
        family(
            "reactor_timer_expirations_total",
            "counter",
            "Timer expirations delivered to callbacks, missed ticks included.",
            &per_worker(&|s| s.timer_expirations.to_string()),
        );
        family(
            "reactor_faults_total",
            "counter",
            "System calls the reactor made on its own behalf that failed and were retried.",
            &per_worker(&|s| s.faults.to_string()),
        );

        // The demo server's own families.
        family(
            "demo_server_build_info",
            "gauge",
            "Always 1; the labels say which build and settings serve.",
            &one_labeled(
                format!(
                    "{{version=\"{}\",timer_mode=\"{}\"}}",
                    env!("CARGO_PKG_VERSION"),
                    self.timer_mode
                ),
                "1",
            ),
        );
        family(
            "demo_server_fd_census_age_seconds",
            "gauge",
            "Age of the census behind process_open_fds, process_* and demo_server_timerfds_open (taken off the request path).",
            &one(format!("{:.3}", census.age().as_secs_f64())),
        );
        family(
            "demo_server_timerfds_open",
            "gauge",
            "Timerfds open in this process, counted from /proc/self/fd.",
            &one(fds.timerfds.to_string()),
        );
        family(
            "demo_server_streams_active",
            "gauge",
            "Open event streams by route.",
            &per_route(&self.streams_active, &STREAM_ROUTES),
        );
        family(
            "demo_server_streams_opened_total",
            "counter",
            "Event streams opened by route.",
            &per_route(&self.streams_total, &STREAM_ROUTES),
        );
        family(
            "demo_server_orphan_timers",
            "gauge",
            "Heartbeat timers still firing for a stream whose client is gone.",
            &per_route(&self.orphans, &[Route::Fixed, Route::Leaky]),
        );
        family(
            "demo_server_orphan_expirations_total",
            "counter",
            "Expirations of orphaned timers: wake-ups that served nobody.",
            &one(self.orphan_ticks.load(Relaxed).to_string()),
        );
        family(
            "demo_server_heartbeats_total",
            "counter",
            "Heartbeat events written to clients.",
            &one(self.heartbeats.load(Relaxed).to_string()),
        );
        family(
            "demo_server_http_responses_total",
            "counter",
            "HTTP responses sent, by status code.",
            &labeled(
                "code",
                Status::ALL.iter().map(|s| (s.code().to_string(), &self.responses[s.index()])),
            ),
        );
        family(
            "demo_server_accept_errors_total",
            "counter",
            "accept() failures by reason.",
            &labeled(
                "reason",
                AcceptError::ALL
                    .iter()
                    .map(|e| (e.label().into(), &self.accept_errors[*e as usize])),
            ),
        );
        family(
            "demo_server_faults_total",
            "counter",
            "Failures that changed what a client got, by kind (each episode is logged once).",
            &labeled(
                "what",
                Fault::ALL.iter().map(|f| (f.label().into(), &self.faults[*f as usize])),
            ),
        );
        family(
            "demo_server_connections_open",
            "gauge",
            "Client connections open now.",
            &one(self.connections.load(Relaxed).to_string()),
        );
        out
    }
}
