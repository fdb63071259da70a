//! I/O sources on a socketpair: readiness and hang-up, level and edge,
//! modify, owned and borrowed fds, and the waker across threads.

mod common;

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{SOON, pair};
use reactor::{Error, Interest, Reactor, Readiness, Waker};
use rustix::net::{Shutdown, shutdown};

const QUIET: Duration = Duration::from_millis(20);

type Log = Rc<RefCell<Vec<Readiness>>>;

fn recorder() -> (Log, impl FnMut(&mut reactor::Context<'_>, Readiness) + 'static) {
    let log: Log = Rc::default();
    let sink = log.clone();
    (log, move |_: &mut reactor::Context<'_>, r| sink.borrow_mut().push(r))
}

#[test]
fn level_triggered_readable_is_reported_every_turn_until_drained() {
    let r = Reactor::new().unwrap();
    let (a, b) = pair();
    let (log, cb) = recorder();
    let _io = r.add_io_borrowed(a.as_fd(), Interest::READABLE, cb).unwrap();
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0, "nothing to read yet");
    rustix::io::write(&b, b"hi").unwrap();
    r.turn(Some(SOON)).unwrap();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(log.borrow().len(), 2, "level-triggered: reported again while unread");
    assert!(log.borrow().iter().all(|x| x.is_readable() && !x.is_closed()));
    let mut buf = [0u8; 8];
    assert_eq!(rustix::io::read(&a, &mut buf).unwrap(), 2);
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0, "drained: quiet");
}

#[test]
fn edge_triggered_readable_is_reported_once_per_arrival() {
    let r = Reactor::new().unwrap();
    let (a, b) = pair();
    let (log, cb) = recorder();
    let _io = r.add_io_borrowed(a.as_fd(), Interest::READABLE | Interest::EDGE, cb).unwrap();
    rustix::io::write(&b, b"one").unwrap();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0, "edge-triggered: not again without new data");
    rustix::io::write(&b, b"two").unwrap();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(log.borrow().len(), 2);
}

#[test]
fn peer_shutdown_and_close_are_reported_in_both_modes() {
    for edge in [false, true] {
        let r = Reactor::new().unwrap();
        let (a, b) = pair();
        let (log, cb) = recorder();
        let mut interest = Interest::READABLE | Interest::RDHUP;
        if edge {
            interest = interest | Interest::EDGE;
        }
        let _io = r.add_io_borrowed(a.as_fd(), interest, cb).unwrap();
        shutdown(&b, Shutdown::Write).unwrap();
        r.turn(Some(SOON)).unwrap();
        let first = log.borrow()[0];
        assert!(
            first.is_read_closed() && first.is_closed() && !first.is_hangup(),
            "edge={edge}: {first:?}"
        );
        drop(b);
        r.turn(Some(SOON)).unwrap();
        let last = *log.borrow().last().unwrap();
        assert!(last.is_hangup(), "edge={edge}: close gives EPOLLHUP: {last:?}");
    }
}

#[test]
fn modify_changes_the_interest() {
    let r = Reactor::new().unwrap();
    let (a, _b) = pair();
    let (log, cb) = recorder();
    let io = r.add_io_borrowed(a.as_fd(), Interest::READABLE, cb).unwrap();
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0);
    io.modify(Interest::WRITABLE).unwrap();
    r.turn(Some(SOON)).unwrap();
    assert!(log.borrow()[0].is_writable() && !log.borrow()[0].is_readable());
}

#[test]
fn dropping_the_handle_stops_delivery_and_owned_fds_are_closed() {
    let r = Reactor::new().unwrap();
    let (a, b) = pair();
    let (log, cb) = recorder();
    let io = r.add_io(a, Interest::READABLE | Interest::RDHUP, cb).unwrap();
    rustix::io::write(&b, b"x").unwrap();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(log.borrow().len(), 1);
    drop(io);
    // The reactor owned `a` and closed it, so the peer sees the close: a
    // reset, because "x" was never read (or end-of-stream if it had been).
    let mut buf = [0u8; 1];
    let seen = rustix::io::read(&b, &mut buf);
    assert!(matches!(seen, Ok(0) | Err(rustix::io::Errno::CONNRESET)), "{seen:?}");
    // ...and nothing more is delivered for it.
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0);
    assert_eq!(r.stats().io_sources, 0);
}

