//! Leeway: how much later than its deadline a timer may fire, so that one
//! wake-up can serve many timers.
//!
//! Every precise expiry is its own wake-up of the loop, and in this VM a
//! wake-up costs 10 to 25 µs of CPU whatever it serves (the high end when a
//! timer is re-armed after each one). The loops people use
//! instead let timers share wake-ups: libev and libuv round to milliseconds,
//! sd-event gives each timer an accuracy window, libdispatch a leeway. Here
//! a timer's leeway `L` (set with [`Timer::set_leeway`](crate::Timer::set_leeway);
//! zero by default, which is exactly the behaviour without one) allows it
//! to fire anywhere in `[deadline, deadline + L]`, never early.
//!
//! # Shared timers: coalescing from the heap
//!
//! A shared timer with a leeway keeps its exact deadline; its heap also
//! records where its window ends, deadline + `L`. The clock's timerfd is
//! armed for the earliest instant the loop must wake: the earliest
//! deadline of a timer with no leeway, or the earliest window end. Each
//! pass then fires every timer whose deadline has passed. So a wake-up
//! serves every timer whose window is open, and timers with a leeway wake
//! the loop only when the first of their windows closes: one wake-up, one
//! read, one re-arm, for all of them, whatever their periods. This is
//! sd-event's accuracy and libdispatch's leeway (see `shared/heap.rs`). A
//! shared periodic timer waits at most half its period, whatever its
//! leeway: waiting to its next tick would fold two ticks into one callback.
//!
//! # Dedicated timers: a grid
//!
//! A dedicated timer is its own kernel timer, and the kernel only fires it
//! at the instants it was given. So its schedule moves forward, by less
//! than `L`, onto a grid of instants that other timers land on too, and is
//! armed exactly there (absolute, `TFD_TIMER_ABSTIME`). Timers on one grid
//! expire in the same hrtimer interrupt, so one `epoll_wait` returns all of
//! them: one wake-up, a read each.
//!
//! A periodic timer's grid step is its period divided by the smallest whole
//! number that brings it within the leeway, or by the first number after
//! that, up to twice it, that divides the period exactly in nanoseconds;
//! if none does, there is no grid and the timer is armed as set. 10 ms with
//! a 1 ms leeway gives a 1 ms grid, 1 ms with any leeway of 1 ms or more
//! gives a 1 ms grid. Because the period is a whole number of steps, every
//! later expiry stays on the grid by itself: no timer is ever re-armed to
//! keep it there. A timer moves by less than one step, so by less than `L`.
//! A one-shot's step is the largest of 1, 2 or 5 times a power of ten
//! nanoseconds that is at most `L` (a 1.5 ms leeway: a 1 ms grid).
//!
//! Which dedicated timers share wake-ups: those whose steps are equal or
//! multiples of each other (the same period; periods 10 ms and 7 ms, both
//! on a 1 ms grid at a 1 ms leeway). A period with no such divisor (a
//! prime number of nanoseconds, say) keeps its own
//! phase: it still fires within its window, but shares wake-ups only by
//! chance, so it costs what a precise timer costs. Shared mode has no such
//! case. `BENCHMARKS.md` has the figures, both cases included: CPU per
//! expiry against sd-event's accuracy and libev's rounding.

/// The grid step for a timer with period `period_ns` (0 for a one-shot) and
/// leeway `leeway_ns`: 0 means "no grid, arm exactly".
pub(crate) fn step(period_ns: u64, leeway_ns: u64) -> u64 {
    if leeway_ns == 0 {
        return 0;
    }
    if period_ns == 0 {
        return round_step(leeway_ns);
    }
    if period_ns <= leeway_ns {
        return period_ns;
    }
    // The smallest k with period / k <= leeway, then the first k up to 2k
    // that divides the period exactly, so the grid keeps the period whole.
    // At most MAX_TRIES candidates: a period of centuries with a 1 ms
    // leeway would otherwise mean trillions of divisions.
    let k = period_ns.div_ceil(leeway_ns);
    let last = k.saturating_mul(2).min(k.saturating_add(MAX_TRIES));
    (k..=last).find(|d| period_ns % d == 0).map_or(0, |d| period_ns / d)
}

/// The most divisors [`step`] tries: enough for any period up to 4,096
/// leeways long (and any round period), bounded whatever the period.
const MAX_TRIES: u64 = 4096;

/// The largest of 1, 2 or 5 × 10^n nanoseconds that is at most `leeway_ns`.
fn round_step(leeway_ns: u64) -> u64 {
    let mut decade = 1u64;
    while decade <= leeway_ns / 10 {
        decade *= 10;
    }
    [5, 2, 1]
        .into_iter()
        .filter_map(|m: u64| m.checked_mul(decade))
        .find(|s| *s <= leeway_ns)
        .unwrap_or(1)
}

/// `deadline_ns` moved forward to the first multiple of `step` at or after
/// it (unchanged for a zero step). Never earlier, and less than `step` later,
/// unless that would pass `u64::MAX`, where it saturates.
pub(crate) fn align(deadline_ns: u64, step: u64) -> u64 {
    if step == 0 {
        return deadline_ns;
    }
    deadline_ns.div_ceil(step).saturating_mul(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_documented_steps() {
        assert_eq!(step(10 * MS, MS), MS);
        assert_eq!(step(MS, MS), MS);
        assert_eq!(step(MS, 5 * MS), MS, "a period within the leeway is its own step");
        assert_eq!(step(7 * MS, MS), MS);
        assert_eq!(step(0, 1_500_000), MS, "one-shots: 1, 2 or 5 times a power of ten");
        assert_eq!(step(0, 3 * MS), 2 * MS);
        assert_eq!(step(0, 1), 1);
        assert_eq!(step(10 * MS, 0), 0, "no leeway, no grid");
        assert_eq!(step(1_000_000_007, MS), 0, "a prime period keeps its own phase");
        // The model test found this one: a timer centuries away, given a
        // leeway, must not make the search take centuries too.
        assert_eq!(step(9_223_372_035_999_999_999, 1_024_000), 0);
        assert_eq!(step(u64::MAX - 1, 1), 1, "a 1 ns leeway: a 1 ns grid");
        assert_eq!(step(0, u64::MAX), 10_000_000_000_000_000_000, "Duration::MAX: no overflow");
        assert_eq!(step(3600 * 1_000_000_000, MS), MS, "a round hour on a 1 ms grid");
    }

    proptest! {
        /// The promise: never early, less than the leeway late, and a
        /// periodic timer's later expiries stay on the grid by themselves.
        #[test]
        fn aligned_deadlines_stay_in_the_window(
            deadline in 0u64..u64::MAX / 4,
            period in prop_oneof![Just(0u64), 1u64..10_000_000_000, 1u64..u64::MAX],
            leeway in prop_oneof![1u64..1_000_000_000, 1u64..=u64::MAX],
        ) {
            let s = step(period, leeway);
            let at = align(deadline, s);
            prop_assert!(at >= deadline);
            prop_assert!(at - deadline < leeway.max(1));
            if s != 0 {
                prop_assert!(s <= leeway);
                prop_assert_eq!(at % s, 0);
                if period != 0 {
                    prop_assert_eq!(period % s, 0, "the period is whole steps");
                }
            }
        }
    }
}
