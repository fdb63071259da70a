//! `TimerFd` against the real kernel. Waits are bounded (poll with a 2 s
//! limit, or a blocking one-shot timerfd); nothing sleeps and hopes.

mod common;

use std::num::NonZeroU64;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::{fdinfo, wait_for, wait_readable};
use timerfd_sys::{Clock, ClockTime, Error, Expiration, Field, MAX_TIME, TimerFd, TimerState};

const LIMIT: Duration = Duration::from_secs(2);

fn monotonic() -> TimerFd {
    TimerFd::new(Clock::Monotonic).unwrap()
}

#[test]
fn one_ms_one_shot_fires_exactly_once() {
    let t = monotonic();
    t.set(Expiration::Once(Duration::from_millis(1))).unwrap();
    assert!(wait_readable(&t, LIMIT), "1 ms one-shot did not fire within 2 s");
    assert_eq!(t.read().unwrap(), 1);
    // The kernel disarmed it on expiry, so there is no second firing to come.
    assert_eq!(t.get().unwrap(), None);
    assert_eq!(t.read().unwrap(), 0);
}

#[test]
fn zero_duration_fires_instead_of_disarming() {
    let t = monotonic();
    t.set(Expiration::Once(Duration::ZERO)).unwrap();
    assert!(wait_readable(&t, LIMIT), "Once(ZERO) never fired: it was mapped to a disarm");
    assert_eq!(t.read().unwrap(), 1);
}

#[test]
fn zero_first_of_interval_fires_at_once() {
    let t = monotonic();
    t.set(Expiration::Every { first: Duration::ZERO, period: Duration::from_secs(3600) }).unwrap();
    assert!(wait_readable(&t, LIMIT));
    assert_eq!(t.read().unwrap(), 1);
    assert_eq!(t.get().unwrap().unwrap().period, Some(Duration::from_secs(3600)));
}

#[test]
fn absolute_time_in_the_past_fires() {
    for clock in [Clock::Monotonic, Clock::Boottime, Clock::Realtime] {
        let t = TimerFd::new(clock).unwrap();
        let now = clock.now();
        let past = ClockTime::new(now.secs() - 1, now.nanos()).unwrap();
        t.set(Expiration::OnceAt(past)).unwrap();
        assert!(wait_readable(&t, LIMIT), "{clock:?}: past OnceAt did not fire");
        assert_eq!(t.read().unwrap(), 1);
    }
}

#[test]
fn absolute_zero_fires() {
    for clock in [Clock::Monotonic, Clock::Realtime] {
        let t = TimerFd::new(clock).unwrap();
        t.set(Expiration::OnceAt(ClockTime::ZERO)).unwrap();
        assert!(wait_readable(&t, LIMIT), "{clock:?}: OnceAt(0, 0) never fired");
        assert_eq!(t.read().unwrap(), 1);
    }
}

#[test]
fn absolute_deadline_in_the_future_is_honoured() {
    let t = monotonic();
    let deadline = Clock::Monotonic.now().checked_add(Duration::from_millis(5)).unwrap();
    t.set(Expiration::OnceAt(deadline)).unwrap();
    assert!(wait_readable(&t, LIMIT));
    assert_eq!(t.read().unwrap(), 1);
    assert!(Clock::Monotonic.now() >= deadline, "fired before its absolute deadline");
}

#[test]
fn interval_folds_missed_ticks() {
    let t = monotonic();
    t.set(Expiration::every(Duration::from_millis(1))).unwrap();
    wait_for(Duration::from_millis(20)); // about 20 periods, unread
    let read_at = Clock::Monotonic.now();
    let ticks = t.read().unwrap();
    assert!(ticks >= 10, "expected at least 10 folded ticks after 20 ms, got {ticks}");
    // The count was reset by the read: the next read owes only the periods
    // since the first began (by the clock, which counts a preemption too).
    let again = t.read().unwrap();
    let since = Clock::Monotonic.now().duration_since(read_at).unwrap();
    assert!(
        u128::from(again) <= since.as_millis() + 1,
        "{again} ticks {since:?} after a read that took {ticks}"
    );
}

