//! The kernel's fd census, taken off the reactor threads.
//!
//! Counting fds by kind means a `readlink` for every entry of
//! `/proc/self/fd`: with 10,000 fds open that is tens of milliseconds. Done
//! per `/metrics` request on a reactor thread, it stalled every stream on
//! that worker for as long, and a client that pipelined scrapes could stall
//! them for seconds. So one `fd-census` thread takes the census every
//! [`PERIOD`] into a shared [`Reading`]; `/metrics` and `/stream/stats`
//! only copy the latest one (O(1)) and export its age. The process
//! collector's numbers (`/proc/self/stat`) are read with it, for the same reason, so a reader can tell
//! how fresh the numbers are.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::procfs::{FdCounts, ProcessStats};

/// How often the census thread counts the fds.
pub const PERIOD: Duration = Duration::from_millis(500);

/// One census: the counts and when they were taken.
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
}

impl Census {
    /// Take a first reading now, then start the thread that refreshes it
    /// every `period` for as long as the returned `Census` is alive.
    pub fn start(period: Duration) -> std::io::Result<Arc<Census>> {
        let census = Arc::new(Census::now());
        let weak: Weak<Census> = Arc::downgrade(&census);
        std::thread::Builder::new().name("fd-census".into()).spawn(move || {
            loop {
                std::thread::sleep(period);
                let Some(census) = weak.upgrade() else { return };
                census.refresh();
            }
        })?;
        Ok(census)
    }

    /// A census read once, with no thread (for tools and tests).
    pub fn now() -> Census {
        Census { latest: Mutex::new(Reading::take()) }
    }

    /// Count again, now, on the calling thread.
    pub fn refresh(&self) {
        let reading = Reading::take();
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = reading;
    }

    /// The latest reading: a copy, O(1).
    pub fn latest(&self) -> Reading {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_keeps_the_reading_fresh() {
        crate::procfs::init();
        let census = Census::start(Duration::from_millis(20)).unwrap();
        let first = census.latest().taken;
        let deadline = Instant::now() + Duration::from_secs(5);
        while census.latest().taken == first {
            assert!(Instant::now() < deadline, "never refreshed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(census.latest().age() < Duration::from_secs(5));
        assert!(census.latest().counts.open > 0);
    }
}
