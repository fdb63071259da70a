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

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use benches::median;
use demo_server::launcher::{Banner, Process};
use reactor::{Interest, Reactor};

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

/// Compile `scripts/sse-floor.c` next to this binary with the system `gcc`.
fn build_floor() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?;
    let root = here.ancestors().nth(3).ok_or("no repository root")?;
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(here.join("sse-floor"))
        .arg(root.join("scripts/sse-floor.c"))
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("gcc: {status}")) }
}

/// The binary and arguments for a server name.
fn server_command(name: &str, interval: &str) -> Result<(PathBuf, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?.to_path_buf(); // benches/target/release
    let root = here.ancestors().nth(3).ok_or("no repository root")?.to_path_buf();
    let demo = root.join("target/release/demo-server");
    let args = |mode: &str| {
        ["--addr", "127.0.0.1:0", "--interval", interval, "--timer-mode", mode]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    match name {
        "demo-dedicated" => Ok((demo, args("dedicated"))),
        "demo-shared" => Ok((demo, args("shared"))),
        "axum" => Ok((here.join("axum-sse"), vec!["--interval".into(), interval.into()])),
        "c-dedicated" | "c-shared" => {
            let ms = parse_ms(interval).ok_or(format!("--interval {interval}: not NNms or Ns"))?;
            let mode = name.trim_start_matches("c-").to_string();
            Ok((here.join("sse-floor"), vec![mode, ms.to_string()]))
        }
        other => Err(format!("unknown server {other}")),
    }
}

/// Start a server and read where it listens: every contender prints the
/// demo server's banner line, read by the demo server's own launcher.
fn spawn_server(name: &str, interval: &str) -> Result<(Process, SocketAddr, u32), String> {
    let (bin, args) = server_command(name, interval)?;
    let mut cmd = Command::new(&bin);
    cmd.args(&args);
    let mut server =
        Process::spawn(cmd).map_err(|e| format!("{e} (build it first: see the file's docs)"))?;
    server.drain_stderr();
    let mut out = BufReader::new(server.child.stdout.take().ok_or("no stdout")?);
    let addr = Banner::read_address(&mut out)?;
    std::thread::spawn(move || out.lines().for_each(drop));
    let pid = server.pid();
    Ok((server, addr, pid))
}

/// Nanoseconds of CPU each of the process's threads has run, by thread id.
fn thread_cpu_ns(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            Some((
                t.file_name().to_string_lossy().into_owned(),
                s.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// CPU spent between two [`thread_cpu_ns`] readings: (all threads, the busiest one).
fn cpu_spent(before: &[(String, u64)], after: &[(String, u64)]) -> (u64, u64) {
    let spent = after.iter().map(|(tid, ns)| {
        ns - before.iter().find(|(t, _)| t == tid).map_or(0, |(_, b)| *b).min(*ns)
    });
    spent.fold((0, 0), |(all, max), ns| (all + ns, max.max(ns)))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

struct Measured {
    /// With `--strace`: (system call, calls per heartbeat), most frequent
    /// first; with `--perf`: (thread and object, % of samples).
    syscalls: Vec<(String, f64)>,
    opened: usize,
    per_sec: f64,
    cpu_per_beat_us: f64,
    /// The same for the thread that ran the most: the reactor (or tokio) thread.
    busiest_per_beat_us: f64,
    cpu_percent: f64,
    rss_per_stream_kib: f64,
}

/// A profiler that `--strace` or `--perf` attaches to the server.
#[derive(Clone, Copy, PartialEq)]
enum Profiler {
    Strace,
    Perf,
}

/// `strace -c -f` (or `perf record`) attached to `pid` until the returned
/// child gets SIGINT.
fn start_strace(pid: u32, out: &std::path::Path, how: Profiler) -> Option<Child> {
    let mut cmd = match how {
        Profiler::Strace => {
            let mut c = Command::new("strace");
            c.args(["-q", "-c", "-f", "-o"]).arg(out).args(["-p", &pid.to_string()]);
            c
        }
        Profiler::Perf => {
            let mut c = Command::new("perf");
            c.args(["record", "-q", "-e", "cpu-clock", "-F", "4999", "-o"]);
            c.arg(out).args(["-p", &pid.to_string()]);
            c
        }
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("sse-load: strace/perf: {e}"))
        .ok()?;
    std::thread::sleep(Duration::from_millis(500)); // let it attach to every thread
    Some(child)
}

/// Stop perf and summarise its samples: (thread / where, share of samples in %).
fn stop_perf(mut child: Child, out: &std::path::Path) -> Vec<(String, f64)> {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    let _ = child.wait();
    let report = Command::new("perf")
        .args(["report", "--stdio", "-q", "--sort", "comm,dso", "-i"])
        .arg(out)
        .stderr(Stdio::null())
        .output();
    let _ = std::fs::remove_file(out);
    let text = report.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (pct, rest) = l.trim().split_once('%')?;
            let pct: f64 = pct.parse().ok()?;
            let what = rest.split_whitespace().collect::<Vec<_>>().join(" ");
            (pct >= 0.5).then_some((what, pct))
        })
        .collect()
}

/// Stop strace and read its table: (system call, calls), most frequent first.
fn stop_strace(mut child: Child, out: &std::path::Path) -> Vec<(String, u64)> {
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    let _ = child.wait();
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let _ = std::fs::remove_file(out);
    let mut calls: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors,] syscall
            if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() {
                return None;
            }
            let name = f[f.len() - 1];
            (name != "total").then(|| Some((name.to_string(), f[3].parse().ok()?)))?
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    calls
}

fn measure(
    addr: SocketAddr,
    pid: u32,
    streams: usize,
    secs: u64,
    profiler: Option<Profiler>,
    scrape_every: Option<Duration>,
) -> Measured {
    let reactor = Reactor::new().expect("reactor");
    let beats = Rc::new(Cell::new(0u64));
    // Let the server reach its steady state before the baseline RSS.
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib(pid);
    let mut handles = Vec::with_capacity(streams);
    for i in 0..streams {
        let mut s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sse-load: connect #{i}: {e}");
                break;
            }
        };
        let _ = s.set_nodelay(true);
        let _ = s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: load\r\n\r\n");
        s.set_nonblocking(true).expect("nonblocking");
        let n = beats.clone();
        // How much of "id: " the current line has matched; MAX: not this line.
        let mut matched = 0usize;
        let fd = Rc::new(s);
        let reader = fd.clone();
        let mut buf = vec![0u8; 4096];
        let io = reactor.add_io(fd, Interest::READABLE, move |ctx, _| {
            loop {
                match rustix::io::read(&*reader, &mut buf[..]) {
                    Ok(0) | Err(rustix::io::Errno::CONNRESET) => {
                        ctx.remove();
                        return;
                    }
                    Ok(k) => {
                        for &b in &buf[..k] {
                            if b == b'\n' {
                                matched = 0;
                            } else if matched < 4 && b == b"id: "[matched] {
                                matched += 1;
                                if matched == 4 {
                                    n.set(n.get() + 1);
                                    matched = usize::MAX;
                                }
                            } else {
                                matched = usize::MAX;
                            }
                        }
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                }
            }
        });
        handles.push(io.expect("register"));
        if i % 256 == 255 {
            let _ = reactor.turn(Some(Duration::ZERO));
        }
    }
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        let _ = reactor.turn(Some(Duration::from_millis(50)));
    }
    let rss_after = rss_kib(pid);
    let trace_out = std::env::temp_dir().join(format!("sse-load-strace-{pid}"));
    let tracer = profiler.and_then(|how| start_strace(pid, &trace_out, how));
    let (beats0, cpu0, t0) = (beats.get(), thread_cpu_ns(pid), Instant::now());
    let end = t0 + Duration::from_secs(secs);
    let scraper = scrape_every.map(|every| {
        std::thread::spawn(move || {
            let mut scrapes = 0;
            let mut next = Instant::now();
            while next < end {
                if let Ok(mut c) = TcpStream::connect(addr) {
                    let mut sink = Vec::new();
                    let asked = c.write_all(
                        b"GET /metrics HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n",
                    );
                    if asked.is_ok() && c.read_to_end(&mut sink).is_ok() {
                        scrapes += 1;
                    }
                }
                next += every;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            scrapes
        })
    });
    while Instant::now() < end {
        let _ = reactor.turn(Some(end.saturating_duration_since(Instant::now())));
    }
    if let Some(s) = scraper {
        let n = s.join().unwrap_or(0);
        eprintln!("sse-load: {n} scrape(s) of /metrics in the window");
    }
    let (beats1, cpu1, wall) = (beats.get(), thread_cpu_ns(pid), t0.elapsed());
    let (all_ns, busiest_ns) = cpu_spent(&cpu0, &cpu1);
    let beats = beats1 - beats0;
    let syscalls = match (tracer, profiler) {
        (Some(t), Some(Profiler::Strace)) => stop_strace(t, &trace_out)
            .into_iter()
            .map(|(name, n)| (name, n as f64 / beats.max(1) as f64))
            .collect(),
        (Some(t), _) => stop_perf(t, &trace_out),
        _ => Vec::new(),
    };
    let cpu = Duration::from_nanos(all_ns);
    let per_beat = |ns: u64| if beats == 0 { 0.0 } else { ns as f64 / 1e3 / beats as f64 };
    Measured {
        syscalls,
        opened: handles.len(),
        per_sec: beats as f64 / wall.as_secs_f64(),
        cpu_per_beat_us: per_beat(all_ns),
        busiest_per_beat_us: per_beat(busiest_ns),
        cpu_percent: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        rss_per_stream_kib: rss_after.saturating_sub(rss_before) as f64
            / handles.len().max(1) as f64,
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
