//! Open fds as the kernel lists them in `/proc/PID/fd`: the census every
//! "leaves no fd behind" test compares with its own counters.

/// What each open fd of `pid` points at (`socket:[..]`,
/// `anon_inode:[timerfd]`, a path); empty if the process is gone.
pub fn links(pid: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|t| t.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() - 1).unwrap_or(0) // less read_dir's own
}

/// Open timerfds of this process.
pub fn open_timerfds() -> usize {
    timerfds(&links("self"))
}

/// How many of `links` are timerfds.
pub fn timerfds(links: &[String]) -> usize {
    links.iter().filter(|t| *t == "anon_inode:[timerfd]").count()
}
