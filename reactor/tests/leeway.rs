//! Leeway: a timer may fire in `[deadline, deadline + leeway)`, never
//! early, and timers with the same grid share their expiry instants, in
//! both modes. Zero leeway is exactly the behaviour without one. (How much
//! CPU that saves is a benchmark's figure: `benches` `lateness`.)

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::SOON;
use reactor::{Clock, ClockTime, Error, Expiration, Reactor, TimerMode, TraceEvent};

const MS: u64 = 1_000_000;

fn now_ns() -> u64 {
    Clock::Monotonic.now().as_nanos().unwrap()
}

fn recorder(r: &Reactor) -> Rc<RefCell<Vec<TraceEvent>>> {
    let lines: Rc<RefCell<Vec<TraceEvent>>> = Rc::default();
    let sink = lines.clone();
    r.set_observer(Some(Box::new(move |e| sink.borrow_mut().push(*e))));
    lines
}

/// Never early: every expiry comes at or after the deadline of the
/// schedule it was given (first = add + period, then every period), and
/// (loosely) not long after it.
#[test]
fn a_timer_with_leeway_never_fires_early() {
    for mode in TimerMode::ALL {
        let r = Reactor::new().unwrap();
        let period = Duration::from_millis(7);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let start = now_ns();
        let t = r
            .add_timer(mode, Expiration::every(period), move |_, ticks| {
                s.borrow_mut().push((now_ns(), ticks));
            })
            .unwrap();
        t.set_leeway(Duration::from_millis(3)).unwrap();
        assert!(r.run_until_timeout(SOON, || seen.borrow().len() >= 10).unwrap());
        let mut k = 0;
        for &(at, ticks) in seen.borrow().iter() {
            k += ticks;
            let deadline = start + k * period.as_nanos() as u64;
            assert!(at >= deadline, "{}: expiry {k} came {} ns early", mode.name(), deadline - at);
            assert!(at < deadline + SOON.as_nanos() as u64, "{}: far too late", mode.name());
        }
    }
}

/// Dedicated timers are moved onto a shared grid: armed absolute at a
/// multiple of the step (1 ms for 10 ms with a 1 ms leeway), so timers of
/// one grid expire at the same instants.
#[test]
fn dedicated_timers_are_armed_on_the_leeway_grid() {
    let r = Reactor::new().unwrap();
    let lines = recorder(&r);
    let every = Expiration::every(Duration::from_millis(10));
    let timers: Vec<_> = (0..3)
        .map(|_| {
            let t = r.add_timer(TimerMode::Dedicated, every, |_, _| {}).unwrap();
            t.set_leeway(Duration::from_millis(1)).unwrap();
            t
        })
        .collect();
    let firsts: Vec<u64> = lines
        .borrow()
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Arm { expiration: Expiration::EveryAt { first, period }, .. } => {
                assert_eq!(*period, Duration::from_millis(10));
                first.as_nanos()
            }
            _ => None,
        })
        .collect();
    assert_eq!(firsts.len(), 3, "each re-armed absolute: {:?}", lines.borrow());
    assert!(firsts.iter().all(|f| f % MS == 0), "on the 1 ms grid: {firsts:?}");
    drop(timers);
}

/// Shared timers of one grid instant share one deadline, so one pass (one
/// wake-up) fires all of them.
#[test]
fn shared_timers_on_one_grid_instant_fire_in_one_pass() {
    let r = Reactor::new().unwrap();
    let every = Expiration::every(Duration::from_millis(10));
    let fired = Rc::new(RefCell::new(0u64));
    let timers: Vec<_> = (0..8)
        .map(|_| {
            let f = fired.clone();
            let t =
                r.add_timer(TimerMode::Shared, every, move |_, n| *f.borrow_mut() += n).unwrap();
            t.set_leeway(Duration::from_millis(10)).unwrap();
            t
        })
        .collect();
    let lines = recorder(&r);
    assert!(r.run_until_timeout(SOON, || *fired.borrow() >= 16).unwrap());
    // A 10 ms leeway on a 10 ms period puts all of them on one 10 ms grid:
    // every pass fires all eight, and the clock's timerfd is re-armed once per pass.
    // (A pass may also find nothing due: the timerfd was armed for the
    // deadlines before the leeway moved them, and fires early once.)
    let mut passes = Vec::new();
    let mut fires = 0;
    for e in lines.borrow().iter() {
        match e {
            TraceEvent::HeapFire { .. } => fires += 1,
            TraceEvent::ArmDeadline { .. } => passes.push(std::mem::take(&mut fires)),
            _ => {}
        }
    }
    passes.retain(|&n| n > 0);
    assert!(passes.len() >= 2 && passes.iter().all(|&n| n == 8), "fires per pass: {passes:?}");
    drop(timers);
}

/// Zero leeway is exactly the behaviour without one: the relative setting
/// goes to the kernel as given.
#[test]
fn zero_leeway_arms_exactly_as_asked() {
    let r = Reactor::new().unwrap();
    let lines = recorder(&r);
    let exp = Expiration::every(Duration::from_millis(10));
    let t = r.add_timer(TimerMode::Dedicated, exp, |_, _| {}).unwrap();
    t.set_leeway(Duration::ZERO).unwrap();
    t.set(exp).unwrap();
    let arms: Vec<Expiration> = lines
        .borrow()
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Arm { expiration, .. } => Some(*expiration),
            _ => None,
        })
        .collect();
    assert_eq!(arms, [exp, exp], "add and set as given; set_leeway(0) moved nothing");
}

/// The leeway stays with the timer: a later `set` lands on the grid too,
/// and `set_leeway` on a gone timer is `Gone` in both modes.
#[test]
fn the_leeway_applies_to_every_later_set_and_needs_a_live_timer() {
    for mode in TimerMode::ALL {
        let r = Reactor::new().unwrap();
        let lines = recorder(&r);
        let t = r.add_timer(mode, Expiration::Once(Duration::from_secs(60)), |_, _| {}).unwrap();
        t.set_leeway(Duration::from_millis(5)).unwrap();
        t.set(Expiration::Once(Duration::from_millis(3))).unwrap();
        let last = lines.borrow().last().copied();
        let at = match last {
            Some(TraceEvent::Arm { expiration: Expiration::OnceAt(at), .. }) => at,
            Some(TraceEvent::HeapPush { deadline_ns, .. }) => ClockTime::from_nanos(deadline_ns),
            other => panic!("{}: {other:?}", mode.name()),
        };
        assert_eq!(at.as_nanos().unwrap() % (5 * MS), 0, "{}: a 5 ms one-shot grid", mode.name());
        let r2 = Reactor::new().unwrap();
        let gone = r2.add_timer(mode, Expiration::Once(Duration::ZERO), |ctx, _| ctx.remove());
        let gone = gone.unwrap();
        r2.turn(Some(SOON)).unwrap();
        assert_eq!(gone.set_leeway(Duration::from_millis(1)), Err(Error::Gone));
    }
}
