//! The fault table: each call site of the server and of the reactor made to
//! fail underneath with `strace -e inject`, in each configuration, and
//! what came of it. `scripts/faults.sh` runs this; RELIABILITY.md quotes it.
//!
//! ```text
//! cargo run --release -p demo-server --example faults            # every row, 3 configurations
//! cargo run --release -p demo-server --example faults -- --quick # dedicated mode only
//! ```
//!
//! An outcome is one of:
//!
//! * **recovered**: the server (or loop) healed: a fresh request is served,
//!   and no spin, fd leak or stall is left;
//! * **reported**: the client that met the failure was told (a 503, a clean
//!   close) or the caller got an error, the failure was counted, and the
//!   rest recovered;
//! * **exited**: a worker could not go on, and the process exited non-zero
//!   with a message naming it.
//!
//! Anything else (the injected call never failed, a silent stall, a spin, a
//! leaked fd, a hang, a crash) is a FAIL, and the program exits 1. strace
//! counts `when=N` per thread, so each scenario attaches to a warmed-up
//! server (or a thread of it) and names its calls, and each row checks in
//! strace's log that the intended call failed.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use demo_server::client::{Opened, open_stream};
use demo_server::launcher::{self, Server};

const SOON: Duration = Duration::from_secs(5);

/// A configuration of the server.
#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    args: &'static [&'static str],
}

const MODES: [Mode; 3] = [
    Mode { name: "dedicated", args: &[] },
    Mode { name: "shared", args: &["--timer-mode", "shared"] },
    Mode { name: "2 workers", args: &["--workers", "2"] },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Recovered,
    Reported,
    Exited,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Reported => "reported",
            Outcome::Exited => "exited with message",
        }
    }
}

