//! Embedding: the reactor's fd in a host loop (`poll(2)`, another reactor),
//! deferred callbacks and idle hooks, and timers on every clock.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use common::SOON;
use reactor::{Clock, Error, Expiration, Interest, Reactor, TimerMode};
use rustix::event::{PollFd, PollFlags, poll};

const MS: Duration = Duration::from_millis(1);

/// Whether the reactor's fd is readable now (a zero-timeout `poll(2)`).
fn readable(r: &Reactor) -> bool {
    let mut fds = [PollFd::new(r, PollFlags::IN)];
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    poll(&mut fds, Some(&zero)).unwrap() == 1
}

#[test]
fn a_poll_loop_drives_the_reactor_and_misses_no_deadline_in_either_mode() {
    let r = Reactor::new().unwrap();
    let fired: Rc<RefCell<Vec<TimerMode>>> = Rc::default();
    let mut timers = Vec::new();
    for mode in [TimerMode::Dedicated, TimerMode::Shared] {
        let f = fired.clone();
        // Armed far out first, so that "nothing is due yet" holds however
        // long the test is preempted before it looks; then due in 5 ms.
        let exp = Expiration::Once(Duration::from_secs(3600));
        timers.push(r.add_timer(mode, exp, move |_, _| f.borrow_mut().push(mode)).unwrap());
    }
    assert!(!readable(&r), "nothing is due yet");
    for t in &timers {
        t.set(Expiration::Once(Duration::from_millis(5))).unwrap();
    }
    let deadline = std::time::Instant::now() + SOON;
    while fired.borrow().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "a deadline was missed while nested");
        // The host's wait: poll(2) on the reactor's fd alone, never turn(None).
        let mut fds = [PollFd::new(&r, PollFlags::IN)];
        let ms100 = rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        if poll(&mut fds, Some(&ms100)).unwrap() == 1 {
            r.turn(Some(Duration::ZERO)).unwrap();
        }
    }
    assert!(!readable(&r), "level-triggered: nothing left, not readable");
}

#[test]
fn a_reactor_nests_in_another_reactors_io_callback() {
    let inner = Rc::new(Reactor::new().unwrap());
    let outer = Reactor::new().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let _timer = inner
        .add_timer(TimerMode::Shared, Expiration::every(MS), move |_, n| t.set(t.get() + n))
        .unwrap();
    let nested = inner.clone();
    let _io = outer
        .add_io_borrowed(inner.as_fd(), Interest::READABLE, move |_, _| {
            nested.turn(Some(Duration::ZERO)).unwrap();
        })
        .unwrap();
    assert!(outer.run_until_timeout(SOON, || ticks.get() >= 5).unwrap());
}

#[test]
fn deferred_work_runs_after_the_dispatch_of_its_turn_with_no_syscall() {
    let r = Reactor::new().unwrap();
    let log: Rc<RefCell<Vec<&str>>> = Rc::default();
    let mut timers = Vec::new();
    for name in ["a", "b"] {
        let l = log.clone();
        let t = r.add_timer(TimerMode::Dedicated, Expiration::Once(MS), move |ctx, _| {
            l.borrow_mut().push(name);
            let l = l.clone();
            ctx.reactor().defer(move |_| l.borrow_mut().push("deferred")).unwrap();
        });
        timers.push(t.unwrap());
    }
    // Both timers ready, so one turn dispatches both.
    let wait = timerfd_sys::TimerFd::new_blocking(Clock::Monotonic).unwrap();
    wait.set(Expiration::Once(Duration::from_millis(5))).unwrap();
    wait.read().unwrap();
    assert_eq!(r.turn(Some(SOON)).unwrap(), 2);
    let log = log.borrow();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[..2].contains(&"a") && log[..2].contains(&"b"), "{log:?}");
    assert_eq!(log[2..], ["deferred", "deferred"], "after the whole dispatch, in order");
    // No eventfd was needed: the turn that queued them ran them.
    assert_eq!(r.stats().wakers, 0, "deferring inside a turn made no syscall");
}

#[test]
fn a_defer_from_outside_a_turn_makes_the_fd_readable_and_the_next_turn_not_block() {
    let r = Reactor::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    assert!(!readable(&r));
    let x = ran.clone();
    r.defer(move |reactor| {
        x.set(x.get() + 1);
        // Deferred from a deferred callback: runs in the next turn, not this one.
        let y = x.clone();
        reactor.defer(move |_| y.set(y.get() + 10)).unwrap();
    })
    .unwrap();
    assert!(readable(&r), "a host loop sees the pending work");
    let start = std::time::Instant::now();
    r.turn(Some(SOON)).unwrap();
    assert_eq!(ran.get(), 1, "the chained one waits for the next turn");
    r.turn(Some(SOON)).unwrap();
    assert_eq!(ran.get(), 11);
    assert!(start.elapsed() < SOON, "neither turn blocked for its timeout");
    r.turn(Some(Duration::ZERO)).unwrap(); // drain the wake-up
    assert!(!readable(&r), "nothing left");
}

