//! The commands docs/GUIDE.md shows, run as a reader would run them.
//! (inspect and leak-demo have their own test files.)

use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty());
    if !ok {
        println!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    }
    ok
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn trace_path_shows_the_syscalls_in_data_path_order() {
    if !have("strace") || !have("curl") {
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("trace-path-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(repo().join("scripts/trace-path.sh"))
        .arg(&out_dir)
        .env("DEMO_SERVER", env!("CARGO_BIN_EXE_demo-server"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&out_dir);

    let kernel: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("== strace")).collect();
    let steps = [
        "timerfd_create(CLOCK_MONOTONIC",
        "timerfd_settime(",
        "EPOLL_CTL_ADD",
        "epoll_pwait(",
        "read(",
        "sendto(",
        "EPOLL_CTL_DEL",
        "close(",
    ];
    let mut at = 0;
    for step in steps {
        let found = kernel[at..].iter().position(|l| l.contains(step));
        let Some(i) = found else { panic!("{step} missing after line {at} of:\n{text}") };
        at += i + 1;
    }
    assert!(kernel.iter().any(|l| l.contains(r#"sendto("#) && l.contains(r#""id: 1\n"#)), "{text}");
    // The reactor's own trace tells the same story.
    let reactor = text.split("== the reactor's lifecycle trace").nth(1).unwrap_or("");
    for step in [
        "timerfd_create",
        "timerfd_settime",
        "EPOLL_CTL_ADD",
        "expiration -> callback",
        "EPOLL_CTL_DEL",
        "close(",
    ] {
        assert!(reactor.contains(step), "{step} not in the reactor trace:\n{reactor}");
    }
}

#[test]
fn go_tickers_make_no_timerfd_calls() {
    if !have("go") || !have("strace") {
        return;
    }
    let out =
        Command::new("bash").arg(repo().join("scripts/go-ticker-strace.sh")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("timerfd calls: 0"), "{text}");
    assert!(text.contains("ticks received: 20"), "{text}");
}
