//! The panic policy: a panic in a callback unwinds out of `turn`; the
//! source whose callback panicked is removed (fd closed, handle reports
//! gone); every other source keeps its schedule; nothing spins; `Stats`
//! stay true. Checked for every source kind with a callback and both timer
//! modes. (Signals are in `signals.rs`, which owns the signal mask.)

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use common::{SOON, open_fds, open_timerfds, pair, serial};
use reactor::{Error, Expiration, Interest, Reactor, TimerMode, TraceEvent, trace::Observer};

const MODES: [TimerMode; 2] = [TimerMode::Dedicated, TimerMode::Shared];
const MS: Duration = Duration::from_millis(1);

/// Turn until a callback panics (bounded); returns the panic message.
fn turn_until_panic(r: &Reactor) -> String {
    let deadline = std::time::Instant::now() + SOON;
    while std::time::Instant::now() < deadline {
        match catch_unwind(AssertUnwindSafe(|| r.turn(Some(Duration::from_millis(10))))) {
            Ok(result) => {
                result.unwrap();
            }
            Err(payload) => {
                return payload.downcast_ref::<&str>().map_or("?".into(), |s| s.to_string());
            }
        }
    }
    panic!("no callback panicked within {SOON:?}");
}

/// Block until a timer of `ms` milliseconds has surely expired, without
/// turning the reactor (a blocking read on a separate timerfd).
fn wait_ms(ms: u64) {
    let wait = timerfd_sys::TimerFd::new_blocking(timerfd_sys::Clock::Monotonic).unwrap();
    wait.set(Expiration::Once(Duration::from_millis(ms))).unwrap();
    wait.read().unwrap();
}

/// Turns that dispatch nothing wait their whole timeout: count dispatches
/// over a few bounded turns (a spinning loop would dispatch on each).
fn dispatched_over_idle_turns(r: &Reactor) -> u64 {
    r.turn(Some(Duration::ZERO)).unwrap(); // settle: the wake-up a panic left behind
    let before = r.stats().events_dispatched;
    for _ in 0..5 {
        r.turn(Some(Duration::from_millis(4))).unwrap();
    }
    r.stats().events_dispatched - before
}

fn counter() -> (Rc<Cell<u64>>, Rc<Cell<u64>>) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), c)
}

#[test]
fn a_panicking_timer_is_removed_and_the_other_timers_keep_their_schedule_in_both_modes() {
    let _serial = serial();
    for mode in MODES {
        let fds = open_fds();
        let r = Reactor::new().unwrap();
        let bad =
            r.add_timer(mode, Expiration::every(MS), |_, _| panic!("timer callback")).unwrap();
        let (ticks, t) = counter();
        let _good = r.add_timer(mode, Expiration::every(MS), move |_, n| t.set(t.get() + n));
        assert_eq!(
            turn_until_panic(&r),
            "timer callback",
            "{mode:?}: the panic unwinds out of turn"
        );

        assert!(!bad.is_live(), "{mode:?}: the handle can tell");
        assert_eq!(bad.set(Expiration::Once(MS)), Err(Error::Gone));
        let s = r.stats();
        assert_eq!(s.timers(), 1, "{mode:?}: {s:?}");
        // The kernel agrees: one timerfd, whichever mode (the good one's, or the shared one).
        assert_eq!(open_timerfds(), 1, "{mode:?}: the panicking timer's fd was closed");
        let eventfd = r.stats().wakers; // 1 if the panic left events for the next turn
        assert_eq!(open_fds(), fds + 2 + eventfd, "{mode:?}: epoll + one timerfd");
        let start = ticks.get();
        assert!(r.run_until_timeout(SOON, || ticks.get() >= start + 5).unwrap(), "{mode:?}");
        drop(bad);
        assert_eq!(
            r.stats().timers(),
            1,
            "{mode:?}: dropping the dead handle removes nothing else"
        );
    }
}

