//! What `inspect` prints: the human report, the JSON report, and the
//! `--watch` lines.

use std::fmt::Write as _;
use std::time::Duration;

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

    /// The machine report.
    pub fn to_json(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |n| n.to_string());
        let mut o = String::new();
        let _ = write!(
            o,
            "{{\"pid\":{},\"name\":{},\"threads\":{},\"fd_size\":{},\"nofile_soft\":{},\"nofile_hard\":{},\"open\":{},\"vanished\":{},\"by_kind\":{{",
            self.pid,
            json_str(&self.name),
            self.threads,
            self.fd_size,
            opt(self.nofile_soft),
            opt(self.nofile_hard),
            self.fds.len(),
            self.vanished
        );
        let kinds: Vec<String> =
            FdKind::ALL.iter().map(|k| format!("\"{}\":{}", k.name(), self.count(*k))).collect();
        o.push_str(&kinds.join(","));
        o.push_str("},\"fds\":[");
        for (i, e) in self.fds.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(
                o,
                "{{\"fd\":{},\"kind\":\"{}\",\"target\":{}",
                e.fd,
                e.kind.name(),
                json_str(&e.target)
            );
            if let Some(t) = &e.timer {
                let _ = write!(
                    o,
                    ",\"timer\":{{\"clock\":\"{}\",\"abstime\":{},\"cancel_on_set\":{},\"remaining_ns\":{},\"interval_ns\":{},\"ticks\":{}}}",
                    t.clock,
                    t.abstime,
                    t.cancel_on_set,
                    t.remaining.as_nanos(),
                    t.interval.as_nanos(),
                    t.ticks
                );
            }
            if e.kind == FdKind::Eventpoll {
                let watches: Vec<String> = e
                    .watches
                    .iter()
                    .map(|w| {
                        let kind = self
                            .resolve(w)
                            .map_or("null".to_string(), |t| format!("\"{}\"", t.kind.name()));
                        format!(
                            "{{\"fd\":{},\"events\":\"{}\",\"kind\":{kind}}}",
                            w.fd,
                            events_name(w.events)
                        )
                    })
                    .collect();
                let _ = write!(o, ",\"watches\":[{}]", watches.join(","));
            }
            o.push('}');
        }
        o.push_str("]}");
        o
    }
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

pub(super) fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