#[test]
fn a_panicking_deferred_callback_leaves_the_rest_queued() {
    let r = Reactor::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    r.defer(|_| panic!("deferred")).unwrap();
    let x = ran.clone();
    r.defer(move |_| x.set(1)).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.turn(Some(SOON))));
    assert!(caught.is_err());
    assert_eq!(ran.get(), 0);
    assert!(readable(&r), "the rest is pending and visible");
    r.turn(Some(SOON)).unwrap();
    assert_eq!(ran.get(), 1);
}

#[test]
fn idle_hooks_run_before_every_wait_and_stop_when_dropped_or_panicking() {
    let r = Reactor::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let hook = r.add_idle(move |reactor| {
        c.set(c.get() + 1);
        // Work a hook defers is seen by the same turn's wait: it does not block.
        if c.get() == 1 {
            reactor.defer(|_| {}).unwrap();
        }
    });
    let hook = hook.unwrap();
    let start = std::time::Instant::now();
    r.turn(Some(SOON)).unwrap();
    assert!(start.elapsed() < SOON, "the deferred work kept the wait from blocking");
    r.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(calls.get(), 2);
    drop(hook);
    r.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(calls.get(), 2, "a dropped hook never runs again");

    let bad = r.add_idle(|_| panic!("idle")).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.turn(Some(MS))));
    assert!(caught.is_err());
    assert!(!bad.is_live(), "a panicking hook is removed");
    r.turn(Some(MS)).unwrap();
}

#[test]
fn timers_run_on_each_clock_in_each_mode_and_shared_realtime_is_refused() {
    for clock in Clock::ALL {
        for mode in [TimerMode::Dedicated, TimerMode::Shared] {
            let r = Reactor::new().unwrap();
            let fired = Rc::new(Cell::new(0));
            let f = fired.clone();
            let t = r.add_timer_on(clock, mode, Expiration::Once(MS), move |_, n| f.set(n));
            if mode == TimerMode::Shared && clock.is_realtime() {
                assert_eq!(t.unwrap_err(), Error::SharedClock(clock), "{clock:?}");
                assert_eq!(r.stats().timerfds_open, 0, "{clock:?}: refused before creating");
                continue;
            }
            let t = t.unwrap_or_else(|e| panic!("{clock:?} {mode:?}: {e}"));
            assert!(r.run_until_timeout(SOON, || fired.get() == 1).unwrap(), "{clock:?} {mode:?}");
            // An absolute deadline on the timer's own clock.
            let at = clock.now().saturating_add(MS);
            t.set(Expiration::OnceAt(at)).unwrap();
            assert!(r.run_until_timeout(SOON, || fired.get() == 1).unwrap(), "{clock:?} {mode:?}");
            let want = if mode == TimerMode::Shared { 1 } else { 0 };
            assert_eq!(r.stats().shared_timers, want, "{clock:?} {mode:?}");
        }
    }
}

#[test]
fn an_idle_hook_may_drop_another_hook_and_add_one_while_hooks_run() {
    let r = Reactor::new().unwrap();
    let victim_runs = Rc::new(Cell::new(0));
    let added_runs = Rc::new(Cell::new(0));
    let victim: Rc<RefCell<Option<reactor::Idle>>> = Rc::default();
    let added: Rc<RefCell<Option<reactor::Idle>>> = Rc::default();
    let (v, a, ar) = (victim.clone(), added.clone(), added_runs.clone());
    // Added first, so it runs before the victim in the same pass.
    let _killer = r
        .add_idle(move |reactor| {
            drop(v.borrow_mut().take()); // the victim must not run after this
            if a.borrow().is_none() {
                let ar = ar.clone();
                *a.borrow_mut() = Some(reactor.add_idle(move |_| ar.set(ar.get() + 1)).unwrap());
            }
        })
        .unwrap();
    let vr = victim_runs.clone();
    *victim.borrow_mut() = Some(r.add_idle(move |_| vr.set(vr.get() + 1)).unwrap());
    r.turn(Some(Duration::ZERO)).unwrap();
    assert_eq!(victim_runs.get(), 0, "a hook dropped earlier in the pass never runs");
    r.turn(Some(Duration::ZERO)).unwrap();
    assert!(added_runs.get() >= 1, "a hook added during a pass runs by the next turn");
}
