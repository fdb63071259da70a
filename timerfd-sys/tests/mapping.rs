//! The pure mapping from `Expiration` to `(flags, itimerspec)`: no kernel
//! involved. The table rows from the crate docs, then properties over the
//! whole input space.

use std::time::Duration;

use proptest::prelude::*;
use timerfd_sys::raw::{Itimerspec, TimerfdTimerFlags, Timespec};
use timerfd_sys::{ClockTime, Error, Expiration, Field, MAX_TIME, MIN_VALUE, TimerState};

const ABS: TimerfdTimerFlags = TimerfdTimerFlags::ABSTIME;
const REL: TimerfdTimerFlags = TimerfdTimerFlags::empty();

fn ts(secs: i64, nanos: i64) -> Timespec {
    Timespec { tv_sec: secs, tv_nsec: nanos }
}

fn map(e: Expiration) -> (TimerfdTimerFlags, Timespec, Timespec) {
    let (flags, spec) = e.to_itimerspec().unwrap();
    (flags, spec.it_value, spec.it_interval)
}

fn at(secs: i64, nanos: u32) -> ClockTime {
    ClockTime::new(secs, nanos).unwrap()
}

#[test]
fn documented_table_rows() {
    let d = Duration::new(3, 250_000_000);
    let p = Duration::from_millis(100);
    assert_eq!(map(Expiration::Once(d)), (REL, ts(3, 250_000_000), ts(0, 0)));
    assert_eq!(map(Expiration::Once(Duration::ZERO)), (REL, ts(0, 1), ts(0, 0)));
    assert_eq!(
        map(Expiration::Every { first: d, period: p }),
        (REL, ts(3, 250_000_000), ts(0, 100_000_000))
    );
    assert_eq!(
        map(Expiration::Every { first: Duration::ZERO, period: p }),
        (REL, ts(0, 1), ts(0, 100_000_000))
    );
    assert_eq!(map(Expiration::every(p)), (REL, ts(0, 100_000_000), ts(0, 100_000_000)));
    assert_eq!(
        map(Expiration::OnceAt(at(1_700_000_000, 5))),
        (ABS, ts(1_700_000_000, 5), ts(0, 0))
    );
    assert_eq!(map(Expiration::OnceAt(ClockTime::ZERO)), (ABS, ts(0, 1), ts(0, 0)));
    assert_eq!(
        map(Expiration::EveryAt { first: at(42, 7), period: p }),
        (ABS, ts(42, 7), ts(0, 100_000_000))
    );
    assert_eq!(
        map(Expiration::EveryAt { first: ClockTime::ZERO, period: p }),
        (ABS, ts(0, 1), ts(0, 100_000_000))
    );
    assert_eq!(MIN_VALUE, Duration::from_nanos(1));
}

#[test]
fn boundaries_of_the_accepted_range() {
    let max = ts(MAX_TIME.as_secs() as i64, MAX_TIME.subsec_nanos().into());
    assert_eq!(map(Expiration::Once(MAX_TIME)).1, max);
    assert_eq!(map(Expiration::every(MAX_TIME)).2, max);
    let max_at = at(MAX_TIME.as_secs() as i64, MAX_TIME.subsec_nanos());
    assert_eq!(map(Expiration::OnceAt(max_at)).1, max);

    let over = MAX_TIME + Duration::from_nanos(1);
    let value = Err(Error::OutOfRange { field: Field::Value });
    let interval = Err(Error::OutOfRange { field: Field::Interval });
    assert_eq!(Expiration::Once(over).to_itimerspec().map(|_| ()), value);
    assert_eq!(Expiration::every(over).to_itimerspec().map(|_| ()), value);
    assert_eq!(
        Expiration::Every { first: MAX_TIME, period: over }.to_itimerspec().map(|_| ()),
        interval
    );
    assert_eq!(
        Expiration::OnceAt(at(MAX_TIME.as_secs() as i64 + 1, 0)).to_itimerspec().map(|_| ()),
        value
    );
    assert_eq!(Expiration::OnceAt(at(-1, 999_999_999)).to_itimerspec().map(|_| ()), value);
    assert_eq!(Expiration::OnceAt(at(i64::MIN, 0)).to_itimerspec().map(|_| ()), value);
    // KTIME_SEC_MAX seconds is where the kernel starts clamping.
    assert_eq!(MAX_TIME.as_secs() + 1, i64::MAX as u64 / 1_000_000_000);
}

