//! demo-server's own test helpers, on top of the workspace's shared
//! `test-support`: the spawner with this package's binary, and SSE clients.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

pub use test_support::http::{Response, closed_within, get, raw, read_response};
pub use test_support::server::SOON;
pub use test_support::wait_until;

/// A `demo-server serve` child of this package's binary.
pub struct Server(test_support::Server);

impl Server {
    /// Start `demo-server serve --addr 127.0.0.1:0 ARGS...` and wait for its banner.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(&[], args)
    }

    /// Same, with extra environment variables.
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server(test_support::Server::spawn(env!("CARGO_BIN_EXE_demo-server"), args, env))
    }

    /// Same, under a soft `RLIMIT_NOFILE` of `limit`, which the server sets
    /// itself (`--fd-limit`).
    pub fn start_with_fd_limit(limit: u64, args: &[&str]) -> Server {
        let limit = limit.to_string();
        let args: Vec<&str> =
            ["--fd-limit", &limit].into_iter().chain(args.iter().copied()).collect();
        Server::start(&args)
    }
}

impl Deref for Server {
    type Target = test_support::Server;
    fn deref(&self) -> &test_support::Server {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut test_support::Server {
        &mut self.0
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
/// binary themselves): the launcher's.
pub use test_support::server::Process as Proc;

/// A client socket whose receive buffer is set before it connects, so the
/// window it advertises is small from the start.
pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> TcpStream {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
    // Close-on-exec, as std's sockets are: tests run in parallel, and a
    // server another test spawns meanwhile must not inherit this client.
    let fd =
        socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, bytes).unwrap();
    connect(&fd, &addr).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(SOON)).unwrap();
    s
}
