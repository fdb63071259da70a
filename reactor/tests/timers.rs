//! Timers in both modes: counts, folding, re-arming, dropping, detaching.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::SOON;
use reactor::{
    Clock, ClockTime, Error, Expiration, Reactor, Timer, TimerMode, TraceEvent, trace::Observer,
};

const MODES: [TimerMode; 2] = [TimerMode::Dedicated, TimerMode::Shared];

fn counter() -> (Rc<Cell<u64>>, Rc<Cell<u64>>) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), c)
}

#[test]
fn one_shot_fires_once_with_one_tick_in_both_modes() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (calls, seen) = counter();
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let _timer = r
            .add_timer(mode, Expiration::Once(Duration::from_millis(1)), move |_, n| {
                seen.set(seen.get() + 1);
                t.set(t.get() + n);
            })
            .unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap(), "{mode:?}: never fired");
        // A fired one-shot is disarmed: a further bounded turn delivers nothing.
        r.turn(Some(Duration::from_millis(20))).unwrap();
        assert_eq!((calls.get(), ticks.get()), (1, 1), "{mode:?}");
        assert_eq!(r.stats().timer_expirations, 1);
    }
}

#[test]
fn zero_duration_fires_in_both_modes() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (calls, seen) = counter();
        let _t =
            r.add_timer(mode, Expiration::Once(Duration::ZERO), move |_, _| seen.set(1)).unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap(), "{mode:?}");
    }
}

#[test]
fn interval_ticks_add_up_and_missed_ticks_fold_in_both_modes() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (ticks, t) = counter();
        let (calls, c) = counter();
        let _timer = r
            .add_timer(mode, Expiration::every(Duration::from_millis(1)), move |_, n| {
                t.set(t.get() + n);
                c.set(c.get() + 1);
            })
            .unwrap();
        // Do not turn for 30 periods: a blocking read on a separate timerfd
        // is the wait, so nothing is dispatched meanwhile.
        let wait = timerfd_sys::TimerFd::new_blocking(Clock::Monotonic).unwrap();
        wait.set(Expiration::Once(Duration::from_millis(30))).unwrap();
        wait.read().unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() >= 1).unwrap());
        assert!(ticks.get() >= 15, "{mode:?}: expected folded ticks, got {}", ticks.get());
        assert!(calls.get() < ticks.get(), "{mode:?}: ticks were folded into fewer calls");
        assert_eq!(r.stats().timer_expirations, ticks.get());
    }
}

#[test]
fn absolute_expirations_fire_in_both_modes() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (calls, c) = counter();
        let at = Clock::Monotonic.now().checked_add(Duration::from_millis(2)).unwrap();
        let _t = r.add_timer(mode, Expiration::OnceAt(at), move |_, _| c.set(c.get() + 1)).unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap(), "{mode:?}");
        assert!(Clock::Monotonic.now() >= at);
        let (calls, c) = counter();
        let _past = r
            .add_timer(mode, Expiration::OnceAt(ClockTime::ZERO), move |_, _| c.set(c.get() + 1))
            .unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap(), "{mode:?}: (0,0)");
    }
}

#[test]
fn invalid_expirations_are_typed_errors_in_both_modes_and_create_nothing() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let zero_period = Expiration::Every { first: Duration::ZERO, period: Duration::ZERO };
        let err = r.add_timer(mode, zero_period, |_, _| {}).unwrap_err();
        assert_eq!(err, Error::Timer(timerfd_sys::Error::ZeroPeriod), "{mode:?}");
        let err = r.add_timer(mode, Expiration::Once(Duration::MAX), |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::Timer(timerfd_sys::Error::OutOfRange { .. })), "{err:?}");
        assert_eq!(r.stats().timers(), 0);
        assert_eq!(r.stats().timerfds_open, 0, "{mode:?}: nothing was created");

        let t = r.add_timer(mode, Expiration::Once(Duration::from_secs(60)), |_, _| {}).unwrap();
        assert_eq!(t.set(zero_period).unwrap_err(), Error::Timer(timerfd_sys::Error::ZeroPeriod));
    }
}

