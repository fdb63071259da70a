//! Output to a closed pipe (`demo-server | head -n1`) never panics: the
//! server still drains and exits 0 on SIGTERM, `inspect` still exits cleanly.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use common::{Proc, SOON, open_stream, read_heartbeats, wait_until};

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    // Close-on-exec: a child another test spawns meanwhile must not
    // inherit it (the child under test gets it as its stdout or stderr).
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    drop(read);
    write
}

/// The port `pid` listens on, read from the kernel's socket table: its
/// banner goes to a closed stdout, so the port cannot come from there. (A
/// port picked by the test and handed over with `--addr` races every other
/// process on the machine binding port 0 between the pick and the bind.)
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = test_support::fds::links(&pid.to_string())
        .iter()
        .filter_map(|l| l.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let listening = f.get(3) == Some(&"0A");
        if !listening || !inodes.iter().any(|i| f.get(9) == Some(&i.as_str())) {
            return None;
        }
        u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()
    })
}

#[test]
fn sigterm_with_stdout_and_stderr_closed_drains_and_exits_0() {
    let child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["serve", "--interval", "50ms", "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::from(closed_pipe()))
        .spawn()
        .unwrap();
    let mut server = Proc::from(child);
    let mut port = None;
    assert!(
        wait_until(SOON, || {
            port = listening_port(server.child.id());
            port.is_some()
        }),
        "the server never listened"
    );
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port.unwrap()).into();
    let mut stream = open_stream(addr, "fixed");
    read_heartbeats(&mut stream, 1);
    let pid = rustix::process::Pid::from_raw(server.child.id() as i32).unwrap();
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
