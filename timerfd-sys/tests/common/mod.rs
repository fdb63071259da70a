//! Helpers shared by the kernel-facing tests.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::time::Timespec;
use timerfd_sys::{Clock, Expiration, TimerFd};

/// Wait until `fd` is readable or `limit` passes; true if it became readable.
pub fn wait_readable(fd: impl AsFd, limit: Duration) -> bool {
    let timeout = Timespec { tv_sec: limit.as_secs() as i64, tv_nsec: limit.subsec_nanos().into() };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => return n == 1,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Block until `d` has certainly passed on CLOCK_MONOTONIC, by reading a
/// blocking one-shot timerfd: a measured wait, not a sleep-and-hope.
pub fn wait_for(d: Duration) {
    let t = TimerFd::new_blocking(Clock::Monotonic).unwrap();
    t.set(Expiration::Once(d)).unwrap();
    assert_eq!(t.read().unwrap(), 1);
}

pub use test_support::open_fds;

/// The `/proc/self/fdinfo/FD` text of an fd.
pub fn fdinfo(fd: impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).unwrap()
}
