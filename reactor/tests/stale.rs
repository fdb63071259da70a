//! Events already fetched for a source that is then dropped in the same
//! turn: never dispatched, even when the slot is reused at once.

mod common;

use std::cell::{Cell, RefCell};

use std::rc::Rc;
use std::time::Duration;

use common::{SOON, pair};
use reactor::{Expiration, Interest, Io, Reactor, Timer, TimerMode, TraceEvent, trace::Observer};
use rustix::event::{PollFd, PollFlags, poll};

/// Block (bounded) until every fd is readable, so one epoll_wait returns all.
fn wait_all_readable(fds: &[i32]) {
    let borrow = |fd: &i32| {
        // SAFETY: the timers that own these fds outlive this function's use of them.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) }
    };
    let borrowed: Vec<_> = fds.iter().map(borrow).collect();
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let mut polls: Vec<_> = borrowed.iter().map(|fd| PollFd::new(fd, PollFlags::IN)).collect();
        let ts = rustix::time::Timespec { tv_sec: 0, tv_nsec: 10_000_000 };
        poll(&mut polls, Some(&ts)).unwrap();
        if polls.iter().all(|p| p.revents().contains(PollFlags::IN)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timers never became ready");
    }
}

#[test]
fn dropping_a_source_whose_event_is_in_the_batch_discards_it_even_after_slot_reuse() {
    let r = Reactor::new().unwrap();
    let adds: Rc<RefCell<Vec<reactor::Token>>> = Rc::default();
    let sink = adds.clone();
    let observer: Observer = Box::new(move |e| {
        if let TraceEvent::EpollAdd { token, .. } = e {
            sink.borrow_mut().push(*token);
        }
    });
    r.set_observer(Some(observer));

    let timers: Rc<RefCell<[Option<Timer>; 2]>> = Rc::default();
    let replacement: Rc<RefCell<Option<Io<'static>>>> = Rc::default();
    let timer_calls = Rc::new(Cell::new(0));
    let io_calls = Rc::new(Cell::new(0));
    let (ours, theirs) = pair();
    rustix::io::write(&theirs, b"x").unwrap(); // the replacement is readable at once
    let ours = Rc::new(RefCell::new(Some(ours)));

    for me in 0..2 {
        let (timers2, replacement2, calls, io_calls2, ours2) = (
            timers.clone(),
            replacement.clone(),
            timer_calls.clone(),
            io_calls.clone(),
            ours.clone(),
        );
        let t = r
            .add_timer(TimerMode::Dedicated, Expiration::Once(Duration::ZERO), move |ctx, _| {
                calls.set(calls.get() + 1);
                // Drop the other timer, whose event is already in this batch,
                // and put a ready I/O source in the slot it freed.
                let other = timers2.borrow_mut()[1 - me].take();
                drop(other);
                let fd = ours2.borrow_mut().take().unwrap();
                let io_calls3 = io_calls2.clone();
                let io = ctx
                    .reactor()
                    .add_io(fd, Interest::READABLE, move |_, _| io_calls3.set(io_calls3.get() + 1))
                    .unwrap();
                *replacement2.borrow_mut() = Some(io);
            })
            .unwrap();
        timers.borrow_mut()[me] = Some(t);
    }
    let fds: Vec<i32> = timers.borrow().iter().map(|t| t.as_ref().unwrap().fd().unwrap()).collect();
    wait_all_readable(&fds);

    let n = r.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(n, 2, "both timers were ready in one batch");
    assert_eq!(timer_calls.get(), 1, "the dropped timer's callback ran");
    assert_eq!(io_calls.get(), 0, "the stale event was misdelivered to the slot's new owner");
    assert_eq!(r.stats().stale_events, 1);

    let tokens = adds.borrow().clone();
    let io_token = replacement.borrow().as_ref().unwrap().token();
    assert!(
        tokens[..2]
            .iter()
            .any(|t| t.key() == io_token.key() && t.generation() != io_token.generation()),
        "the I/O source reused a dropped timer's slot under a new generation: {tokens:?}"
    );

    // Next turn, the new source gets its own event.
    assert!(r.run_until_timeout(SOON, || io_calls.get() == 1).unwrap());
    drop(theirs);
}