#[test]
fn an_io_callback_can_remove_itself() {
    let r = Reactor::new().unwrap();
    let (a, b) = pair();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    r.add_io(a, Interest::READABLE, move |ctx, _| {
        *c.borrow_mut() += 1;
        assert_eq!(ctx.rearm(reactor::Expiration::Once(Duration::ZERO)), Err(Error::NotATimer));
        ctx.remove();
    })
    .unwrap()
    .detach();
    assert_eq!(r.stats().detached_io, 1);
    rustix::io::write(&b, b"x").unwrap();
    r.turn(Some(SOON)).unwrap();
    r.turn(Some(QUIET)).unwrap();
    assert_eq!(*calls.borrow(), 1);
    assert_eq!((r.stats().io_sources, r.stats().detached_io), (0, 0));
}

#[test]
fn the_waker_wakes_a_blocked_turn_from_another_thread() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Waker>();

    let r = Reactor::new().unwrap();
    let waker = r.waker().unwrap();
    let ready = Arc::new(Barrier::new(2));
    let go = ready.clone();
    let thread = std::thread::spawn(move || {
        go.wait();
        waker.wake().unwrap();
    });
    ready.wait();
    let start = Instant::now();
    let n = r.turn(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(n, 1, "woken, not timed out");
    assert!(start.elapsed() < Duration::from_secs(10));
    thread.join().unwrap();
    assert_eq!(r.turn(Some(QUIET)).unwrap(), 0, "the wake was consumed");
}

#[test]
fn the_waker_stops_run_from_another_thread() {
    let r = Reactor::new().unwrap();
    let waker = r.waker().unwrap();
    let thread = std::thread::spawn(move || waker.stop().unwrap());
    let start = Instant::now();
    let finished = r.run_until_timeout(Duration::from_secs(10), || false).unwrap();
    assert!(!finished, "run returned because of the stop, with the condition still false");
    assert!(start.elapsed() < Duration::from_secs(10), "stopped, not timed out");
    thread.join().unwrap();
}

#[test]
fn the_trace_shows_the_interest_actually_registered() {
    let r = Reactor::new().unwrap();
    let lines: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = lines.clone();
    r.set_observer(Some(Box::new(move |e| sink.borrow_mut().push(e.to_string()))));
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    let io = r.add_io(a, Interest::WRITABLE | Interest::EDGE, |_, _| {}).unwrap();
    io.modify(Interest::READABLE | Interest::RDHUP).unwrap();
    let token = io.token();
    let (key, generation) = (token.key(), token.generation());
    assert_eq!(
        *lines.borrow(),
        [
            format!("epoll_ctl(EPOLL_CTL_ADD, {fd}, EPOLLOUT|EPOLLET, token {key}/{generation})"),
            format!("epoll_ctl(EPOLL_CTL_MOD, {fd}, EPOLLIN|EPOLLRDHUP, token {key}/{generation})"),
        ]
    );
}

#[test]
fn an_exclusive_registration_is_delivered_and_refuses_modify_unchanged() {
    let r = Reactor::new().unwrap();
    let (a, b) = pair();
    let (log, cb) = recorder();
    let io = r.add_io_borrowed(a.as_fd(), Interest::READABLE | Interest::EXCLUSIVE, cb).unwrap();
    assert_eq!(io.modify(Interest::WRITABLE), Err(Error::Os(rustix::io::Errno::INVAL)));
    rustix::io::write(&b, b"x").unwrap();
    r.turn(Some(SOON)).unwrap();
    assert!(log.borrow().iter().any(|r| r.is_readable()), "still registered as it was");
    assert_eq!(format!("{}", Interest::READABLE | Interest::EXCLUSIVE), "EPOLLIN|EPOLLEXCLUSIVE");
}
