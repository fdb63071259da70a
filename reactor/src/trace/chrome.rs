//! The timeline: `REACTOR_TRACE=chrome:PATH` writes every reactor's trace
//! as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
//! `chrome://tracing`-style viewers open, and which `demo-server timeline`
//! draws as an SVG with no viewer at all.
//!
//! # What it records
//!
//! One track per reactor thread (named after the thread), with
//!
//! * spans (`"ph": "B"`/`"E"`): each `epoll_wait` (args: the timeout, then
//!   the events it returned), each `read` of a ready timerfd (args: the fd,
//!   then the expirations), and each callback (args: which source);
//! * instants (`"ph": "i"`): `timerfd_create`, `timerfd_settime`,
//!   `epoll_ctl` and `close`, each with its fd, and a shared timer's heap
//!   operations.
//!
//! Timestamps are `CLOCK_MONOTONIC` in microseconds, the clock the timers
//! run on, so a span lines up with the deadlines in the events' args.
//!
//! # One writer, bounded
//!
//! All threads write through one lock into one buffered file, in the JSON
//! array format, one event per line. The array's closing bracket is
//! optional in that format, so a trace cut off anywhere still opens. A busy
//! server makes tens of thousands of events a second, so the file holds at
//! most [`MAX_EVENTS`] (about 30 MB; `REACTOR_TRACE_MAX_EVENTS=N` sets
//! another bound): at the bound the writer records one
//! last instant saying so, prints one line on stderr, and drops every later
//! event (the reactors go on untraced; nothing blocks). The buffer is
//! flushed when a reactor is dropped, and by [`flush`], which the demo
//! server calls at exit, after SIGTERM or SIGINT included.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The most events one trace file holds.
pub const MAX_EVENTS: u64 = 300_000;

/// Whether the timeline is on: one load, checked before any work.
static ON: AtomicBool = AtomicBool::new(false);

struct Writer {
    out: BufWriter<File>,
    events: u64,
    max: u64,
    /// Threads whose name was written (as metadata), by tid.
    named: Vec<i32>,
}

static WRITER: OnceLock<Mutex<Option<Writer>>> = OnceLock::new();

fn writer() -> MutexGuard<'static, Option<Writer>> {
    WRITER.get_or_init(|| Mutex::new(None)).lock().unwrap_or_else(|p| p.into_inner())
}

/// Open `path` as the trace file, once per process (the first reactor to
/// see `REACTOR_TRACE=chrome:PATH` does). A file that cannot be created is
/// said on stderr, and the timeline stays off.
pub(crate) fn start(path: &str) {
    let mut w = writer();
    if w.is_some() {
        return;
    }
    match File::create(path) {
        Ok(file) => {
            let mut out = BufWriter::new(file);
            if out.write_all(b"[\n").is_ok() {
                let max = std::env::var("REACTOR_TRACE_MAX_EVENTS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(MAX_EVENTS);
                *w = Some(Writer { out, events: 0, max, named: Vec::new() });
                ON.store(true, Relaxed);
            }
        }
        Err(e) => {
            let _lost_if_stderr_is_closed = writeln!(
                std::io::stderr(),
                "reactor: REACTOR_TRACE=chrome:{path}: {e}; no timeline"
            );
        }
    }
}

/// Whether events are being recorded.
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Relaxed)
}

/// Flush what is buffered to the trace file (a no-op with no timeline).
pub fn flush() {
    if let Some(w) = writer().as_mut() {
        // A full disk loses the tail of a debugging aid; the loop goes on.
        let _tail_lost_if_it_fails = w.out.flush();
    }
}

fn now_us() -> f64 {
    let t = timerfd_sys::Clock::Monotonic.now();
    t.secs() as f64 * 1e6 + f64::from(t.nanos()) / 1e3
}

/// Write one event: phase `ph`, `name`, and `args` (a JSON object's body,
/// without braces; empty for none).
/// [`record`], out of line and formatted there: the loop's hot path keeps
/// only the branch to it.
#[cold]
#[inline(never)]
pub(crate) fn span(ph: char, name: &str, args: std::fmt::Arguments<'_>) {
    record(ph, name, &args.to_string());
}

pub(crate) fn record(ph: char, name: &str, args: &str) {
    let ts = now_us();
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    let mut guard = writer();
    let Some(w) = guard.as_mut() else { return };
    if w.events >= w.max {
        return;
    }
    let pid = std::process::id();
    let mut line = String::with_capacity(160);
    if !w.named.contains(&tid) {
        w.named.push(tid);
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("reactor");
        line.push_str(&format!(
            "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"{name}\"}}}},\n"
        ));
    }
    w.events += 1;
    let scope = if ph == 'i' { ",\"s\":\"t\"" } else { "" };
    line.push_str(&format!(
        "{{\"ph\":\"{ph}\",\"name\":\"{name}\",\"ts\":{ts:.3},\"pid\":{pid},\"tid\":{tid}{scope},\"args\":{{{args}}}}},\n"
    ));
    if w.events == w.max {
        let max = w.max;
        line.push_str(&format!(
            "{{\"ph\":\"i\",\"name\":\"trace full: {max} events, later ones dropped\",\"ts\":{ts:.3},\"pid\":{pid},\"tid\":{tid},\"s\":\"g\",\"args\":{{}}}},\n"
        ));
        let _lost_if_stderr_is_closed = writeln!(
            std::io::stderr(),
            "reactor: the timeline holds {max} events, its bound: later events are dropped"
        );
    }
    // A write that fails (a full disk) turns the timeline off, once.
    if w.out.write_all(line.as_bytes()).is_err() {
        ON.store(false, Relaxed);
    }
}