/// Which thread strace attaches to.
#[derive(Clone, Copy)]
enum Target {
    /// The whole process (`-f`).
    Process,
    /// One thread, by name (`worker-0`, or `demo-server` for the main one).
    Thread(&'static str),
}

/// One server row.
struct Scenario {
    site: &'static str,
    syscall: &'static str,
    errno: &'static str,
    /// Server arguments beyond the mode's.
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// strace's `-e trace=`/`-e inject=`/`-P` arguments.
    strace: &'static [&'static str],
    target: Target,
    /// The configurations it applies to, when not every one: heartbeat
    /// timerfds exist only in dedicated mode, heartbeat heaps only in shared.
    only: Option<&'static str>,
    /// Before strace attaches: open what the trigger needs.
    setup: fn(&Server) -> Option<TcpStream>,
    /// After it attaches: make the call happen, and check what the client
    /// saw. `Ok` carries a word of detail.
    trigger: fn(&mut Server, Option<TcpStream>) -> Result<String, String>,
    expect: Outcome,
}

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

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            site: "listener re-registration after an accept error",
            syscall: "epoll_ctl(ADD)",
            errno: "ENOSPC",
            args: &[],
            env: &[],
            strace: &[
                "-e",
                "trace=accept4,epoll_ctl",
                "-e",
                "inject=accept4:error=ENOBUFS:when=1",
                "-e",
                "inject=epoll_ctl:error=ENOSPC:when=2",
            ],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| {
                expect_status(ask(s, "/metrics"), "200").map(|_| "served after the retry".into())
            },
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "accept at the fd limit",
            syscall: "accept4",
            errno: "EMFILE",
            args: &[],
            env: &[],
            strace: &["-e", "trace=accept4", "-e", "inject=accept4:error=EMFILE:when=1"],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| match open_stream(s.addr, "fixed") {
                Opened::Refused(503) => Ok("client got 503 from the spare fd".into()),
                other => Err(format!("{other:?}")),
            },
            expect: Outcome::Reported,
        },
        Scenario {
            site: "accept of a client that gave up",
            syscall: "accept4",
            errno: "ECONNABORTED",
            args: &[],
            env: &[],
            strace: &["-e", "trace=accept4", "-e", "inject=accept4:error=ECONNABORTED:when=1"],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| expect_status(ask(s, "/metrics"), "200"),
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "a client's registration",
            syscall: "epoll_ctl(ADD)",
            errno: "ENOMEM",
            args: &[],
            env: &[],
            strace: &["-e", "trace=epoll_ctl", "-e", "inject=epoll_ctl:error=ENOMEM:when=1"],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| expect_status(ask(s, "/metrics"), "503"),
            expect: Outcome::Reported,
        },
        Scenario {
            site: "a connection's interest change (a pipelined backlog)",
            syscall: "epoll_ctl(MOD)",
            errno: "ENOMEM",
            args: &[],
            env: &[],
            strace: &["-e", "trace=epoll_ctl", "-e", "inject=epoll_ctl:error=ENOMEM:when=2"],
            target: Target::Process,
            only: None,
            setup: no_setup,
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
        },
        Scenario {
            site: "a connection's header deadline",
            syscall: "timerfd_settime",
            errno: "ENOMEM",
            args: &["--header-timeout", "1ms"],
            env: &[],
            // Every arm fails while strace is attached: the stats timer's
            // re-arms too (its clock is stranded, and heals after), so the
            // deadline's arm fails whenever the client comes.
            strace: &[
                "-e",
                "trace=timerfd_settime",
                "-e",
                "inject=timerfd_settime:error=ENOMEM:when=1+",
            ],
            target: Target::Process,
            only: None,
            setup: no_setup,
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
        },
        Scenario {
            site: "a stream's heartbeat timer",
            syscall: "timerfd_create",
            errno: "EMFILE",
            args: &[],
            env: &[],
            strace: &[
                "-e",
                "trace=timerfd_create",
                "-e",
                "inject=timerfd_create:error=EMFILE:when=1",
            ],
            target: Target::Process,
            only: Some("dedicated"),
            setup: no_setup,
            trigger: |s, _| match open_stream(s.addr, "fixed") {
                Opened::Refused(503) => Ok("client got 503".into()),
                other => Err(format!("{other:?}")),
            },
            expect: Outcome::Reported,
        },
        Scenario {
            site: "a shared clock's re-arm after a pass",
            syscall: "timerfd_settime",
            errno: "ENOMEM",
            args: &["--interval", "10ms"],
            env: &[],
            strace: &[
                "-e",
                "trace=timerfd_settime",
                "-e",
                "inject=timerfd_settime:error=ENOMEM:when=1",
            ],
            target: Target::Process,
            only: Some("shared"),
            setup: stream,
            trigger: |_, s| heartbeats(&mut s.ok_or("no stream")?, 20),
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "the read of a ready timerfd, transient",
            syscall: "read",
            errno: "ENOMEM",
            args: &["--interval", "10ms"],
            env: &[],
            strace: &[
                "-e",
                "trace=read",
                "-P",
                "anon_inode:[timerfd]",
                "-e",
                "inject=read:error=ENOMEM:when=1",
            ],
            target: Target::Process,
            only: None,
            setup: stream,
            trigger: |_, s| heartbeats(&mut s.ok_or("no stream")?, 20),
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "the read of a ready timerfd, not transient",
            syscall: "read",
            errno: "EIO",
            args: &["--interval", "10ms"],
            env: &[],
            strace: &[
                "-e",
                "trace=read",
                "-P",
                "anon_inode:[timerfd]",
                "-e",
                "inject=read:error=EIO:when=1",
            ],
            target: Target::Process,
            only: None,
            setup: stream,
            trigger: |_, _| Ok(String::new()),
            expect: Outcome::Exited,
        },
        Scenario {
            site: "a stream's deregistration when its client leaves",
            syscall: "epoll_ctl(DEL)",
            errno: "ENOMEM",
            args: &[],
            env: &[],
            strace: &["-e", "trace=epoll_ctl", "-e", "inject=epoll_ctl:error=ENOMEM:when=1"],
            target: Target::Process,
            only: None,
            setup: stream,
            trigger: |_, s| {
                drop(s);
                Ok("client left; the fd was parked, then closed".into())
            },
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "a heartbeat's send",
            syscall: "sendto",
            errno: "EPIPE",
            args: &["--interval", "10ms"],
            env: &[],
            strace: &["-e", "trace=sendto", "-e", "inject=sendto:error=EPIPE:when=1"],
            target: Target::Process,
            only: None,
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
        },
        Scenario {
            site: "a worker's wait, transient",
            syscall: "epoll_pwait",
            errno: "ENOMEM",
            args: &[],
            env: &[],
            strace: &["-e", "trace=epoll_pwait", "-e", "inject=epoll_pwait:error=ENOMEM:when=1..3"],
            target: Target::Thread("worker-0"),
            only: None,
            setup: no_setup,
            trigger: |s, _| {
                let r = expect_status(ask(s, "/metrics"), "200")?;
                let said = s.process.stderr();
                match said.contains("a system call under the event loop failed") {
                    true => Ok(format!("{r}; logged once, backed off")),
                    false => Err(format!("not logged: {said}")),
                }
            },
            expect: Outcome::Recovered,
        },
        Scenario {
            site: "a worker's wait, fatal",
            syscall: "epoll_pwait",
            errno: "EBADF",
            args: &[],
            env: &[],
            strace: &["-e", "trace=epoll_pwait", "-e", "inject=epoll_pwait:error=EBADF:when=1"],
            target: Target::Thread("worker-0"),
            only: None,
            setup: no_setup,
            trigger: |_, _| Ok(String::new()),
            expect: Outcome::Exited,
        },
        Scenario {
            site: "a dying worker's wake of the main thread",
            syscall: "write (eventfd)",
            errno: "EIO",
            args: &[],
            env: &[("DEMO_SERVER_TEST_PANIC", "1")],
            strace: &[
                "-e",
                "trace=write",
                "-P",
                "anon_inode:[eventfd]",
                "-e",
                "inject=write:error=EIO",
            ],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| {
                drop(TcpStream::connect_timeout(&s.addr, SOON)); // worker 0 panics on it
                Ok(String::new())
            },
            expect: Outcome::Exited,
        },
        Scenario {
            site: "the signalfd's read, interrupted",
            syscall: "read (signalfd)",
            errno: "EINTR x1000",
            args: &[],
            env: &[],
            strace: &[
                "-e",
                "trace=read",
                "-P",
                "anon_inode:[signalfd]",
                "-e",
                "inject=read:error=EINTR:when=1..1000",
            ],
            target: Target::Process,
            only: None,
            setup: no_setup,
            trigger: |s, _| {
                s.process.signal(rustix::process::Signal::TERM).map_err(|e| e.to_string())?;
                match s.process.wait_exit(SOON).and_then(|st| st.code()) {
                    Some(0) => Ok("SIGTERM still shut it down cleanly (exit 0)".into()),
                    other => Err(format!("exit {other:?}")),
                }
            },
            expect: Outcome::Recovered,
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

/// strace attached to `tid` (`-f` when it is the process), until dropped.
struct Strace {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Strace {
    fn attach(pid: u32, tid: u32, follow: bool, args: &[&str]) -> Result<Strace, String> {
        let log = std::env::temp_dir().join(format!("faults-{pid}-{tid}.strace"));
        let mut cmd = Command::new("strace");
        cmd.args(["-qq", "-o"]).arg(&log).args(args).args(["-p", &tid.to_string()]);
        if follow {
            cmd.arg("-f");
        }
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
        let tracer = child.id().to_string();
        let traced = |t: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).is_ok_and(|s| {
                s.lines().any(|l| l.strip_prefix("TracerPid:").is_some_and(|v| v.trim() == tracer))
            })
        };
        let deadline = Instant::now() + SOON;
        let mut child = child;
        loop {
            // The injection may hit at once and end what it traced (a thread
            // that exits, and strace with it): that counts as attached.
            if child.try_wait().is_ok_and(|s| s.is_some()) {
                return Ok(Strace { child, log });
            }
            let tasks: Vec<u32> = match follow {
                true => std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|d| {
                        d.flatten().filter_map(|t| t.file_name().to_str()?.parse().ok()).collect()
                    })
                    .unwrap_or_default(),
                false => vec![tid],
            };
            let gone = |t: u32| !std::path::Path::new(&format!("/proc/{pid}/task/{t}")).exists();
            if tasks.iter().all(|&t| traced(t) || gone(t)) {
                return Ok(Strace { child, log });
            }
            if Instant::now() > deadline {
                return Err("strace never attached".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop tracing; the calls that were failed on purpose.
    fn finish(mut self) -> Vec<String> {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _gone = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let _reaped = self.child.wait();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        std::fs::remove_file(&self.log).ok();
        log.lines().filter(|l| l.contains("INJECTED")).map(str::to_string).collect()
    }
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

fn run_server(
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
    let (tid, follow) = match sc.target {
        Target::Process => (server.pid, true),
        Target::Thread(name) => (thread(server.pid, name).ok_or("no such thread")?, false),
    };
    let strace = Strace::attach(server.pid, tid, follow, sc.strace)?;
    let detail = (sc.trigger)(&mut server, setup);
    if sc.expect == Outcome::Exited {
        let status = server.process.wait_exit(SOON);
        let injected = strace.finish();
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
    let injected = strace.finish();
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

/// The reactor's own rows: a small reactor program (this binary, re-run
/// under `strace -f -e inject`) per call site.
fn reactor_rows() -> Vec<(&'static str, &'static str, &'static str, &'static [&'static str])> {
    vec![
        (
            "a shared clock's re-arm after a pass",
            "timerfd_settime",
            "ENOMEM",
            &["-e", "trace=timerfd_settime", "-e", "inject=timerfd_settime:error=ENOMEM:when=3"],
        ),
        (
            "the read of a ready timerfd",
            "read",
            "EIO",
            &[
                "-e",
                "trace=read",
                "-P",
                "anon_inode:[timerfd]",
                "-e",
                "inject=read:error=EIO:when=1",
            ],
        ),
        (
            "a handle's EPOLL_CTL_DEL",
            "epoll_ctl(DEL)",
            "ENOMEM",
            &["-e", "trace=epoll_ctl", "-e", "inject=epoll_ctl:error=ENOMEM:when=2"],
        ),
        (
            "a signalfd read, interrupted",
            "read (signalfd)",
            "EINTR x30000",
            &[
                "-e",
                "trace=read",
                "-P",
                "anon_inode:[signalfd]",
                "-e",
                "inject=read:error=EINTR:when=1..30000",
            ],
        ),
        (
            "a channel send's wake-up",
            "write (eventfd)",
            "EIO x3",
            &[
                "-e",
                "trace=write",
                "-P",
                "anon_inode:[eventfd]",
                "-e",
                "inject=write:error=EIO:when=1..3",
            ],
        ),
        (
            "epoll_wait",
            "epoll_pwait",
            "EBADF",
            &["-e", "trace=epoll_pwait", "-e", "inject=epoll_pwait:error=EBADF:when=1"],
        ),
        (
            "a dedicated timer's add",
            "timerfd_create",
            "EMFILE",
            &["-e", "trace=timerfd_create", "-e", "inject=timerfd_create:error=EMFILE:when=1"],
        ),
    ]
}

/// The small reactor program: scenario `n` of [`reactor_rows`]; prints
/// `OUTCOME=word DETAIL=...`.
fn reactor_child(n: usize) {
    use reactor::{Error, Expiration, Interest, Reactor, Signal, TimerMode};
    let r = Reactor::new().expect("a reactor");
    let every = Expiration::every(Duration::from_millis(10));
    let count = Rc::new(Cell::new(0u64));
    let (outcome, detail) = match n {
        0 | 1 => {
            let mode = if n == 0 { TimerMode::Shared } else { TimerMode::Dedicated };
            let c = count.clone();
            let _t = r.add_timer(mode, every, move |_, k| c.set(c.get() + k)).expect("a timer");
            let mut retrying = 0;
            let until = Instant::now() + SOON;
            while count.get() < 20 && Instant::now() < until {
                if let Err(Error::Retrying { .. }) = r.turn(Some(SOON)) {
                    retrying += 1;
                }
            }
            let ok = count.get() >= 20 && retrying >= 1;
            (
                if ok { "recovered" } else { "FAIL" },
                format!("{} ticks; turn reported it {retrying}x", count.get()),
            )
        }
        2 => {
            let (a, _b) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .expect("a pair");
            let io = r.add_io(a, Interest::READABLE, |_, _| {}).expect("an io");
            drop(io);
            let first = r.turn(Some(Duration::ZERO));
            let second = r.turn(Some(Duration::ZERO));
            let ok = matches!(first, Err(Error::Retrying { .. }))
                && second.is_ok()
                && r.stats().io_sources == 0;
            (if ok { "recovered" } else { "FAIL" }, "fd parked, DEL retried next turn".to_string())
        }
        3 => {
            let c = count.clone();
            let _s = r.add_signals(&[Signal::USR1], move |_, _| c.set(1)).expect("signals");
            // The only thread blocks SIGUSR1 (the source did): it stays pending for the signalfd.
            let me = rustix::process::getpid();
            rustix::process::kill_process(me, rustix::process::Signal::USR1).expect("kill");
            let ok = r.run_until_timeout(SOON, || count.get() == 1).unwrap_or(false);
            (if ok { "recovered" } else { "FAIL" }, "retried in a loop; delivered".to_string())
        }
        4 => {
            let ch = r.channel(|_, _: reactor::channel::Event<u32>| {}).expect("a channel");
            let sent = ch.sender().send(1);
            let ok = matches!(sent, Err(reactor::channel::SendError::Failed(1, _)));
            (if ok { "reported" } else { "FAIL" }, "send gave the message back".to_string())
        }
        5 => {
            let ok = matches!(r.turn(Some(Duration::ZERO)), Err(Error::Os(e)) if e == rustix::io::Errno::BADF);
            (if ok { "reported" } else { "FAIL" }, "turn returned it (fatal)".to_string())
        }
        _ => {
            let got = r.add_timer(TimerMode::Dedicated, every, |_, _| {});
            let ok = got.is_err() && r.stats().timers() == 0;
            (if ok { "reported" } else { "FAIL" }, "add returned it; nothing left".to_string())
        }
    };
    println!("OUTCOME={outcome} DETAIL={detail}");
}

fn run_reactor(n: usize, args: &[&str]) -> Result<(String, String), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(args)
        .arg(me)
        .args(["reactor-child", &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OUTCOME="))
        .ok_or_else(|| format!("no outcome: {text}"))?;
    let (outcome, detail) = line.split_once(" DETAIL=").unwrap_or((line, ""));
    let outcome = outcome.trim_start_matches("OUTCOME=");
    match outcome {
        "FAIL" => Err(detail.to_string()),
        word => Ok((word.to_string(), detail.to_string())),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reactor-child") {
        return reactor_child(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0));
    }
    let quick = args.iter().any(|a| a == "--quick");
    if !Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: strace is not installed (apt install strace)");
        return;
    }
    let bin = launcher::binary().unwrap_or_else(|e| {
        eprintln!("faults: {e}");
        std::process::exit(2)
    });
    let modes: &[Mode] = if quick { &MODES[..1] } else { &MODES };
    let mut failed = 0;
    println!("| layer | call site | syscall | errno | configuration | outcome | what happened |");
    println!("|---|---|---|---|---|---|---|");
    for sc in scenarios() {
        for &mode in modes {
            if sc.only.is_some_and(|only| only != mode.name) {
                continue;
            }
            let (word, detail) = match run_server(&sc, mode, &bin) {
                Ok((outcome, detail)) => (outcome.word().to_string(), detail),
                Err(e) => {
                    failed += 1;
                    ("**FAIL**".to_string(), e)
                }
            };
            println!(
                "| server | {} | `{}` | {} | {} | {word} | {} |",
                sc.site,
                sc.syscall,
                sc.errno,
                mode.name,
                detail.replace('|', "/")
            );
        }
    }
    for (n, (site, syscall, errno, args)) in reactor_rows().into_iter().enumerate() {
        let (word, detail) = match run_reactor(n, args) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                ("**FAIL**".to_string(), e)
            }
        };
        println!("| reactor | {site} | `{syscall}` | {errno} | both modes | {word} | {detail} |");
    }
    if failed > 0 {
        eprintln!("faults: {failed} row(s) failed");
        std::process::exit(1);
    }
}
