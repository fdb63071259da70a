//! Bad settings are refused before any work, with a clear message and exit
//! code 2; friendly forms (`localhost:PORT`, `64k`) are accepted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, SOON, Server};

/// Run the binary; its exit code, stderr, and how long it took.
fn run(args: &[&str]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc::from(child);
    let status = p.wait_exit(SOON * 2).expect("refused at once, not run");
    (status.code(), p.stderr(), start.elapsed())
}

#[test]
fn bad_settings_are_refused_up_front() {
    let hard = demo_server::procfs::nofile().1;
    let above = (hard.saturating_add(1)).to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--interval", "1ns"], "--interval must be at least"),
        (&["serve", "--interval", "999us"], "--interval must be at least"),
        (&["serve", "--header-timeout", "0s"], "must be above zero"),
        (&["serve", "--idle-timeout", "0ms"], "must be above zero"),
        (&["serve", "--max-conns", "0"], "--max-conns must be at least 1"),
        (&["serve", "--max-buffered", "0"], "--max-buffered must be between"),
        (&["serve", "--max-buffered", "64q"], "unknown unit"),
        (&["leak-demo", "--interval", "0s"], "--interval must be at least"),
        (&["leak-demo", "--fd-limit", &above], "is above the hard RLIMIT_NOFILE"),
        (&["serve", "--fd-limit", &above], "is above the hard RLIMIT_NOFILE"),
        // Refused against the hard limit: more connections than fds could ever hold.
        (&["serve", "--max-conns", &above], "is more than the hard fd limit allows"),
        (&["leak-demo", "--svg", "/nonexistent-dir/leak.svg"], "--svg /nonexistent-dir/leak.svg"),
    ];
    for (args, message) in cases {
        let (code, said, took) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {said}");
        assert!(said.contains(message), "{args:?}: {said}");
        assert!(took < SOON, "{args:?} took {took:?}: it did work first");
    }
}

#[test]
fn localhost_port_and_byte_sizes_are_accepted() {
    let child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["serve", "--addr", "localhost:0", "--max-buffered", "64k"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc::from(child);
    let mut line = String::new();
    BufReader::new(p.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("demo-server listening on http://127.0.0.1:"), "{line}");
    assert!(p.child.try_wait().unwrap().is_none(), "the server is running");
    // And the usual test server takes a byte size too.
    let server = Server::start(&["--max-buffered", "1m"]);
    assert_eq!(common::get(server.addr, "/metrics").status, 200);
}

/// A wildcard bind prints addresses a browser on this host can open (the
/// loopback one), and says it listens on every address; the banner's
/// contract holds, so the launcher still finds the port.
#[test]
fn a_wildcard_bind_prints_a_url_a_browser_can_open() {
    let child = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["serve", "--addr", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc::from(child);
    let mut out = BufReader::new(p.child.stdout.take().unwrap());
    let banner = demo_server::launcher::Banner::read(&mut out).unwrap();
    assert!(banner.addr.ip().is_loopback(), "{}", banner.text);
    assert!(
        banner.text.contains("every other address of this host: --addr 0.0.0.0:"),
        "{}",
        banner.text
    );
    assert!(
        !banner.text.contains("http://0.0.0.0"),
        "no URL a browser cannot open: {}",
        banner.text
    );
    assert_eq!(banner.pid, Some(p.pid()));
    assert_eq!(common::get(banner.addr, "/metrics").status, 200);
}
