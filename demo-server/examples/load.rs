//! Load and hostile clients for demo-server, printing figures (issue 10's
//! measurements). Loopback only; every mode ends by itself.
//!
//! ```text
//! load heartbeats ADDR STREAMS SECONDS   open STREAMS on /stream/fixed, count heartbeats per stream
//! load pipeline   ADDR CONNS  REQUESTS   CONNS clients pipeline REQUESTS × GET / and never read
//! load slow       ADDR STREAMS           STREAMS streams that never read (tiny receive buffer)
//! load backlog    ADDR CLIENTS           CLIENTS connect at once; time until each has an answer
//! load scrapes    ADDR N                 N pipelined GET /metrics on one connection; time to answer all
//! load rss        PID                    the server's RSS (VmRSS, VmHWM)
//! ```
//!
//! `scripts/issue10-bench.sh MODE [SERVER_BINARY]` runs them against a fresh server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::epoll;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<usize>().expect("a number");
    match arg(0).as_str() {
        "heartbeats" => heartbeats(addr(&arg(1)), num(2), num(3) as u64),
        "pipeline" => pipeline(addr(&arg(1)), num(2), num(3)),
        "slow" => slow(addr(&arg(1)), num(2)),
        "backlog" => backlog(addr(&arg(1)), num(2)),
        "scrapes" => scrapes(addr(&arg(1)), num(2)),
        "rss" => println!("{}", rss(num(1) as u32)),
        _ => eprintln!("usage: see the doc comment of demo-server/examples/load.rs"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address like 127.0.0.1:8080")
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    format!("VmRSS {} VmHWM {}", field("VmRSS:"), field("VmHWM:"))
}

fn open(addr: SocketAddr, path: &str, rcvbuf: Option<usize>) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    if let Some(n) = rcvbuf {
        rustix::net::sockopt::set_socket_recv_buffer_size(&s, n).unwrap();
    }
    let mut s = s;
    write!(s, "GET {path} HTTP/1.1\r\nHost: load\r\n\r\n").unwrap();
    s
}

/// Open `n` streams, then count the heartbeats (`id:` lines) each receives
/// in `secs` seconds.
fn heartbeats(addr: SocketAddr, n: usize, secs: u64) {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let s = open(addr, "/stream/fixed", None);
        s.set_nonblocking(true).unwrap();
        epoll::add(&ep, s.as_fd(), epoll::EventData::new_u64(i as u64), epoll::EventFlags::IN)
            .unwrap();
        streams.push(s);
    }
    eprintln!("{n} streams open; warming up 2 s");
    let mut counts = vec![0u64; n];
    let mut tails = vec![[0u8; 4]; n];
    let mut counting = false;
    let start = Instant::now();
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = 0;
    loop {
        let elapsed = start.elapsed();
        if !counting && elapsed >= Duration::from_secs(2) {
            counting = true;
            counts.iter_mut().for_each(|c| *c = 0);
        }
        if elapsed >= Duration::from_secs(2 + secs) {
            break;
        }
        events.clear();
        let timeout = rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        let _ = epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&timeout));
        for ev in &events {
            let i = ev.data.u64() as usize;
            loop {
                match streams[i].read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        let _ = epoll::delete(&ep, streams[i].as_fd());
                        break;
                    }
                    Ok(k) => {
                        let mut joined = tails[i].to_vec();
                        joined.extend_from_slice(&buf[..k]);
                        counts[i] += joined.windows(4).filter(|w| w == b"id: ").count() as u64;
                        let t = joined.len();
                        tails[i].copy_from_slice(&joined[t - 4..]);
                    }
                    Err(_) => break,
                }
            }
        }
    }
    counts.sort_unstable();
    println!(
        "heartbeats per stream in {secs} s over {n} streams: min {} median {} max {} mean {:.1}; {} streams closed",
        counts[0],
        counts[n / 2],
        counts[n - 1],
        counts.iter().sum::<u64>() as f64 / n as f64,
        closed
    );
}

/// `n` clients each pipeline `k` requests for the dashboard and never read.
fn pipeline(addr: SocketAddr, n: usize, k: usize) {
    let request = b"GET / HTTP/1.1\r\nHost: load\r\n\r\n".repeat(k);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr).expect("connect");
        rustix::net::sockopt::set_socket_recv_buffer_size(&s, 4096).unwrap();
        let mut s = s;
        let _ = s.write_all(&request);
        held.push(s);
    }
    println!("{n} clients pipelined {k} × GET / each and read nothing; holding them (Ctrl-C ends)");
    std::thread::sleep(Duration::from_secs(3600));
}

/// `n` streams that never read.
fn slow(addr: SocketAddr, n: usize) {
    let held: Vec<TcpStream> = (0..n).map(|_| open(addr, "/stream/fixed", Some(4096))).collect();
    println!("{} streams that never read; holding them (Ctrl-C ends)", held.len());
    std::thread::sleep(Duration::from_secs(3600));
}

/// `n` clients connect at once and ask for a stream; report how long until
/// every one had its answer, and what the answers were.
fn backlog(addr: SocketAddr, n: usize) {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: load\r\n\r\n");
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                clients.push(s);
            }
            Err(e) => eprintln!("connect: {e}"),
        }
    }
    let start = Instant::now();
    let (mut ok, mut refused, mut reset, mut other) = (0, 0, 0, 0);
    for mut s in clients {
        let mut head = [0u8; 12];
        match s.read_exact(&mut head) {
            Ok(()) if &head == b"HTTP/1.1 503" => refused += 1,
            Ok(()) if &head == b"HTTP/1.1 200" => ok += 1,
            Ok(()) => other += 1,
            Err(_) => reset += 1,
        }
    }
    println!(
        "{n} clients answered in {:.2} s: {refused} × 503, {ok} × 200, {reset} reset or closed unanswered, {other} other",
        start.elapsed().as_secs_f64()
    );
}

/// `n` pipelined scrapes on one connection: how long until all are answered.
fn scrapes(addr: SocketAddr, n: usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let start = Instant::now();
    s.write_all(&b"GET /metrics HTTP/1.1\r\nHost: load\r\n\r\n".repeat(n)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let answered = all.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    println!(
        "{n} pipelined scrapes (+1 closing request): {answered} answers in {:.3} s",
        start.elapsed().as_secs_f64()
    );
}
