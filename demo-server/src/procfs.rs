//! What the kernel says about this process: its fds, and the numbers of
//! the Prometheus process collector (CPU time, memory, start time).
//!
//! `/proc/self/fd` is read through a directory handle opened once, at
//! start, and rewound for each count: at the fd limit, opening the directory
//! anew would fail with EMFILE, and `/metrics` would report nothing exactly
//! when it matters most. `readlink` needs no fd. For the same reason
//! `/proc/self/stat` is opened once and re-read with `pread` at offset 0,
//! which makes the kernel generate it afresh.

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::fs::{Dir, Mode, OFlags, open, readlinkat_raw};
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
static STAT: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Open the `/proc/self/fd` and `/proc/self/stat` handles now, while fds
/// are plentiful.
pub fn init() {
    with_fd_dir(|_| ());
    // Opens and caches the handle; what it reads now is not needed. If it
    // cannot be opened, the census has no process figures, and `/metrics`
    // leaves the `process_*` families out rather than report zeros.
    let _opens_the_handle = ProcessStats::read();
}

/// What the Prometheus process collector reports, from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds (`utime + stime`).
    pub cpu_seconds: f64,
    /// Virtual memory size, in bytes (`vsize`).
    pub virtual_bytes: u64,
    /// Resident set size, in bytes (`rss` pages times the page size).
    pub resident_bytes: u64,
    /// Start time, in seconds since the Unix epoch (`starttime` after `btime`).
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Read them now; `None` if `/proc/self/stat` cannot be read.
    pub fn read() -> Option<ProcessStats> {
        let mut guard = STAT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            // None: tried again next time (see `init`).
            *guard = open("/proc/self/stat", flags, Mode::empty()).ok();
        }
        let fd = guard.as_ref()?;
        let mut buf = [0u8; 1024];
        let n = rustix::io::pread(fd, &mut buf, 0).ok()?;
        parse_stat(std::str::from_utf8(&buf[..n]).ok()?, boot_time()?)
    }
}

impl ProcessStats {
    /// Another process's, from `/proc/PID/stat`; `None` if it is gone.
    pub fn of(pid: u32) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&stat, boot_time()?)
    }
}

/// `btime` from `/proc/stat`: the boot time, seconds since the Unix epoch.
/// Read once: it does not change.
fn boot_time() -> Option<u64> {
    static BTIME: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BTIME.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
    })
}

/// What each open fd of process `pid` points at (`socket:[..]`,
/// `anon_inode:[timerfd]`, a path), from `/proc/PID/fd`; empty if it is
/// gone. A tool's view from outside, not the census's (which reads its own
/// fds without allocating).
pub fn links(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

/// Parse `/proc/PID/stat` (see proc_pid_stat(5)), given the boot time: the
/// one reader of that file in the workspace.
pub fn parse_stat(stat: &str, btime: u64) -> Option<ProcessStats> {
    // Fields after the parenthesised command name, from field 3 (state).
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let hz = rustix::param::clock_ticks_per_second().max(1) as f64;
    let page = rustix::param::page_size() as u64;
    Some(ProcessStats {
        cpu_seconds: (num(11)? + num(12)?) as f64 / hz,
        start_time_seconds: btime as f64 + num(19)? as f64 / hz,
        virtual_bytes: num(20)?,
        resident_bytes: num(21)?.saturating_mul(page),
    })
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
        const TIMERFD: &[u8] = b"anon_inode:[timerfd]";
        let mut counts = FdCounts { max: nofile().0, ..FdCounts::default() };
        // Longer targets come back cut to the buffer, so they never match.
        let mut target = [0u8; 32];
        with_fd_dir(|dir| {
            while let Some(Ok(entry)) = dir.read() {
                let name = entry.file_name();
                if name.to_bytes().first() == Some(&b'.') {
                    continue;
                }
                counts.open += 1;
                // Relative to the directory's own fd: a quarter cheaper than
                // resolving "/proc/self/fd/N" from the root each time.
                let Ok(fd) = dir.fd() else { continue };
                if readlinkat_raw(fd, name, &mut target[..]).is_ok_and(|n| &target[..n] == TIMERFD)
                {
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

    #[test]
    fn timerfds_are_told_apart_from_other_fds() {
        init();
        let before = FdCounts::read();
        let clock = timerfd_sys::Clock::Monotonic;
        let timers: Vec<_> = (0..3).map(|_| timerfd_sys::TimerFd::new(clock).unwrap()).collect();
        let pipes: Vec<_> = (0..2).map(|_| rustix::pipe::pipe().unwrap()).collect();
        let after = FdCounts::read();
        // No other test in this binary opens timerfds.
        assert_eq!(after.timerfds, before.timerfds + 3, "{before:?} -> {after:?}");
        assert!(after.open >= before.open + 7, "{before:?} -> {after:?}");
        drop((timers, pipes));
        assert_eq!(FdCounts::read().timerfds, before.timerfds);
    }

    #[test]
    fn process_stats_are_this_process() {
        let p = ProcessStats::read().expect("/proc/self/stat");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0, "{p:?}");
        let sample = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 1000 4096000 100 18446744073709551615";
        let q = parse_stat(sample, 1_700_000_000).unwrap();
        let hz = rustix::param::clock_ticks_per_second() as f64;
        assert_eq!(q.cpu_seconds, 300.0 / hz);
        assert_eq!(q.start_time_seconds, 1_700_000_000.0 + 1000.0 / hz);
        assert_eq!(q.virtual_bytes, 4_096_000);
        assert_eq!(q.resident_bytes, 100 * rustix::param::page_size() as u64);
        assert_eq!(parse_stat("garbage", 0), None);
    }
}
