//! `leak-demo`: the whole reproduction in one command.
//!
//! It starts a server child under a small `RLIMIT_NOFILE`, opens and closes
//! streams in batches on `/stream/fixed`, then on `/stream/leaky` until the
//! fd limit bites, reads the server's fds after every batch with the
//! `inspect` code, and ends with a verdict: fixed +0 timerfds, leaky +1 per
//! closed stream, the server still answering and not spinning.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{Control, Opened, open_stream};
use super::inspect::{FdKind, snapshot};
use super::launcher::{self, Server};

/// About how many batches the leaky phase takes, whatever the fd limit.
pub const LEAKY_BATCHES: usize = 32;

/// `leak-demo` settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Streams opened and closed on `/stream/fixed` (and at least as many on
    /// `/stream/leaky`, which goes on until the limit bites).
    pub streams: usize,
    /// The server child's `RLIMIT_NOFILE`, soft and hard.
    pub fd_limit: u64,
    /// The server's heartbeat interval.
    pub interval: Duration,
    /// Streams per batch on `/stream/fixed`, and at least that many on
    /// `/stream/leaky` (there, `fd_limit / LEAKY_BATCHES` when larger).
    pub batch: usize,
    /// Write the chart as SVG here.
    pub svg: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            streams: 100,
            fd_limit: 256,
            interval: Duration::from_millis(100),
            batch: 10,
            svg: None,
        }
    }
}

/// One row of the table: the server after a batch.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// `true` for the leaky phase.
    pub leaky: bool,
    /// Streams opened and closed so far in this phase.
    pub closed: usize,
    /// Timerfds the server holds.
    pub timerfds: usize,
    /// All its fds.
    pub fds: usize,
    /// Refusals (503 or a closed connection) in this batch.
    pub refused: usize,
}

/// What was observed, and whether it is the expected story.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Baseline timerfds before any stream.
    pub baseline: usize,
    /// Timerfds added by the fixed phase (expected 0).
    pub fixed_delta: i64,
    /// Leaky streams opened and closed before the limit bit.
    pub leaky_closed: usize,
    /// Timerfds added by them (expected exactly `leaky_closed`).
    pub leaky_delta: i64,
    /// Whether the limit was reached (a refusal seen).
    pub limit_reached: bool,
    /// The server answered `/metrics` at the limit.
    pub alive: bool,
    /// What the server spent at the limit.
    pub cost: Cost,
    /// All of the above as expected.
    pub ok: bool,
}

/// What the leaked timers cost the server, measured at the limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// How long it was measured.
    pub window: Duration,
    /// Expirations of orphaned timers per second: the leak's wake-ups.
    pub orphan_expirations_per_sec: f64,
    /// Returns from `epoll_wait` per second.
    pub wakeups_per_sec: f64,
    /// CPU time over the window, percent of one core.
    pub cpu_percent: f64,
}

/// How long the cost at the limit is measured: 200 clock ticks at least.
pub const COST_WINDOW: Duration = Duration::from_secs(2);

/// Measure the server's cost over [`COST_WINDOW`], while 20 more clients
/// knock at the limit.
fn measure_cost(server: &Server, control: &mut Control) -> Cost {
    let counters = |c: &mut Control| {
        (
            c.metric("demo_server_orphan_expirations_total").unwrap_or(0.0),
            c.metric("reactor_wakeups_total{worker=\"0\"}").unwrap_or(0.0),
        )
    };
    // A server gone mid-window reads as no CPU; the verdict then fails on
    // the counters, which stop answering.
    let cpu = crate::inspect::cpu_time(server.pid).unwrap_or_default();
    let (orphans, wakeups) = counters(control);
    let window = Instant::now();
    for _ in 0..20 {
        if let Opened::Stream(_) = open_stream(server.addr, "fixed") {}
    }
    std::thread::sleep(COST_WINDOW.saturating_sub(window.elapsed()));
    let used = crate::inspect::cpu_time(server.pid).unwrap_or_default().saturating_sub(cpu);
    let (orphans_after, wakeups_after) = counters(control);
    let secs = window.elapsed().as_secs_f64();
    Cost {
        window: window.elapsed(),
        orphan_expirations_per_sec: (orphans_after - orphans) / secs,
        wakeups_per_sec: (wakeups_after - wakeups) / secs,
        cpu_percent: used.as_secs_f64() / secs * 100.0,
    }
}

