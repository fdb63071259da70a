//! The `/proc` and `demo-server` excerpts in docs/GUIDE.md, regenerated from
//! a live server in the guide's scenario and compared with the guide after
//! masking what differs from run to run. (The strace excerpt is checked in
//! `guide.rs`, where `trace-path.sh` already runs.)
//!
//! The scenario: `--interval 500ms`, one client still on `/stream/fixed`,
//! one that has left `/stream/leaky` (its timer now an orphan).
//!
//! Masking: every number, decimal or hex (pids, fds, inodes, tokens, times)
//! becomes `N`, a duration like `N.Nms` becomes `DUR`, runs of spaces are
//! one, and the lines of each excerpt are compared as a sorted list, because
//! the kernel lists epoll watches in no fixed order. In the guide, a line
//! ending in `...` stands for every line that starts with what precedes it,
//! and a line that is only `...` for any lines at all.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use demo_server::client::{Opened, open_stream};
use test_support::server::{SOON, Server, demo_server_bin};
use test_support::text::{mask, matches};
use test_support::wait_until;

fn guide() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(repo.join("docs/GUIDE.md")).unwrap()
}

/// The console excerpt that starts with `$ {command}`, without that line.
fn excerpt<'g>(guide: &'g str, command: &str) -> &'g str {
    let start = format!("```console\n$ {command}\n");
    let rest =
        guide.split(&start).nth(1).unwrap_or_else(|| panic!("no `$ {command}` in the guide"));
    rest.split("\n```").next().unwrap()
}

fn fdinfo(pid: u32, fd: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap()
}

#[test]
fn the_guides_proc_and_inspect_excerpts_are_what_a_live_server_shows() {
    let server = Server::spawn(demo_server_bin(), &["--interval", "500ms"], &[]);
    let Opened::Stream(mut fixed) = open_stream(server.addr, "fixed") else { panic!("fixed") };
    let Opened::Stream(leaky) = open_stream(server.addr, "leaky") else { panic!("leaky") };
    drop(leaky);
    // Settled: the listener and the fixed client left as sockets, three timerfds
    // (housekeeping, the fixed heartbeat, the orphan).
    assert!(
        wait_until(SOON, || server.sockets() == 2 && server.timerfds() == 3),
        "{:?}",
        server.links()
    );
    let mut buf = [0u8; 256];
    let _ = fixed.read(&mut buf); // the stream is live

    let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{}/fd", server.pid))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).ok()?.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    let heartbeat = fds
        .iter()
        .filter(|(_, t)| t == "anon_inode:[timerfd]")
        .map(|(fd, _)| fdinfo(server.pid, fd))
        .find(|info| info.contains("it_interval: (0, 500000000)"))
        .expect("a heartbeat timerfd");
    let epoll = fds
        .iter()
        .filter(|(_, t)| t == "anon_inode:[eventpoll]")
        .map(|(fd, _)| fdinfo(server.pid, fd))
        .max_by_key(|info| info.matches("tfd:").count())
        .expect("an epoll fd");
    let inspect = Command::new(demo_server_bin())
        .args(["inspect", &server.pid.to_string()])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let inspect = String::from_utf8(inspect.stdout).unwrap();

    let guide = guide();
    let mut stale = Vec::new();
    for (command, output) in [
        ("cat /proc/$PID/fdinfo/16", heartbeat.as_str()),
        ("cat /proc/$PID/fdinfo/9", epoll.as_str()),
        ("demo-server inspect $PID", inspect.as_str()),
    ] {
        if let Err(why) = matches(excerpt(&guide, command), output) {
            stale.push(format!("`$ {command}` is stale:\n{why}\nit now prints:\n{output}"));
        }
    }
    assert!(stale.is_empty(), "docs/GUIDE.md:\n{}", stale.join("\n\n"));
}

#[test]
fn the_guides_leak_demo_verdict_is_what_leak_demo_prints() {
    let out = Command::new(demo_server_bin()).arg("leak-demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The guide shows the last lines after a `...`.
    let guide = guide();
    let shown = excerpt(&guide, "demo-server leak-demo --svg leak.svg");
    let tail: Vec<&str> = shown.lines().filter(|l| *l != "...").collect();
    let printed: Vec<&str> =
        text.lines().rev().take(tail.len()).collect::<Vec<_>>().into_iter().rev().collect();
    let (want, got): (Vec<String>, Vec<String>) =
        (tail.iter().map(|l| mask(l)).collect(), printed.iter().map(|l| mask(l)).collect());
    assert_eq!(
        want,
        got,
        "docs/GUIDE.md's leak-demo excerpt is stale; it now ends:\n{}",
        printed.join("\n")
    );
    let _ = Duration::ZERO;
}
