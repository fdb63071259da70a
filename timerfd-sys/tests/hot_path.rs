//! The cost promise: `set`, `get`, `disarm` and `read` are each exactly one
//! syscall and allocate nothing.
//!
//! * Allocation is counted by a global allocator, so this file holds only
//!   tests whose counting window sees this thread's work alone.
//! * Syscalls are counted by the kernel's view: the test re-runs itself under
//!   `strace` and counts the calls on the timer's fd. Without strace it skips
//!   with a printed reason (CI installs strace).

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use test_support::{CountingAlloc, allocations};
use timerfd_sys::{Clock, Expiration, TimerFd};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const ROUNDS: usize = 200;
const CHILD_ENV: &str = "TIMERFD_SYS_HOT_PATH_CHILD";

/// One round: set, get, read, disarm; absolute and relative alternate.
fn exercise(t: &TimerFd) -> u64 {
    let mut sum = 0;
    let now = Clock::Monotonic.now();
    for i in 0..ROUNDS {
        let exp = if i % 2 == 0 {
            Expiration::Once(Duration::ZERO)
        } else {
            Expiration::EveryAt { first: now, period: Duration::from_secs(1) }
        };
        t.set(exp).unwrap();
        sum += t.get().unwrap().map_or(0, |s| s.remaining.subsec_nanos() as u64 & 1);
        sum += t.read().unwrap();
        t.disarm().unwrap();
    }
    sum
}

#[test]
fn hot_path_makes_one_syscall_per_call_and_no_allocation() {
    let t = TimerFd::new(Clock::Monotonic).unwrap();
    if std::env::var_os(CHILD_ENV).is_some() {
        // Under strace: tell the parent which fd to count, then do the work.
        println!("TIMERFD={}", t.as_raw_fd());
        exercise(&t);
        return;
    }

    let before = allocations();
    let fired = exercise(&t);
    let after = allocations();
    assert_eq!(after - before, 0, "the hot path allocated {} times", after - before);
    assert!(fired > 0, "the zero-duration timers fired");

    if !test_support::have("strace") {
        return;
    }
    let log =
        std::env::temp_dir().join(format!("timerfd-sys-hot-path-{}.strace", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=timerfd_settime,timerfd_gettime,read", "-o"])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "hot_path_makes_one_syscall_per_call_and_no_allocation", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Not necessarily at the start of a line: a harness running one test at
    // a time (RUST_TEST_THREADS=1, or a one-CPU machine) has printed
    // "test NAME ... " on that line before the test runs.
    let fd: i32 = stdout
        .lines()
        .find_map(|l| l.split_once("TIMERFD=").map(|(_, fd)| fd))
        .unwrap_or_else(|| panic!("child printed no fd: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    let trace = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).ok();
    let count = |call: &str| {
        // -y prints each fd with what it is, so a file that held the same
        // number earlier is not counted.
        let needle = format!("{call}({fd}<anon_inode:[timerfd]>,");
        trace.lines().filter(|l| l.contains(&needle)).count()
    };
    assert_eq!(count("timerfd_settime"), 2 * ROUNDS, "set + disarm");
    assert_eq!(count("timerfd_gettime"), ROUNDS);
    assert_eq!(count("read"), ROUNDS);
}
