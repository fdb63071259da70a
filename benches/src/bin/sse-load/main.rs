//! Load an SSE server with K concurrent streams and report what each
//! heartbeat and each stream cost it: the demo server in both timer modes,
//! and the axum peer, side by side in one run.
//!
//! ```text
//! cargo build --release -p demo-server                      # at the repository root
//! cargo run --release --manifest-path benches/Cargo.toml --bin sse-load -- --streams 1000,5000
//! ```
//!
//! For each server and each K it starts the server, opens K streams on
//! `/stream/fixed` from one reactor thread, lets them settle, then measures
//! for `--secs` seconds:
//!
//! * heartbeats received: lines that start with `id: ` (one per heartbeat,
//!   whatever the framing: axum's responses are chunked, the demo server's are not);
//! * the server's CPU time, from `/proc/PID/task/*/schedstat` (nanoseconds);
//! * the server's RSS growth per stream, from `/proc/PID/status`.
//!
//! # The C floor
//!
//! `c-dedicated` and `c-shared` are `scripts/sse-floor.c`, compiled here with
//! the system `gcc` at run time: the same kernel work as the demo server in
//! that timer mode (timerfds, `epoll_wait`, `read`, one 70-byte send per
//! heartbeat) and nothing else. With `--rounds R` every server runs R
//! times, the servers taking turns within each round (their order rotates
//! from round to round), and the summary gives each demo mode's CPU per
//! heartbeat as a ratio to its floor from the same round: the median and
//! the range over the rounds.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin sse-load -- \
//!     --streams 2000 --secs 5 --rounds 5 \
//!     --servers c-dedicated,demo-dedicated,c-shared,demo-shared
//! ```
//!
//! `--tsv FILE` writes K, server, and the medians of CPU per heartbeat and
//! RSS per stream, for `scripts/plot-scaling.sh`.
//!
//! `--scrape-every 15s` scrapes the demo servers' `/metrics` that often
//! during the measured window (the first scrape at its start), as
//! Prometheus does, so the figures include what metrics cost:
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin sse-load -- \
//!     --streams 2000 --secs 15 --rounds 3 --scrape-every 15s \
//!     --servers c-dedicated,demo-dedicated,c-shared,demo-shared
//! ```
//!
//! `--strace` instead attaches `strace -c -f` to each server over the
//! measured window and prints system calls per heartbeat (strace slows the
//! server down, so that run's CPU figures mean nothing). `--perf` attaches
//! `perf record` (cpu-clock samples) instead and prints where each server's
//! samples fall: the kernel, the server's own code, libc, by thread.

mod measure;
mod servers;

use std::path::PathBuf;
use std::time::Duration;

use benches::median;
use measure::{Profiler, measure};
use servers::{build_floor, spawn_server};

