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

const CHILD_ENV: &str = "TEST_SUPPORT_INJECTED_CHILD";

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
pub fn rerun(name: &str, strace_args: &[&str]) -> Option<Injected> {
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
pub fn attach(pid: u32, strace_args: &[&str]) -> Option<Attached> {
    if !crate::have("strace") {
        return None;
    }
    let log = std::env::temp_dir().join(format!("attach-{}-{pid}.strace", std::process::id()));
    let strace = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args(strace_args)
        .args(["-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace runs");
    let tracer = strace.id().to_string();
    let traced = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                s.lines().any(|l| l.strip_prefix("TracerPid:").is_some_and(|v| v.trim() == tracer))
            })
        })
    };
    assert!(crate::wait_until(std::time::Duration::from_secs(5), traced), "strace never attached");
    Some(Attached { strace, log })
}

impl Attached {
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
