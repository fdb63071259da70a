//! `TimerFd` owns its fd: dropping it closes it, exactly. This file holds a
//! single test so no other test thread opens fds while it counts.

mod common;

use timerfd_sys::{Clock, TimerFd};

#[test]
fn dropping_1000_timerfds_returns_fd_count_to_baseline() {
    let baseline = common::open_fds();
    let timers: Vec<TimerFd> = (0..1000).map(|_| TimerFd::new(Clock::Monotonic).unwrap()).collect();
    assert_eq!(common::open_fds(), baseline + 1000);
    let timerfds = test_support::open_timerfds();
    assert!(timerfds >= 1000, "the kernel lists {timerfds} timerfds");
    drop(timers);
    assert_eq!(common::open_fds(), baseline);
}
