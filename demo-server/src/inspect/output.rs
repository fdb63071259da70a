//! What `inspect` prints: the human report, the JSON report, and the
//! `--watch` lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

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
        let _ = writeln!(o, "process {} ({}), {} thread(s)", self.pid, self.name, self.threads);
        let _ = writeln!(
            o,
            "fds: {} open{ratio}; nofile soft {} hard {}; FDSize {}",
            self.fds.len(),
            limit(self.nofile_soft),
            limit(self.nofile_hard),
            self.fd_size
        );
        let kinds: Vec<String> =
            FdKind::ALL.iter().map(|k| format!("{} {}", k.name(), self.count(*k))).collect();
        let _ = writeln!(o, "by kind: {}", kinds.join(", "));
        if self.vanished > 0 {
            let _ = writeln!(o, "({} fd(s) closed while being read)", self.vanished);
        }
        let _ = writeln!(o, "\ntimerfds ({}):", self.count(FdKind::Timerfd));
        let _ = writeln!(
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
                let _ = writeln!(
                    o,
                    "  {:>5}  {:<21} {:<22} {:>16} {:>14} {:>6}",
                    e.fd, t.clock, flags, state, interval, t.ticks
                );
            }
        }
        let _ = writeln!(
            o,
            "  legend: remaining/interval are it_value/it_interval from fdinfo. ticks are expirations not\n  yet read, and they lag: the kernel advances a periodic timer's count only when it is read\n  or queried (read, timerfd_gettime), so a timer nobody reads shows 1 however often it fired.\n  (util-linux lsfd shows such timerfd columns only from 2.40; Debian 12 ships 2.38.)"
        );
        for e in self.fds.iter().filter(|e| e.kind == FdKind::Eventpoll) {
            let _ = writeln!(o, "\nepoll fd {} watches {} fd(s):", e.fd, e.watches.len());
            for w in &e.watches {
                let what = match self.resolve(w) {
                    Some(t) => format!("{:<9} {}", t.kind.name(), t.target),
                    None => "(not in this process's fd table: closed, or another process's)".into(),
                };
                let _ = writeln!(o, "  {:>5}  {:<18} {}", w.fd, events_name(w.events), what);
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
    /// The event mask as names (`IN|RDHUP`).
    pub events: String,
    /// The watched fd's kind, `null` if it is not in the fd table.
    pub kind: Option<&'static str>,
}

/// `inspect --watch`: one line per `every` with totals, deltas and growth
/// rate, until the process exits (then `Ok`). `json` prints one JSON
/// snapshot per line instead.
pub fn watch(
    pid: u32,
    every: Duration,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), InspectError> {
    let start = std::time::Instant::now();
    let mut prev: Option<(Snapshot, std::time::Instant)> = None;
    loop {
        let snap = match snapshot(pid) {
            Ok(s) => s,
            Err(InspectError::NoProcess(_)) if prev.is_some() => {
                let _ = writeln!(out, "process {pid} exited");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let now = std::time::Instant::now();
        let line = if json {
            snap.to_json()
        } else {
            let (open, tfd) = (snap.fds.len() as i64, snap.count(FdKind::Timerfd) as i64);
            let (d_open, d_tfd, rate) = match &prev {
                Some((p, t)) => {
                    let d = open - p.fds.len() as i64;
                    (
                        d,
                        tfd - p.count(FdKind::Timerfd) as i64,
                        d as f64 / now.duration_since(*t).as_secs_f64(),
                    )
                }
                None => (0, 0, 0.0),
            };
            format!(
                "{:>8.1}s  fds {open:>6} ({d_open:+}, {rate:+.1}/s)  timerfds {tfd:>6} ({d_tfd:+})  sockets {:>5}  epoll {}  usage {:.1}%",
                start.elapsed().as_secs_f64(),
                snap.count(FdKind::Socket),
                snap.count(FdKind::Eventpoll),
                snap.usage_ratio().unwrap_or(0.0) * 100.0
            )
        };
        if writeln!(out, "{line}").is_err() {
            return Ok(()); // stdout closed (a pipe into head): stop quietly
        }
        prev = Some((snap, now));
        std::thread::sleep(every);
    }
}
