//! A `demo-server` child per test. Every wait is bounded; the server is
//! killed when its handle drops.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::get;
use crate::wait::wait_until;

/// Loose bound for "soon" in server tests.
pub const SOON: Duration = Duration::from_secs(5);

/// A running `demo-server serve`, killed when dropped.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// Where it listens (port 0 resolved from its banner).
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    /// Its stdout up to the "listening on" line.
    pub banner: String,
}

impl Server {
    /// Start `BIN serve --addr 127.0.0.1:0 ARGS...` with `env` added, and
    /// wait for its banner. `bin` is the demo-server binary
    /// (`env!("CARGO_BIN_EXE_demo-server")` in its own tests). A lower fd
    /// limit is `--fd-limit N` among `args`: the server sets it itself.
    pub fn spawn(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin.as_ref());
        cmd.envs(env.iter().copied());
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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

    /// A client connection, with a [`SOON`] read timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        s
    }

    /// Open fds of the server, by the kernel's count.
    pub fn fds(&self) -> usize {
        self.links().len()
    }

    /// Open sockets of the server (listeners and clients), by the kernel's count.
    pub fn sockets(&self) -> usize {
        self.links().iter().filter(|t| t.starts_with("socket:")).count()
    }

    /// What each of the server's fds points at.
    pub fn links(&self) -> Vec<String> {
        crate::fds::links(&self.pid.to_string())
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
        crate::fds::timerfds(&self.links())
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

/// The `demo-server` binary for tests outside its package (which have no
/// `CARGO_BIN_EXE_demo-server`): the one cargo built into the same target
/// directory as the running test. `cargo test --workspace` builds it before
/// any test runs; a test cannot build it itself, because cargo holds the
/// build directory's lock while tests run.
pub fn demo_server_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/demo-server
    let bin = exe.parent().and_then(Path::parent).map(|dir| dir.join("demo-server"));
    match bin {
        Some(bin) if bin.is_file() => bin,
        _ => panic!(
            "no demo-server binary next to {}: run `cargo test --workspace`, or `cargo build -p demo-server` first",
            exe.display()
        ),
    }
}
