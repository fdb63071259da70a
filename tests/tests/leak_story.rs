//! The project's story, end to end across its three crates, told by the
//! kernel's fd census rather than by any of our own counters:
//!
//! 1. `timerfd-sys`: a timer is one timerfd, and dropping it closes it.
//! 2. `reactor`: a timer whose handle is dropped is gone; one that is
//!    detached (the "ticker never stopped") keeps its timerfd and keeps
//!    waking the loop; in shared mode the same leak is a heap entry, not an fd.
//! 3. `demo-server`: closing `/stream/fixed` clients returns the server's
//!    timerfds to their baseline; closing `/stream/leaky` clients leaves one
//!    timerfd per stream behind, for good.
//!
//! One test function per binary keeps the fd counts this test's own.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use demo_server::client::{Opened, open_stream};
use reactor::{Expiration, Reactor, TimerMode};
use test_support::server::{SOON, Server, demo_server_bin};
use test_support::{open_timerfds, wait_until};
use timerfd_sys::{Clock, TimerFd};

const STREAMS: usize = 5;

#[test]
fn a_ticker_never_stopped_is_a_timerfd_that_stays_in_every_layer() {
    // 1. timerfd-sys
    let base = open_timerfds();
    let t = TimerFd::new(Clock::Monotonic).unwrap();
    assert_eq!(open_timerfds(), base + 1, "one timer, one timerfd");
    drop(t);
    assert_eq!(open_timerfds(), base, "dropped, closed");

    // 2. reactor
    let r = Reactor::new().unwrap();
    let fired = Rc::new(Cell::new(0u64));
    let every = Expiration::every(Duration::from_millis(2));
    let f = fired.clone();
    let stopped = r.add_timer(TimerMode::Dedicated, every, move |_, n| f.set(f.get() + n)).unwrap();
    drop(stopped);
    assert_eq!(open_timerfds(), base, "a dropped handle takes its timerfd with it");
    let f = fired.clone();
    r.add_timer(TimerMode::Dedicated, every, move |_, n| f.set(f.get() + n)).unwrap().detach();
    assert_eq!(open_timerfds(), base + 1, "the detached ticker keeps its timerfd");
    assert!(
        r.run_until_timeout(SOON, || fired.get() >= 5).unwrap(),
        "and keeps firing, for nobody"
    );
    let f = fired.clone();
    r.add_timer(TimerMode::Shared, every, move |_, n| f.set(f.get() + n)).unwrap().detach();
    assert_eq!(
        open_timerfds(),
        base + 2,
        "shared mode: one timerfd for the heap, not one per timer"
    );
    assert_eq!(r.stats().detached_timers, 2);
    drop(r);
    assert_eq!(open_timerfds(), base, "only dropping the reactor ends a detached timer");

    // 3. demo-server, seen from /proc/PID/fd
    let server = Server::spawn(demo_server_bin(), &["--interval", "100ms"], &[]);
    // The first request creates the worker's shared timerfd (housekeeping
    // deadlines); it stays, so the baseline is taken after one.
    assert_eq!(test_support::http::get(server.addr, "/metrics").status, 200);
    let baseline = server.timerfds();
    for (route, leaks) in [("fixed", 0), ("leaky", STREAMS)] {
        let clients: Vec<_> = (0..STREAMS)
            .map(|_| match open_stream(server.addr, route) {
                Opened::Stream(s) => s,
                other => panic!("/stream/{route}: {other:?}"),
            })
            .collect();
        assert!(
            wait_until(SOON, || server.timerfds() >= baseline + STREAMS),
            "/stream/{route}: one timerfd per open stream, got {}",
            server.timerfds()
        );
        drop(clients);
        let settled = wait_until(SOON, || server.timerfds() == baseline + leaks);
        assert!(
            settled,
            "/stream/{route}: {} timerfds after close, want {}",
            server.timerfds(),
            baseline + leaks
        );
    }
    // The orphans stay: three heartbeats of a new stream later, they and
    // that stream's own timer are all there.
    let Opened::Stream(mut watch) = open_stream(server.addr, "fixed") else { panic!("no stream") };
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    while seen.matches("\nid: ").count() < 3 {
        let n = watch.read(&mut buf).expect("heartbeats keep coming");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(server.timerfds(), baseline + STREAMS + 1, "the leaky timers are orphans, for good");
}
