//! Leeway: a timer may fire in `[deadline, deadline + leeway]`, never
//! early, in both modes; shared timers whose windows overlap share a
//! wake-up, whatever their periods, and dedicated timers on one grid share
//! their expiry instants. Zero leeway is exactly the behaviour without one.
//! (How much CPU that saves is a benchmark's figure: `benches` `lateness`.)

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

/// Shared timers coalesce from the heap: eight timers with spread phases
/// and a period no grid divides (a prime number of nanoseconds), each with
/// a leeway longer than the spread, fire in one pass per period: one
/// wake-up for all eight, each within its window.
#[test]
fn shared_timers_with_open_windows_fire_in_one_pass_whatever_their_period() {
    let r = Reactor::new().unwrap();
    let period = Duration::from_nanos(10_000_019); // prime: no grid step divides it
    let start = now_ns() + 20 * MS;
    let fired: Rc<RefCell<Vec<(usize, u64, u64)>>> = Rc::default();
    let timers: Vec<_> = (0..8)
        .map(|i| {
            let f = fired.clone();
            let first = ClockTime::from_nanos(start + i as u64 * 100_000); // 0.1 ms apart
            let every = Expiration::EveryAt { first, period };
            let t = r
                .add_timer(TimerMode::Shared, every, move |_, n| {
                    f.borrow_mut().push((i, n, now_ns()));
                })
                .unwrap();
            t.set_leeway(Duration::from_millis(2)).unwrap();
            t
        })
        .collect();
    let lines = recorder(&r);
    assert!(r.run_until_timeout(SOON, || fired.borrow().len() >= 32).unwrap());
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
    // The first wake-up was armed for the first deadline, before the
    // leeways were set, so it may serve fewer; from then on, all eight.
    let steady = &passes[passes.len().saturating_sub(2)..];
    assert!(
        passes.len() >= 4 && passes.iter().all(|&n| n <= 8) && steady == [8, 8],
        "fires per pass: {passes:?}"
    );
    // Each within its window: never before its deadline (ticks counted),
    // and (loosely) not long after it.
    let mut ticks = [0u64; 8];
    for &(i, n, at) in fired.borrow().iter() {
        ticks[i] += n;
        let deadline = start + i as u64 * 100_000 + (ticks[i] - 1) * period.as_nanos() as u64;
        assert!(at >= deadline, "timer {i} came {} ns early", deadline - at);
        assert!(at < deadline + SOON.as_nanos() as u64, "timer {i}: far too late");
    }
    drop(timers);
}

/// A shared timer's leeway moves nothing: the heap keeps the exact
/// deadline, and once a pass re-arms the clock's timerfd, it is armed for
/// the window's end.
#[test]
fn a_shared_timer_keeps_its_deadline_and_wakes_the_clock_at_its_windows_end() {
    let r = Reactor::new().unwrap();
    let lines = recorder(&r);
    let at = now_ns() + 60_000 * MS;
    let t = r
        .add_timer(TimerMode::Shared, Expiration::OnceAt(ClockTime::from_nanos(at)), |_, _| {})
        .unwrap();
    t.set_leeway(Duration::from_millis(5)).unwrap();
    t.set_leeway(Duration::from_millis(1)).unwrap();
    let fired = Rc::new(RefCell::new(false));
    let f = fired.clone();
    let now = r.add_timer(TimerMode::Shared, Expiration::Once(Duration::ZERO), move |_, _| {
        *f.borrow_mut() = true;
    });
    let _now = now.unwrap();
    assert!(r.run_until_timeout(SOON, || *fired.borrow()).unwrap());
    let events = lines.borrow();
    let last_arm = events.iter().rev().find_map(|e| match e {
        TraceEvent::ArmDeadline { deadline_ns, .. } => Some(*deadline_ns),
        _ => None,
    });
    assert_eq!(last_arm, Some(at + MS), "after the pass: the 1 ms window's end: {events:?}");
    let pushes: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::HeapPush { timer, deadline_ns } if *timer != 1 => Some(*deadline_ns),
            _ => None,
        })
        .collect();
    assert!(pushes.iter().all(|&d| d == at), "the deadline never moved: {pushes:?}");
    drop(t);
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

/// The leeway stays with the timer: a later `set` of a dedicated timer
/// lands on the grid too, a shared one wakes its clock at the new window's
/// end; and `set_leeway` on a gone timer is `Gone` in both modes.
#[test]
fn the_leeway_applies_to_every_later_set_and_needs_a_live_timer() {
    for mode in TimerMode::ALL {
        let r = Reactor::new().unwrap();
        let lines = recorder(&r);
        let t = r.add_timer(mode, Expiration::Once(Duration::from_secs(60)), |_, _| {}).unwrap();
        t.set_leeway(Duration::from_millis(5)).unwrap();
        let before = now_ns();
        t.set(Expiration::Once(Duration::from_millis(3))).unwrap();
        let after = now_ns();
        let events = lines.borrow();
        match mode {
            TimerMode::Dedicated => {
                let Some(TraceEvent::Arm { expiration: Expiration::OnceAt(at), .. }) =
                    events.last()
                else {
                    panic!("dedicated: {events:?}")
                };
                assert_eq!(at.as_nanos().unwrap() % (5 * MS), 0, "a 5 ms one-shot grid");
            }
            TimerMode::Shared => {
                let arm = events.iter().rev().find_map(|e| match e {
                    TraceEvent::ArmDeadline { deadline_ns, .. } => Some(*deadline_ns),
                    _ => None,
                });
                let arm = arm.expect("the clock re-armed for the new, earlier window");
                assert!((before + 8 * MS..=after + 8 * MS).contains(&arm), "3 ms + 5 ms: {arm}");
            }
        }
        drop(events);
        let r2 = Reactor::new().unwrap();
        let gone = r2.add_timer(mode, Expiration::Once(Duration::ZERO), |ctx, _| ctx.remove());
        let gone = gone.unwrap();
        r2.turn(Some(SOON)).unwrap();
        assert_eq!(gone.set_leeway(Duration::from_millis(1)), Err(Error::Gone));
    }
}

/// The extreme value: a timer as far away as the kernel allows (a relative
/// `Duration::MAX` saturates there) takes a leeway in both modes, and
/// keeps its setting.
#[test]
fn a_timer_at_the_end_of_time_takes_a_leeway() {
    for mode in TimerMode::ALL {
        for exp in [
            Expiration::Once(timerfd_sys::MAX_TIME),
            Expiration::Every { first: timerfd_sys::MAX_TIME, period: timerfd_sys::MAX_TIME },
        ] {
            let r = Reactor::new().unwrap();
            let t = r.add_timer(mode, exp, |_, _| {}).unwrap();
            for leeway in [Duration::from_millis(1), Duration::from_secs(1), Duration::MAX] {
                assert_eq!(t.set_leeway(leeway), Ok(()), "{}: {exp:?}, {leeway:?}", mode.name());
            }
            assert_eq!(r.turn(Some(Duration::ZERO)), Ok(0), "{}: nothing fires", mode.name());
        }
    }
}