#[test]
fn a_zero_period_is_rejected_before_anything_else() {
    let e = Expiration::Every { first: Duration::MAX, period: Duration::ZERO };
    assert_eq!(e.to_itimerspec().map(|_| ()), Err(Error::ZeroPeriod));
    let e = Expiration::EveryAt { first: at(-5, 0), period: Duration::ZERO };
    assert_eq!(e.to_itimerspec().map(|_| ()), Err(Error::ZeroPeriod));
}

#[test]
fn clock_time_rejects_out_of_range_nanos() {
    assert_eq!(ClockTime::new(0, 1_000_000_000), Err(Error::InvalidNanos { nanos: 1_000_000_000 }));
    assert_eq!(ClockTime::new(0, u32::MAX), Err(Error::InvalidNanos { nanos: u32::MAX }));
    assert_eq!(
        ClockTime::new(-3, 999_999_999).map(|t| (t.secs(), t.nanos())),
        Ok((-3, 999_999_999))
    );
    assert_eq!(format!("{:?}", at(-3, 5)), "ClockTime(-3.000000005)");
}

#[test]
fn clock_time_arithmetic_edges() {
    assert_eq!(ClockTime::MAX.checked_add(Duration::from_nanos(1)), None);
    assert_eq!(ClockTime::MAX.saturating_add(Duration::MAX), ClockTime::MAX);
    assert_eq!(ClockTime::ZERO.checked_add(Duration::MAX), None, "u64 seconds past i64");
    assert_eq!(at(1, 999_999_999).checked_add(Duration::from_nanos(1)), Some(at(2, 0)));
    assert_eq!(
        ClockTime::MAX.duration_since(at(i64::MIN, 0)),
        Some(Duration::new(u64::MAX, 999_999_999))
    );
}

#[test]
fn timer_state_decodes_gettime() {
    let spec = |v, i| Itimerspec { it_value: v, it_interval: i };
    assert_eq!(TimerState::from_itimerspec(&spec(ts(0, 0), ts(0, 0))), None);
    assert_eq!(
        TimerState::from_itimerspec(&spec(ts(0, 0), ts(1, 0))),
        None,
        "zero value is disarmed"
    );
    assert_eq!(
        TimerState::from_itimerspec(&spec(ts(2, 5), ts(0, 0))),
        Some(TimerState { remaining: Duration::new(2, 5), period: None })
    );
    assert_eq!(
        TimerState::from_itimerspec(&spec(ts(0, 1), ts(0, 3))),
        Some(TimerState {
            remaining: Duration::from_nanos(1),
            period: Some(Duration::from_nanos(3))
        })
    );
    assert_eq!(TimerState::from_itimerspec(&spec(ts(-1, 0), ts(0, 0))), None);
    assert_eq!(TimerState::from_itimerspec(&spec(ts(1, 1_000_000_000), ts(0, 0))), None);
}

/// Durations over the whole `Duration` space, with extra weight on zero and
/// on both sides of `MAX_TIME`.
fn duration() -> impl Strategy<Value = Duration> {
    let nanos = prop_oneof![Just(0u32), Just(999_999_999u32), 0u32..1_000_000_000];
    let secs = prop_oneof![
        Just(0u64),
        Just(MAX_TIME.as_secs()),
        Just(MAX_TIME.as_secs() + 1),
        Just(u64::MAX),
        0u64..=MAX_TIME.as_secs() + 1,
        any::<u64>(),
    ];
    (secs, nanos).prop_map(|(s, n)| Duration::new(s, n))
}

fn clock_time() -> impl Strategy<Value = ClockTime> {
    let secs = prop_oneof![
        Just(0i64),
        Just(-1i64),
        Just(MAX_TIME.as_secs() as i64),
        Just(MAX_TIME.as_secs() as i64 + 1),
        Just(i64::MIN),
        Just(i64::MAX),
        -1i64..=MAX_TIME.as_secs() as i64 + 1,
        any::<i64>(),
    ];
    (secs, prop_oneof![Just(0u32), 0u32..1_000_000_000])
        .prop_map(|(s, n)| ClockTime::new(s, n).unwrap())
}

fn expiration() -> impl Strategy<Value = Expiration> {
    prop_oneof![
        duration().prop_map(Expiration::Once),
        (duration(), duration()).prop_map(|(first, period)| Expiration::Every { first, period }),
        clock_time().prop_map(Expiration::OnceAt),
        (clock_time(), duration())
            .prop_map(|(first, period)| Expiration::EveryAt { first, period }),
    ]
}

