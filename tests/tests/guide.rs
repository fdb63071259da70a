//! The commands docs/GUIDE.md shows, run as a reader would run them.
//! (inspect and leak-demo have their own test files.)

use std::path::Path;
use std::process::Command;

use test_support::have;
use test_support::text::masked_collapsed;

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
        .env("DEMO_SERVER", test_support::server::demo_server_bin())
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
    guide_shows_what_the_script_prints(&text);
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
    // The guide's excerpt, down to the strace summary (whose rows change
    // from run to run), is what the script prints now.
    let guide = std::fs::read_to_string(repo().join("docs/GUIDE.md")).unwrap();
    let excerpt = guide
        .split("```console\n$ scripts/go-ticker-strace.sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("docs/GUIDE.md has the go-ticker-strace.sh excerpt");
    let head = |t: &str| -> Vec<String> {
        let upto = t
            .lines()
            .position(|l| l.starts_with("what the runtime waits with"))
            .map_or(0, |i| i + 1);
        t.lines().take(upto).map(test_support::text::mask).collect()
    };
    let (want, got) = (head(excerpt), head(&text));
    assert!(!want.is_empty(), "the excerpt lost its summary line");
    assert_eq!(
        want, got,
        "docs/GUIDE.md's go-ticker-strace.sh excerpt is stale; the script prints:\n{text}"
    );
}

/// The console excerpt in docs/GUIDE.md must be what `trace-path.sh`
/// prints today, once the fields that differ from run to run are masked
/// (`test_support::text`): every number becomes `N`, a wake-up's list of
/// ready events is not compared (the client's hang-up may land in the same
/// `epoll_pwait` as a heartbeat), and a heartbeat repeated a run-dependent
/// number of times counts once. A stale
/// guide (say, a syscall the code no longer makes the same way) fails here;
/// regenerate the excerpt with `scripts/trace-path.sh`.
fn guide_shows_what_the_script_prints(script_output: &str) {
    let guide = std::fs::read_to_string(repo().join("docs/GUIDE.md")).unwrap();
    let start = "```console\n$ scripts/trace-path.sh\n";
    let excerpt = guide.split(start).nth(1).and_then(|rest| rest.split("\n```").next());
    let excerpt = excerpt.expect("docs/GUIDE.md has the trace-path.sh console excerpt");
    let printed = script_output.split("\nfull logs in").next().unwrap_or(script_output);
    let (want, got) = (masked_collapsed(&wakes(excerpt)), masked_collapsed(&wakes(printed)));
    assert_eq!(
        want, got,
        "docs/GUIDE.md's trace-path.sh excerpt is stale; the script now prints:\n{printed}"
    );
}

/// `epoll_pwait(4, [{..}, {..}], 1024, -1, NULL, 8) = 2` becomes
/// `epoll_pwait(4, [...], 1024, -1, NULL, 8) = 2`: which other fds were
/// ready in the same wake-up is timing, not the data path.
fn wakes(text: &str) -> String {
    text.lines()
        .map(|line| without_ready_list(line).unwrap_or_else(|| line.into()) + "\n")
        .collect()
}

/// The line with its ready list masked, if it is a wake-up with one.
fn without_ready_list(line: &str) -> Option<String> {
    let call = line.find("epoll_pwait(").or(line.find("epoll_wait("))?;
    let open = call + line[call..].find('[')?;
    let close = line.rfind("], ").filter(|&close| close > open)?;
    Some(format!("{}[...{}", &line[..open], &line[close..]))
}

#[test]
fn a_wake_up_compares_without_its_ready_list() {
    let one = "9 epoll_pwait(4, [{events=EPOLLIN, data={u32=1, u64=1}}], 1024, -1, NULL, 8) = 1";
    let two = "9 epoll_pwait(4, [{events=EPOLLIN, data={u32=1, u64=1}}, \
               {events=EPOLLIN|EPOLLRDHUP, data={u32=2, u64=2}}], 1024, -1, NULL, 8) = 2";
    assert_eq!(masked_collapsed(&wakes(one)), masked_collapsed(&wakes(two)));
    assert_eq!(wakes(one), "9 epoll_pwait(4, [...], 1024, -1, NULL, 8) = 1\n");
    assert_eq!(wakes("read(5, ..) = 8"), "read(5, ..) = 8\n");
}
