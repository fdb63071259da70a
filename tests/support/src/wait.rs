//! Bounded waiting: tests poll a condition, they never sleep and hope.

use std::time::{Duration, Instant};

/// Poll `cond` every 10 ms until it holds (true) or `limit` passes (false).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Loose bound for "soon" in tests that talk to a server or a child.
pub const SOON: std::time::Duration = std::time::Duration::from_secs(5);
