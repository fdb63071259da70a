//! The server's rows: each a scenario run against a warmed-up server, with
//! strace attached to it (or to one of its threads), then the server
//! checked for health: it answers, does not spin, and leaks no fd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use demo_server::client::{Opened, open_stream};
use demo_server::launcher::Server;
use test_support::strace::{attach_to, fail, fail_on};

use crate::{Mode, Outcome, SOON};

/// Which thread strace attaches to.
#[derive(Clone, Copy)]
pub enum Target {
    /// The whole process (`-f`).
    Process,
    /// One thread, by name (`worker-0`, or `demo-server` for the main one).
    Thread(&'static str),
}

/// One server row.
pub struct Scenario {
    pub site: &'static str,
    pub syscall: &'static str,
    pub errno: &'static str,
    /// Server arguments beyond the mode's.
    pub args: &'static [&'static str],
    pub env: &'static [(&'static str, &'static str)],
    /// strace's `-e trace=`/`-e inject=`/`-P` arguments.
    pub strace: Vec<String>,
    pub target: Target,
    /// The configurations it applies to, when not every one: heartbeat
    /// timerfds exist only in dedicated mode, heartbeat heaps only in shared.
    pub only: Option<&'static str>,
    /// Before strace attaches: open what the trigger needs.
    pub setup: fn(&Server) -> Option<TcpStream>,
    /// After it attaches: make the call happen, and check what the client
    /// saw. `Ok` carries a word of detail.
    pub trigger: fn(&mut Server, Option<TcpStream>) -> Result<String, String>,
    pub expect: Outcome,
}

/// What a row does not say: the process, every configuration, no setup,
/// no extra arguments or environment.
const BASE: Scenario = Scenario {
    site: "",
    syscall: "",
    errno: "",
    args: &[],
    env: &[],
    strace: Vec::new(),
    target: Target::Process,
    only: None,
    setup: no_setup,
    trigger: |_, _| Err("no trigger".into()),
    expect: Outcome::Recovered,
};

fn no_setup(_: &Server) -> Option<TcpStream> {
    None
}

fn stream(server: &Server) -> Option<TcpStream> {
    match open_stream(server.addr, "fixed") {
        Opened::Stream(s) => Some(s),
        other => panic!("setup: no stream ({other:?})"),
    }
}

/// One request on a fresh connection: the status line and the rest.
fn ask(server: &Server, path: &str) -> Result<String, String> {
    let mut c = TcpStream::connect_timeout(&server.addr, SOON).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    c.read_to_string(&mut text).map_err(|e| format!("no answer: {e}"))?;
    Ok(text)
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("---")
}

fn expect_status(answer: Result<String, String>, code: &str) -> Result<String, String> {
    let answer = answer?;
    match status(&answer) {
        c if c == code => Ok(format!("client got {code}")),
        other => Err(format!("client got {other}, not {code}")),
    }
}

