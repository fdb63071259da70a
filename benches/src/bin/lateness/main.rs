//! Lateness of periodic timers under load: how long after its deadline each
//! expiry is seen by user code, and how much CPU each expiry costs, side by
//! side in one run, for:
//!
//! - the reactor in both modes, tokio's `interval` (current-thread runtime)
//!   and one thread per timer in a `thread::sleep` loop, in this process;
//! - two plain C loops doing the same kernel work as each reactor mode
//!   (`scripts/lateness-floor.c`): "C loop", a timerfd per timer, and "C one
//!   timerfd", one timerfd re-armed at the earliest deadline;
//! - the C event loops a user would pick instead, one file each in
//!   `benches/c/`: "sd-event 1µs" and "sd-event 1ms" (systemd's sd-event at
//!   those accuracies), "libev", "libuv", "io_uring" (an absolute
//!   `IORING_OP_TIMEOUT` per timer) and "epoll_pwait2" (no timerfd: a
//!   nanosecond timeout until the earliest deadline).
//!
//! The C programs are compiled with the system `gcc` (`-O2`) at run time,
//! next to this binary. One whose library is missing is skipped, with a line
//! naming the apt package that provides it (`libsystemd-dev`, `libev-dev`,
//! `libuv1-dev`, `liburing-dev`).
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --loads 10x1ms,20x1ms,100x10ms --secs 2 --rounds 5
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --loads 10x1ms,20x1ms,100x10ms --secs 2 --rounds 5 --leeway 1ms
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --loads 10x1ms --secs 1 --rounds 1 --contenders "C,reactor,sd-event 1ms,libev"
//! cargo run --release --manifest-path benches/Cargo.toml --bin lateness -- \
//!     --sweep 5,10,20,30,50,75,100,150,200,300,500 --secs 1 --tsv sweep.tsv
//! ```
//!
//! `--loads`: each load is `N x PERIOD`, N timers with phases spread evenly
//! over the period (independent timers, the worst case for wake-ups). Every
//! contender runs each load `--rounds` times, the contenders taking turns in
//! an order that rotates from round to round; the table gives medians over
//! the rounds of p50, p99 and p99.9 lateness (µs) and of CPU per expiry
//! (ns), and each contender's p99 as a ratio to each C loop's in the same
//! round (median over the rounds).
//!
//! `--sweep`: N timers at 1 ms for each N given (N thousand expiries a
//! second), each contender `--rounds` times per N (default 1) in rotating
//! order, the median p99 kept; prints p99 against
//! the expiry rate, and each contender's saturation point two ways: the
//! highest rate up to which every rate measured kept its p99 at or under
//! 100 µs, and simply the highest rate measured with p99 at or under 100 µs,
//! each also as a ratio to the C loop doing the same kind of kernel work: a
//! kernel timer per timer ("C loop": the reactor's dedicated mode, io_uring,
//! tokio, `thread::sleep`) or the deadlines in user space and one wake-up at
//! the earliest ("C one timerfd": shared mode, sd-event, libev, libuv,
//! epoll_pwait2). `--tsv` writes the curve for `scripts/plot-lateness.sh`.
//!
//! A load is `NxPERIOD`, the period in any unit (`100x10ms`, `100x10000019ns`:
//! a prime number of nanoseconds, which no grid step divides).
//!
//! `--leeway DURATION` (`1ms`, `500us`; default 0): every reactor timer gets
//! [`Timer::set_leeway`](reactor::Timer::set_leeway) right after it is added
//! (without the option it is never called), and the reactor contenders are
//! named for it ("reactor dedicated, leeway 1ms"). Lateness is still measured
//! against the exact deadlines, so a leeway shows up as lateness (up to the
//! leeway) traded for fewer wake-ups, that is less CPU per expiry: compare
//! with "sd-event 1ms", libev and libuv, which do the same.
//!
//! `--contenders a,b,c`: run only the contenders whose names (as printed)
//! start with one of these, case ignored and `u` standing for `µ` ("C"
//! selects both C loops, "reactor" both modes). A ratio to a C loop that
//! is not run shows "–".
//!
//! Deadlines are known exactly (absolute first expiry, fixed period), so
//! lateness = now - deadline of the latest expiry delivered; missed ticks
//! count as late by their own deadlines (`benches/c/lateness.h` says how a
//! C loop's callback is matched to its deadline). CPU per expiry is
//! `getrusage(RUSAGE_SELF)` user + system time over the run, setup
//! included, divided by the expiries delivered: measured here around each
//! in-process run (every thread, the finished ones too), and by each C
//! program around its own.

