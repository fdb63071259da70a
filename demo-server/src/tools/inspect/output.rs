//! What `inspect` prints: the human report, the JSON report, and the
//! `--watch` lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{FdKind, InspectError, Snapshot, events_name, snapshot};

impl Snapshot {
    /// The human report.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let limit = |l: Option<u64>| l.map_or("unlimited".to_string(), |n| n.to_string());
        let ratio = self
            .usage_ratio()
            .map_or(String::new(), |r| format!(" ({:.2}% of the soft limit)", r * 100.0));
        let _infallible =
            writeln!(o, "process {} ({}), {} thread(s)", self.pid, self.name, self.threads);
        let _infallible = writeln!(
            o,
            "fds: {} open{ratio}; nofile soft {} hard {}; FDSize {}",
            self.fds.len(),
            limit(self.nofile_soft),
            limit(self.nofile_hard),
            self.fd_size
        );
        let kinds: Vec<String> =
            FdKind::ALL.iter().map(|k| format!("{} {}", k.name(), self.count(*k))).collect();
        let _infallible = writeln!(o, "by kind: {}", kinds.join(", "));
        if self.vanished > 0 {
            let _infallible = writeln!(o, "({} fd(s) closed while being read)", self.vanished);
        }
        let _infallible = writeln!(o, "\ntimerfds ({}):", self.count(FdKind::Timerfd));
        let _infallible = writeln!(
            o,
            "  {:>5}  {:<21} {:<22} {:>16} {:>14} {:>6}",
            "fd", "clock", "flags", "remaining", "interval", "ticks"
        );
        for e in &self.fds {
            if let Some(t) = &e.timer {
                let mut flags = Vec::new();
                if t.abstime {
                    flags.push("ABSTIME");
                }
                if t.cancel_on_set {
                    flags.push("CANCEL_ON_SET");
                }
                let state = if t.remaining.is_zero() {
                    "disarmed".to_string()
                } else {
                    format!("{:?}", t.remaining)
                };
                let interval = if t.interval.is_zero() {
                    "one-shot".to_string()
                } else {
                    format!("{:?}", t.interval)
                };
                let flags = if flags.is_empty() { "relative".to_string() } else { flags.join("|") };
                let _infallible = writeln!(
                    o,
                    "  {:>5}  {:<21} {:<22} {:>16} {:>14} {:>6}",
                    e.fd, t.clock, flags, state, interval, t.ticks
                );
            }
        }
        let _infallible = writeln!(
            o,
            "  legend: remaining/interval are it_value/it_interval from fdinfo. ticks are expirations not\n  yet read, and they lag: the kernel advances a periodic timer's count only when it is read\n  or queried (read, timerfd_gettime), so a timer nobody reads shows 1 however often it fired.\n  (util-linux lsfd shows such timerfd columns only from 2.40; Debian 12 ships 2.38.)"
        );
        for e in self.fds.iter().filter(|e| e.kind == FdKind::Eventpoll) {
            let _infallible = writeln!(o, "\nepoll fd {} watches {} fd(s):", e.fd, e.watches.len());
            for w in &e.watches {
                let what = match self.resolve(w) {
                    Some(t) => format!("{:<9} {}", t.kind.name(), t.target),
                    None => "(not in this process's fd table: closed, or another process's)".into(),
                };
                let _infallible =
                    writeln!(o, "  {:>5}  {:<20} {}", w.fd, events_name(w.events), what);
            }
        }
        o
    }

    /// The machine report, as a value to serialize.
    pub fn report(&self) -> Report<'_> {
        let fds = self
            .fds
            .iter()
            .map(|e| FdReport {
                fd: e.fd,
                kind: e.kind.name(),
                target: &e.target,
                timer: e.timer.as_ref().map(|t| TimerReport {
                    clock: &t.clock,
                    abstime: t.abstime,
                    cancel_on_set: t.cancel_on_set,
                    remaining_ns: t.remaining.as_nanos() as u64,
                    interval_ns: t.interval.as_nanos() as u64,
                    ticks: t.ticks,
                }),
                watches: (e.kind == FdKind::Eventpoll).then(|| {
                    e.watches
                        .iter()
                        .map(|w| WatchReport {
                            fd: w.fd,
                            data: w.data,
                            events: events_name(w.events),
                            kind: self.resolve(w).map(|t| t.kind.name()),
                        })
                        .collect()
                }),
            })
            .collect();
        Report {
            pid: self.pid,
            name: &self.name,
            threads: self.threads,
            fd_size: self.fd_size,
            nofile_soft: self.nofile_soft,
            nofile_hard: self.nofile_hard,
            open: self.fds.len(),
            vanished: self.vanished,
            by_kind: FdKind::ALL.iter().map(|k| (k.name(), self.count(*k))).collect(),
            fds,
        }
    }

    /// The machine report, as one line of JSON.
    pub fn to_json(&self) -> String {
        // JSON of a struct of strings and numbers cannot fail.
        serde_json::to_string(&self.report()).unwrap_or_default()
    }
}

/// `inspect --json`: a [`Snapshot`] as JSON.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The process.
    pub pid: u32,
    /// Its name.
    pub name: &'a str,
    /// Its threads.
    pub threads: u64,
    /// `FDSize:` from status.
    pub fd_size: u64,
    /// Soft `RLIMIT_NOFILE`, `null` for unlimited.
    pub nofile_soft: Option<u64>,
    /// Hard `RLIMIT_NOFILE`, `null` for unlimited.
    pub nofile_hard: Option<u64>,
    /// Open fds.
    pub open: usize,
    /// Fds that closed while being read.
    pub vanished: usize,
    /// Fds per kind, every kind present.
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Every fd, by number.
    pub fds: Vec<FdReport<'a>>,
}