#[test]
fn a_panic_in_a_shared_pass_loses_no_other_shared_timer_due_in_it() {
    let _serial = serial();
    let r = Reactor::new().unwrap();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut held = Vec::new();
    // Deadlines 1, 2, 3 ms: one pass collects all three, in this order.
    for (i, ms) in [1u64, 2, 3].into_iter().enumerate() {
        let o = order.clone();
        let exp = Expiration::Once(Duration::from_millis(ms));
        held.push(
            r.add_timer(TimerMode::Shared, exp, move |_, _| {
                o.borrow_mut().push(i);
                assert!(i != 0, "first in the pass");
            })
            .unwrap(),
        );
    }
    let (ticks, t) = counter();
    let _periodic =
        r.add_timer(TimerMode::Shared, Expiration::every(MS), move |_, n| t.set(t.get() + n));
    wait_ms(5);
    assert!(turn_until_panic(&r).contains("first in the pass"));
    assert!(r.run_until_timeout(SOON, || order.borrow().len() == 3).unwrap(), "{:?}", order);
    assert_eq!(*order.borrow(), [0, 1, 2], "the rest of the pass ran once each, in order");
    assert!(!held[0].is_live() && held[1].is_live() && held[2].is_live());
    let start = ticks.get();
    assert!(r.run_until_timeout(SOON, || ticks.get() >= start + 5).unwrap(), "re-armed");
    assert_eq!(r.stats().shared_timers, 3);
}

#[test]
fn a_panicking_level_triggered_io_source_is_removed_and_nothing_spins() {
    let _serial = serial();
    for owned in [false, true] {
        let fds = open_fds();
        let r = Reactor::new().unwrap();
        let (ours, theirs) = pair();
        rustix::io::write(&theirs, b"x").unwrap(); // readable, and never drained
        let io = if owned {
            r.add_io(ours, Interest::READABLE, |_, _| panic!("io callback")).unwrap()
        } else {
            let borrowed: &'static _ = Box::leak(Box::new(ours)); // outlives the reactor
            use std::os::fd::AsFd;
            r.add_io_borrowed(borrowed.as_fd(), Interest::READABLE, |_, _| panic!("io callback"))
                .unwrap()
        };
        assert_eq!(turn_until_panic(&r), "io callback");
        assert!(!io.is_live());
        assert_eq!(r.stats().io_sources, 0);
        assert_eq!(dispatched_over_idle_turns(&r), 0, "owned={owned}: the loop spins");
        // epoll + our end (borrowed, leaked on purpose) + their end.
        let eventfd = r.stats().wakers;
        assert_eq!(open_fds(), fds + 1 + usize::from(!owned) + 1 + eventfd, "owned={owned}");
        drop(io);
    }
}

#[test]
fn edge_triggered_readiness_in_the_batch_of_a_panic_is_delivered_next_turn() {
    let _serial = serial();
    let r = Reactor::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let mut held = Vec::new();
    for _ in 0..2 {
        let (ours, theirs) = pair();
        rustix::io::write(&theirs, b"x").unwrap(); // one edge each, never repeated
        let c = calls.clone();
        let io = r.add_io(ours, Interest::READABLE | Interest::EDGE, move |_, _| {
            c.set(c.get() + 1);
            panic!("edge callback");
        });
        held.push((io.unwrap(), theirs));
    }
    // Whichever of the two is dispatched first panics; the other's edge was
    // in the same batch and must not be lost.
    turn_until_panic(&r);
    turn_until_panic(&r);
    assert_eq!(calls.get(), 2, "both edge-triggered sources ran once");
    assert!(held.iter().all(|(io, _)| !io.is_live()));
    assert_eq!(r.stats().io_sources, 0);
    assert_eq!(dispatched_over_idle_turns(&r), 0);
}

#[test]
fn a_detached_timer_that_panics_is_no_longer_counted() {
    let _serial = serial();
    for mode in MODES {
        let r = Reactor::new().unwrap();
        r.add_timer(mode, Expiration::Once(MS), |_, _| panic!("detached")).unwrap().detach();
        assert_eq!(r.stats().detached_timers, 1);
        turn_until_panic(&r);
        let s = r.stats();
        assert_eq!((s.detached_timers, s.timers()), (0, 0), "{mode:?}: {s:?}");
    }
}

#[test]
fn an_observer_that_panics_is_turned_off_and_its_panic_resumes_from_the_next_turn() {
    let _serial = serial();
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let observer: Observer = Box::new(|e| {
            if matches!(e, TraceEvent::HeapPush { .. } | TraceEvent::EpollAdd { .. }) {
                panic!("observer");
            }
        });
        r.set_observer(Some(observer));
        let (fired, f) = counter();
        // The add the observer reported completes: the handle is valid.
        let t = r.add_timer(mode, Expiration::Once(MS), move |_, _| f.set(1)).unwrap();
        assert!(t.is_live());
        assert_eq!(turn_until_panic(&r), "observer", "{mode:?}");
        assert!(r.run_until_timeout(SOON, || fired.get() == 1).unwrap(), "{mode:?}");
        let _second = r.add_timer(mode, Expiration::Once(MS), |_, _| {}).unwrap();
        assert_eq!(r.turn(Some(Duration::ZERO)).map(drop), Ok(()), "{mode:?}: observer gone");
    }
}
