//! `inspect`: what the kernel holds for a process, read from `/proc/PID`.
//!
//! The structured form of `ls -l /proc/PID/fd | grep timerfd`: every fd by
//! kind, every timerfd's clock and setting (from its fdinfo), every epoll
//! instance's watched fds (from the eventpoll fdinfo `tfd:` lines, joined
//! to the fd table by number and inode), and the fd limits.
//!
//! Parsers are pure functions over fdinfo text, so they are tested against
//! captured samples; `snapshot` does the reading, and `inspect/output.rs`
//! the text, JSON and `--watch` output.

use std::time::Duration;

mod output;

pub use output::{Deltas, FdReport, Report, TimerReport, WatchLine, WatchReport, watch};

/// What an fd is, from its `/proc/PID/fd` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FdKind {
    /// `socket:[N]`
    Socket,
    /// `anon_inode:[timerfd]`
    Timerfd,
    /// `anon_inode:[eventpoll]`
    Eventpoll,
    /// `anon_inode:[eventfd]`
    Eventfd,
    /// `anon_inode:[signalfd]`
    Signalfd,
    /// `pipe:[N]`
    Pipe,
    /// A path: a file, a directory, a device.
    File,
    /// Anything else (other anonymous inodes, memfds, ...).
    Other,
}

impl FdKind {
    /// Every kind, in display order.
    pub const ALL: [FdKind; 8] = [
        FdKind::Socket,
        FdKind::Timerfd,
        FdKind::Eventpoll,
        FdKind::Eventfd,
        FdKind::Signalfd,
        FdKind::Pipe,
        FdKind::File,
        FdKind::Other,
    ];

    /// Classify a `/proc/PID/fd/N` link target.
    pub fn from_link(target: &str) -> FdKind {
        match target {
            t if t.starts_with("socket:") => FdKind::Socket,
            "anon_inode:[timerfd]" => FdKind::Timerfd,
            "anon_inode:[eventpoll]" => FdKind::Eventpoll,
            "anon_inode:[eventfd]" => FdKind::Eventfd,
            "anon_inode:[signalfd]" => FdKind::Signalfd,
            t if t.starts_with("pipe:") => FdKind::Pipe,
            t if t.starts_with('/') => FdKind::File,
            _ => FdKind::Other,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            FdKind::Socket => "socket",
            FdKind::Timerfd => "timerfd",
            FdKind::Eventpoll => "eventpoll",
            FdKind::Eventfd => "eventfd",
            FdKind::Signalfd => "signalfd",
            FdKind::Pipe => "pipe",
            FdKind::File => "file",
            FdKind::Other => "other",
        }
    }
}

/// A timerfd's state, from its fdinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerInfo {
    /// `clockid:` as a name (`CLOCK_MONOTONIC`), or the number if unknown.
    pub clock: String,
    /// `settime flags:` bit 0: `TFD_TIMER_ABSTIME`.
    pub abstime: bool,
    /// `settime flags:` bit 1: `TFD_TIMER_CANCEL_ON_SET`.
    pub cancel_on_set: bool,
    /// `it_value`: time to the next expiry; zero when disarmed.
    pub remaining: Duration,
    /// `it_interval`: the period; zero for a one-shot.
    pub interval: Duration,
    /// `ticks`: expirations not yet read (lags for periodic timers).
    pub ticks: u64,
}

/// One `tfd:` line of an eventpoll fdinfo: a watched fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// The target fd number, as it was when registered.
    pub fd: i32,
    /// The epoll event mask.
    pub events: u32,
    /// `epoll_event.data`: for this project's reactor, the token (slab key
    /// in the low 32 bits, generation in the high 32).
    pub data: u64,
    /// The target's inode, to check the fd number still names it.
    pub ino: u64,
}

/// One fd of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    /// Its number.
    pub fd: i32,
    /// Its link target.
    pub target: String,
    /// What it is.
    pub kind: FdKind,
    /// Its inode (fdinfo `ino:`), when the kernel reports it.
    pub ino: Option<u64>,
    /// Timer state, for a timerfd.
    pub timer: Option<TimerInfo>,
    /// Watched fds, for an eventpoll.
    pub watches: Vec<Watch>,
}

