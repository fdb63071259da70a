//! One run's measurement (lateness samples, CPU per expiry) and the
//! contenders that run in this process: the reactor, tokio, and a
//! `thread::sleep` loop.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{Clock, ClockTime, Expiration, Reactor, TimerMode};

pub struct Stats {
    samples: Vec<u64>,
}

/// One run: its lateness distribution in µs, and its CPU time per expiry
/// in ns.
#[derive(Clone, Copy, Default)]
pub struct Q {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub cpu: f64,
}

impl Stats {
    /// The quantiles, and `cpu_ns` (the run's CPU time) per sample.
    fn quantiles(mut self, cpu_ns: u64) -> Q {
        self.samples.sort_unstable();
        let n = self.samples.len();
        let q = |p: f64| {
            let ns = self
                .samples
                .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
                .copied()
                .unwrap_or(0);
            ns as f64 / 1000.0
        };
        let cpu = if n == 0 { 0.0 } else { cpu_ns as f64 / n as f64 };
        Q { samples: n, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1.0), cpu }
    }
}

/// User plus system CPU time this process has used, in ns, over all its
/// threads, the finished ones included (`getrusage(RUSAGE_SELF)`).
fn cpu_ns() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is valid for writes of a `rusage`; rustix has no getrusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF)");
    // SAFETY: getrusage succeeded, so it filled `usage` in.
    let usage = unsafe { usage.assume_init() };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime) + us(usage.ru_stime)) * 1000
}

/// Run an in-process contender, measuring the CPU time it takes.
pub fn in_process(run: impl FnOnce() -> Stats) -> Q {
    let before = cpu_ns();
    let stats = run();
    stats.quantiles(cpu_ns().saturating_sub(before))
}

fn ns(t: ClockTime) -> u64 {
    t.as_nanos().expect("CLOCK_MONOTONIC is past its epoch")
}

/// The reactor in `mode`; a non-zero `leeway` is given to every timer right
/// after it is added.
pub fn reactor_run(
    mode: TimerMode,
    n: usize,
    period: Duration,
    secs: Duration,
    leeway: Duration,
) -> Stats {
    let r = Reactor::new().unwrap();
    let samples = Rc::new(RefCell::new(Vec::with_capacity(n * secs.as_millis() as usize + 1024)));
    let p = period.as_nanos() as u64;
    let t0 = ns(Clock::Monotonic.now()) + 10_000_000; // start in 10 ms
    let mut timers = Vec::with_capacity(n);
    for i in 0..n {
        let first = t0 + (i as u64 * p) / n as u64;
        let s = samples.clone();
        let mut ticks = 0u64;
        let exp = Expiration::EveryAt { first: ClockTime::from_nanos(first), period };
        let timer = r
            .add_timer(mode, exp, move |_, k| {
                // A leeway moves the schedule later by less than a period,
                // so the tick count still names the exact deadline.
                ticks += k;
                let deadline = first + (ticks - 1) * p;
                let now = ns(Clock::Monotonic.now());
                s.borrow_mut().push(now.saturating_sub(deadline));
            })
            .unwrap();
        if !leeway.is_zero() {
            timer.set_leeway(leeway).unwrap();
        }
        timers.push(timer);
    }
    let end = Instant::now() + secs + Duration::from_millis(10);
    while Instant::now() < end {
        r.turn(Some(end.saturating_duration_since(Instant::now()))).unwrap();
    }
    drop(timers);
    Stats { samples: Rc::try_unwrap(samples).map(|c| c.into_inner()).unwrap_or_default() }
}

pub fn tokio_run(n: usize, period: Duration, secs: Duration) -> Stats {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async move {
        let samples =
            Rc::new(RefCell::new(Vec::with_capacity(n * secs.as_millis() as usize + 1024)));
        let t0 = tokio::time::Instant::now() + Duration::from_millis(10);
        let end = t0 + secs;
        let local = tokio::task::LocalSet::new();
        for i in 0..n {
            let s = samples.clone();
            let start = t0 + period * i as u32 / n as u32;
            local.spawn_local(async move {
                let mut iv = tokio::time::interval_at(start, period);
                loop {
                    let scheduled = iv.tick().await;
                    let now = tokio::time::Instant::now();
                    if now > end {
                        break;
                    }
                    s.borrow_mut().push((now - scheduled).as_nanos() as u64);
                }
            });
        }
        local.await;
        Stats { samples: Rc::try_unwrap(samples).map(|c| c.into_inner()).unwrap_or_default() }
    })
}

pub fn sleep_run(n: usize, period: Duration, secs: Duration) -> Stats {
    let t0 = Instant::now() + Duration::from_millis(50);
    let end = t0 + secs;
    let threads: Vec<_> = (0..n)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut out = Vec::with_capacity(secs.as_millis() as usize + 16);
                    let mut next = t0 + period * i as u32 / n as u32;
                    loop {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        let woke = Instant::now();
                        if woke > end {
                            return out;
                        }
                        out.push((woke - next).as_nanos() as u64);
                        next += period;
                    }
                })
                .unwrap()
        })
        .collect();
    let mut samples = Vec::new();
    for t in threads {
        samples.extend(t.join().unwrap());
    }
    Stats { samples }
}
