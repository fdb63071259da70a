//! A demo-server child process per test, and small loopback HTTP clients.
//! Every wait is bounded; a server is killed when its handle drops.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Loose bound for "soon".
pub const SOON: Duration = Duration::from_secs(5);

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    pub banner: String,
}

impl Server {
    /// Start `demo-server serve --addr 127.0.0.1:0 ARGS...` and wait for its banner.
    pub fn start(args: &[&str]) -> Server {
        Server::spawn(args, None, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn(args, None, env)
    }

    /// Same, under `RLIMIT_NOFILE` = `limit` (soft and hard), set in the child.
    pub fn start_with_fd_limit(limit: u64, args: &[&str]) -> Server {
        Server::spawn(args, Some(limit), &[])
    }

    fn spawn(args: &[&str], fd_limit: Option<u64>, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo-server"));
        cmd.envs(env.iter().copied());
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(limit) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    let l = rustix::process::Rlimit { current: Some(limit), maximum: Some(limit) };
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, l)
                        .map_err(Into::into)
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn demo-server");
        let pid = child.id();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let addr = loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("demo-server exited before listening: {banner}");
            }
            banner.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("demo-server listening on http://") {
                break rest.trim_end_matches('/').parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Server { child, addr, pid, banner }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        s
    }

    /// Open fds of the server, by the kernel's count.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }

    /// Open sockets of the server (listeners and clients), by the kernel's count.
    pub fn sockets(&self) -> usize {
        self.links().iter().filter(|t| t.starts_with("socket:")).count()
    }

    fn links(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The fd count once no client connection is open (only the `listeners`
    /// sockets remain): a baseline that a just-closed connection cannot skew.
    pub fn settled_fds(&self, listeners: usize) -> usize {
        assert!(
            wait_until(SOON, || self.sockets() == listeners),
            "client sockets still open: {:?}",
            self.links()
        );
        self.fds()
    }

    /// Open timerfds of the server, by the kernel's count.
    pub fn timerfds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|t| t.as_os_str() == "anon_inode:[timerfd]")
                    .count()
            })
            .unwrap_or(0)
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let r = get(self.addr, "/metrics");
        assert_eq!(r.status, 200);
        r.body
    }

    /// One sample from `/metrics`, e.g. `demo_server_streams_active{route="fixed"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{sample} not in /metrics:\n{text}"))
            .parse()
            .unwrap()
    }

    /// Total CPU time (user + system) the server has used.
    pub fn cpu_time(&self) -> Duration {
        demo_server::inspect::cpu_time(self.pid).expect("the server is running")
    }

    /// Everything on its stderr (once it has exited).
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }

    /// Send a signal.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Wait (bounded) for the child to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Read one response from `s`: head, then a body of Content-Length bytes
/// (none for HEAD or when absent and `head_only`), else until close.
pub fn read_response(s: &mut impl Read, head_only: bool) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) => {
                panic!("reading response head: {e} after {:?}", String::from_utf8_lossy(&buf))
            }
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut r = Response { status, head, body: String::new() };
    if head_only || status == 204 {
        return r;
    }
    match r.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
        Some(n) => {
            let mut body = vec![0; n];
            s.read_exact(&mut body).unwrap();
            r.body = String::from_utf8(body).unwrap();
        }
        None => {
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            r.body = body;
        }
    }
    r
}

/// A one-shot request with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Send raw bytes, read one response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    s.write_all(bytes).unwrap();
    read_response(&mut s, bytes.starts_with(b"HEAD"))
}

/// Whether the server closed `s`: a read returns 0 (or a reset) within `limit`.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Open a stream and read through its opening event (the library's client,
/// which `leak-demo` uses too); anything but a live stream fails the test.
pub fn open_stream(addr: SocketAddr, route: &str) -> TcpStream {
    match demo_server::client::open_stream(addr, route) {
        demo_server::client::Opened::Stream(s) => s,
        other => panic!("/stream/{route} did not open: {other:?}"),
    }
}

/// Read SSE events (blocks, with the socket's read timeout) until `n` with
/// an `id:` have arrived; returns the raw text read.
pub fn read_heartbeats(s: &mut TcpStream, n: usize) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("\nid: ").count() + usize::from(text.starts_with("id: ")) < n {
        let k = s.read(&mut buf).expect("heartbeat within the read timeout");
        assert!(k > 0, "stream ended: {text}");
        text.push_str(std::str::from_utf8(&buf[..k]).unwrap());
    }
    text
}

/// A child process that is killed when dropped (for tests that spawn the
/// binary themselves).
pub struct Proc(pub std::process::Child);

impl Proc {
    /// Wait (bounded) for the child to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything on its stderr (read once it has exited or closed stderr).
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client socket whose receive buffer is set before it connects, so the
/// window it advertises is small from the start.
pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, connect, socket, sockopt};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, bytes).unwrap();
    connect(&fd, &addr).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(SOON)).unwrap();
    s
}