/// Everything `inspect` reports about a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The process.
    pub pid: u32,
    /// `Name:` from status.
    pub name: String,
    /// `Threads:` from status.
    pub threads: u64,
    /// `FDSize:` from status: slots allocated in the fd table.
    pub fd_size: u64,
    /// Soft `RLIMIT_NOFILE` (`None`: unlimited).
    pub nofile_soft: Option<u64>,
    /// Hard `RLIMIT_NOFILE`.
    pub nofile_hard: Option<u64>,
    /// Every fd, by number.
    pub fds: Vec<FdEntry>,
    /// Fds that closed while being read (counted, not listed).
    pub vanished: usize,
}

/// Why a process could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// No such process (or it exited).
    NoProcess(u32),
    /// Not allowed to read its fds.
    Permission(u32),
    /// Some other I/O error.
    Io(u32, String),
}

impl std::fmt::Display for InspectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InspectError::NoProcess(pid) => write!(f, "no process {pid} (it may have exited)"),
            InspectError::Permission(pid) => write!(
                f,
                "permission denied reading /proc/{pid}/fd: run as the process's user, or as root with CAP_SYS_PTRACE"
            ),
            InspectError::Io(pid, e) => write!(f, "reading /proc/{pid}: {e}"),
        }
    }
}

impl std::error::Error for InspectError {}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start_matches(':').trim())
}

/// `(secs, nanos)` as fdinfo prints `it_value`.
fn parse_pair(v: &str) -> Option<Duration> {
    let v = v.trim().trim_start_matches('(').trim_end_matches(')');
    let (s, n) = v.split_once(',')?;
    let secs: i64 = s.trim().parse().ok()?;
    let nanos: i64 = n.trim().parse().ok()?;
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return Some(Duration::ZERO);
    }
    Some(Duration::new(secs as u64, nanos as u32))
}

/// The name of a clock id as the kernel numbers them.
pub fn clock_name(id: u32) -> String {
    match id {
        0 => "CLOCK_REALTIME".into(),
        1 => "CLOCK_MONOTONIC".into(),
        7 => "CLOCK_BOOTTIME".into(),
        8 => "CLOCK_REALTIME_ALARM".into(),
        9 => "CLOCK_BOOTTIME_ALARM".into(),
        n => format!("clock {n}"),
    }
}

/// Parse a timerfd fdinfo (`clockid:`, `ticks:`, `settime flags:`,
/// `it_value:`, `it_interval:`; Linux 3.17 and later).
pub fn parse_timerfd(fdinfo: &str) -> Option<TimerInfo> {
    let clock = clock_name(field(fdinfo, "clockid")?.parse().ok()?);
    let flags = u32::from_str_radix(field(fdinfo, "settime flags")?, 8).ok()?;
    Some(TimerInfo {
        clock,
        abstime: flags & 1 != 0,
        cancel_on_set: flags & 2 != 0,
        remaining: parse_pair(field(fdinfo, "it_value")?)?,
        interval: parse_pair(field(fdinfo, "it_interval")?)?,
        ticks: field(fdinfo, "ticks")?.parse().ok()?,
    })
}

/// Parse the `tfd:` lines of an eventpoll fdinfo.
pub fn parse_eventpoll(fdinfo: &str) -> Vec<Watch> {
    fdinfo
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let mut watch = Watch { fd: -1, events: 0, data: 0, ino: 0 };
            while let Some(word) = it.next() {
                match word {
                    "tfd:" => watch.fd = it.next()?.parse().ok()?,
                    "events:" => watch.events = u32::from_str_radix(it.next()?, 16).ok()?,
                    "data:" => watch.data = u64::from_str_radix(it.next()?, 16).ok()?,
                    w if w.starts_with("ino:") => {
                        watch.ino = u64::from_str_radix(&w[4..], 16).ok()?
                    }
                    _ => {}
                }
            }
            (watch.fd >= 0).then_some(watch)
        })
        .collect()
}

