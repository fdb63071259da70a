//! Fault injection: re-run one test of the current test binary under
//! `strace -e inject=...`, so that a chosen system call fails underneath
//! it, and hand back what the child printed and what strace logged.
//!
//! A test that uses this has two halves. In the child ([`in_child`] is
//! true) it does the work and prints `KEY=value` lines; in the parent it
//! calls [`rerun`] and checks both the child's report and the strace log,
//! whose `(INJECTED)` lines prove that the intended call failed, so the
//! test does not depend on timing. `strace` counts `when=N` per thread: the
//! child's scenario runs on one thread, and each scenario names its calls
//! exactly (`-P` narrows them to one kind of fd).

use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "TEST_SUPPORT_INJECTED_CHILD";

/// strace options that trace `call` and fail it with `errno` at the calls
/// `when` counts (strace's syntax: `1`, `2+`, `1..3`), per thread.
pub fn fail(call: &str, errno: &str, when: &str) -> Vec<String> {
    let inject = format!("inject={call}:error={errno}:when={when}");
    vec!["-e".into(), format!("trace={call}"), "-e".into(), inject]
}

/// [`fail`], on the fds whose `/proc` link is `path` only (`-P`, as in
/// `anon_inode:[eventfd]`).
pub fn fail_on(path: &str, call: &str, errno: &str, when: &str) -> Vec<String> {
    let mut args = fail(call, errno, when);
    args.splice(2..2, ["-P".to_string(), path.to_string()]);
    args
}

/// Whether this process is the child [`rerun`] started.
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// What a child run under strace printed and did.
#[derive(Debug)]
pub struct Injected {
    /// Whether the child test passed.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// strace's log.
    pub log: String,
}

impl Injected {
    /// The strace lines of calls that were failed on purpose.
    pub fn injected(&self) -> Vec<&str> {
        self.log.lines().filter(|l| l.contains("(INJECTED)")).collect()
    }

    /// The value the child printed as `KEY=value`, anywhere in a line (the
    /// harness may have printed `test NAME ... ` before it).
    pub fn value(&self, key: &str) -> Option<&str> {
        let needle = format!("{key}=");
        self.stdout
            .lines()
            .find_map(|l| l.split_once(&needle).map(|(_, v)| v.split_whitespace().next()))
            .flatten()
    }

    /// [`value`](Self::value) parsed as a number, 0 when absent.
    pub fn number(&self, key: &str) -> u64 {
        self.value(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// Run test `name` of this binary again, under `strace -f -qq` with
/// `strace_args` (the `-e trace=`, `-e inject=` and `-P` options), with
/// [`in_child`] true. `None`, printing a SKIPPED line, without strace.
pub fn rerun(name: &str, strace_args: &[impl AsRef<std::ffi::OsStr>]) -> Option<Injected> {
    if !crate::have("strace") {
        return None;
    }
    let log = std::env::temp_dir().join(format!("inject-{}-{name}.strace", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args(strace_args)
        .arg(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("strace runs");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_file(&log).ok();
    Some(Injected {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        log: text,
    })
}

/// `strace -f` attached to a running process, failing the calls its
/// `-e inject=` arguments name. Counting starts at the attach, so a
/// scenario warms the process up first and triggers the call after.
pub struct Attached {
    strace: std::process::Child,
    log: std::path::PathBuf,
}

/// Attach `strace -f -qq -p PID` with `strace_args`, and wait (bounded)
/// until every thread of `pid` is traced. `None` without strace, printing a
/// SKIPPED line.
pub fn attach(pid: u32, strace_args: &[impl AsRef<std::ffi::OsStr>]) -> Option<Attached> {
    if !crate::have("strace") {
        return None;
    }
    Some(attach_to(pid, None, strace_args).expect("strace never attached"))
}

/// Attach strace to thread `tid` of `pid` alone, or (`None`) to every
/// thread with `-f`, and wait (at most 5 s) until each is traced. An
/// injection may hit at once and end what it traced (and strace with it):
/// that counts as attached.
pub fn attach_to(
    pid: u32,
    tid: Option<u32>,
    strace_args: &[impl AsRef<std::ffi::OsStr>],
) -> Result<Attached, String> {
    let target = tid.unwrap_or(pid);
    let log = std::env::temp_dir().join(format!("attach-{}-{target}.strace", std::process::id()));
    let mut cmd = Command::new("strace");
    cmd.args(["-qq", "-o"]).arg(&log).args(strace_args).args(["-p", &target.to_string()]);
    if tid.is_none() {
        cmd.arg("-f");
    }
    let stdio = std::process::Stdio::null;
    let strace = cmd.stdout(stdio()).stderr(stdio()).spawn().map_err(|e| e.to_string())?;
    let mut attached = Attached { strace, log };
    let tracer = attached.strace.id().to_string();
    let traced = |t: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).is_ok_and(|s| {
            s.lines().any(|l| l.strip_prefix("TracerPid:").is_some_and(|v| v.trim() == tracer))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if attached.strace.try_wait().is_ok_and(|s| s.is_some()) {
            return Ok(attached);
        }
        let tasks: Vec<String> = match tid {
            Some(tid) => vec![tid.to_string()],
            None => std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| {
                    d.flatten().map(|t| t.file_name().to_string_lossy().into_owned()).collect()
                })
                .unwrap_or_default(),
        };
        let gone = |t: &str| !std::path::Path::new(&format!("/proc/{pid}/task/{t}")).exists();
        if tasks.iter().all(|t| traced(t) || gone(t)) {
            return Ok(attached);
        }
        if Instant::now() > deadline {
            attached.stop();
            return Err("strace never attached".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Attached {
    /// Detach (strace lets go on SIGINT) and return the lines of the calls
    /// that were failed on purpose.
    pub fn injected(self) -> Vec<String> {
        let log = self.finish();
        log.lines().filter(|l| l.contains("(INJECTED)")).map(str::to_string).collect()
    }

    /// Detach (strace lets go on SIGINT) and return its log.
    pub fn finish(mut self) -> String {
        self.stop();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.strace.id() as i32) {
            // Already gone (the traced process exited): nothing to stop.
            let _gone = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let _reaped = self.strace.wait();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_file(&self.log).ok();
    }
}
