//! A `demo-server` child per test: `demo-server`'s own launcher
//! (`demo_server::launcher`, the one every test, bench and tool uses),
//! with what tests read from outside the server added. Every wait is
//! bounded; the server is killed when its handle drops.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

pub use demo_server::launcher::{Banner, Process};

use crate::http::get;
use crate::wait::wait_until;

pub use crate::wait::SOON;

/// A running `demo-server serve`, killed when dropped.
pub struct Server {
    inner: demo_server::launcher::Server,
    /// Where it listens (port 0 resolved from its banner).
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    /// Its banner.
    pub banner: String,
}

impl Server {
    /// Start `BIN serve --addr 127.0.0.1:0 ARGS...` with `env` added, and
    /// wait for its banner; a server that cannot start fails the test,
    /// saying why.
    pub fn spawn(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let inner = demo_server::launcher::Server::start(bin.as_ref(), args, env)
            .unwrap_or_else(|e| panic!("demo-server {args:?} did not start: {e}"));
        let (addr, pid, banner) = (inner.addr, inner.pid, inner.banner.clone());
        Server { inner, addr, pid, banner }
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

    /// Everything on its stderr so far.
    pub fn stderr(&mut self) -> String {
        self.inner.process.stderr()
    }

    /// Send a signal.
    pub fn signal(&self, sig: rustix::process::Signal) {
        self.inner.process.signal(sig).unwrap();
    }

    /// Wait (bounded) for the child to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.inner.process.wait_exit(limit)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.inner.process.child.try_wait().is_ok_and(|s| s.is_none())
    }

    /// Its CPU time so far.
    pub fn cpu_time(&self) -> Duration {
        self.inner.process.cpu_time().expect("the server is running")
    }
}

/// The `demo-server` binary for tests outside its package (which have no
/// `CARGO_BIN_EXE_demo-server`): the one cargo built into the same target
/// directory as the running test. `cargo test --workspace` builds it before
/// any test runs; a test cannot build it itself, because cargo holds the
/// build directory's lock while tests run.
pub fn demo_server_bin() -> std::path::PathBuf {
    demo_server::launcher::binary().unwrap_or_else(|e| panic!("{e}: run `cargo test --workspace`"))
}
