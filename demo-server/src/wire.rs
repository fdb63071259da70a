//! What both sides of the wire share: the routes, and the numbers the HTTP
//! parser and the event-stream writer must agree on. `http` and `sse` both
//! import this module and not each other.

/// The largest event id this server sends: 2^53 - 1, the largest integer
/// a JavaScript client holds exactly. A `Last-Event-ID` above it gets 400
/// (resuming from it could only wrap the ids back), and a stream that
/// would pass it ends.
pub const MAX_EVENT_ID: u64 = (1 << 53) - 1;

/// The routes this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/`: the dashboard page.
    Dashboard,
    /// `/metrics`: Prometheus text format.
    Metrics,
    /// `/stream/fixed`: SSE heartbeats from a timer owned by the connection.
    Fixed,
    /// `/stream/leaky`: SSE heartbeats from a detached timer.
    Leaky,
    /// `/stream/stats`: SSE JSON snapshots for the dashboard.
    Stats,
    /// `/debug/fds`: the kernel's view of this process, as JSON (same-origin only).
    DebugFds,
}

impl Route {
    /// The route of a path (a query or fragment is ignored).
    pub fn from_path(path: &str) -> Option<Route> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        Some(match path {
            "/" | "/index.html" => Route::Dashboard,
            "/metrics" => Route::Metrics,
            "/stream/fixed" => Route::Fixed,
            "/stream/leaky" => Route::Leaky,
            "/stream/stats" => Route::Stats,
            "/debug/fds" => Route::DebugFds,
            _ => return None,
        })
    }

    /// Whether the route is an event stream.
    pub fn is_stream(self) -> bool {
        matches!(self, Route::Fixed | Route::Leaky | Route::Stats)
    }

    /// The label used in metrics (`route="fixed"`).
    pub fn label(self) -> &'static str {
        match self {
            Route::Dashboard => "dashboard",
            Route::Metrics => "metrics",
            Route::Fixed => "fixed",
            Route::Leaky => "leaky",
            Route::Stats => "stats",
            Route::DebugFds => "debug_fds",
        }
    }
}
