//! Lateness of periodic timers under load: how long after its deadline each
//! expiry is seen by user code, for the reactor in both modes, tokio's
//! `interval`, a `thread::sleep` loop and two plain C loops doing the same
//! kernel work as each reactor mode (`scripts/lateness-floor.c`, compiled
//! with the system `gcc` at run time): a timerfd per timer, and one timerfd
//! re-armed at the earliest deadline. Side by side in one run.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --loads 10x1ms,20x1ms,100x10ms --secs 2 --rounds 5
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --sweep 5,10,20,30,50,75,100,150,200,300,500 --secs 1 --tsv sweep.tsv
//! ```
//!
//! `--loads`: each load is `N x PERIOD`, N timers with phases spread evenly
//! over the period (independent timers, the worst case for wake-ups). Every
//! contender runs each load `--rounds` times, the contenders taking turns in
//! an order that rotates from round to round; the table gives medians over
//! the rounds, and each contender's p99 as a ratio to each C loop's in the
//! same round (median over the rounds).
//!
//! `--sweep`: N timers at 1 ms for each N given (N thousand expiries a
//! second), each contender `--rounds` times per N (default 1) in rotating
//! order, the median p99 kept; prints p99 against
//! the expiry rate, and each contender's saturation point two ways: the
//! highest rate up to which every rate measured kept its p99 at or under
//! 100 µs, and simply the highest rate measured with p99 at or under 100 µs. `--tsv` writes the curve for
//! `scripts/plot-lateness.sh`.
//!
//! Deadlines are known exactly (absolute first expiry, fixed period), so
//! lateness = now - deadline of the latest expiry delivered; missed ticks
//! count as late by their own deadlines.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use benches::median;
use reactor::{Clock, ClockTime, Expiration, Reactor, TimerMode};

struct Stats {
    samples: Vec<u64>,
}

/// One run's lateness distribution, in µs.
#[derive(Clone, Copy, Default)]
struct Q {
    samples: usize,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Stats {
    fn quantiles(mut self) -> Q {
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
        Q { samples: n, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1.0) }
    }
}

/// Compile `scripts/lateness-floor.c` next to this binary with the system `gcc`.
fn build_floor() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?;
    let root = here.ancestors().nth(3).ok_or("no repository root")?;
    let bin = here.join("lateness-floor");
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(root.join("scripts/lateness-floor.c"))
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if status.success() { Ok(bin) } else { Err(format!("gcc: {status}")) }
}

