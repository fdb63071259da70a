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

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{Interest, Reactor};

struct Args {
    streams: Vec<usize>,
    secs: u64,
    interval: String,
    servers: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        streams: vec![1000, 5000],
        secs: 10,
        interval: "100ms".into(),
        servers: vec!["demo-dedicated".into(), "demo-shared".into(), "axum".into()],
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
            _ => {
                return Err("usage: sse-load [--streams 1000,5000] [--secs 10] [--interval 100ms] [--servers demo-dedicated,demo-shared,axum]".into());
            }
        }
    }
    Ok(a)
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
        other => Err(format!("unknown server {other}")),
    }
}

fn spawn_server(name: &str, interval: &str) -> Result<(Child, SocketAddr, u32), String> {
    let (bin, args) = server_command(name, interval)?;
    let mut child = Command::new(&bin)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e} (build it first: see the file's docs)", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let addr = loop {
        let line = lines.next().ok_or("server exited")?.map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("demo-server listening on http://") {
            break rest.trim_end_matches('/').parse().map_err(|e| format!("{e}"))?;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let pid = child.id();
    Ok((child, addr, pid))
}

/// Nanoseconds of CPU the process's threads have run.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
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
    opened: usize,
    per_sec: f64,
    cpu_per_beat_us: f64,
    cpu_percent: f64,
    rss_per_stream_kib: f64,
}

fn measure(addr: SocketAddr, pid: u32, streams: usize, secs: u64) -> Measured {
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
    let (beats0, cpu0, t0) = (beats.get(), cpu_ns(pid), Instant::now());
    let end = t0 + Duration::from_secs(secs);
    while Instant::now() < end {
        let _ = reactor.turn(Some(end.saturating_duration_since(Instant::now())));
    }
    let (beats1, cpu1, wall) = (beats.get(), cpu_ns(pid), t0.elapsed());
    let beats = beats1 - beats0;
    let cpu = Duration::from_nanos(cpu1 - cpu0);
    Measured {
        opened: handles.len(),
        per_sec: beats as f64 / wall.as_secs_f64(),
        cpu_per_beat_us: if beats == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / beats as f64 },
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
    println!(
        "SSE load: K streams on /stream/fixed, heartbeat every {}, {} s measured per run\n",
        a.interval, a.secs
    );
    println!(
        "| server | K | opened | heartbeats/s | server CPU | CPU per heartbeat (µs) | RSS per stream (KiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &k in &a.streams {
        for name in &a.servers {
            let (mut child, addr, pid) = match spawn_server(name, &a.interval) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("sse-load: {name}: {e}");
                    std::process::exit(1);
                }
            };
            let r = measure(addr, pid, k, a.secs);
            println!(
                "| {name} | {k} | {} | {:.0} | {:.1}% | {:.2} | {:.2} |",
                r.opened, r.per_sec, r.cpu_percent, r.cpu_per_beat_us, r.rss_per_stream_kib
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
