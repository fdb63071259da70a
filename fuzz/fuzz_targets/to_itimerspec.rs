//! `Expiration::to_itimerspec`: no panic for any expiration, and every
//! `itimerspec` it returns is one the kernel stores exactly.
//!
//! The oracle is the documented rule, computed independently here:
//! - a zero period is `ZeroPeriod`; a value or period past `MAX_TIME`, or
//!   an absolute time before the epoch, is `OutOfRange`; nothing else fails;
//! - `tv_nsec` is in `[0, 1e9)` and `tv_sec` in `[0, MAX_TIME.as_secs()]`;
//! - `it_value` is never zero (that would disarm); it equals the input,
//!   except that zero becomes 1 ns;
//! - `it_interval` is the period, or zero for a one-shot;
//! - `TFD_TIMER_ABSTIME` is set exactly for the absolute variants.
#![no_main]

use std::time::Duration;

mod common;

use common::take;
use libfuzzer_sys::fuzz_target;
use timerfd_sys::raw::{TimerfdTimerFlags, Timespec};
use timerfd_sys::{ClockTime, Error, Expiration, MAX_TIME};

/// Seconds biased toward the edges of the range, where the bugs live.
fn secs(raw: u64, pick: u8) -> u64 {
    let max = MAX_TIME.as_secs();
    match pick % 6 {
        0 => raw,
        1 => max.wrapping_add(raw % 3).wrapping_sub(1),
        2 => raw % 4,
        3 => u64::MAX - raw % 3,
        4 => (i64::MAX as u64).wrapping_add(raw % 3).wrapping_sub(1),
        _ => raw % (max + 2),
    }
}

fn nanos(raw: u32, pick: u8) -> u32 {
    match pick % 3 {
        0 => raw % 1_000_000_000,
        1 => 999_999_999 - raw % 2,
        _ => raw % 2,
    }
}

fn ts(d: Duration) -> (i64, i64) {
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

fn pair(t: &Timespec) -> (i64, i64) {
    (t.tv_sec, t.tv_nsec)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [variant, p1, p2, p3, p4] = take::<5>(&mut data);
    let (s1, s2) = (u64::from_le_bytes(take(&mut data)), u64::from_le_bytes(take(&mut data)));
    let (n1, n2) = (u32::from_le_bytes(take(&mut data)), u32::from_le_bytes(take(&mut data)));
    let (first_s, first_n) = (secs(s1, p1), nanos(n1, p2));
    let period = Duration::new(secs(s2, p3), nanos(n2, p4));
    let first = Duration::new(first_s, first_n);
    // Absolute times: any i64 seconds (negative ones included).
    let at = || ClockTime::new(if p1 % 7 == 6 { s1 as i64 } else { first_s as i64 }, first_n);

    let max = MAX_TIME.as_secs();
    let (exp, value, interval, absolute) = match variant % 4 {
        0 => (Expiration::Once(first), ts(first), None, false),
        1 => (Expiration::Every { first, period }, ts(first), Some(period), false),
        2 => match at() {
            Ok(t) => (Expiration::OnceAt(t), (t.secs(), i64::from(t.nanos())), None, true),
            Err(_) => return,
        },
        _ => match at() {
            Ok(t) => {
                let e = Expiration::EveryAt { first: t, period };
                (e, (t.secs(), i64::from(t.nanos())), Some(period), true)
            }
            Err(_) => return,
        },
    };
    let value_ok = value.0 >= 0 && value.0 as u64 <= max;
    let period_ok = interval.is_none_or(|p| p.as_secs() <= max);
    let zero_period = interval.is_some_and(|p| p.is_zero());

    match exp.to_itimerspec() {
        Ok((flags, spec)) => {
            assert!(!zero_period && value_ok && period_ok, "{exp:?} accepted");
            for t in [&spec.it_value, &spec.it_interval] {
                assert!((0..1_000_000_000).contains(&t.tv_nsec), "{exp:?}: tv_nsec {t:?}");
                assert!(t.tv_sec >= 0 && t.tv_sec as u64 <= max, "{exp:?}: tv_sec {t:?}");
            }
            let want = if value == (0, 0) { (0, 1) } else { value };
            assert_eq!(pair(&spec.it_value), want, "{exp:?}: it_value");
            assert_eq!(
                pair(&spec.it_interval),
                interval.map_or((0, 0), ts),
                "{exp:?}: it_interval"
            );
            assert_eq!(flags.contains(TimerfdTimerFlags::ABSTIME), absolute, "{exp:?}: flags");
            assert_eq!(flags & !TimerfdTimerFlags::ABSTIME, TimerfdTimerFlags::empty());
            assert_eq!(exp.is_absolute(), absolute);
        }
        Err(Error::ZeroPeriod) => assert!(zero_period, "{exp:?}: ZeroPeriod"),
        Err(Error::OutOfRange { .. }) => {
            assert!(!zero_period && !(value_ok && period_ok), "{exp:?}: OutOfRange")
        }
        Err(e) => panic!("{exp:?}: unexpected error {e:?}"),
    }
});