/// The C loop, as a child process: it prints `samples p50 p99 p99.9 max` in ns.
/// `one`: shared mode's kernel work (one timerfd re-armed at the earliest
/// deadline) instead of a timerfd per timer.
fn c_run(bin: &PathBuf, n: usize, period: Duration, secs: Duration, one: bool) -> Q {
    let mut args =
        vec![n.to_string(), period.as_nanos().to_string(), secs.as_secs_f64().to_string()];
    if one {
        args.push("one".into());
    }
    let out = Command::new(bin).args(args).output().expect("run lateness-floor");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert_eq!(f.len(), 5, "lateness-floor printed {text:?}");
    Q {
        samples: f[0] as usize,
        p50: f[1] / 1e3,
        p99: f[2] / 1e3,
        p999: f[3] / 1e3,
        max: f[4] / 1e3,
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

/// "C loop" does dedicated mode's kernel work (a timerfd per timer), "C one
/// timerfd" shared mode's (one timerfd re-armed at the earliest deadline).
const CONTENDERS: [&str; 6] = [
    "C loop",
    "C one timerfd",
    "reactor dedicated",
    "reactor shared",
    "tokio interval",
    "thread::sleep",
];

/// The index in [`CONTENDERS`] of the C loop doing the same kernel work as `c`.
fn floor_of(c: usize) -> usize {
    if CONTENDERS[c] == "reactor shared" || CONTENDERS[c] == "C one timerfd" { 1 } else { 0 }
}

fn run(which: usize, c_bin: &PathBuf, n: usize, period: Duration, secs: Duration) -> Q {
    match which {
        0 => c_run(c_bin, n, period, secs, false),
        1 => c_run(c_bin, n, period, secs, true),
        2 => reactor_run(TimerMode::Dedicated, n, period, secs).quantiles(),
        3 => reactor_run(TimerMode::Shared, n, period, secs).quantiles(),
        4 => tokio_run(n, period, secs).quantiles(),
        _ => sleep_run(n, period, secs).quantiles(),
    }
}

/// `N x PERIOD`, as in `100x10ms` or `20x1ms`.
fn parse_load(s: &str) -> Option<(usize, Duration)> {
    let (n, p) = s.split_once('x')?;
    let ms: u64 = p.strip_suffix("ms")?.parse().ok()?;
    Some((n.parse().ok()?, Duration::from_millis(ms)))
}

fn usage() -> ! {
    eprintln!(
        "usage: lateness [--loads 10x1ms,20x1ms,100x10ms] [--rounds 3] [--secs 2] \
         | lateness --sweep 5,10,20,50 [--secs 1] [--rounds 1] [--tsv FILE]"
    );
    std::process::exit(2);
}

fn main() {
    let mut secs = Duration::from_secs(2);
    let mut loads = vec![
        (10usize, Duration::from_millis(1)),
        (20, Duration::from_millis(1)),
        (100, Duration::from_millis(10)),
    ];
    let mut rounds = 0usize; // 0: the mode's default (3 for --loads, 1 for --sweep)
    let mut sweep: Option<Vec<usize>> = None;
    let mut tsv: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--secs" => secs = Duration::from_secs_f64(value().parse().unwrap_or_else(|_| usage())),
            "--loads" => {
                loads =
                    value().split(',').map(|l| parse_load(l).unwrap_or_else(|| usage())).collect()
            }
            "--rounds" => rounds = value().parse::<usize>().unwrap_or_else(|_| usage()).max(1),
            "--sweep" => {
                sweep = Some(
                    value().split(',').map(|x| x.parse().unwrap_or_else(|_| usage())).collect(),
                )
            }
            "--tsv" => tsv = Some(PathBuf::from(value())),
            _ => usage(),
        }
    }
    let c_bin = build_floor().unwrap_or_else(|e| {
        eprintln!("lateness: building scripts/lateness-floor.c: {e}");
        std::process::exit(1);
    });
    let k = CONTENDERS.len();
    if rounds == 0 {
        rounds = if sweep.is_some() { 1 } else { 3 };
    }
    if let Some(ns) = sweep {
        let period = Duration::from_millis(1);
        println!(
            "p99 lateness (µs) against the expiry rate: N timers at 1 ms, {secs:?} per run, \
             median of {rounds} run(s) per point\n"
        );
        println!("| expiries/s | {} |", CONTENDERS.join(" | "));
        println!("|---:|{}", "---:|".repeat(k));
        let mut curve = Vec::new();
        for (i, &n) in ns.iter().enumerate() {
            let mut runs = vec![Vec::new(); k];
            for round in 0..rounds {
                for j in 0..k {
                    let which = (j + i + round) % k;
                    runs[which].push(run(which, &c_bin, n, period, secs).p99);
                }
            }
            let p99: Vec<f64> = runs.iter_mut().map(|v| median(v)).collect();
            let cells: Vec<String> = p99.iter().map(|v| format!("{v:.1}")).collect();
            println!("| {} | {} |", n * 1000, cells.join(" | "));
            curve.push((n * 1000, p99));
        }
        println!(
            "\nSaturation: the highest rate up to which every rate measured had p99 ≤ 100 µs\n"
        );
        println!(
            "| contender | every rate up to it ≤ 100 µs | / its C loop | highest rate with p99 ≤ 100 µs | / its C loop |"
        );
        println!("|---|---:|---:|---:|---:|");
        // The highest rate up to which every measured rate kept p99 ≤ 100 µs:
        // one lucky point past a failure does not count.
        let sat: Vec<usize> = (0..k)
            .map(|c| {
                let mut pts: Vec<&(usize, Vec<f64>)> = curve.iter().collect();
                pts.sort_by_key(|(r, _)| *r);
                pts.iter().take_while(|(_, p)| p[c] <= 100.0).map(|(r, _)| *r).last().unwrap_or(0)
            })
            .collect();
        // The issue's definition, read literally: the highest rate measured
        // with p99 ≤ 100 µs, whatever happened below it.
        let highest: Vec<usize> = (0..k)
            .map(|c| {
                curve.iter().filter(|(_, p)| p[c] <= 100.0).map(|(r, _)| *r).max().unwrap_or(0)
            })
            .collect();
        // Each against the C loop doing its kernel work.
        let ratio = |v: &[usize], c: usize| {
            let f = floor_of(c);
            if v[f] == 0 { f64::NAN } else { v[c] as f64 / v[f] as f64 }
        };
        for c in 0..k {
            println!(
                "| {} | {} | {:.2}× | {} | {:.2}× |",
                CONTENDERS[c],
                sat[c],
                ratio(&sat, c),
                highest[c],
                ratio(&highest, c)
            );
        }
        if let Some(path) = tsv {
            let mut out = format!("rate\t{}\n", CONTENDERS.join("\t"));
            for (rate, p) in &curve {
                let cells: Vec<String> = p.iter().map(|v| format!("{v:.1}")).collect();
                out += &format!("{rate}\t{}\n", cells.join("\t"));
            }
            std::fs::write(&path, out).expect("write --tsv");
        }
        return;
    }
    println!(
        "lateness (µs) of periodic timers, phases spread over the period, {secs:?} per run, \
         {rounds} rounds; medians over the rounds\n"
    );
    println!(
        "| load | contender | samples | p50 | p99 | p99 range | p99.9 | max | p99 / C loop | p99 / C one timerfd |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &(n, period) in &loads {
        let mut q = vec![Vec::new(); k];
        for round in 0..rounds {
            for j in 0..k {
                let which = (j + round) % k;
                q[which].push(run(which, &c_bin, n, period, secs));
            }
        }
        for c in 0..k {
            let col = |f: fn(&Q) -> f64| q[c].iter().map(f).collect::<Vec<f64>>();
            let mut p99 = col(|x| x.p99);
            let med99 = median(&mut p99);
            let ratio = |f: usize| -> f64 {
                median(&mut (0..rounds).map(|r| q[c][r].p99 / q[f][r].p99).collect::<Vec<f64>>())
            };
            let (to_c, to_one) = (ratio(0), ratio(1));
            println!(
                "| {n} × {}ms | {} | {:.0} | {:.1} | {med99:.1} | {:.1}–{:.1} | {:.1} | {:.1} | {to_c:.2}× | {to_one:.2}× |",
                period.as_millis(),
                CONTENDERS[c],
                median(&mut col(|x| x.samples as f64)),
                median(&mut col(|x| x.p50)),
                p99[0],
                p99[p99.len() - 1],
                median(&mut col(|x| x.p999)),
                col(|x| x.max).into_iter().fold(0.0, f64::max),
            );
        }
    }
}