/// An epoll event mask as names: `IN|RDHUP|ET`.
pub fn events_name(mask: u32) -> String {
    const NAMES: [(u32, &str); 9] = [
        (0x001, "IN"),
        (0x002, "PRI"),
        (0x004, "OUT"),
        (0x008, "ERR"),
        (0x010, "HUP"),
        (0x2000, "RDHUP"),
        (1 << 28, "EXCLUSIVE"),
        (1 << 30, "ONESHOT"),
        (1 << 31, "ET"),
    ];
    let names: Vec<&str> =
        NAMES.iter().filter(|(bit, _)| mask & bit != 0).map(|(_, n)| *n).collect();
    if names.is_empty() { format!("{mask:#x}") } else { names.join("|") }
}

/// Parse `Max open files` from `/proc/PID/limits`.
pub fn parse_nofile(limits: &str) -> (Option<u64>, Option<u64>) {
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return (None, None);
    };
    let mut words = line["Max open files".len()..].split_whitespace();
    let mut next = || words.next().and_then(|w| w.parse().ok());
    (next(), next())
}

/// The error for a failed read under `/proc/PID`.
pub fn classify_io(pid: u32, e: &std::io::Error) -> InspectError {
    match e.kind() {
        std::io::ErrorKind::NotFound => InspectError::NoProcess(pid),
        std::io::ErrorKind::PermissionDenied => InspectError::Permission(pid),
        _ => InspectError::Io(pid, e.to_string()),
    }
}

/// Read everything about `pid` now.
pub fn snapshot(pid: u32) -> Result<Snapshot, InspectError> {
    let proc = format!("/proc/{pid}");
    let status =
        std::fs::read_to_string(format!("{proc}/status")).map_err(|e| classify_io(pid, &e))?;
    // Unreadable limits: the limit shows as unknown, the rest still reports.
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap_or_default();
    let (nofile_soft, nofile_hard) = parse_nofile(&limits);
    let dir = std::fs::read_dir(format!("{proc}/fd")).map_err(|e| classify_io(pid, &e))?;
    let mut fds = Vec::new();
    let mut vanished = 0;
    for entry in dir {
        let Ok(entry) = entry else {
            vanished += 1;
            continue;
        };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        // Either read may fail because the fd closed meanwhile (ENOENT):
        // count it, move on. Any other failure is the answer for every fd
        // (EACCES: the directory is listable, say with CAP_DAC_OVERRIDE,
        // but its links need ptrace access), so it ends the snapshot.
        let read = std::fs::read_link(entry.path()).and_then(|target| {
            Ok((target, std::fs::read_to_string(format!("{proc}/fdinfo/{fd}"))?))
        });
        let (target, info) = match read {
            Ok(both) => both,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                vanished += 1;
                continue;
            }
            Err(e) => return Err(classify_io(pid, &e)),
        };
        let target = target.to_string_lossy().into_owned();
        let kind = FdKind::from_link(&target);
        fds.push(FdEntry {
            fd,
            ino: field(&info, "ino").and_then(|v| v.parse().ok()),
            timer: if kind == FdKind::Timerfd { parse_timerfd(&info) } else { None },
            watches: if kind == FdKind::Eventpoll { parse_eventpoll(&info) } else { Vec::new() },
            target,
            kind,
        });
    }
    fds.sort_by_key(|e| e.fd);
    let num = |name| {
        field(&status, name).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    Ok(Snapshot {
        pid,
        name: field(&status, "Name").unwrap_or("?").to_string(),
        threads: num("Threads"),
        fd_size: num("FDSize"),
        nofile_soft,
        nofile_hard,
        fds,
        vanished,
    })
}

impl Snapshot {
    /// How many fds of `kind`.
    pub fn count(&self, kind: FdKind) -> usize {
        self.fds.iter().filter(|e| e.kind == kind).count()
    }

    /// Open fds divided by the soft limit.
    pub fn usage_ratio(&self) -> Option<f64> {
        self.nofile_soft.filter(|n| *n > 0).map(|n| self.fds.len() as f64 / n as f64)
    }

    /// The fd a watch names, if the number still refers to the same inode.
    pub fn resolve(&self, w: &Watch) -> Option<&FdEntry> {
        self.fds.iter().find(|e| e.fd == w.fd && e.ino.is_none_or(|ino| ino == w.ino))
    }
}

