//! Lateness of periodic timers under load: how long after its deadline each
//! expiry is seen by user code.
//!
//!   cargo run --release --manifest-path benches/Cargo.toml --bin lateness [-- --secs 5]
//!
//! Loads: 100 and 1,000 timers at 1 ms, phases spread evenly over the
//! period (independent timers, the worst case for wake-ups), for `--secs`
//! seconds each. Contenders: the reactor in dedicated and in shared mode,
//! `tokio::time::interval` on a current-thread runtime, and one thread per
//! timer in a `thread::sleep` loop. Deadlines are known exactly (absolute
//! first expiry, fixed period), so lateness = now - deadline of the latest
//! expiry delivered; missed ticks count as late by their own deadlines.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{Clock, ClockTime, Expiration, Reactor, TimerMode};

struct Stats {
    samples: Vec<u64>,
}

impl Stats {
    fn report(mut self, name: &str, timers: usize) {
        self.samples.sort_unstable();
        let n = self.samples.len();
        let q = |p: f64| {
            self.samples
                .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let us = |ns: u64| ns as f64 / 1000.0;
        println!(
            "| {timers:>5} | {name:<18} | {n:>9} | {:>9.1} | {:>9.1} | {:>9.1} | {:>9.1} |",
            us(q(0.5)),
            us(q(0.99)),
            us(q(0.999)),
            us(self.samples.last().copied().unwrap_or(0))
        );
    }
}

fn ns(t: ClockTime) -> u64 {
    t.as_nanos().expect("CLOCK_MONOTONIC is past its epoch")
}

fn reactor_run(mode: TimerMode, n: usize, period: Duration, secs: Duration) -> Stats {
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
        timers.push(
            r.add_timer(mode, exp, move |_, k| {
                ticks += k;
                let deadline = first + (ticks - 1) * p;
                let now = ns(Clock::Monotonic.now());
                s.borrow_mut().push(now.saturating_sub(deadline));
            })
            .unwrap(),
        );
    }
    let end = Instant::now() + secs + Duration::from_millis(10);
    while Instant::now() < end {
        r.turn(Some(end.saturating_duration_since(Instant::now()))).unwrap();
    }
    drop(timers);
    Stats { samples: Rc::try_unwrap(samples).map(|c| c.into_inner()).unwrap_or_default() }
}

fn tokio_run(n: usize, period: Duration, secs: Duration) -> Stats {
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

fn sleep_run(n: usize, period: Duration, secs: Duration) -> Stats {
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

fn main() {
    let mut secs = Duration::from_secs(5);
    let mut loads = vec![100usize, 1000];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => {
                secs =
                    Duration::from_secs_f64(args.next().and_then(|v| v.parse().ok()).unwrap_or(5.0))
            }
            "--timers" => {
                loads = args
                    .next()
                    .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or(loads)
            }
            other => {
                eprintln!("usage: lateness [--secs S] [--timers 100,1000]; unknown {other}");
                std::process::exit(2);
            }
        }
    }
    let period = Duration::from_millis(1);
    println!(
        "lateness of periodic 1 ms timers, {secs:?} per run, phases spread over the period (µs)\n"
    );
    println!(
        "| timers | contender          |   samples |       p50 |       p99 |     p99.9 |       max |"
    );
    println!(
        "|-------:|--------------------|----------:|----------:|----------:|----------:|----------:|"
    );
    for n in loads {
        reactor_run(TimerMode::Dedicated, n, period, secs).report("reactor dedicated", n);
        reactor_run(TimerMode::Shared, n, period, secs).report("reactor shared", n);
        tokio_run(n, period, secs).report("tokio interval", n);
        sleep_run(n, period, secs).report("thread::sleep", n);
    }
}
