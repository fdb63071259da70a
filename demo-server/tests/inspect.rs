//! `inspect` live: against this test's own process (library) and against a
//! running server (the command, text and JSON, one-shot and --watch).

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use common::{Server, open_stream, wait_until};
use demo_server::inspect::{FdKind, InspectError, snapshot};
use reactor::Token;
use reactor::poller::Poller;
use rustix::event::epoll::EventFlags;
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
    let poller = Poller::new().unwrap();
    poller
        .add(std::os::fd::AsFd::as_fd(&timer), Token::new(7, 1), EventFlags::IN | EventFlags::ET)
        .unwrap();

    let snap = snapshot(std::process::id()).unwrap();
    let t = snap.fds.iter().find(|e| e.fd == timer.as_raw_fd()).expect("our timerfd is listed");
    assert_eq!(t.kind, FdKind::Timerfd);
    let info = t.timer.as_ref().expect("timer state parsed from fdinfo");
    assert_eq!(info.clock, "CLOCK_BOOTTIME");
    assert_eq!(info.interval, Duration::from_millis(250));
    assert!(info.remaining <= Duration::from_secs(50) && info.remaining > Duration::from_secs(40));
    assert!(!info.abstime && !info.cancel_on_set);

    let ep = snap.fds.iter().find(|e| e.fd == poller.as_fd_raw()).expect("our epoll is listed");
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

trait RawEpoll {
    fn as_fd_raw(&self) -> i32;
}
impl RawEpoll for Poller {
    fn as_fd_raw(&self) -> i32 {
        std::os::fd::AsFd::as_fd(self).as_raw_fd()
    }
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