/// CPU time (user + system) process `pid` has used so far, from
/// `/proc/PID/stat`; `None` if the process is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    crate::procfs::ProcessStats::of(pid).map(|p| Duration::from_secs_f64(p.cpu_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERFD: &str = "pos:\t0\nflags:\t02004002\nmnt_id:\t16\nino:\t1057\nclockid: 1\nticks: 3\nsettime flags: 01\nit_value: (0, 99972411)\nit_interval: (0, 100000000)\n";
    const EVENTPOLL: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\ntfd:        4 events:     2019 data:                4  pos:0 ino:24986 sdev:f\ntfd:       12 events: 80000019 data:       30000000c  pos:0 ino:421 sdev:f\n";

    #[test]
    fn timerfd_fdinfo_sample() {
        let t = parse_timerfd(TIMERFD).unwrap();
        assert_eq!(t.clock, "CLOCK_MONOTONIC");
        assert!(t.abstime && !t.cancel_on_set);
        assert_eq!(t.remaining, Duration::from_nanos(99_972_411));
        assert_eq!(t.interval, Duration::from_millis(100));
        assert_eq!(t.ticks, 3);
        assert_eq!(parse_timerfd("pos: 0\n"), None, "not a timerfd");
        let cancel = TIMERFD
            .replace("settime flags: 01", "settime flags: 03")
            .replace("clockid: 1", "clockid: 8");
        let t = parse_timerfd(&cancel).unwrap();
        assert!(t.cancel_on_set && t.clock == "CLOCK_REALTIME_ALARM");
    }

    #[test]
    fn eventpoll_fdinfo_sample() {
        let w = parse_eventpoll(EVENTPOLL);
        assert_eq!(
            w,
            vec![
                Watch { fd: 4, events: 0x2019, data: 4, ino: 0x24986 },
                Watch { fd: 12, events: 0x8000_0019, data: 0x3_0000_000c, ino: 0x421 },
            ]
        );
        assert_eq!(events_name(0x2019), "IN|ERR|HUP|RDHUP");
        assert_eq!(events_name(0x1000_0019), "IN|ERR|HUP|EXCLUSIVE");
        assert_eq!(events_name(0x8000_0019), "IN|ERR|HUP|ET");
        assert!(parse_eventpoll("pos: 0\nflags: 02\n").is_empty());
    }

    #[test]
    fn limits_and_kinds() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            256                  1024                 files     \n";
        assert_eq!(parse_nofile(limits), (Some(256), Some(1024)));
        assert_eq!(parse_nofile("Max open files unlimited unlimited files\n"), (None, None));
        assert_eq!(FdKind::from_link("socket:[123]"), FdKind::Socket);
        assert_eq!(FdKind::from_link("anon_inode:[timerfd]"), FdKind::Timerfd);
        assert_eq!(FdKind::from_link("/dev/null"), FdKind::File);
        assert_eq!(FdKind::from_link("anon_inode:[io_uring]"), FdKind::Other);
    }

    #[test]
    fn io_errors_map_to_what_the_user_can_do() {
        use std::io::{Error, ErrorKind};
        let denied = classify_io(1, &Error::from(ErrorKind::PermissionDenied));
        assert_eq!(denied, InspectError::Permission(1));
        assert!(denied.to_string().contains("permission denied"));
        assert_eq!(classify_io(2, &Error::from(ErrorKind::NotFound)), InspectError::NoProcess(2));
        assert!(matches!(classify_io(3, &Error::other("x")), InspectError::Io(3, _)));
    }

    #[test]
    fn the_json_report_round_trips_awkward_names() {
        let odd = "/tmp/a \"quoted\"\\ name\nwith a newline";
        let snap = Snapshot {
            pid: 7,
            name: "tab\there".into(),
            threads: 1,
            fd_size: 64,
            nofile_soft: Some(256),
            nofile_hard: None,
            fds: vec![FdEntry {
                fd: 3,
                target: odd.into(),
                kind: FdKind::File,
                ino: None,
                timer: None,
                watches: Vec::new(),
            }],
            vanished: 0,
        };
        let json = snap.to_json();
        assert!(!json.contains('\n'), "one line: {json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["fds"][0]["target"], odd);
        assert_eq!(v["name"], "tab\there");
        assert_eq!(v["nofile_hard"], serde_json::Value::Null);
        assert_eq!(v["by_kind"]["file"], 1);
        assert!(v["fds"][0].get("timer").is_none());
    }
}
