//! `inspect` live: against this test's own process (library) and against a
//! running server (the command, text and JSON, one-shot and --watch).

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use common::{Server, open_stream, wait_until};
use demo_server::inspect::{FdKind, InspectError, snapshot};
use reactor::Token;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use timerfd_sys::{Clock, Expiration, TimerFd};

#[test]
fn our_own_timerfd_and_epoll_are_seen_as_the_kernel_holds_them() {
    let timer = TimerFd::new(Clock::Boottime).unwrap();
    timer
        .set(Expiration::Every {
            first: Duration::from_secs(50),
            period: Duration::from_millis(250),
        })
        .unwrap();
    let poller = epoll::create(CreateFlags::CLOEXEC).unwrap();
    let data = EventData::new_u64(Token::new(7, 1).as_u64());
    epoll::add(&poller, &timer, data, EventFlags::IN | EventFlags::ET).unwrap();

    let snap = snapshot(std::process::id()).unwrap();
    let t = snap.fds.iter().find(|e| e.fd == timer.as_raw_fd()).expect("our timerfd is listed");
    assert_eq!(t.kind, FdKind::Timerfd);
    let info = t.timer.as_ref().expect("timer state parsed from fdinfo");
    assert_eq!(info.clock, "CLOCK_BOOTTIME");
    assert_eq!(info.interval, Duration::from_millis(250));
    assert!(info.remaining <= Duration::from_secs(50) && info.remaining > Duration::from_secs(40));
    assert!(!info.abstime && !info.cancel_on_set);

    let ep = snap.fds.iter().find(|e| e.fd == poller.as_raw_fd()).expect("our epoll is listed");
    assert_eq!(ep.kind, FdKind::Eventpoll);
    let watch =
        ep.watches.iter().find(|w| w.fd == timer.as_raw_fd()).expect("the registration is visible");
    assert_eq!(watch.events & 0x1, 0x1, "EPOLLIN");
    assert_eq!(watch.events & (1 << 31), 1 << 31, "EPOLLET");
    assert_eq!(
        snap.resolve(watch).map(|e| e.kind),
        Some(FdKind::Timerfd),
        "joined by fd and inode"
    );
    assert!(snap.render().contains("CLOCK_BOOTTIME"));
    assert!(snap.nofile_soft.is_some() && snap.threads >= 1);
}

