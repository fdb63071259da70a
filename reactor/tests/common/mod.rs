//! Helpers shared by the reactor's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

/// Open fds of this process, as the kernel lists them.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1 // minus read_dir's own fd
}

/// Open timerfds of this process, as the kernel lists them.
pub fn open_timerfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy() == "anon_inode:[timerfd]")
        .count()
}

/// Loose bound for "soon" in tests; precision belongs to the benchmarks.
pub const SOON: Duration = Duration::from_secs(2);

/// A connected, nonblocking Unix stream socket pair.
pub fn pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None).unwrap()
}