mod c;
mod runs;

use std::path::PathBuf;
use std::time::Duration;

use benches::median;
use c::{CSource, EPOLL_PWAIT2, FLOOR, IO_URING, LIBEV, LIBUV, SD_EVENT, build};
use reactor::TimerMode;
use runs::{Q, in_process, reactor_run, sleep_run, tokio_run};

/// What a contender runs.
#[derive(Clone, Copy)]
enum Kind {
    /// A C program, with its optional fourth argument.
    C(CSource, Option<&'static str>),
    Reactor(TimerMode),
    Tokio,
    Sleep,
}

/// The two C loops every p99 is compared with.
const C_LOOP: &str = "C loop";
const C_ONE: &str = "C one timerfd";

struct Contender {
    name: String,
    kind: Kind,
    /// The C loop doing the same kind of kernel work: [`C_LOOP`] (a kernel
    /// timer per timer) or [`C_ONE`] (one wake-up at the earliest deadline).
    floor: &'static str,
    /// A C contender's binary, once built.
    bin: Option<PathBuf>,
}

/// Every contender, in the order they are listed.
fn contenders(leeway: Duration) -> Vec<Contender> {
    let lw = if leeway.is_zero() { String::new() } else { format!(", leeway {leeway:?}") };
    let new = |name: &str, kind, floor| Contender { name: name.into(), kind, floor, bin: None };
    vec![
        new(C_LOOP, Kind::C(FLOOR, None), C_LOOP),
        new(C_ONE, Kind::C(FLOOR, Some("one")), C_ONE),
        new(&format!("reactor dedicated{lw}"), Kind::Reactor(TimerMode::Dedicated), C_LOOP),
        new(&format!("reactor shared{lw}"), Kind::Reactor(TimerMode::Shared), C_ONE),
        new("tokio interval", Kind::Tokio, C_LOOP),
        new("thread::sleep", Kind::Sleep, C_LOOP),
        new("sd-event 1µs", Kind::C(SD_EVENT, Some("1")), C_ONE),
        new("sd-event 1ms", Kind::C(SD_EVENT, Some("1000")), C_ONE),
        new("libev", Kind::C(LIBEV, None), C_ONE),
        new("libuv", Kind::C(LIBUV, None), C_ONE),
        new("io_uring", Kind::C(IO_URING, None), C_LOOP),
        new("epoll_pwait2", Kind::C(EPOLL_PWAIT2, None), C_ONE),
    ]
}

/// A name as `--contenders` matches it: case ignored, `u` for `µ`.
fn fold(name: &str) -> String {
    name.to_lowercase().replace('µ', "u")
}

/// The contenders whose names start with one of `wanted` (all of them for
/// none); exits on a name that matches nothing.
fn select(all: Vec<Contender>, wanted: &[String]) -> Vec<Contender> {
    if wanted.is_empty() {
        return all;
    }
    let matches = |c: &Contender, w: &String| fold(&c.name).starts_with(&fold(w));
    if let Some(w) = wanted.iter().find(|w| !all.iter().any(|c| matches(c, w))) {
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        eprintln!("lateness: no contender is named {w:?}; they are: {}", names.join(", "));
        std::process::exit(2);
    }
    all.into_iter().filter(|c| wanted.iter().any(|w| matches(c, w))).collect()
}

/// Build the C programs the contenders need, each once. A contender whose
/// library is missing is dropped, with one line naming the apt package;
/// any other build failure ends the run.
fn build_all(mut cs: Vec<Contender>) -> Vec<Contender> {
    let mut sources: Vec<CSource> = Vec::new();
    for c in &cs {
        if let Kind::C(src, _) = c.kind
            && !sources.contains(&src)
        {
            sources.push(src);
        }
    }
    for src in sources {
        let users = |c: &Contender| matches!(c.kind, Kind::C(s, _) if s == src);
        match (build(src), src.lib) {
            (Ok(bin), _) => {
                cs.iter_mut().filter(|c| users(c)).for_each(|c| c.bin = Some(bin.clone()))
            }
            // gcc: "fatal error: ev.h: No such file or directory", or ld:
            // "cannot find -lev".
            (Err(e), Some((lib, package)))
                if e.contains(".h: No such file")
                    || e.contains(&format!("cannot find -l{lib}")) =>
            {
                let names: Vec<&str> =
                    cs.iter().filter(|c| users(c)).map(|c| c.name.as_str()).collect();
                println!(
                    "lateness: skipping {}: {} needs lib{lib}, from the apt package {package}",
                    names.join(", "),
                    src.path
                );
                cs.retain(|c| !users(c));
            }
            (Err(e), _) => {
                eprintln!("lateness: building {}: {e}", src.path);
                std::process::exit(1);
            }
        }
    }
    cs
}

fn run(c: &Contender, n: usize, period: Duration, secs: Duration, leeway: Duration) -> Q {
    match c.kind {
        Kind::C(_, extra) => {
            let bin = c.bin.as_ref().expect("C programs are built before the runs");
            c::run(&c.name, bin, extra, n, period, secs)
        }
        Kind::Reactor(mode) => in_process(|| reactor_run(mode, n, period, secs, leeway)),
        Kind::Tokio => in_process(|| tokio_run(n, period, secs)),
        Kind::Sleep => in_process(|| sleep_run(n, period, secs)),
    }
}

/// Why contender `c` cannot run timers of `period`, if it cannot.
fn cannot_run(c: &Contender, period: Duration) -> Option<&'static str> {
    let whole_ms = period.as_nanos().is_multiple_of(1_000_000);
    (matches!(c.kind, Kind::C(src, _) if src.path == LIBUV.path) && !whole_ms)
        .then_some("libuv's timers count whole milliseconds")
}

