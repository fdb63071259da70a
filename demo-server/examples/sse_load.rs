//! Load the demo server with K concurrent event streams and report what
//! each heartbeat and each stream cost it.
//!
//! ```text
//! cargo build --release -p demo-server
//! cargo run --release -p demo-server --example sse_load -- --streams 5000 --interval 100ms
//! ```
//!
//! It starts `target/release/demo-server` itself (or attaches to a running
//! one with `--attach ADDR --pid PID`), opens the streams from one reactor
//! thread, lets them settle, then measures for `--secs` seconds:
//!
//! * heartbeats received (every heartbeat event is exactly 3 newlines);
//! * the server's CPU time, from `/proc/PID/task/*/schedstat` (nanoseconds);
//! * the server's RSS growth per stream, from `/proc/PID/status`.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{Interest, Reactor};

struct Args {
    streams: usize,
    secs: u64,
    interval: String,
    route: String,
    mode: String,
    attach: Option<(SocketAddr, u32)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        streams: 5000,
        secs: 10,
        interval: "100ms".into(),
        route: "fixed".into(),
        mode: "dedicated".into(),
        attach: None,
    };
    let mut it = std::env::args().skip(1);
    let mut addr = None;
    let mut pid = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => a.streams = value()?.parse().map_err(|e| format!("--streams: {e}"))?,
            "--secs" => a.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--interval" => a.interval = value()?,
            "--route" => a.route = value()?,
            "--timer-mode" => a.mode = value()?,
            "--attach" => addr = Some(value()?.parse().map_err(|e| format!("--attach: {e}"))?),
            "--pid" => pid = Some(value()?.parse().map_err(|e| format!("--pid: {e}"))?),
            "-h" | "--help" => {
                return Err("usage: sse_load [--streams K] [--secs S] [--interval 100ms] [--route fixed|leaky] [--timer-mode dedicated|shared] [--attach ADDR --pid PID]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.attach = match (addr, pid) {
        (Some(addr), Some(pid)) => Some((addr, pid)),
        (None, None) => None,
        _ => return Err("--attach and --pid go together".into()),
    };
    Ok(a)
}

fn spawn_server(a: &Args) -> Result<(Child, SocketAddr, u32), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("demo-server"))
        .ok_or("no target dir")?;
    let mut child = Command::new(&bin)
        .args(["--addr", "127.0.0.1:0", "--interval", &a.interval, "--timer-mode", &a.mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("{}: {e} (run `cargo build --release -p demo-server` first)", bin.display())
        })?;
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

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (mut child, addr, pid) = match a.attach {
        Some((addr, pid)) => (None, addr, pid),
        None => match spawn_server(&a) {
            Ok((c, addr, pid)) => (Some(c), addr, pid),
            Err(e) => {
                eprintln!("sse_load: {e}");
                std::process::exit(1);
            }
        },
    };
    let reactor = Reactor::new().expect("reactor");
    let newlines = Rc::new(Cell::new(0u64));
    let ended = Rc::new(Cell::new(0usize));
    let rss_before = rss_kib(pid);
    let mut handles = Vec::with_capacity(a.streams);
    let opening = Instant::now();
    for i in 0..a.streams {
        let mut s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sse_load: connect #{i}: {e}");
                break;
            }
        };
        // One write: a request split over several small writes would meet Nagle.
        let request = format!("GET /stream/{} HTTP/1.1\r\nHost: load\r\n\r\n", a.route);
        let _ = s.write_all(request.as_bytes());
        s.set_nonblocking(true).expect("nonblocking");
        let (n, e) = (newlines.clone(), ended.clone());
        let fd = std::rc::Rc::new(s);
        let reader = fd.clone();
        let mut buf = vec![0u8; 4096];
        let io = reactor.add_io(fd, Interest::READABLE, move |ctx, _| {
            loop {
                match rustix::io::read(&*reader, &mut buf[..]) {
                    Ok(0) | Err(rustix::io::Errno::CONNRESET) => {
                        e.set(e.get() + 1);
                        ctx.remove();
                        return;
                    }
                    Ok(k) => {
                        n.set(n.get() + buf[..k].iter().filter(|b| **b == b'\n').count() as u64)
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return, // EAGAIN: drained
                }
            }
        });
        handles.push(io.expect("register"));
        if i % 256 == 255 {
            let _ = reactor.turn(Some(Duration::ZERO)); // keep up while opening
        }
    }
    let opened = handles.len();
    let open_time = opening.elapsed();
    // Settle: every stream past its opening, one interval more.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        let _ = reactor.turn(Some(Duration::from_millis(50)));
    }
    let rss_after = rss_kib(pid);
    let (lines0, cpu0, t0) = (newlines.get(), cpu_ns(pid), Instant::now());
    let end = t0 + Duration::from_secs(a.secs);
    while Instant::now() < end {
        let _ = reactor.turn(Some(end.saturating_duration_since(Instant::now())));
    }
    let (lines1, cpu1, wall) = (newlines.get(), cpu_ns(pid), t0.elapsed());
    let heartbeats = (lines1 - lines0) / 3;
    let cpu = Duration::from_nanos(cpu1 - cpu0);
    println!(
        "streams opened        {opened} of {} in {open_time:.2?} ({} ended early)",
        a.streams,
        ended.get()
    );
    match a.attach {
        None => println!(
            "route / timer mode    /stream/{} / {}, interval {}",
            a.route, a.mode, a.interval
        ),
        Some((addr, pid)) => println!(
            "route                 /stream/{} on {addr} (pid {pid}, settings as it was started)",
            a.route
        ),
    }
    println!("window                {wall:.2?}");
    println!(
        "heartbeats received   {heartbeats} ({:.0}/s)",
        heartbeats as f64 / wall.as_secs_f64()
    );
    println!(
        "server CPU            {cpu:.2?} ({:.1}% of one core)",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
    if heartbeats > 0 {
        println!("server CPU/heartbeat  {:.2} us", cpu.as_secs_f64() * 1e6 / heartbeats as f64);
    }
    if opened > 0 {
        let per = (rss_after.saturating_sub(rss_before)) as f64 / opened as f64;
        println!(
            "server RSS            {rss_before} KiB -> {rss_after} KiB: {:.2} KiB per stream",
            per
        );
    }
    drop(handles);
    if let Some(c) = &mut child {
        let _ = c.kill();
        let _ = c.wait();
    }
}
