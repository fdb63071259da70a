//! `GET /debug/fds`: the kernel's view of this very server, for the
//! dashboard's panel. It is `inspect --json` of the server's own pid (the
//! same schema: a top-level `fds` list, each entry with its `kind`), with
//! what only the server knows added:
//!
//! * `slab_key` and `generation`, on every fd one of its epoll instances
//!   watches and on each of those watches: the reactor's token, read back
//!   from the watch's `data`;
//! * `leaky` and `leaked`, on a timerfd: the heartbeat of a `/stream/leaky`
//!   stream, and whether its client has left (an orphan, waking the loop
//!   for nobody).
//!
//! The report is the process's own fd table, so it has no CORS header (the
//! panel is same-origin) and is served by default only when the server
//! listens on loopback (`--debug-fds` otherwise). It costs a `readlink`
//! and an fdinfo read per open fd, so it is taken on the census thread,
//! never on a worker: a request gets the latest report and asks for the
//! next (at most one per census period), and a report holds at most half
//! of `--max-buffered` bytes (timerfds and epoll instances first; the
//! count of what was left out in `truncated`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::inspect;

/// The leaky heartbeat timers' fds (dedicated mode), and whether each
/// one's client has left.
#[derive(Debug, Default)]
pub struct Leaks {
    fds: Mutex<BTreeMap<i32, bool>>,
}

impl Leaks {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<i32, bool>) -> T) -> T {
        f(&mut self.fds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A leaky stream started, with its heartbeat on timerfd `fd`.
    pub fn streaming(&self, fd: i32) {
        self.with(|m| m.insert(fd, false));
    }

    /// Its client left: the timer on `fd` fires on for nobody.
    pub fn orphaned(&self, fd: i32) {
        self.with(|m| m.insert(fd, true));
    }

    fn get(&self, fd: i32) -> Option<bool> {
        self.with(|m| m.get(&fd).copied())
    }
}

/// What the panel shows before the first report exists.
pub const PENDING: &str = r#"{"pending":true,"fds":[]}"#;

/// The report of this process now, as JSON of at most `budget` bytes.
pub fn report(leaks: &Leaks, budget: usize) -> String {
    let snap = match inspect::snapshot(std::process::id()) {
        Ok(snap) => snap,
        Err(e) => return json!({ "error": e.to_string(), "fds": [] }).to_string(),
    };
    let Ok(mut v) = serde_json::to_value(snap.report()) else { return PENDING.to_string() };
    // Tokens by watched fd, from every epoll instance of ours.
    let tokens: BTreeMap<i32, u64> = snap
        .fds
        .iter()
        .flat_map(|e| e.watches.iter())
        .filter(|w| snap.resolve(w).is_some())
        .map(|w| (w.fd, w.data))
        .collect();
    let token = |data: u64| json!({ "slab_key": data & 0xffff_ffff, "generation": data >> 32 });
    let Some(fds) = v.get_mut("fds").and_then(Value::as_array_mut) else { return PENDING.into() };
    for entry in fds.iter_mut() {
        let fd = entry.get("fd").and_then(Value::as_i64).unwrap_or(-1) as i32;
        if let (Some(&data), Some(map)) = (tokens.get(&fd), entry.as_object_mut()) {
            if let Value::Object(t) = token(data) {
                map.extend(t);
            }
        }
        if entry.get("kind").and_then(Value::as_str) == Some("timerfd") {
            let leak = leaks.get(fd);
            entry["leaky"] = json!(leak.is_some());
            entry["leaked"] = json!(leak == Some(true));
        }
        if let Some(watches) = entry.get_mut("watches").and_then(Value::as_array_mut) {
            for w in watches {
                let data = w.get("data").and_then(Value::as_u64).unwrap_or(0);
                if let (Value::Object(t), Some(map)) = (token(data), w.as_object_mut()) {
                    map.extend(t);
                }
            }
        }
    }
    // Timerfds and epoll instances first: what the panel shows.
    let rank = |e: &Value| match e.get("kind").and_then(Value::as_str) {
        Some("timerfd") => 0,
        Some("eventpoll") => 1,
        _ => 2,
    };
    fds.sort_by_key(|e| (rank(e), e.get("fd").and_then(Value::as_i64).unwrap_or(0)));
    // Keep what fits: each entry's size once, then a cut.
    let sizes: Vec<usize> = fds.iter().map(|e| e.to_string().len() + 1).collect();
    let all = std::mem::take(fds);
    let base = v.to_string().len() + 32; // the rest, and `"truncated":N`
    let mut used = base;
    let kept = sizes.iter().take_while(|&&n| {
        used += n;
        used <= budget
    });
    let keep = kept.count();
    let truncated = all.len() - keep;
    v["fds"] = Value::Array(all.into_iter().take(keep).collect());
    v["truncated"] = json!(truncated);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process's own report: its fds by kind, a timerfd marked
    /// leaked when the registry says so, and the budget kept.
    #[test]
    fn the_report_is_inspects_with_what_the_server_knows() {
        let timer = timerfd_sys::TimerFd::new(timerfd_sys::Clock::Monotonic).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&timer);
        let leaks = Leaks::default();
        leaks.streaming(fd);
        leaks.orphaned(fd);
        let v: Value = serde_json::from_str(&report(&leaks, 1 << 20)).unwrap();
        let ours = v["fds"].as_array().unwrap().iter().find(|e| e["fd"] == json!(fd)).unwrap();
        assert_eq!(ours["kind"], "timerfd");
        assert_eq!((ours["leaky"].clone(), ours["leaked"].clone()), (json!(true), json!(true)));
        assert!(v["fds"].as_array().unwrap().iter().all(|e| e["kind"].is_string()));
        let small = report(&leaks, 400);
        assert!(small.len() <= 400 || !small.contains("\"fd\""), "{small}");
        let small: Value = serde_json::from_str(&small).unwrap();
        assert!(small["truncated"].as_u64().unwrap() > 0);
    }
}