#[test]
fn rearm_and_disarm_through_the_handle() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (calls, c) = counter();
        let t = r.add_timer(mode, Expiration::Once(Duration::from_secs(3600)), move |_, _| {
            c.set(c.get() + 1)
        });
        let t = t.unwrap();
        t.set(Expiration::Once(Duration::from_millis(1))).unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap(), "{mode:?}: re-arm");
        t.set(Expiration::every(Duration::from_millis(1))).unwrap();
        assert!(r.run_until_timeout(SOON, || calls.get() >= 3).unwrap());
        t.disarm().unwrap();
        let after = calls.get();
        r.turn(Some(Duration::from_millis(20))).unwrap();
        assert!(calls.get() <= after + 1, "{mode:?}: at most an event already fetched");
        let settled = calls.get();
        r.turn(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(calls.get(), settled, "{mode:?}: disarmed timer fired");
        assert_eq!(t.mode(), mode);
        assert_eq!(t.fd().is_some(), mode == TimerMode::Dedicated);
    }
}

#[test]
fn a_callback_re_arms_itself_and_then_removes_itself() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let (calls, c) = counter();
        r.add_timer(mode, Expiration::Once(Duration::ZERO), move |ctx, _| {
            c.set(c.get() + 1);
            if c.get() < 5 {
                ctx.rearm(Expiration::Once(Duration::from_micros(100))).unwrap();
            } else {
                ctx.remove();
            }
        })
        .unwrap()
        .detach();
        assert!(r.run_until_timeout(SOON, || calls.get() == 5).unwrap(), "{mode:?}");
        let s = r.stats();
        assert_eq!((s.timers(), s.detached_timers), (0, 0), "{mode:?}: removed itself");
    }
}

#[test]
fn a_callback_drops_its_own_handle_and_never_runs_again() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let slot: Rc<RefCell<Option<Timer>>> = Rc::default();
        let (calls, c) = counter();
        let s = slot.clone();
        let t = r
            .add_timer(mode, Expiration::every(Duration::from_millis(1)), move |_, _| {
                c.set(c.get() + 1);
                s.borrow_mut().take(); // drops this timer's own handle
            })
            .unwrap();
        *slot.borrow_mut() = Some(t);
        assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap());
        for _ in 0..5 {
            r.turn(Some(Duration::from_millis(3))).unwrap();
        }
        assert_eq!(calls.get(), 1, "{mode:?}");
        assert_eq!(r.stats().timers(), 0);
    }
}

#[test]
fn callbacks_add_and_drop_other_sources() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let children: Rc<RefCell<Vec<Timer>>> = Rc::default();
        let (child_calls, cc) = counter();
        let kids = children.clone();
        let _parent = r
            .add_timer(mode, Expiration::every(Duration::from_millis(1)), move |ctx, _| {
                let mut kids = kids.borrow_mut();
                if kids.len() < 3 {
                    let cc = cc.clone();
                    let t = ctx
                        .reactor()
                        .add_timer(
                            mode,
                            Expiration::every(Duration::from_millis(1)),
                            move |_, _| cc.set(cc.get() + 1),
                        )
                        .unwrap();
                    kids.push(t);
                } else {
                    kids.clear(); // drop all three from inside a callback
                    ctx.stop();
                }
            })
            .unwrap();
        r.run_until_timeout(SOON, || false).unwrap();
        assert!(children.borrow().is_empty(), "{mode:?}: stopped before the parent dropped them");
        assert!(child_calls.get() > 0, "{mode:?}: children added from a callback fired");
        let before = child_calls.get();
        drop(_parent);
        for _ in 0..3 {
            r.turn(Some(Duration::from_millis(3))).unwrap();
        }
        assert_eq!(child_calls.get(), before, "{mode:?}: a dropped child fired");
        assert_eq!(r.stats().timers(), 0);
    }
}