#[test]
fn absolute_interval_in_the_past_counts_the_missed_ticks() {
    let t = monotonic();
    let now = Clock::Monotonic.now();
    let first = ClockTime::new(now.secs() - 1, now.nanos()).unwrap();
    t.set(Expiration::EveryAt { first, period: Duration::from_millis(100) }).unwrap();
    assert!(wait_readable(&t, LIMIT));
    let ticks = t.read().unwrap();
    let after = Clock::Monotonic.now();
    // One second past at 100 ms: the first read owes about ten expirations,
    // plus one per 100 ms the test spent getting to the read (a loaded
    // machine may preempt it for that long), counted by the clock.
    let owed = |at: ClockTime| at.duration_since(first).unwrap().as_millis() / 100 + 1;
    let expected = owed(now) - 1..=owed(after);
    assert!(expected.contains(&u128::from(ticks)), "got {ticks}, expected {expected:?}");
}

#[test]
fn disarm_stops_the_timer() {
    let t = monotonic();
    t.set(Expiration::every(Duration::from_millis(1))).unwrap();
    assert!(wait_readable(&t, LIMIT));
    t.disarm().unwrap();
    assert_eq!(t.get().unwrap(), None);
    assert_eq!(t.read().unwrap(), 0, "disarm discards unread expirations");
    wait_for(Duration::from_millis(5)); // five periods of the old setting
    assert_eq!(t.read().unwrap(), 0, "a disarmed timer fired");
}

#[test]
fn get_reflects_set() {
    let t = monotonic();
    assert_eq!(t.get().unwrap(), None, "a new timer is disarmed");

    let first = Duration::from_secs(5);
    let period = Duration::from_millis(250);
    t.set(Expiration::Every { first, period }).unwrap();
    let TimerState { remaining, period: got } = t.get().unwrap().unwrap();
    assert!(remaining <= first && remaining > first - LIMIT, "remaining {remaining:?}");
    assert_eq!(got, Some(period), "the period round-trips exactly through the kernel");

    t.set(Expiration::Once(Duration::from_secs(10))).unwrap();
    let state = t.get().unwrap().unwrap();
    assert!(state.remaining <= Duration::from_secs(10));
    assert_eq!(state.period, None);

    let at = Clock::Monotonic.now().checked_add(Duration::from_secs(30)).unwrap();
    let odd = Duration::new(1, 123_456_789);
    t.set(Expiration::EveryAt { first: at, period: odd }).unwrap();
    let state = t.get().unwrap().unwrap();
    assert!(state.remaining <= Duration::from_secs(30), "absolute timers report time remaining");
    assert_eq!(state.period, Some(odd));
}

#[test]
fn largest_accepted_values_round_trip_through_the_kernel() {
    let t = monotonic();
    t.set(Expiration::Every { first: MAX_TIME, period: MAX_TIME }).unwrap();
    let state = t.get().unwrap().unwrap();
    assert_eq!(state.period, Some(MAX_TIME), "the kernel clamped a period we accepted");
    // A relative value is added to "now" and the sum saturates at KTIME_MAX,
    // which is MAX_TIME + 854775807 ns after the clock's epoch (see MAX_TIME).
    let uptime = Clock::Monotonic.now().duration_since(ClockTime::ZERO).unwrap();
    let ktime_max = MAX_TIME + Duration::from_nanos(854_775_808);
    assert!(state.remaining <= MAX_TIME, "{state:?}");
    assert!(state.remaining + uptime + LIMIT >= ktime_max.min(MAX_TIME + uptime), "{state:?}");

    let at = ClockTime::new(MAX_TIME.as_secs() as i64, MAX_TIME.subsec_nanos()).unwrap();
    t.set(Expiration::OnceAt(at)).unwrap();
    let state = t.get().unwrap().unwrap();
    let exact = at.duration_since(Clock::Monotonic.now()).unwrap();
    assert!(state.remaining <= exact + LIMIT && state.remaining + LIMIT >= exact, "{state:?}");
}

#[test]
fn nonblocking_read_with_nothing_expired_returns_zero() {
    let t = monotonic();
    assert_eq!(t.read().unwrap(), 0, "disarmed");
    t.set(Expiration::Once(Duration::from_secs(60))).unwrap();
    assert_eq!(t.read().unwrap(), 0, "armed, not yet expired");
}

