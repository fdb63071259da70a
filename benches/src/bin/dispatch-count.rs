//! Dispatch per ready timer event, measured two ways that hold up on a noisy
//! machine: interleaved timing (raw epoll, reactor and mio take turns) and,
//! under callgrind, user-space instructions per event.
//!
//!   dispatch-count time                 # interleaved medians, ns per event
//!   dispatch-count count IMPL N ITERS   # for callgrind: IMPL = raw | reactor | mio

use std::time::Duration;

use benches::dispatch::{mio_timers, ours, raw_epoll};

fn run(imp: &str, n: usize, iters: u64) -> Duration {
    match imp {
        "raw" => raw_epoll(n, iters),
        "reactor" => ours(n, iters),
        _ => mio_timers(n, iters),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("count") if args.len() == 5 => {
            let n: usize = args[3].parse().unwrap();
            let iters: u64 = args[4].parse().unwrap();
            run(&args[2], n, iters);
        }
        Some("time") => {
            println!(
                "| ready timers per turn | raw epoll (floor) | reactor | mio + timerfd | reactor / floor | reactor / mio |"
            );
            println!("|---:|---:|---:|---:|---:|---:|");
            for n in [1usize, 64, 1024] {
                let iters = (20_000 / n as u64).max(20);
                let mut t: [Vec<f64>; 3] = Default::default();
                for round in 0..25 {
                    for k in 0..3 {
                        let i = (round + k) % 3;
                        let d = run(["raw", "reactor", "mio"][i], n, iters);
                        t[i].push(d.as_nanos() as f64 / (iters as f64 * n as f64));
                    }
                }
                let med = |v: &mut Vec<f64>| {
                    v.sort_by(|a, b| a.total_cmp(b));
                    v[v.len() / 2]
                };
                let (raw, ours, mio) = (med(&mut t[0]), med(&mut t[1]), med(&mut t[2]));
                println!(
                    "| {n} | {raw:.0} | {ours:.0} | {mio:.0} | {:.2} | {:.2} |",
                    ours / raw,
                    ours / mio
                );
            }
        }
        _ => {
            eprintln!("usage: dispatch-count time | dispatch-count count raw|reactor|mio N ITERS");
            std::process::exit(2);
        }
    }
}