#[test]
fn detached_timer_fires_until_the_reactor_is_dropped_which_closes_it() {
    // The kernel's view of the close is checked in tests/fd_accounting.rs,
    // which runs alone; here the trace shows the close happening at the drop.
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let closed: Rc<RefCell<Vec<i32>>> = Rc::default();
        let sink = closed.clone();
        let observer: Observer = Box::new(move |e| {
            if let TraceEvent::Close { fd } = e {
                sink.borrow_mut().push(*fd);
            }
        });
        r.set_observer(Some(observer));
        let (calls, c) = counter();
        let t = r
            .add_timer(mode, Expiration::every(Duration::from_millis(1)), move |_, _| {
                c.set(c.get() + 1)
            })
            .unwrap();
        let fd = t.fd();
        t.detach();
        let s = r.stats();
        assert_eq!((s.timers(), s.detached_timers, s.timerfds_open), (1, 1, 1), "{mode:?}");
        assert!(r.run_until_timeout(SOON, || calls.get() >= 10).unwrap(), "{mode:?}: keeps firing");
        assert!(closed.borrow().is_empty(), "{mode:?}: nothing closed while the reactor lives");
        drop(r);
        assert_eq!(closed.borrow().len(), 1, "{mode:?}: one timerfd closed by the reactor's drop");
        if let Some(fd) = fd {
            assert_eq!(closed.borrow()[0], fd);
        }
    }
}

#[test]
fn handles_report_gone_after_the_reactor_is_dropped() {
    for mode in MODES {
        let r = Reactor::new().unwrap();
        let t = r.add_timer(mode, Expiration::Once(Duration::from_secs(60)), |_, _| {}).unwrap();
        drop(r);
        assert_eq!(t.set(Expiration::Once(Duration::ZERO)), Err(Error::Gone));
        assert_eq!(t.disarm(), Err(Error::Gone));
        drop(t); // and dropping it is a no-op, not a panic
    }
}

#[test]
fn a_turn_cannot_be_nested() {
    let r = Reactor::new().unwrap();
    let (calls, c) = counter();
    let _t = r
        .add_timer(TimerMode::Dedicated, Expiration::Once(Duration::ZERO), move |ctx, _| {
            assert_eq!(ctx.reactor().turn(Some(Duration::ZERO)), Err(Error::Reentrant));
            c.set(1);
        })
        .unwrap();
    assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap());
}

#[test]
fn the_trace_shows_the_kernel_path_in_order() {
    let r = Reactor::new().unwrap();
    let lines: Rc<RefCell<Vec<TraceEvent>>> = Rc::default();
    let sink = lines.clone();
    let observer: Observer = Box::new(move |e| sink.borrow_mut().push(*e));
    r.set_observer(Some(observer));
    let (calls, c) = counter();
    let t = r
        .add_timer(TimerMode::Dedicated, Expiration::Once(Duration::ZERO), move |_, _| c.set(1))
        .unwrap();
    let fd = t.fd().unwrap();
    assert!(r.run_until_timeout(SOON, || calls.get() == 1).unwrap());
    t.disarm().unwrap();
    drop(t);
    let got: Vec<String> = lines.borrow().iter().map(|e| e.to_string()).collect();
    let want = [
        format!("timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK|TFD_CLOEXEC) = {fd}"),
        format!("timerfd_settime({fd}, Once(0ns))"),
        format!("epoll_ctl(EPOLL_CTL_ADD, {fd}, EPOLLIN, token 0/0)"),
        format!("read({fd}) = 1 expiration -> callback"),
        format!("timerfd_settime({fd}, disarm)"),
        format!("epoll_ctl(EPOLL_CTL_DEL, {fd})"),
        format!("close({fd})"),
    ];
    assert_eq!(got, want);
}

#[test]
fn shared_timers_fire_in_deadline_order() {
    let r = Reactor::new().unwrap();
    let order: Rc<RefCell<Vec<u32>>> = Rc::default();
    let mut handles = Vec::new();
    for (i, ms) in [(0u32, 9u64), (1, 3), (2, 6), (3, 1)] {
        let o = order.clone();
        let exp = Expiration::Once(Duration::from_millis(ms));
        handles
            .push(r.add_timer(TimerMode::Shared, exp, move |_, _| o.borrow_mut().push(i)).unwrap());
    }
    assert!(r.run_until_timeout(SOON, || order.borrow().len() == 4).unwrap());
    assert_eq!(*order.borrow(), vec![3, 1, 2, 0]);
    assert_eq!(r.stats().timerfds_open, 1, "four shared timers, one timerfd");
}
