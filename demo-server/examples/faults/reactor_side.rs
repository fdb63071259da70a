//! The reactor's rows: a small reactor program (this binary, re-run under
//! `strace -f -e inject`) per call site, printing `OUTCOME=word DETAIL=...`.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use test_support::strace::{fail, fail_on};

use crate::SOON;

/// The reactor's own rows: a small reactor program (this binary, re-run
/// under `strace -f -e inject`) per call site.
pub fn reactor_rows() -> Vec<(&'static str, &'static str, &'static str, Vec<String>)> {
    vec![
        (
            "a shared clock's re-arm after a pass",
            "timerfd_settime",
            "ENOMEM",
            fail("timerfd_settime", "ENOMEM", "3"),
        ),
        (
            "the read of a ready timerfd",
            "read",
            "EIO",
            fail_on("anon_inode:[timerfd]", "read", "EIO", "1"),
        ),
        ("a handle's EPOLL_CTL_DEL", "epoll_ctl(DEL)", "ENOMEM", fail("epoll_ctl", "ENOMEM", "2")),
        (
            "a signalfd read, interrupted",
            "read (signalfd)",
            "EINTR x30000",
            fail_on("anon_inode:[signalfd]", "read", "EINTR", "1..30000"),
        ),
        (
            "a channel send's wake-up",
            "write (eventfd)",
            "EIO x3",
            fail_on("anon_inode:[eventfd]", "write", "EIO", "1..3"),
        ),
        ("epoll_wait", "epoll_pwait", "EBADF", fail("epoll_pwait", "EBADF", "1")),
        (
            "a dedicated timer's add",
            "timerfd_create",
            "EMFILE",
            fail("timerfd_create", "EMFILE", "1"),
        ),
    ]
}

/// The small reactor program: scenario `n` of [`reactor_rows`]; prints
/// `OUTCOME=word DETAIL=...`.
pub fn reactor_child(n: usize) {
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

pub fn run_reactor(n: usize, args: &[String]) -> Result<(String, String), String> {
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
