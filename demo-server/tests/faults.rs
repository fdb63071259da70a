//! No failure is silent, in the server: each call that used to fail in
//! silence is made to fail underneath a running server with
//! `strace -e inject` (attached after the server is up, so `when=N` counts
//! from a known point), and the server must recover or refuse loudly. Each
//! test checks in strace's log that the intended call failed. Without
//! strace they skip, saying so (CI installs it). `scripts/faults.sh` runs
//! the wider table.

mod common;

use std::io::{Read, Write};

use common::{SOON, Server, get};
use test_support::strace::{attach, fail, fail_on};

/// Item 1: after an accept error the listener is watched again; if that
/// `epoll_ctl(ADD)` fails, it is retried (and logged, and counted) instead
/// of leaving every new client in the backlog forever.
#[test]
fn a_failed_re_registration_of_the_listener_is_retried_not_left_deaf() {
    let mut server = Server::start(&["--interval", "1s"]);
    // In the idle worker: accept4 #1 fails (ENOBUFS: an accept error that
    // pauses accepting), the pause deregisters the listener (epoll_ctl #1),
    // and the re-register (epoll_ctl #2) fails too; the retry must heal it.
    // (strace's -P cannot name a socket, so the calls are counted.)
    let args = [
        "-e",
        "trace=accept4,epoll_ctl",
        "-e",
        "inject=accept4:error=ENOBUFS:when=1",
        "-e",
        "inject=epoll_ctl:error=ENOSPC:when=2",
    ];
    let Some(strace) = attach(server.pid, &args) else { return };
    let r = get(server.addr, "/metrics"); // waits in the backlog through both faults
    assert_eq!(r.status, 200, "the server went deaf");
    let log = strace.finish();
    let injected: Vec<&str> = log.lines().filter(|l| l.contains("INJECTED")).collect();
    assert_eq!(injected.len(), 2, "{log}");
    assert!(injected[1].contains("EPOLL_CTL_ADD"), "{log}");
    assert!(r.body.contains("demo_server_faults_total{what=\"listen\"} 1"), "counted: {}", r.body);
    let said = server.stderr();
    assert!(said.contains("cannot watch the listening socket"), "logged: {said}");
    assert!(said.contains("recovered after 1 failure"), "and its recovery: {said}");
}

/// Item 2: a client whose socket cannot be registered used to be reset
/// with no answer and nothing counted; it now gets a 503.
#[test]
fn a_client_whose_socket_cannot_be_registered_gets_503_not_a_reset() {
    let server = Server::start(&["--interval", "1s"]);
    // The worker's next epoll_ctl is the new client's ADD: the idle server
    // makes none of its own (its housekeeping timers are heap entries).
    let args = fail("epoll_ctl", "ENOMEM", "1");
    let Some(strace) = attach(server.pid, &args) else { return };
    let mut c = server.connect();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("Access-Control-Allow-Origin: *"), "{answer}");
    let log = strace.finish();
    let injected: Vec<&str> = log.lines().filter(|l| l.contains("INJECTED")).collect();
    assert_eq!(injected.len(), 1, "{log}");
    assert!(injected[0].contains("EPOLL_CTL_ADD"), "{log}");
    let metrics = get(server.addr, "/metrics").body;
    assert!(metrics.contains("demo_server_faults_total{what=\"register\"} 1"), "{metrics}");
}

/// Item 4: a connection whose deadline could not be armed used to be
/// admitted anyway, and a client that never sent its head was never
/// closed. Now it is refused with a 503. (The header deadline is the heap's
/// earliest, so adding it arms the heap's timerfd. Every arm fails while
/// strace is attached, the stats timer's re-arms too, whose clock is
/// stranded and heals after: so the deadline's arm fails whenever it comes.)
#[test]
fn a_connection_whose_deadline_cannot_be_armed_is_refused() {
    let server = Server::start(&["--interval", "1s", "--header-timeout", "50ms"]);
    let args = fail("timerfd_settime", "ENOMEM", "1+");
    let Some(strace) = attach(server.pid, &args) else { return };
    let mut c = server.connect();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap(); // sends nothing: the deadline's job
    let log = strace.finish();
    assert!(log.contains("INJECTED"), "{log}");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    let metrics = get(server.addr, "/metrics").body;
    assert!(metrics.contains("demo_server_faults_total{what=\"deadline\"} 1"), "{metrics}");
    // And the stranded clock healed: a slow head gets its 408 again.
    let mut c = server.connect();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
}

/// Item 6: a worker that dies must take the process down even if waking
/// the main thread fails; it used to leave a live process with no workers.
#[test]
fn a_dying_worker_exits_the_process_even_if_it_cannot_wake_the_main_thread() {
    let mut server =
        Server::start_with_env(&[("DEMO_SERVER_TEST_PANIC", "1")], &["--interval", "1s"]);
    let args = fail_on("anon_inode:[eventfd]", "write", "EIO", "1+");
    let Some(strace) = attach(server.pid, &args) else { return };
    drop(server.connect()); // worker 0 panics on its first connection
    let status = server.wait_exit(SOON).expect("the process exited");
    assert_eq!(status.code(), Some(1));
    let log = strace.finish();
    assert!(log.contains("INJECTED"), "{log}");
    let said = server.stderr();
    assert!(said.contains("worker-0 panicked, and waking the main thread"), "{said}");
}