/// Read `n` heartbeats from a stream, their ids consecutive.
fn heartbeats(s: &mut TcpStream, n: usize) -> Result<String, String> {
    s.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("\nid: ").count() < n + 1 {
        let k = s.read(&mut buf).map_err(|e| format!("heartbeats stopped: {e}"))?;
        if k == 0 {
            return Err("the stream ended".into());
        }
        text.push_str(&String::from_utf8_lossy(&buf[..k]));
    }
    let ids: Vec<u64> = text.lines().filter_map(|l| l.strip_prefix("id: ")?.parse().ok()).collect();
    if ids.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(format!("ids not consecutive: {ids:?}"));
    }
    Ok(format!("{} heartbeats in order", ids.len()))
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            site: "listener re-registration after an accept error",
            syscall: "epoll_ctl(ADD)",
            errno: "ENOSPC",
            strace: [
                "-e",
                "trace=accept4,epoll_ctl",
                "-e",
                "inject=accept4:error=ENOBUFS:when=1",
                "-e",
                "inject=epoll_ctl:error=ENOSPC:when=2",
            ]
            .map(String::from)
            .to_vec(),
            trigger: |s, _| {
                expect_status(ask(s, "/metrics"), "200").map(|_| "served after the retry".into())
            },
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "accept at the fd limit",
            syscall: "accept4",
            errno: "EMFILE",
            strace: fail("accept4", "EMFILE", "1"),
            trigger: |s, _| match open_stream(s.addr, "fixed") {
                Opened::Refused(503) => Ok("client got 503 from the spare fd".into()),
                other => Err(format!("{other:?}")),
            },
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "accept of a client that gave up",
            syscall: "accept4",
            errno: "ECONNABORTED",
            strace: fail("accept4", "ECONNABORTED", "1"),
            trigger: |s, _| expect_status(ask(s, "/metrics"), "200"),
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "a client's registration",
            syscall: "epoll_ctl(ADD)",
            errno: "ENOMEM",
            strace: fail("epoll_ctl", "ENOMEM", "1"),
            trigger: |s, _| expect_status(ask(s, "/metrics"), "503"),
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "a connection's interest change (a pipelined backlog)",
            syscall: "epoll_ctl(MOD)",
            errno: "ENOMEM",
            strace: fail("epoll_ctl", "ENOMEM", "2"),
            trigger: |s, _| {
                let mut c = TcpStream::connect_timeout(&s.addr, SOON).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
                let many = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
                c.write_all(many.as_bytes()).map_err(|e| e.to_string())?;
                let mut text = String::new();
                c.read_to_string(&mut text).map_err(|e| format!("no clean close: {e}"))?;
                Ok(format!("closed after {} answers", text.matches("HTTP/1.1 200").count()))
            },
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "a connection's header deadline",
            syscall: "timerfd_settime",
            errno: "ENOMEM",
            args: &["--header-timeout", "1ms"],
            // Every arm fails while strace is attached: the stats timer's
            // re-arms too (its clock is stranded, and heals after), so the
            // deadline's arm fails whenever the client comes.
            strace: fail("timerfd_settime", "ENOMEM", "1+"),
            trigger: |s, _| {
                let mut c = TcpStream::connect_timeout(&s.addr, SOON).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
                let mut text = String::new();
                c.read_to_string(&mut text).map_err(|e| e.to_string())?;
                match status(&text) {
                    "503" => Ok("client got 503".into()),
                    // Rarely the stats timer is due within the millisecond:
                    // the deadline then needs no arm (the heap's timerfd
                    // fires sooner), and only that timer's clock was stranded.
                    "408" => Ok("recovered: the deadline needed no arm; the stranded stats clock healed; client got 408".into()),
                    other => Err(format!("client got {other}")),
                }
            },
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "a stream's heartbeat timer",
            syscall: "timerfd_create",
            errno: "EMFILE",
            strace: fail("timerfd_create", "EMFILE", "1"),
            only: Some("dedicated"),
            trigger: |s, _| match open_stream(s.addr, "fixed") {
                Opened::Refused(503) => Ok("client got 503".into()),
                other => Err(format!("{other:?}")),
            },
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "a shared clock's re-arm after a pass",
            syscall: "timerfd_settime",
            errno: "ENOMEM",
            args: &["--interval", "10ms"],
            strace: fail("timerfd_settime", "ENOMEM", "1"),
            only: Some("shared"),
            setup: stream,
            trigger: |_, s| heartbeats(&mut s.ok_or("no stream")?, 20),
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "the read of a ready timerfd, transient",
            syscall: "read",
            errno: "ENOMEM",
            args: &["--interval", "10ms"],
            strace: fail_on("anon_inode:[timerfd]", "read", "ENOMEM", "1"),
            setup: stream,
            trigger: |_, s| heartbeats(&mut s.ok_or("no stream")?, 20),
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "the read of a ready timerfd, not transient",
            syscall: "read",
            errno: "EIO",
            args: &["--interval", "10ms"],
            strace: fail_on("anon_inode:[timerfd]", "read", "EIO", "1"),
            setup: stream,
            trigger: |_, _| Ok(String::new()),
            expect: Outcome::Exited,
            ..BASE
        },
        Scenario {
            site: "a stream's deregistration when its client leaves",
            syscall: "epoll_ctl(DEL)",
            errno: "ENOMEM",
            strace: fail("epoll_ctl", "ENOMEM", "1"),
            setup: stream,
            trigger: |_, s| {
                drop(s);
                Ok("client left; the fd was parked, then closed".into())
            },
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "a heartbeat's send",
            syscall: "sendto",
            errno: "EPIPE",
            args: &["--interval", "10ms"],
            strace: fail("sendto", "EPIPE", "1"),
            setup: stream,
            trigger: |_, s| {
                let mut s = s.ok_or("no stream")?;
                s.set_read_timeout(Some(SOON)).map_err(|e| e.to_string())?;
                let mut sink = Vec::new();
                match s.read_to_end(&mut sink) {
                    Ok(_) => Ok("the stream was closed".into()),
                    Err(e) => Err(format!("not closed: {e}")),
                }
            },
            expect: Outcome::Reported,
            ..BASE
        },
        Scenario {
            site: "a worker's wait, transient",
            syscall: "epoll_pwait",
            errno: "ENOMEM",
            strace: fail("epoll_pwait", "ENOMEM", "1..3"),
            target: Target::Thread("worker-0"),
            trigger: |s, _| {
                let r = expect_status(ask(s, "/metrics"), "200")?;
                let said = s.process.stderr();
                match said.contains("a system call under the event loop failed") {
                    true => Ok(format!("{r}; logged once, backed off")),
                    false => Err(format!("not logged: {said}")),
                }
            },
            expect: Outcome::Recovered,
            ..BASE
        },
        Scenario {
            site: "a worker's wait, fatal",
            syscall: "epoll_pwait",
            errno: "EBADF",
            strace: fail("epoll_pwait", "EBADF", "1"),
            target: Target::Thread("worker-0"),
            trigger: |_, _| Ok(String::new()),
            expect: Outcome::Exited,
            ..BASE
        },
        Scenario {
            site: "a dying worker's wake of the main thread",
            syscall: "write (eventfd)",
            errno: "EIO",
            env: &[("DEMO_SERVER_TEST_PANIC", "1")],
            strace: fail_on("anon_inode:[eventfd]", "write", "EIO", "1+"),
            trigger: |s, _| {
                drop(TcpStream::connect_timeout(&s.addr, SOON)); // worker 0 panics on it
                Ok(String::new())
            },
            expect: Outcome::Exited,
            ..BASE
        },
        Scenario {
            site: "the signalfd's read, interrupted",
            syscall: "read (signalfd)",
            errno: "EINTR x1000",
            strace: fail_on("anon_inode:[signalfd]", "read", "EINTR", "1..1000"),
            trigger: |s, _| {
                s.process.signal(rustix::process::Signal::TERM).map_err(|e| e.to_string())?;
                match s.process.wait_exit(SOON).and_then(|st| st.code()) {
                    Some(0) => Ok("SIGTERM still shut it down cleanly (exit 0)".into()),
                    other => Err(format!("exit {other:?}")),
                }
            },
            expect: Outcome::Recovered,
            ..BASE
        },
    ]
}

