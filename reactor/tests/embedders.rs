//! What an embedder relies on beyond timers: state in callbacks without
//! `Rc<RefCell>`, every callback kind able to remove itself, fds that
//! cannot block the loop, and `stats()`/`stop()` that always work.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use common::{SOON, open_fds, pair, serial};
use reactor::channel::Event;
use reactor::{Error, Expiration, Interest, Reactor, Signal, TimerMode};
use rustix::io::Errno;

#[derive(Default)]
struct App {
    dedicated: u64,
    shared: u64,
    io: u64,
    messages: u64,
    idle: u64,
    deferred: u64,
}

/// Every kind of callback reaches the same `&mut App`, and the loop runs
/// with `run_until_timeout_with`, `turn_with` and `run_with`.
#[test]
fn every_callback_kind_reaches_the_data_the_turn_was_given() {
    let _serial = serial(); // these tests count fds
    let r = Reactor::<App>::try_new().unwrap();
    let every = Expiration::every(Duration::from_millis(1));
    let _d = r.add_timer(TimerMode::Dedicated, every, |ctx, n| ctx.data().dedicated += n).unwrap();
    let _s = r.add_timer(TimerMode::Shared, every, |ctx, n| ctx.data().shared += n).unwrap();
    let (a, b) = pair();
    let _io = r
        .add_io(a, Interest::READABLE, |ctx, _| {
            ctx.data().io += 1;
            ctx.remove(); // once is enough: it stays readable
        })
        .unwrap();
    rustix::io::write(&b, b"x").unwrap();
    let channel = r
        .channel(|ctx, e: Event<u64>| {
            if let Event::Msg(n) = e {
                ctx.data().messages += n;
            }
        })
        .unwrap();
    let tx = channel.sender();
    std::thread::spawn(move || tx.send(7).unwrap()).join().unwrap();
    let _idle = r.add_idle(|ctx| ctx.data().idle += 1).unwrap();
    r.defer(|ctx| ctx.data().deferred += 1).unwrap();

    let mut app = App::default();
    let done = |app: &mut App| app.dedicated >= 3 && app.shared >= 3 && app.messages == 7;
    assert!(r.run_until_timeout_with(&mut app, SOON, done).unwrap());
    assert_eq!((app.io, app.deferred), (1, 1));
    assert!(app.idle >= 1);

    // `turn_with` and `run_with` hand in the same data; `stop` ends `run_with`.
    r.defer(|ctx| {
        ctx.data().deferred += 1;
        ctx.stop();
    })
    .unwrap();
    r.run_with(&mut app).unwrap();
    assert_eq!(app.deferred, 2);
}

/// `Reactor` alone is `Reactor<()>`: `ctx.data()` is `()`, and `Context`
/// dereferences to the reactor, so callbacks call its methods directly.
#[test]
fn a_context_is_the_reactor_too() {
    let _serial = serial(); // these tests count fds
    let r = Reactor::new().unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let _t = r
        .add_timer(TimerMode::Shared, Expiration::Once(Duration::ZERO), move |ctx, _| {
            let () = *ctx.data();
            let f = f.clone();
            // Added from inside a callback, through the deref: detached so it outlives us.
            ctx.add_timer(TimerMode::Dedicated, Expiration::Once(Duration::ZERO), move |_, _| {
                f.set(true)
            })
            .unwrap()
            .detach();
        })
        .unwrap();
    assert!(r.run_until_timeout(SOON, || fired.get()).unwrap());
    assert_eq!(TimerMode::ALL.map(TimerMode::name), ["dedicated", "shared"]);
    assert_eq!((Signal::INT.to_string(), Signal::TERM.as_raw()), ("SIGINT".into(), 15));
    assert_eq!(Signal::from_raw(9), None, "SIGKILL cannot be blocked, so it cannot be watched");
}