#[test]
fn a_missing_process_is_a_clear_error() {
    assert_eq!(snapshot(u32::MAX - 1), Err(InspectError::NoProcess(u32::MAX - 1)));
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["inspect", "4294967294"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process 4294967294"));
}

#[test]
fn the_command_reports_a_servers_timerfds_and_epoll_in_text_and_json() {
    let server = Server::start(&["--interval", "300ms"]);
    let _stream = open_stream(server.addr, "fixed");
    assert!(wait_until(common::SOON, || server.timerfds() >= 2));
    let bin = env!("CARGO_BIN_EXE_demo-server");
    let text = Command::new(bin).args(["inspect", &server.pid.to_string()]).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("(demo-server)") && text.contains("legend:"), "{text}");
    assert!(text.contains("300ms"), "the heartbeat's interval: {text}");

    let json =
        Command::new(bin).args(["inspect", &server.pid.to_string(), "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["pid"], server.pid);
    assert_eq!(v["by_kind"]["timerfd"].as_u64().unwrap() as usize, server.timerfds());
    let heartbeat = v["fds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["timer"]["interval_ns"] == 300_000_000u64)
        .expect("the heartbeat timerfd");
    let fd = heartbeat["fd"].clone();
    let watched = v["fds"].as_array().unwrap().iter().any(|f| {
        f["watches"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["fd"] == fd && w["kind"] == "timerfd"))
    });
    assert!(watched, "the heartbeat timerfd is registered in an epoll: {v}");
}

#[test]
fn watch_prints_lines_and_ends_cleanly_when_the_process_exits() {
    let mut server = Server::start(&[]);
    let mut watch = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["inspect", &server.pid.to_string(), "--watch", "50ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = watch.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = std::io::Read::read(&mut out, &mut first).unwrap(); // it has started printing
    server.signal(rustix::process::Signal::TERM);
    server.wait_exit(Duration::from_secs(2)).unwrap();
    let mut rest = String::from_utf8_lossy(&first[..n]).into_owned();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = watch.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("fds ")
            && rest.trim_end().ends_with(&format!("process {} exited", server.pid)),
        "{rest}"
    );
}

/// Whether this test runs as root with `setpriv` at hand (the privilege
/// checks below need both); prints why not.
fn can_drop_privileges() -> bool {
    let root = rustix::process::geteuid().is_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && setpriv) {
        println!("SKIPPED: needs root and setpriv (root: {root}, setpriv: {setpriv})");
    }
    root && setpriv
}

#[test]
fn an_unreadable_process_is_permission_denied_and_a_failure() {
    if !can_drop_privileges() {
        return;
    }
    // A process of another user (nobody), inspected by root without
    // CAP_SYS_PTRACE: /proc/PID/fd lists (CAP_DAC_OVERRIDE), but every
    // readlink is EACCES. It used to report "0 open, N closed while being
    // read" and exit 0.
    let sleeper = common::Proc::from(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30"])
            .spawn()
            .unwrap(),
    );
    let pid = sleeper.child.id().to_string();
    // Wait (bounded) until setpriv has become sleep as nobody.
    assert!(wait_until(common::SOON, || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| s.contains("Name:\tsleep") && s.contains("Uid:\t65534"))
    }));
    let bin = env!("CARGO_BIN_EXE_demo-server");
    let no_ptrace = Command::new("setpriv")
        .args(["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", bin, "inspect", &pid])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&no_ptrace.stderr);
    assert_eq!(
        no_ptrace.status.code(),
        Some(1),
        "{err}{}",
        String::from_utf8_lossy(&no_ptrace.stdout)
    );
    assert!(err.contains(&format!("permission denied reading /proc/{pid}/fd")), "{err}");
    assert!(no_ptrace.stdout.is_empty(), "no report of 0 fds");

    // And as nobody, this (root's) process: the fd directory itself is closed.
    let me = std::process::id().to_string();
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin, "inspect", &me])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&as_nobody.stderr);
    assert_eq!(as_nobody.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn watch_zero_is_refused_not_silently_changed() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["inspect", &std::process::id().to_string(), "--watch", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--watch must be at least 10ms"), "{err}");
}

#[test]
fn watch_keeps_its_cadence_with_10000_fds() {
    // This process holds 10,000 fds (dups of /dev/null): a snapshot of it
    // takes about 130 ms, which used to be added to every interval (a 1 s
    // watch printed every 1.1 s).
    let room = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if room.unwrap_or(u64::MAX) < 11_000 {
        println!("SKIPPED: RLIMIT_NOFILE {room:?} is below 11,000");
        return;
    }
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let held: Vec<std::fs::File> = (0..10_000).map(|_| devnull.try_clone().unwrap()).collect();
    let watch = common::Proc::from(
        Command::new(env!("CARGO_BIN_EXE_demo-server"))
            .args(["inspect", &std::process::id().to_string(), "--watch", "500ms"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut watch = watch;
    let out = watch.child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    // Each line starts with the watch's own clock: "    2.6s  fds  10008 ...".
    let mut at = Vec::new();
    for _ in 0..8 {
        let line = lines.next().expect("a line").unwrap();
        let secs: f64 =
            line.split_whitespace().next().unwrap().trim_end_matches('s').parse().unwrap();
        let fds: usize = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(fds >= 10_000, "{line}");
        at.push(secs);
    }
    drop(held);
    // Each line is stamped when its snapshot began, and every one begins on
    // the grid 0, 0.5, 1.0, ... s (printed to 0.1 s; a snapshot slower than
    // 500 ms on a loaded machine skips a tick, still on the grid). Sleeping
    // 500 ms after each snapshot drifted off it: 0, 0.63, 1.26, 1.89, ...
    // A line may be late when the machine is busy (the watch thread woke
    // late); drift puts most lines off the grid (with the old 130 ms a line,
    // 4 of 8 at best), so at least 6 of 8 on it tells the two apart.
    let on_grid = at.iter().filter(|t| (*t * 2.0 - (*t * 2.0).round()).abs() / 2.0 <= 0.12);
    assert!(on_grid.count() >= 6, "lines off the 500 ms grid: {at:?}");
    assert!(at.windows(2).all(|w| w[1] > w[0]), "{at:?}");
}

#[test]
fn watch_json_lines_carry_a_timestamp_and_deltas() {
    let server = Server::start(&["--interval", "1s"]);
    let mut watch = common::Proc::from(
        Command::new(env!("CARGO_BIN_EXE_demo-server"))
            .args(["inspect", &server.pid.to_string(), "--watch", "50ms", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = watch.child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    let mut next = || -> serde_json::Value {
        serde_json::from_str(&lines.next().expect("a line").unwrap()).unwrap()
    };
    let first = next();
    assert_eq!(first["deltas"]["open"], 0, "the first line has nothing to compare with");
    let streams: Vec<_> = (0..5).map(|_| open_stream(server.addr, "fixed")).collect();
    let mut last = first.clone();
    let grew = wait_until(common::SOON, || {
        let line = next();
        assert!(line["t_unix_ms"].as_u64() > last["t_unix_ms"].as_u64(), "{line}");
        assert!(line["elapsed_s"].as_f64() > last["elapsed_s"].as_f64());
        assert_eq!(
            line["deltas"]["open"].as_i64().unwrap(),
            line["open"].as_i64().unwrap() - last["open"].as_i64().unwrap(),
            "deltas are against the line before"
        );
        last = line;
        last["open"].as_u64().unwrap() >= first["open"].as_u64().unwrap() + 10
    });
    assert!(grew, "5 streams (a socket and a timerfd each) show up: {last}");
    assert_eq!(last["pid"], server.pid, "the report is there too");
    drop(streams);
}