/// `N x PERIOD`, as in `100x10ms` or `20x1ms`.
fn parse_load(s: &str) -> Option<(usize, Duration)> {
    let (n, p) = s.split_once('x')?;
    let period = parse_duration(p).filter(|p| !p.is_zero())?;
    Some((n.parse().ok()?, period))
}

/// A duration as in `1ms`, `500us`, `500µs`, `2.5ms`, `100ns`, `1s`, or `0`.
fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let units = [("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)];
    let (value, unit) = units.iter().find_map(|(u, f)| Some((s.strip_suffix(u)?, f)))?;
    let ns = value.parse::<f64>().ok()? * unit;
    (ns.is_finite() && ns >= 0.0).then(|| Duration::from_nanos(ns.round() as u64))
}

fn usage() -> ! {
    let names: Vec<String> = contenders(Duration::ZERO).into_iter().map(|c| c.name).collect();
    eprintln!(
        "usage: lateness [--loads 10x1ms,20x1ms,100x10ms] [--rounds 3] [--secs 2] [--leeway 1ms] \
         [--contenders NAME,...]\n   \
         | lateness --sweep 5,10,20,50 [--secs 1] [--rounds 1] [--tsv FILE] [--leeway 1ms] \
         [--contenders NAME,...]\n\
         contenders (a prefix selects every one whose name starts with it): {}",
        names.join(", ")
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
    let mut leeway = Duration::ZERO;
    let mut wanted: Vec<String> = Vec::new();
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
            "--leeway" => leeway = parse_duration(&value()).unwrap_or_else(|| usage()),
            "--contenders" => {
                wanted = value().split(',').map(|w| w.trim().to_string()).collect();
                wanted.retain(|w| !w.is_empty());
            }
            _ => usage(),
        }
    }
    let cs = build_all(select(contenders(leeway), &wanted));
    let k = cs.len();
    if k == 0 {
        eprintln!("lateness: no contender left to run");
        std::process::exit(1);
    }
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    // Where each C loop is in `cs`, if it runs.
    let index_of = |name: &str| cs.iter().position(|c| c.name == name);
    let (c_loop, c_one) = (index_of(C_LOOP), index_of(C_ONE));
    if rounds == 0 {
        rounds = if sweep.is_some() { 1 } else { 3 };
    }
    if let Some(ns) = sweep {
        let period = Duration::from_millis(1);
        println!(
            "p99 lateness (µs) against the expiry rate: N timers at 1 ms, {secs:?} per run, \
             median of {rounds} run(s) per point\n"
        );
        println!("| expiries/s | {} |", names.join(" | "));
        println!("|---:|{}", "---:|".repeat(k));
        let mut curve = Vec::new();
        for (i, &n) in ns.iter().enumerate() {
            let mut runs = vec![Vec::new(); k];
            for round in 0..rounds {
                for j in 0..k {
                    let which = (j + i + round) % k;
                    runs[which].push(run(&cs[which], n, period, secs, leeway).p99);
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
        // Each against the C loop doing its kind of kernel work, if it ran.
        let ratio = |v: &[usize], c: usize| match index_of(cs[c].floor) {
            Some(f) if v[f] != 0 => format!("{:.2}×", v[c] as f64 / v[f] as f64),
            _ => "–".to_string(),
        };
        for c in 0..k {
            println!(
                "| {} | {} | {} | {} | {} |",
                names[c],
                sat[c],
                ratio(&sat, c),
                highest[c],
                ratio(&highest, c)
            );
        }
        if let Some(path) = tsv {
            let mut out = format!("rate\t{}\n", names.join("\t"));
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
         {rounds} rounds; CPU (ns) per expiry; medians over the rounds\n"
    );
    println!(
        "| load | contender | samples | p50 | p99 | p99 range | p99.9 | max | CPU ns/expiry | p99 / C loop | p99 / C one timerfd |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &(n, period) in &loads {
        let mut q = vec![Vec::new(); k];
        for round in 0..rounds {
            for j in 0..k {
                let which = (j + round) % k;
                if cannot_run(&cs[which], period).is_none() {
                    q[which].push(run(&cs[which], n, period, secs, leeway));
                }
            }
        }
        for c in 0..k {
            if let Some(why) = cannot_run(&cs[c], period) {
                println!("| {n} × {period:?} | {} | skipped: {why} | | | | | | | | |", names[c]);
                continue;
            }
            let col = |f: fn(&Q) -> f64| q[c].iter().map(f).collect::<Vec<f64>>();
            let mut p99 = col(|x| x.p99);
            let med99 = median(&mut p99);
            let ratio = |f: Option<usize>| match f {
                Some(f) => format!(
                    "{:.2}×",
                    median(&mut (0..rounds).map(|r| q[c][r].p99 / q[f][r].p99).collect::<Vec<_>>())
                ),
                None => "–".to_string(),
            };
            println!(
                "| {n} × {:?} | {} | {:.0} | {:.1} | {med99:.1} | {:.1}–{:.1} | {:.1} | {:.1} | {:.0} | {} | {} |",
                period,
                names[c],
                median(&mut col(|x| x.samples as f64)),
                median(&mut col(|x| x.p50)),
                p99[0],
                p99[p99.len() - 1],
                median(&mut col(|x| x.p999)),
                col(|x| x.max).into_iter().fold(0.0, f64::max),
                median(&mut col(|x| x.cpu)),
                ratio(c_loop),
                ratio(c_one),
            );
        }
    }
}
