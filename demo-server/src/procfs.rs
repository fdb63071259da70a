//! What the kernel says about this process's fds.

use rustix::process::{Resource, getrlimit};

/// Fd totals from `/proc/self/fd` and `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdCounts {
    /// Every open fd.
    pub open: usize,
    /// Those that are timerfds (`anon_inode:[timerfd]`).
    pub timerfds: usize,
    /// The soft `RLIMIT_NOFILE`.
    pub max: u64,
}

impl FdCounts {
    /// Read them now. A vanished fd (closed between listing and `readlink`)
    /// is simply not counted.
    pub fn read() -> FdCounts {
        let mut counts = FdCounts { max: nofile().0, ..FdCounts::default() };
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            for entry in dir.flatten() {
                counts.open += 1;
                if std::fs::read_link(entry.path())
                    .is_ok_and(|t| t.as_os_str() == "anon_inode:[timerfd]")
                {
                    counts.timerfds += 1;
                }
            }
        }
        counts.open = counts.open.saturating_sub(1); // read_dir's own fd
        counts
    }

    /// `open / max`.
    pub fn usage_ratio(&self) -> f64 {
        if self.max == 0 { 0.0 } else { self.open as f64 / self.max as f64 }
    }
}

/// The soft and hard `RLIMIT_NOFILE` (`u64::MAX` for unlimited).
pub fn nofile() -> (u64, u64) {
    let limit = getrlimit(Resource::Nofile);
    (limit.current.unwrap_or(u64::MAX), limit.maximum.unwrap_or(u64::MAX))
}
