//! What the kernel says about this process's fds.
//!
//! `/proc/self/fd` is read through a directory handle opened once, at
//! start, and rewound for each count: at the fd limit, opening the directory
//! anew would fail with EMFILE, and `/metrics` would report nothing exactly
//! when it matters most. `readlink` needs no fd.

use std::sync::Mutex;

use rustix::fs::{Dir, Mode, OFlags, open};
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

static FD_DIR: Mutex<Option<Dir>> = Mutex::new(None);

/// Open the `/proc/self/fd` handle now, while fds are plentiful.
pub fn init() {
    with_fd_dir(|_| ());
}

fn with_fd_dir<T>(f: impl FnOnce(&mut Dir) -> T) -> Option<T> {
    let mut guard = FD_DIR.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        *guard = open("/proc/self/fd", flags, Mode::empty()).ok().and_then(|fd| Dir::new(fd).ok());
    }
    let dir = guard.as_mut()?;
    dir.rewind();
    Some(f(dir))
}

impl FdCounts {
    /// Read them now. A vanished fd (closed between listing and `readlink`)
    /// is simply not counted.
    pub fn read() -> FdCounts {
        let mut counts = FdCounts { max: nofile().0, ..FdCounts::default() };
        let mut buf = String::with_capacity(32);
        with_fd_dir(|dir| {
            while let Some(Ok(entry)) = dir.read() {
                let name = entry.file_name().to_bytes();
                if name.first() == Some(&b'.') {
                    continue;
                }
                counts.open += 1;
                buf.clear();
                buf.push_str("/proc/self/fd/");
                buf.push_str(&String::from_utf8_lossy(name));
                if std::fs::read_link(&buf).is_ok_and(|t| t.as_os_str() == "anon_inode:[timerfd]") {
                    counts.timerfds += 1;
                }
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_kernel_listing() {
        init();
        let ours = FdCounts::read();
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() - 1;
        // Other test threads may open or close fds meanwhile; the handle's own fd is counted.
        assert!(ours.open.abs_diff(listed) <= 4, "{ours:?} vs {listed}");
        assert!(ours.max > 0 && ours.usage_ratio() > 0.0);
    }
}
