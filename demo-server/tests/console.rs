//! Output to a closed pipe (`demo-server | head -n1`) never panics: the
//! server still drains and exits 0 on SIGTERM, `inspect` still exits cleanly.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use common::{Proc, SOON, open_stream, read_heartbeats, wait_until};

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (read, write) = rustix::pipe::pipe().unwrap();
    drop(read);
    write
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn sigterm_with_stdout_and_stderr_closed_drains_and_exits_0() {
    let port = free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["serve", "--interval", "50ms", "--addr", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::from(closed_pipe()))
        .spawn()
        .unwrap();
    let mut server = Proc(child);
    assert!(wait_until(SOON, || TcpStream::connect(addr).is_ok()), "the server never listened");
    let mut stream = open_stream(addr, "fixed");
    read_heartbeats(&mut stream, 1);
    let pid = rustix::process::Pid::from_raw(server.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).expect("a clean close");
    assert!(rest.contains("event: shutdown"), "the stream was not drained: {rest}");
    let status = server.wait_exit(SOON).expect("exits");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn inspect_into_a_closed_pipe_exits_without_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["inspect", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_ne!(out.status.code(), Some(101), "{said}");
}