#[test]
fn set_ticks_works_or_is_typed_unsupported() {
    let t = monotonic();
    t.set(Expiration::Once(Duration::from_secs(60))).unwrap();
    match t.set_ticks(NonZeroU64::new(7).unwrap()) {
        Ok(()) => {
            assert!(wait_readable(&t, Duration::ZERO), "set_ticks must make the fd readable");
            assert_eq!(t.read().unwrap(), 7);
        }
        Err(e) => assert_eq!(e, Error::Unsupported, "kernel without CONFIG_CHECKPOINT_RESTORE"),
    }
}

#[test]
fn set_ticks_request_number_is_iow_t_0_u64() {
    const IOC_WRITE: u32 = 1;
    let expected = (IOC_WRITE << 30) | ((size_of::<u64>() as u32) << 16) | ((b'T' as u32) << 8);
    assert_eq!(timerfd_sys::raw::TFD_IOC_SET_TICKS, expected);
}

#[test]
fn range_errors_are_typed_and_leave_the_timer_as_it_was() {
    let t = monotonic();
    let period = Duration::from_millis(750);
    t.set(Expiration::Every { first: Duration::from_secs(60), period }).unwrap();

    let too_big = MAX_TIME + Duration::from_nanos(1);
    let before_epoch = ClockTime::new(-1, 0).unwrap();
    let cases = [
        (Expiration::Once(too_big), Error::OutOfRange { field: Field::Value }),
        (Expiration::Once(Duration::MAX), Error::OutOfRange { field: Field::Value }),
        (
            Expiration::Every { first: Duration::ZERO, period: too_big },
            Error::OutOfRange { field: Field::Interval },
        ),
        (
            Expiration::Every { first: Duration::from_secs(1), period: Duration::ZERO },
            Error::ZeroPeriod,
        ),
        (Expiration::OnceAt(before_epoch), Error::OutOfRange { field: Field::Value }),
        (Expiration::OnceAt(ClockTime::MAX), Error::OutOfRange { field: Field::Value }),
        (Expiration::EveryAt { first: ClockTime::ZERO, period: Duration::ZERO }, Error::ZeroPeriod),
        (
            Expiration::EveryAt { first: ClockTime::ZERO, period: Duration::MAX },
            Error::OutOfRange { field: Field::Interval },
        ),
    ];
    for (exp, want) in cases {
        assert_eq!(t.set(exp), Err(want), "{exp:?}");
        assert_eq!(t.get().unwrap().unwrap().period, Some(period), "{exp:?} changed the timer");
    }
    // The same errors convert to std::io::Error for `?` in io code.
    let io: std::io::Error = Error::ZeroPeriod.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn cancel_on_set_is_refused_where_the_kernel_would_ignore_it() {
    let now = Clock::Realtime.now().saturating_add(Duration::from_secs(60));
    let mono = monotonic();
    assert_eq!(
        mono.set_cancel_on_set(Expiration::OnceAt(now)),
        Err(Error::CancelOnSetNotApplicable)
    );
    let real = TimerFd::new(Clock::Realtime).unwrap();
    assert_eq!(
        real.set_cancel_on_set(Expiration::Once(Duration::from_secs(1))),
        Err(Error::CancelOnSetNotApplicable)
    );
    real.set_cancel_on_set(Expiration::OnceAt(now)).unwrap();
    assert!(real.get().unwrap().is_some());
    // fdinfo shows the flags the kernel stored: ABSTIME (1) | CANCEL_ON_SET (2).
    assert!(fdinfo(&real).contains("settime flags: 03"), "{}", fdinfo(&real));
}

#[test]
fn new_is_nonblocking_and_cloexec_and_blocking_is_not_nonblocking() {
    const O_NONBLOCK: u32 = 0o4000;
    const O_CLOEXEC: u32 = 0o2000000;
    let flags = |t: &TimerFd| {
        let info = fdinfo(t);
        let line = info.lines().find(|l| l.starts_with("flags:")).unwrap();
        u32::from_str_radix(line["flags:".len()..].trim(), 8).unwrap()
    };
    let nb = monotonic();
    assert_eq!(flags(&nb) & (O_NONBLOCK | O_CLOEXEC), O_NONBLOCK | O_CLOEXEC);
    let b = TimerFd::new_blocking(Clock::Monotonic).unwrap();
    assert_eq!(flags(&b) & (O_NONBLOCK | O_CLOEXEC), O_CLOEXEC);
}

#[test]
fn every_clock_is_created_on_the_clock_asked_for_or_gives_a_typed_error() {
    // fdinfo prints the clockid number the kernel stored.
    let ids = [
        (Clock::Monotonic, 1),
        (Clock::Boottime, 7),
        (Clock::Realtime, 0),
        (Clock::RealtimeAlarm, 8),
        (Clock::BoottimeAlarm, 9),
    ];
    for (clock, id) in ids {
        match TimerFd::new(clock) {
            Ok(t) => {
                assert_eq!(t.clock(), clock);
                assert!(
                    fdinfo(&t).contains(&format!("clockid: {id}\n")),
                    "{clock:?}: {}",
                    fdinfo(&t)
                );
                assert!(clock.now() > ClockTime::ZERO);
            }
            // The alarm clocks need CAP_WAKE_ALARM and an RTC; elsewhere the
            // kernel says EPERM or EINVAL, and that arrives typed.
            Err(Error::Os(errno)) => {
                assert!(
                    matches!(clock, Clock::RealtimeAlarm | Clock::BoottimeAlarm),
                    "{clock:?}: {errno}"
                );
            }
            Err(other) => panic!("{clock:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn clock_now_advances_and_realtime_is_after_2020() {
    let a = Clock::Monotonic.now();
    wait_for(Duration::from_millis(1));
    let b = Clock::Monotonic.now();
    assert!(b.duration_since(a).unwrap() >= Duration::from_millis(1));
    assert!(Clock::Realtime.now().secs() > 1_577_836_800);
}

#[test]
fn into_owned_fd_keeps_the_fd_open_and_armed() {
    let t = monotonic();
    let raw = t.as_raw_fd();
    t.set(Expiration::Once(Duration::ZERO)).unwrap();
    let fd: OwnedFd = t.into();
    assert_eq!(fd.as_raw_fd(), raw);
    assert!(wait_readable(&fd, LIMIT), "the timer stayed armed after the conversion");
    assert!(format!("{:?}", monotonic()).starts_with("TimerFd { fd: "));
}

/// `apply` arms exactly what `set` arms for the same expiration, and a
/// setting can be applied again and again.
#[test]
fn apply_arms_what_set_arms() {
    let (a, b) = (monotonic(), monotonic());
    let e = Expiration::Every { first: Duration::from_secs(30), period: Duration::from_secs(7) };
    let setting = e.validate().unwrap();
    a.apply(&setting).unwrap();
    b.set(e).unwrap();
    let (sa, sb) = (a.get().unwrap().unwrap(), b.get().unwrap().unwrap());
    assert_eq!(sa.period, sb.period);
    assert!(sa.remaining.abs_diff(sb.remaining) < LIMIT, "{sa:?} {sb:?}");
    a.apply(&setting).unwrap();
    assert_eq!(a.get().unwrap().unwrap().period, Some(Duration::from_secs(7)));
}

/// `set_deadline`: absolute and one-shot; 0 fires at once instead of
/// disarming; a deadline past the kernel's range is clamped to `MAX_TIME`,
/// never an error and never a disarm.
#[test]
fn set_deadline_is_absolute_fires_for_zero_and_clamps_the_far_future() {
    let t = monotonic();
    let now = Clock::Monotonic.now().duration_since(ClockTime::ZERO).unwrap();
    let deadline = now + Duration::from_secs(60);
    t.set_deadline(deadline.as_nanos() as u64).unwrap();
    let state = t.get().unwrap().unwrap();
    assert_eq!(state.period, None);
    assert!(
        state.remaining <= Duration::from_secs(60)
            && state.remaining + LIMIT > Duration::from_secs(60)
    );
    assert!(fdinfo(&t).contains("settime flags: 01"), "{}", fdinfo(&t));

    t.set_deadline(0).unwrap();
    assert!(wait_readable(&t, LIMIT), "a zero deadline disarmed the timer");
    assert_eq!(t.read().unwrap(), 1);

    t.set_deadline(u64::MAX).unwrap();
    let state = t.get().unwrap().unwrap();
    let left = MAX_TIME.checked_sub(now).unwrap();
    assert!(state.remaining <= left && state.remaining + LIMIT >= left, "{state:?}");
}
