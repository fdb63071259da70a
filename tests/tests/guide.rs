//! The commands docs/GUIDE.md shows, run as a reader would run them.
//! (inspect and leak-demo have their own test files.)

use std::path::Path;
use std::process::Command;

use test_support::have;
use test_support::text::{mask, masked_collapsed, matches};

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
    let printed = script_output.split("\n== while the fixed stream").next().unwrap_or("");
    let (want, got) = (masked_collapsed(&wakes(excerpt)), masked_collapsed(&wakes(printed)));
    assert_eq!(
        want, got,
        "docs/GUIDE.md's trace-path.sh excerpt is stale; the script now prints:\n{printed}"
    );
    // Section 3: each `$ command` block the script printed while the stream
    // was live is in the guide under the same command (numbers masked), and
    // reads the same.
    let live = script_output.split("\n== while the fixed stream").nth(1).unwrap_or("");
    let blocks = commands(live);
    assert_eq!(blocks.len(), 3, "three views of the kernel:\n{live}");
    // In order: the two fdinfo commands differ only in their numbers.
    let masked: Vec<String> = blocks.iter().map(|(c, _)| mask(c)).collect();
    let shown: Vec<(String, String)> =
        guide_commands(&guide).into_iter().filter(|(c, _)| masked.contains(&mask(c))).collect();
    assert_eq!(shown.len(), blocks.len(), "the guide shows each view once: {shown:?}");
    for ((command, output), (_, excerpt)) in blocks.iter().zip(&shown) {
        if let Err(why) = matches(excerpt, output) {
            panic!("docs/GUIDE.md's `$ {command}` is stale: {why}\nthe script printed:\n{output}");
        }
    }
    let leaked = |t: &str| t.lines().find(|l| l.starts_with("GET /debug/fds")).map(mask);
    assert_eq!(leaked(&guide), leaked(live), "the guide's GET /debug/fds line is stale");
}

/// The `$ command` blocks of a text: each command with the lines after
/// it, up to the next `$ `, `GET ` or `full logs` line.
fn commands(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            out.push((command.to_string(), String::new()));
            open = true;
        } else if line.starts_with("GET ") || line.starts_with("full logs") {
            open = false;
        } else if let Some(last) = out.last_mut().filter(|_| open) {
            last.1 += line;
            last.1 += "\n";
        }
    }
    out
}

/// The `$ command` blocks of the guide's console excerpts.
fn guide_commands(guide: &str) -> Vec<(String, String)> {
    guide
        .split("```console\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .flat_map(commands)
        .collect()
}

/// Sections 2 and 3 come from one run, so their numbers agree: the
/// heartbeat's fd and token in the strace excerpt are the fd whose fdinfo
/// section 3 shows, the epoll fd it was added to is the one whose `tfd:`
/// lines are shown, with the same token, and `inspect` lists both; the
/// leaked timer `GET /debug/fds` names is a watched 200 ms timerfd too.
#[test]
fn the_guides_sections_2_and_3_agree_on_every_number() {
    let guide = std::fs::read_to_string(repo().join("docs/GUIDE.md")).unwrap();
    let number_after = |text: &str, before: &str, until: char| -> String {
        let at = text.find(before).unwrap_or_else(|| panic!("{before:?} not in the guide"));
        text[at + before.len()..].split(until).next().unwrap().trim().to_string()
    };
    let strace = guide.split("```console\n$ scripts/trace-path.sh\n").nth(1).unwrap();
    let strace = strace.split("\n```").next().unwrap();
    let heartbeat = number_after(strace, "== strace -f: the heartbeat timerfd (", ')');
    let add = strace.lines().find(|l| l.contains("EPOLL_CTL_ADD")).expect("an EPOLL_CTL_ADD line");
    let epoll = number_after(add, "epoll_ctl(", ',');
    assert!(add.contains(&format!("EPOLL_CTL_ADD, {heartbeat},")), "{add}");
    let token: u64 = number_after(add, "u64=", '}').parse().unwrap();
    let shown = commands(
        &guide
            .split("\n```")
            .map(|b| b.trim_start_matches("console\n"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let block = |command: &str| -> &str {
        let found = shown.iter().find(|(c, _)| c == command);
        &found.unwrap_or_else(|| panic!("no `$ {command}` block in section 3")).1
    };
    assert!(block(&format!("cat /proc/$PID/fdinfo/{heartbeat}")).contains("it_interval:"));
    let watches = block(&format!("cat /proc/$PID/fdinfo/{epoll}"));
    let watch = |fd: &str| watches.lines().find(|l| l.split_whitespace().nth(1) == Some(fd));
    let line =
        watch(&heartbeat).unwrap_or_else(|| panic!("epoll {epoll} does not watch {heartbeat}"));
    assert!(
        line.contains(&format!("data: {token:x} "))
            || line.contains(&format!("data: {token:x}\t"))
            || line.split_whitespace().any(|w| w == format!("{token:x}")),
        "{line}: token {token:x}"
    );
    let inspect = block("demo-server inspect $PID");
    assert!(inspect.contains(&format!("epoll fd {epoll} watches")), "{inspect}");
    let leaked = number_after(&guide, "GET /debug/fds: leaked timerfd(s): ", '\n');
    assert!(watch(&leaked).is_some(), "the leaked timer {leaked} is not among the watches");
    let listed = |fd: &str| {
        inspect.lines().any(|l| l.split_whitespace().next() == Some(fd) && l.contains("200ms"))
    };
    assert!(listed(&heartbeat) && listed(&leaked), "{inspect}");
    // The prose names them by the same numbers.
    assert!(guide.contains(&format!("heartbeat timer, fd {heartbeat} in section 2")));
    assert!(guide.contains(&format!("leaky stream's heartbeat (fd {leaked},")));
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

/// Section 5's prose reads docs/timeline.svg: the fds it names are the ones
/// the picture labels, and the picture shows what the prose says happens to
/// each (the fixed heartbeat read, then its DEL and close; the leaked one
/// read; the shared clock re-armed).
#[test]
fn the_guides_timeline_prose_names_what_the_picture_shows() {
    let guide = std::fs::read_to_string(repo().join("docs/GUIDE.md")).unwrap();
    let svg = std::fs::read_to_string(repo().join("docs/timeline.svg")).unwrap();
    let section = guide.split("## 5. The loop in time").nth(1).expect("section 5");
    let section = section.split("\n## ").next().unwrap().replace('\n', " ");
    let fd_after = |before: &str| -> String {
        let at = section.find(before).unwrap_or_else(|| panic!("{before:?} not in section 5"));
        let rest = &section[at + before.len()..];
        rest.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect()
    };
    let fixed = fd_after("the fixed stream's heartbeat");
    let leaked = fd_after("and the leaked one");
    let shared = fd_after("the shared clock");
    for needle in [
        format!("fd {fixed} ×1"),
        format!("fd {leaked}: leaked timer ×1"),
        format!("DEL fd {fixed}"),
        format!("close fd {fixed}"),
        format!("settime fd {shared}: shared clock"),
    ] {
        assert!(svg.contains(&needle), "docs/timeline.svg has no {needle:?}");
    }
    assert!(section.contains(&format!("`close fd {fixed}`")), "the prose names the close");
    assert!(!svg.contains(&format!("close fd {leaked}")), "the leaked timer is never closed");
}
