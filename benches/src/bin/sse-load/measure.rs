//! One measured window: K streams opened from one reactor thread, the
//! heartbeats counted, the server's CPU (per thread) and RSS read from
//! `/proc`, and optionally `strace -c` or `perf` attached, or `/metrics`
//! scraped.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{Interest, Reactor};

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

pub struct Measured {
    /// With `--strace`: (system call, calls per heartbeat), most frequent
    /// first; with `--perf`: (thread and object, % of samples).
    pub syscalls: Vec<(String, f64)>,
    pub opened: usize,
    pub per_sec: f64,
    pub cpu_per_beat_us: f64,
    /// The same for the thread that ran the most: the reactor (or tokio) thread.
    pub busiest_per_beat_us: f64,
    pub cpu_percent: f64,
    pub rss_per_stream_kib: f64,
}

/// A profiler that `--strace` or `--perf` attaches to the server.
#[derive(Clone, Copy, PartialEq)]
pub enum Profiler {
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

pub fn measure(
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
