//! Exact resource accounting from the kernel's view (`/proc/self/fd`).
//! One test function, so no other test thread opens fds while it counts.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{open_fds, open_timerfds};
use reactor::{Expiration, Interest, Reactor, Timer, TimerMode};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

const FAR: Expiration = Expiration::Once(Duration::from_secs(3600));

#[test]
fn fds_are_accounted_for_exactly() {
    let base = open_fds();
    let base_timerfds = open_timerfds();

    // 1. 10,000 dedicated timers: one timerfd each, all closed on drop.
    let r = Reactor::new().unwrap();
    assert_eq!(open_fds(), base + 1, "a new reactor holds one epoll fd");
    let timers: Vec<Timer> =
        (0..10_000).map(|_| r.add_timer(TimerMode::Dedicated, FAR, |_, _| {}).unwrap()).collect();
    assert_eq!(open_timerfds(), base_timerfds + 10_000);
    assert_eq!(r.stats().timerfds_open, 10_000);
    drop(timers);
    assert_eq!(open_fds(), base + 1, "dropping 10,000 dedicated timers closed every timerfd");
    assert_eq!(r.stats().timerfds_open, 0);

    // 2. Shared mode holds exactly one timerfd, whatever its number of timers.
    let shared: Vec<Timer> =
        (0..1_000).map(|_| r.add_timer(TimerMode::Shared, FAR, |_, _| {}).unwrap()).collect();
    assert_eq!(open_timerfds(), base_timerfds + 1);
    drop(shared);
    assert_eq!(
        open_timerfds(),
        base_timerfds + 1,
        "the shared timerfd stays for the reactor's life"
    );

    // 3. A million shared timers on that one fd.
    let start = Instant::now();
    let million: Vec<Timer> =
        (0..1_000_000).map(|_| r.add_timer(TimerMode::Shared, FAR, |_, _| {}).unwrap()).collect();
    assert_eq!(r.stats().shared_timers, 1_000_000);
    assert_eq!(open_timerfds(), base_timerfds + 1, "1,000,000 shared timers, still one timerfd");
    println!("1,000,000 shared timers added in {:?}", start.elapsed());
    drop(million);
    assert_eq!(r.stats().shared_timers, 0);

    // 4. Dropping the reactor closes every fd it owns: epoll, shared timerfd,
    //    detached timers of both modes, an owned socket, the waker's eventfd.
    r.add_timer(TimerMode::Dedicated, Expiration::every(Duration::from_millis(5)), |_, _| {})
        .unwrap()
        .detach();
    r.add_timer(TimerMode::Shared, Expiration::every(Duration::from_millis(5)), |_, _| {})
        .unwrap()
        .detach();
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .unwrap();
    let a_raw = a.as_raw_fd();
    r.add_io(a, Interest::READABLE, |_, _| {}).unwrap().detach();
    drop(r.waker().unwrap());
    r.turn(Some(Duration::from_millis(10))).unwrap();
    let s = r.stats();
    assert_eq!((s.detached_timers, s.detached_io, s.wakers), (2, 1, 1));
    assert_eq!(
        open_fds(),
        base + 6,
        "epoll, shared timerfd, dedicated timerfd, socket, peer, eventfd"
    );
    drop(r);
    assert_eq!(open_fds(), base + 1, "only the test's own socket end is left");
    assert!(std::fs::read_link(format!("/proc/self/fd/{a_raw}")).is_err(), "owned socket closed");
    drop(b);
    assert_eq!(open_fds(), base);
    assert_eq!(open_timerfds(), base_timerfds);
}