struct Args {
    streams: Vec<usize>,
    secs: u64,
    interval: String,
    servers: Vec<String>,
    rounds: usize,
    strace: bool,
    perf: bool,
    tsv: Option<PathBuf>,
    scrape_every: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        streams: vec![1000, 5000],
        secs: 10,
        interval: "100ms".into(),
        servers: vec!["demo-dedicated".into(), "demo-shared".into(), "axum".into()],
        rounds: 1,
        strace: false,
        perf: false,
        tsv: None,
        scrape_every: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => {
                a.streams = value()?
                    .split(',')
                    .map(|v| v.parse().map_err(|e| format!("--streams: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--secs" => a.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--interval" => a.interval = value()?,
            "--servers" => a.servers = value()?.split(',').map(String::from).collect(),
            "--rounds" => {
                a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
                a.rounds = a.rounds.max(1);
            }
            "--strace" => a.strace = true,
            "--perf" => a.perf = true,
            "--tsv" => a.tsv = Some(PathBuf::from(value()?)),
            "--scrape-every" => {
                let v = value()?;
                let ms = parse_ms(&v).ok_or(format!("--scrape-every {v}: not NNms or Ns"))?;
                a.scrape_every = Some(Duration::from_millis(ms.max(1)));
            }
            _ => {
                return Err("usage: sse-load [--streams 1000,5000] [--secs 10] [--interval 100ms] [--rounds 1] [--strace | --perf] [--tsv FILE] [--scrape-every 15s] [--servers demo-dedicated,demo-shared,axum,c-dedicated,c-shared]".into());
            }
        }
    }
    Ok(a)
}

fn parse_ms(s: &str) -> Option<u64> {
    match s.strip_suffix("ms") {
        Some(v) => v.parse().ok(),
        None => s.strip_suffix('s')?.parse::<u64>().ok()?.checked_mul(1000),
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if a.servers.iter().any(|s| s.starts_with("c-"))
        && let Err(e) = build_floor()
    {
        eprintln!("sse-load: building scripts/sse-floor.c: {e}");
        std::process::exit(1);
    }
    println!(
        "SSE load: K streams on /stream/fixed, heartbeat every {}, {} s measured per run, {} round(s)\n",
        a.interval, a.secs, a.rounds
    );
    println!(
        "| round | server | K | opened | heartbeats/s | server CPU | CPU per heartbeat (µs) | busiest thread (µs) | RSS per stream (KiB) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    // cpu[k][server][round]: CPU per heartbeat in µs, all threads; busy: the busiest thread.
    let mut cpu = vec![vec![vec![f64::NAN; a.rounds]; a.servers.len()]; a.streams.len()];
    let mut busy = cpu.clone();
    let mut rss = vec![vec![Vec::new(); a.servers.len()]; a.streams.len()];
    let mut syscalls = Vec::new();
    for (ki, &k) in a.streams.iter().enumerate() {
        for round in 0..a.rounds {
            for j in 0..a.servers.len() {
                // Rotate the order each round, so no server always runs first.
                let si = (j + round) % a.servers.len();
                let name = &a.servers[si];
                let (child, addr, pid) = match spawn_server(name, &a.interval) {
                    Ok(x) => x,
                    Err(e) => {
                        eprintln!("sse-load: {name}: {e}");
                        std::process::exit(1);
                    }
                };
                let profiler = if a.strace {
                    Some(Profiler::Strace)
                } else if a.perf {
                    Some(Profiler::Perf)
                } else {
                    None
                };
                let scrape = a.scrape_every.filter(|_| name.starts_with("demo"));
                let r = measure(addr, pid, k, a.secs, profiler, scrape);
                println!(
                    "| {} | {name} | {k} | {} | {:.0} | {:.1}% | {:.2} | {:.2} | {:.2} |",
                    round + 1,
                    r.opened,
                    r.per_sec,
                    r.cpu_percent,
                    r.cpu_per_beat_us,
                    r.busiest_per_beat_us,
                    r.rss_per_stream_kib
                );
                cpu[ki][si][round] = r.cpu_per_beat_us;
                busy[ki][si][round] = r.busiest_per_beat_us;
                rss[ki][si].push(r.rss_per_stream_kib);
                if a.strace || a.perf {
                    syscalls.push((name.clone(), k, r.syscalls));
                }
                drop(child); // killed and reaped
            }
        }
    }
    if let Some(path) = &a.tsv {
        let mut out = String::from("streams\tserver\tcpu_per_beat_us\trss_per_stream_kib\n");
        for (ki, &k) in a.streams.iter().enumerate() {
            for (si, name) in a.servers.iter().enumerate() {
                let c = median(&mut cpu[ki][si].clone());
                let r = median(&mut rss[ki][si].clone());
                out += &format!("{k}\t{name}\t{c:.2}\t{r:.2}\n");
            }
        }
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("sse-load: {}: {e}", path.display());
        }
    }
    if a.perf {
        println!("\nWhere the samples fall (perf record -e cpu-clock over the measured window)\n");
        for (name, k, shares) in &syscalls {
            let list: Vec<String> = shares.iter().map(|(w, p)| format!("{w} {p:.1}%")).collect();
            println!("- {name}, K = {k}: {}", list.join(", "));
        }
        return;
    }
    if a.strace {
        println!("\nSystem calls per heartbeat (strace -c -f over the measured window)\n");
        for (name, k, calls) in &syscalls {
            let total: f64 = calls.iter().map(|c| c.1).sum();
            let list: Vec<String> = calls
                .iter()
                .filter(|c| c.1 >= 0.0005)
                .map(|(n, c)| format!("{n} {c:.3}"))
                .collect();
            println!("- {name}, K = {k}: {total:.3} in all: {}", list.join(", "));
        }
        return;
    }
    if a.rounds < 2 {
        return;
    }
    println!(
        "\nMedians over {} rounds. Ratios are to the C floor in the same timer mode and the same round; \
         \"busiest thread\" leaves out the demo server's other threads (the fd-census thread)\n",
        a.rounds
    );
    println!(
        "| server | K | CPU per heartbeat (µs) | range | busiest thread (µs) | RSS per stream (KiB) | / C floor | range | busiest thread / C floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (ki, &k) in a.streams.iter().enumerate() {
        for (si, name) in a.servers.iter().enumerate() {
            let mut v = cpu[ki][si].clone();
            let med = median(&mut v);
            let (lo, hi) = (v[0], v[v.len() - 1]);
            let busy_med = median(&mut busy[ki][si].clone());
            let rss_med = median(&mut rss[ki][si].clone());
            let floor = name
                .strip_prefix("demo-")
                .and_then(|mode| a.servers.iter().position(|s| *s == format!("c-{mode}")));
            let ratio = match floor {
                Some(fi) => {
                    let ratios = |of: &[Vec<Vec<f64>>]| -> Vec<f64> {
                        let mut r: Vec<f64> =
                            (0..a.rounds).map(|i| of[ki][si][i] / cpu[ki][fi][i]).collect();
                        median(&mut r);
                        r
                    };
                    let (mut r, mut b) = (ratios(&cpu), ratios(&busy));
                    format!(
                        "{:.2}× | {:.2}–{:.2}× | {:.2}×",
                        median(&mut r),
                        r[0],
                        r[r.len() - 1],
                        median(&mut b)
                    )
                }
                None => "– | – | –".to_string(),
            };
            println!(
                "| {name} | {k} | {med:.2} | {lo:.2}–{hi:.2} | {busy_med:.2} | {rss_med:.2} | {ratio} |"
            );
        }
    }
}