/// The first expiry and the period an expiration asks for, as offsets from
/// the clock's epoch (absolute) or from now (relative); `None` if negative.
fn requested(e: &Expiration) -> (Option<Duration>, Duration) {
    match *e {
        Expiration::Once(d) => (Some(d), Duration::ZERO),
        Expiration::Every { first, period } => (Some(first), period),
        Expiration::OnceAt(t) => (t.duration_since(ClockTime::ZERO), Duration::ZERO),
        Expiration::EveryAt { first, period } => (first.duration_since(ClockTime::ZERO), period),
    }
}

fn as_duration(t: &Timespec) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Never panics; every Ok is a valid, armed itimerspec that says exactly
    /// what was asked; every Err is the one the rules predict.
    #[test]
    fn mapping_is_total_exact_and_never_disarms(e in expiration()) {
        let (value, period) = requested(&e);
        let periodic = matches!(e, Expiration::Every { .. } | Expiration::EveryAt { .. });
        match e.to_itimerspec() {
            Ok((flags, spec)) => {
                for t in [&spec.it_value, &spec.it_interval] {
                    prop_assert!((0..1_000_000_000).contains(&t.tv_nsec), "tv_nsec {t:?}");
                    prop_assert!(t.tv_sec >= 0 && t.tv_sec as u64 <= MAX_TIME.as_secs());
                }
                prop_assert!(spec.it_value != ts(0, 0), "an armed expiration mapped to a disarm");
                prop_assert_eq!(flags == ABS, e.is_absolute());
                // Round trip: exact wherever representable, 1 ns for zero.
                prop_assert_eq!(as_duration(&spec.it_value), value.unwrap().max(MIN_VALUE));
                prop_assert_eq!(as_duration(&spec.it_interval), period);
                if !e.is_absolute() {
                    let state = TimerState::from_itimerspec(&spec).unwrap();
                    prop_assert_eq!(state.remaining, value.unwrap().max(MIN_VALUE));
                    prop_assert_eq!(state.period, periodic.then_some(period));
                }
            }
            Err(Error::ZeroPeriod) => prop_assert!(periodic && period.is_zero()),
            Err(Error::OutOfRange { field: Field::Interval }) => {
                prop_assert!(periodic && period > MAX_TIME);
            }
            Err(Error::OutOfRange { field: Field::Value }) => {
                prop_assert!(!(periodic && period.is_zero()));
                prop_assert!(value.is_none_or(|v| v > MAX_TIME));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    /// `validate` is `to_itimerspec` checked once and kept: the same
    /// flags, the same itimerspec, the same error, and its accessors read
    /// back what was asked.
    #[test]
    fn a_setting_is_the_mapping_validated_once(e in expiration()) {
        match (e.validate(), e.to_itimerspec()) {
            (Ok(setting), Ok((flags, spec))) => {
                prop_assert_eq!(setting.flags(), flags);
                prop_assert_eq!(setting.itimerspec().it_value, spec.it_value);
                prop_assert_eq!(setting.itimerspec().it_interval, spec.it_interval);
                prop_assert_eq!(setting.expiration(), e);
                prop_assert_eq!(setting.is_absolute(), e.is_absolute());
                prop_assert_eq!(setting.first(), as_duration(&spec.it_value));
                let (_, period) = requested(&e);
                prop_assert_eq!(setting.period(), (!period.is_zero()).then_some(period));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "validate {a:?} but to_itimerspec {b:?}"),
        }
    }

    #[test]
    fn clock_time_add_and_since_are_inverse(t in clock_time(), d in duration()) {
        match t.checked_add(d) {
            Some(later) => {
                prop_assert!(later >= t);
                prop_assert_eq!(later.duration_since(t), Some(d));
                prop_assert_eq!(t.saturating_add(d), later);
                if !d.is_zero() {
                    prop_assert_eq!(t.duration_since(later), None);
                }
            }
            None => prop_assert_eq!(t.saturating_add(d), ClockTime::MAX),
        }
    }

    #[test]
    fn clock_time_order_is_time_order(a in clock_time(), b in clock_time()) {
        let as_nanos = |t: ClockTime| i128::from(t.secs()) * 1_000_000_000 + i128::from(t.nanos());
        prop_assert_eq!(a.cmp(&b), as_nanos(a).cmp(&as_nanos(b)));
    }
}