/// An idle hook takes itself out with `ctx.remove()`; no handle juggling.
#[test]
fn an_idle_hook_removes_itself() {
    let _serial = serial(); // these tests count fds
    let r = Reactor::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let n = runs.clone();
    let hook = r
        .add_idle(move |ctx| {
            n.set(n.get() + 1);
            if n.get() == 3 {
                ctx.remove();
                assert!(!ctx.is_live());
            }
        })
        .unwrap();
    for _ in 0..6 {
        r.turn(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(runs.get(), 3);
    assert!(!hook.is_live());
}

fn blocking_pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe().unwrap()
}

/// A blocking socket, pipe or character device would hang the loop at its
/// first read: refused, leaving nothing behind. What the reactor only
/// watches (epoll, timer, event and signal fds) is accepted in either mode,
/// and a regular file still gets epoll's own `EPERM`.
#[test]
fn blocking_fds_are_refused_with_a_typed_error_and_leave_nothing() {
    let _serial = serial(); // these tests count fds
    let r = Reactor::new().unwrap();
    let before = r.stats();
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap(); // blocking
    let (read_end, _write_end) = blocking_pipe();
    let null = std::fs::File::open("/dev/null").unwrap();
    let base = open_fds();
    let refused = [
        r.add_io(sock, Interest::READABLE, |_, _| {}).map(drop),
        r.add_io(read_end, Interest::READABLE, |_, _| {}).map(drop),
        r.add_io(null, Interest::READABLE, |_, _| {}).map(drop),
    ];
    assert!(refused.iter().all(|e| *e == Err(Error::Blocking)), "{refused:?}");
    assert_eq!(open_fds(), base - 3, "each refused fd was closed (dropped), nothing else opened");
    assert_eq!(r.stats(), before, "no trace in Stats");
    let (a, _b) = pair(); // nonblocking
    let io = r.add_io(a, Interest::READABLE, |_, _| {}).unwrap();
    drop(io);

    // The reactor's own kinds of fd, blocking or not, nest fine.
    let other = Reactor::new().unwrap();
    let timer = timerfd_sys::TimerFd::new_blocking(timerfd_sys::Clock::Monotonic).unwrap();
    let event = rustix::event::eventfd(0, rustix::event::EventfdFlags::empty()).unwrap();
    let _nested = r.add_io_borrowed(other.as_fd(), Interest::READABLE, |_, _| {}).unwrap();
    let _timer = r.add_io(timer, Interest::READABLE, |_, _| {}).unwrap();
    let _event = r.add_io(event, Interest::READABLE, |_, _| {}).unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let fds = open_fds();
    let r2 = r.add_io(file, Interest::READABLE, |_, _| {});
    assert_eq!(r2.map(drop), Err(Error::Os(Errno::PERM)), "epoll refuses regular files itself");
    assert_eq!(open_fds(), fds - 1, "the refused file was closed, nothing left");
}

/// `add_io_borrowed` registers a copy: a handle that is forgotten, its fd
/// closed by its owner and the number reused, touches nobody else's
/// registration.
#[test]
fn a_forgotten_borrowed_handle_cannot_touch_a_later_registration() {
    let _serial = serial(); // these tests count fds
    let r = Reactor::new().unwrap();
    let (a, a_peer) = pair();
    let n = a.as_raw_fd();
    std::mem::forget(r.add_io_borrowed(a.as_fd(), Interest::READABLE, |_, _| {}).unwrap());
    drop(a); // the caller's fd: closed, its number free
    let (b, b_peer) = pair();
    assert!(b.as_raw_fd() == n || b_peer.as_raw_fd() == n, "the number is reused");
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let b_io = r.add_io(b, Interest::READABLE, move |_, _| g.set(g.get() + 1)).unwrap();
    rustix::io::write(&b_peer, b"x").unwrap();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(got.get(), 1, "the new registration works");
    drop(b_io);
    drop(a_peer);
    assert_eq!(r.stats().io_sources, 1, "the forgotten one lives on, on its own copy");
}

/// `stats()` used to read all zeros, and `stop()` to do nothing, while the
/// core was borrowed (from a trace observer). Both now live outside it.
#[test]
fn stats_and_stop_work_from_inside_an_observer() {
    let _serial = serial(); // these tests count fds
    let r = Rc::new(Reactor::new().unwrap());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (me, s) = (Rc::downgrade(&r), seen.clone());
    r.set_observer(Some(Box::new(move |_| {
        if let Some(r) = me.upgrade() {
            s.borrow_mut().push(r.stats().timerfds_open);
            r.stop();
        }
    })));
    let every = Expiration::every(Duration::from_millis(1));
    let _t = r.add_timer(TimerMode::Dedicated, every, |_, _| {}).unwrap();
    assert!(seen.borrow().contains(&1), "{:?}", seen.borrow());
    r.run().unwrap(); // returns: the observer asked for a stop
    r.set_observer(None);
}