/// The thread id of `name` in process `pid`.
fn thread(pid: u32, name: &str) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| t.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// Open client sockets of the server (its listeners excluded).
fn client_sockets(server: &Server, listeners: usize) -> usize {
    let links = demo_server::procfs::links(server.pid);
    links.iter().filter(|l| l.starts_with("socket:")).count().saturating_sub(listeners)
}

/// Wait (bounded) until the server holds no client socket.
fn settle(server: &Server, listeners: usize) -> bool {
    let deadline = Instant::now() + SOON;
    while client_sockets(server, listeners) > 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn run_server(
    sc: &Scenario,
    mode: Mode,
    bin: &std::path::Path,
) -> Result<(Outcome, String), String> {
    let args: Vec<&str> = mode.args.iter().chain(sc.args).copied().collect();
    let mut server = Server::start(bin, &args, sc.env)?;
    let listeners = if mode.name == "2 workers" { 2 } else { 1 };
    // Warm up (workers finish starting after the banner, and a few fds are
    // made on first use), then take the baseline.
    if sc.env.is_empty() {
        expect_status(ask(&server, "/metrics"), "200").map_err(|e| format!("warm-up: {e}"))?;
        drop(stream(&server));
        settle(&server, listeners);
    }
    let fds_before = demo_server::procfs::links(server.pid).len();
    let setup = (sc.setup)(&server);
    let tid = match sc.target {
        Target::Process => None,
        Target::Thread(name) => Some(thread(server.pid, name).ok_or("no such thread")?),
    };
    let strace = attach_to(server.pid, tid, &sc.strace)?;
    let detail = (sc.trigger)(&mut server, setup);
    if sc.expect == Outcome::Exited {
        let status = server.process.wait_exit(SOON);
        let injected = strace.injected();
        let said = server.process.stderr();
        return match status.and_then(|s| s.code()) {
            _ if injected.is_empty() => Err("the injection never hit".into()),
            Some(code) if code != 0 && said.contains("worker-") => {
                let line = said.lines().rfind(|l| l.contains("worker-")).unwrap_or("");
                Ok((Outcome::Exited, format!("exit {code}: \"{}\"", line.trim())))
            }
            Some(code) => Err(format!("exit {code} without naming the worker: {said}")),
            None => Err("hang: the process did not exit".into()),
        };
    }
    let detail = detail?;
    let (outcome, detail) = match detail.strip_prefix("recovered: ") {
        Some(rest) => (Outcome::Recovered, rest.to_string()),
        None => (sc.expect, detail),
    };
    let running = server.process.child.try_wait().is_ok_and(|s| s.is_none());
    // Let the server finish with the clients the trigger left, under strace.
    if running && !settle(&server, listeners) {
        return Err("stall: client connections never closed".into());
    }
    let injected = strace.injected();
    if injected.is_empty() {
        return Err("the injection never hit".into());
    }
    if !running {
        return Ok((outcome, detail)); // a scenario that ends the server on purpose (SIGTERM)
    }
    // The server is healthy: it answers, it is not spinning, it leaks no fd.
    expect_status(ask(&server, "/metrics"), "200").map_err(|e| format!("stalled: {e}"))?;
    let cpu0 = server.process.cpu_time().unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let cpu = server.process.cpu_time().unwrap_or_default().saturating_sub(cpu0);
    if cpu > Duration::from_millis(60) {
        return Err(format!("spin: {cpu:?} of CPU in 300 ms"));
    }
    settle(&server, listeners);
    let fds = demo_server::procfs::links(server.pid).len();
    if fds > fds_before {
        return Err(format!(
            "leak: {fds} fds, {fds_before} before: {:?}",
            demo_server::procfs::links(server.pid)
        ));
    }
    Ok((outcome, detail))
}