fn spawn_server(o: &Options) -> Result<Server, String> {
    let interval = format!("{}ms", o.interval.as_millis().max(1));
    let limit = o.fd_limit.to_string();
    let args = [
        "--timer-mode",
        "dedicated",
        "--interval",
        &interval,
        // The demo leaks until the fd limit bites: no orphan cap before it.
        "--max-orphans",
        &limit,
        // The child lowers its own limit: no code runs between fork and exec.
        "--fd-limit",
        &limit,
    ];
    Server::start(&launcher::binary()?, &args, &[])
}

/// Wait (bounded) until the server has noticed every closed stream.
fn settle(control: &mut Control, route: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let sample = format!("demo_server_streams_active{{route=\"{route}\"}}");
    while Instant::now() < deadline {
        if control.metric(&sample).is_ok_and(|v| v == 0.0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn progress(out: &mut impl Write, phase: &str, done: usize, total: usize) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let width = 30;
    let filled = (done * width / total.max(1)).min(width);
    crate::errprint!(
        "\r  {phase:<6} [{}{}] {done}/{total}   ",
        "#".repeat(filled),
        "-".repeat(width - filled)
    );
    // A progress bar nobody reads is no loss.
    let _nobody_to_tell = out.flush();
}

/// Run the demo, writing the report to `out`.
pub fn run(o: &Options, out: &mut impl Write) -> Result<Verdict, String> {
    let started = Instant::now();
    let server = spawn_server(o)?;
    let mut control =
        Control::connect(server.addr).map_err(|e| format!("control connection: {e}"))?;
    crate::say!(
        out,
        "leak-demo: server pid {} on {} under RLIMIT_NOFILE {}, heartbeat every {:?}",
        server.pid,
        server.addr,
        o.fd_limit,
        o.interval
    );
    let take = |pid| snapshot(pid).map_err(|e| e.to_string());
    // One answered request: the worker is up and has made its housekeeping timer.
    control.metrics().map_err(|e| format!("the server does not answer: {e}"))?;
    let base = take(server.pid)?;
    let baseline = base.count(FdKind::Timerfd);
    crate::say!(
        out,
        "baseline: {} fds, {} timerfd(s) (the server's housekeeping timer)\n",
        base.fds.len(),
        baseline
    );
    let mut samples = Vec::new();
    let mut leaky_closed = 0;
    let mut refusals = 0;
    let max_leaky = o.fd_limit as usize + o.streams;
    // Each batch ends with a census of the server's fds, O(fds): with
    // batches of a fixed size the run was quadratic in --fd-limit (23.5 s
    // at 4,096). Batches that grow with the limit keep the census count
    // near LEAKY_BATCHES, and the run linear.
    let leaky_batch = o.batch.max(o.fd_limit as usize / LEAKY_BATCHES);
    for (leaky, route, total) in [(false, "fixed", o.streams), (true, "leaky", max_leaky)] {
        let batch = if leaky { leaky_batch } else { o.batch };
        let mut closed = 0;
        while closed < total {
            let mut refused = 0;
            let mut open = Vec::new();
            for _ in 0..batch.min(total - closed) {
                match open_stream(server.addr, route) {
                    Opened::Stream(s) => open.push(s),
                    Opened::Refused(_) | Opened::Closed => refused += 1,
                }
            }
            closed += open.len();
            drop(open); // the clients leave: FIN on every stream
            settle(&mut control, route);
            let snap = take(server.pid)?;
            samples.push(Sample {
                leaky,
                closed,
                timerfds: snap.count(FdKind::Timerfd),
                fds: snap.fds.len(),
                refused,
            });
            progress(out, route, closed, if leaky { o.fd_limit as usize } else { total });
            if leaky {
                leaky_closed = closed;
                refusals += refused;
                if refused > 0 {
                    break; // the limit bites
                }
            }
        }
    }
    if std::io::stderr().is_terminal() {
        crate::errln!();
    }

    // At the limit: more clients knock; the server must answer, not spin.
    // Measured over COST_WINDOW: the kernel counts CPU time in clock ticks
    // (10 ms at USER_HZ 100), so a window under a second could only say
    // 0 % or 1.9 %. The leak's own cost is its wake-ups, counted exactly.
    let cost = measure_cost(&server, &mut control);
    let alive = control.metrics().is_ok_and(|m| m.contains("process_open_fds"));
    let fixed_end = samples.iter().rfind(|s| !s.leaky).map_or(baseline, |s| s.timerfds);
    let leaky_end = samples.iter().rfind(|s| s.leaky).map_or(fixed_end, |s| s.timerfds);
    let fixed_delta = fixed_end as i64 - baseline as i64;
    let leaky_delta = leaky_end as i64 - fixed_end as i64;
    let limit_reached = refusals > 0;
    let ok = fixed_delta == 0
        && leaky_delta == leaky_closed as i64
        && limit_reached
        && alive
        && cost.cpu_percent < 50.0;
    let verdict = Verdict {
        baseline,
        fixed_delta,
        leaky_closed,
        leaky_delta,
        limit_reached,
        alive,
        cost,
        ok,
    };

    crate::say!(out, "{}\n{}", table(&samples).trim_end(), chart(&samples, baseline).trim_end());
    crate::say!(
        out,
        "\nverdict: fixed {:+} timerfds after {} streams; leaky {:+} after {} streams ({}); \
         limit {}; server {}; {:.1}s in all",
        fixed_delta,
        o.streams,
        leaky_delta,
        leaky_closed,
        if leaky_delta == leaky_closed as i64 { "+1 per stream" } else { "NOT +1 per stream" },
        if limit_reached { "reached: new streams refused (503 or closed)" } else { "NOT reached" },
        if alive { "still answering" } else { "NOT answering" },
        started.elapsed().as_secs_f64()
    );
    crate::say!(
        out,
        "cost at the limit, over {:.1}s: {:.0} orphan timer expirations/s ({} leaked timers every {:?}: {:.0}/s expected), \
         {:.0} epoll wake-ups/s, {:.1}% of one core (CPU time counts in {} ms ticks)",
        cost.window.as_secs_f64(),
        cost.orphan_expirations_per_sec,
        leaky_closed,
        o.interval,
        leaky_closed as f64 / o.interval.as_secs_f64(),
        cost.wakeups_per_sec,
        cost.cpu_percent,
        1000 / rustix::param::clock_ticks_per_second().max(1),
    );
    crate::say!(
        out,
        "{}",
        if ok {
            "OK: the leak is real, measurable, and the fix holds"
        } else {
            "UNEXPECTED: see above"
        }
    );
    if let Some(path) = &o.svg {
        std::fs::write(path, svg(&samples, baseline, o.fd_limit))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        crate::say!(out, "chart written to {}", path.display());
    }
    Ok(verdict)
}

/// The side-by-side table: fixed rows, then leaky rows.
pub fn table(samples: &[Sample]) -> String {
    let mut t = String::new();
    let _infallible = writeln!(
        t,
        "{:>6} {:>9} {:>9} {:>7} {:>8}",
        "route", "closed", "timerfds", "fds", "refused"
    );
    for s in samples {
        let route = if s.leaky { "leaky" } else { "fixed" };
        let _infallible = writeln!(
            t,
            "{route:>6} {:>9} {:>9} {:>7} {:>8}",
            s.closed, s.timerfds, s.fds, s.refused
        );
    }
    t
}

/// Timerfds over the batches, as text: `f` fixed, `L` leaky.
pub fn chart(samples: &[Sample], baseline: usize) -> String {
    const ROWS: usize = 10;
    let max = samples.iter().map(|s| s.timerfds).max().unwrap_or(1).max(baseline + 1);
    let mut c = String::from("timerfds held by the server, one column per batch\n");
    for row in (0..ROWS).rev() {
        let level = row * max / (ROWS - 1);
        let _infallible = write!(c, "{level:>6} |");
        for s in samples {
            let y = s.timerfds * (ROWS - 1) / max;
            c.push(if y == row {
                if s.leaky { 'L' } else { 'f' }
            } else if y > row && s.leaky {
                ':'
            } else {
                ' '
            });
        }
        c.push('\n');
    }
    let _infallible = writeln!(c, "       +{}", "-".repeat(samples.len()));
    let _infallible = writeln!(
        c,
        "        f = after a batch on /stream/fixed (flat), L = after a batch on /stream/leaky (climbs)"
    );
    c
}

/// Axis ticks for values up to `top`: 0 and multiples of a round step (1,
/// 2 or 5 times a power of ten), about four of them, the last at or above
/// `top`.
pub fn ticks(top: usize) -> Vec<usize> {
    let rough = top.max(1).div_ceil(4);
    let mut decade = 1;
    while decade * 10 <= rough {
        decade *= 10;
    }
    let step = [1, 2, 5, 10].into_iter().map(|m| m * decade).find(|s| *s >= rough).unwrap_or(rough);
    (0..).map(|k| k * step).take_while(|v| *v < top + step).collect()
}

/// The same chart as an SVG picture.
pub fn svg(samples: &[Sample], baseline: usize, fd_limit: u64) -> String {
    let (w, h, pad) = (720.0, 360.0, 48.0);
    let top = samples.iter().map(|s| s.timerfds).max().unwrap_or(1).max(baseline + 1);
    let ticks = ticks(top.max(fd_limit as usize));
    let max = ticks.last().copied().unwrap_or(1).max(1) as f64;
    let n = samples.len().max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1.0);
    let y = |v: usize| h - pad - (h - 2.0 * pad) * v as f64 / max;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"24\" font-size=\"15\">timerfds held by demo-server, one point per batch (RLIMIT_NOFILE {fd_limit})</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#888\"/>\n",
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    for v in ticks {
        let _infallible = writeln!(s, "<text x=\"6\" y=\"{:.1}\">{v}</text>", y(v) + 4.0);
    }
    let limit_y = y(fd_limit as usize);
    let _infallible = writeln!(
        s,
        "<line x1=\"{pad}\" y1=\"{limit_y:.1}\" x2=\"{}\" y2=\"{limit_y:.1}\" stroke=\"#57606a\" stroke-dasharray=\"6 4\"/>\n<text x=\"{pad}\" y=\"{:.1}\" dx=\"4\" fill=\"#57606a\">fd limit: EMFILE here</text>",
        w - pad,
        limit_y - 6.0
    );
    let _infallible = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#57606a\">batches of streams opened and closed</text>",
        w / 2.0,
        h - 14.0
    );
    for (leaky, color, label) in
        [(false, "#1a7f37", "/stream/fixed"), (true, "#cf222e", "/stream/leaky")]
    {
        let pts: Vec<String> = samples
            .iter()
            .enumerate()
            .filter(|(_, p)| p.leaky == leaky)
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.timerfds)))
            .collect();
        if let Some(last) = pts.last() {
            let _infallible = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\"{}\"/>",
                pts.join(" ")
            );
            let (lx, ly) = last.split_once(',').unwrap_or(("0", "0"));
            let _infallible = writeln!(
                s,
                "<text x=\"{lx}\" y=\"{ly}\" dy=\"-8\" text-anchor=\"end\" fill=\"{color}\">{label}</text>"
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        let mut v: Vec<Sample> = (1..=3)
            .map(|i| Sample { leaky: false, closed: i * 10, timerfds: 1, fds: 12, refused: 0 })
            .collect();
        v.extend((1..=3).map(|i| Sample {
            leaky: true,
            closed: i * 10,
            timerfds: 1 + i * 10,
            fds: 12 + i * 10,
            refused: 0,
        }));
        v
    }

    /// The row (0 = top) of each sample's point in the text chart.
    fn rows(c: &str, n: usize) -> Vec<usize> {
        let grid: Vec<&str> = c.lines().skip(1).take(10).collect();
        (0..n)
            .map(|i| {
                let at = |l: &&str| l.chars().nth(8 + i).is_some_and(|ch| ch == 'f' || ch == 'L');
                grid.iter().position(at).expect("every sample has a point")
            })
            .collect()
    }

    #[test]
    fn chart_and_table_show_flat_then_climbing() {
        let c = chart(&samples(), 1);
        let rows = rows(&c, 6);
        assert!(rows[..3].iter().all(|&r| r == rows[0]), "fixed is flat: {rows:?}\n{c}");
        assert!(rows[3..].windows(2).all(|w| w[1] < w[0]), "leaky climbs: {rows:?}\n{c}");
        let t = table(&samples());
        assert_eq!(t.lines().count(), 7);
        let svg = svg(&samples(), 1, 256);
        assert!(
            svg.starts_with("<svg")
                && svg.contains("polyline")
                && svg.trim_end().ends_with("</svg>")
        );
    }

    /// Round axis ticks: 0, then multiples of 1, 2 or 5 times a power of
    /// ten, reaching the top (they once read 70/140/211/281).
    #[test]
    fn axis_ticks_are_round() {
        for top in [1, 7, 99, 256, 281, 1000, 4096, 20_000] {
            let t = ticks(top);
            let step = t[1];
            let lead = step / 10usize.pow(step.ilog10());
            assert!([1, 2, 5].contains(&lead) && step % 10usize.pow(step.ilog10()) == 0, "{t:?}");
            assert!(t.windows(2).all(|w| w[1] - w[0] == step), "{t:?}");
            assert!(*t.last().unwrap() >= top && t.len() <= 6, "{top}: {t:?}");
        }
        assert_eq!(ticks(256), [0, 100, 200, 300]);
    }
}