/// One fd in a [`Report`].
#[derive(Debug, Serialize)]
pub struct FdReport<'a> {
    /// Its number.
    pub fd: i32,
    /// Its kind's name.
    pub kind: &'static str,
    /// Its link target.
    pub target: &'a str,
    /// For a timerfd, its setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerReport<'a>>,
    /// For an eventpoll, its watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watches: Option<Vec<WatchReport>>,
}

/// A timerfd's setting in a [`Report`].
#[derive(Debug, Serialize)]
pub struct TimerReport<'a> {
    /// The clock's name.
    pub clock: &'a str,
    /// `TFD_TIMER_ABSTIME`.
    pub abstime: bool,
    /// `TFD_TIMER_CANCEL_ON_SET`.
    pub cancel_on_set: bool,
    /// `it_value` in nanoseconds; 0 when disarmed.
    pub remaining_ns: u64,
    /// `it_interval` in nanoseconds; 0 for a one-shot.
    pub interval_ns: u64,
    /// Expirations not yet read.
    pub ticks: u64,
}

/// An epoll watch in a [`Report`].
#[derive(Debug, Serialize)]
pub struct WatchReport {
    /// The watched fd number.
    pub fd: i32,
    /// `epoll_event.data` (for this project's reactor: generation in the
    /// high 32 bits, slab key in the low 32).
    pub data: u64,
    /// The event mask as names (`IN|RDHUP`).
    pub events: String,
    /// The watched fd's kind, `null` if it is not in the fd table.
    pub kind: Option<&'static str>,
}

/// How a `--watch` line differs from the one before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Deltas {
    /// Change in open fds.
    pub open: i64,
    /// Change in timerfds.
    pub timerfds: i64,
    /// Change in sockets.
    pub sockets: i64,
    /// Open fds gained per second since the line before.
    pub open_per_s: f64,
}

/// One `inspect --watch --json` line: when, how it changed, and the report.
#[derive(Debug, Serialize)]
pub struct WatchLine<'a> {
    /// When the snapshot began: milliseconds since the Unix epoch.
    pub t_unix_ms: u64,
    /// Seconds from the watch's start to this snapshot's.
    pub elapsed_s: f64,
    /// Changes since the line before (zeros on the first line).
    pub deltas: Deltas,
    /// The snapshot, as `inspect --json` prints it.
    #[serde(flatten)]
    pub report: Report<'a>,
}

fn deltas(now: &Snapshot, before: Option<&(Snapshot, Instant)>, at: Instant) -> Deltas {
    let Some((p, t)) = before else { return Deltas::default() };
    let diff = |k: FdKind| now.count(k) as i64 - p.count(k) as i64;
    let open = now.fds.len() as i64 - p.fds.len() as i64;
    let secs = at.duration_since(*t).as_secs_f64();
    Deltas {
        open,
        timerfds: diff(FdKind::Timerfd),
        sockets: diff(FdKind::Socket),
        open_per_s: if secs > 0.0 { open as f64 / secs } else { 0.0 },
    }
}

/// `inspect --watch`: one line per `every` with totals, deltas and growth
/// rate, until the process exits (then `Ok`). `json` prints one
/// [`WatchLine`] per line instead.
///
/// Lines keep a fixed cadence: line k is due at start + k × `every`, so the
/// time a snapshot takes (tens of milliseconds with 10,000 fds) is not
/// added to the wait. A snapshot slower than `every` skips the ticks it
/// overran rather than firing a burst to catch up.
pub fn watch(
    pid: u32,
    every: Duration,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), InspectError> {
    let start = Instant::now();
    let mut due = start;
    let mut prev: Option<(Snapshot, Instant)> = None;
    loop {
        // A line's time is when its snapshot began: on the grid, whatever
        // the snapshot then takes.
        let now = Instant::now();
        let wall = SystemTime::now();
        let snap = match snapshot(pid) {
            Ok(s) => s,
            Err(InspectError::NoProcess(_)) if prev.is_some() => {
                crate::say!(out, "process {pid} exited");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let d = deltas(&snap, prev.as_ref(), now);
        let line = if json {
            let t_unix_ms = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let line = WatchLine {
                t_unix_ms,
                elapsed_s: now.duration_since(start).as_secs_f64(),
                deltas: d,
                report: snap.report(),
            };
            // JSON of a struct of strings and numbers cannot fail.
            serde_json::to_string(&line).unwrap_or_default()
        } else {
            format!(
                "{:>8.1}s  fds {:>6} ({:+}, {:+.1}/s)  timerfds {:>6} ({:+})  sockets {:>5}  epoll {}  usage {:.1}%",
                now.duration_since(start).as_secs_f64(),
                snap.fds.len(),
                d.open,
                d.open_per_s,
                snap.count(FdKind::Timerfd),
                d.timerfds,
                snap.count(FdKind::Socket),
                snap.count(FdKind::Eventpoll),
                snap.usage_ratio().unwrap_or(0.0) * 100.0
            )
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(()); // stdout closed (a pipe into head): stop quietly
        }
        prev = Some((snap, now));
        due += every;
        let now = Instant::now();
        if due < now {
            // Overran: the next tick on the grid that is still ahead.
            let behind = now.duration_since(due).as_nanos() / every.as_nanos().max(1) + 1;
            due += every * behind as u32;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}
