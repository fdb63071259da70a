//! `demo-server timeline TRACE.json --svg OUT.svg`: the reactor's timeline
//! (`REACTOR_TRACE=chrome:PATH`) drawn as an SVG, with no viewer needed.
//!
//! One lane per reactor thread, time left to right. In each lane, from the
//! top: the `epoll_wait` spans (grey: the loop asleep), the `read` spans of
//! ready timerfds (blue, labelled with the fd and the expirations read),
//! the callbacks (green; a shared pass in violet), and the instants
//! (`timerfd_settime`, `epoll_ctl`, `close`: ticks, labelled). A `--label
//! FD=TEXT` names an fd, so that, say, a leaked timer's read says so.
//!
//! The file may end without its closing bracket (the format allows it, and
//! a trace cut off at its bound ends so); such a file is read all the same.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// What to draw.
#[derive(Debug, Clone)]
pub struct Options {
    /// Milliseconds from the trace's first event to the window's start;
    /// `None`: the window ends at the last event.
    pub from_ms: Option<f64>,
    /// The window's length, in milliseconds.
    pub span_ms: f64,
    /// Names for fds: `(13, "leaked heartbeat")`.
    pub labels: Vec<(i64, String)>,
    /// Draw only the lanes of threads whose name starts with this.
    pub thread: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { from_ms: None, span_ms: 1000.0, labels: Vec::new(), thread: None }
    }
}

#[derive(Debug, Clone)]
struct Span {
    name: String,
    start: f64,
    end: f64,
    args: Value,
}

#[derive(Debug, Default)]
struct Lane {
    name: String,
    spans: Vec<Span>,
    instants: Vec<(f64, String, Value)>,
}

/// Parse a trace: events by thread, spans paired.
fn lanes(text: &str) -> Result<(BTreeMap<i64, Lane>, f64, f64), String> {
    let body = text.trim().trim_end_matches(']').trim_end().trim_end_matches(',');
    let events: Vec<Value> =
        serde_json::from_str(&format!("{body}]")).map_err(|e| format!("not a trace: {e}"))?;
    let mut lanes: BTreeMap<i64, Lane> = BTreeMap::new();
    let mut open: BTreeMap<i64, Vec<(String, f64, Value)>> = BTreeMap::new();
    let (mut first, mut last) = (f64::MAX, f64::MIN);
    for e in &events {
        let tid = e["tid"].as_i64().unwrap_or(0);
        let lane = lanes.entry(tid).or_default();
        let name = e["name"].as_str().unwrap_or("").to_string();
        let ph = e["ph"].as_str().unwrap_or("");
        if ph == "M" {
            lane.name = e["args"]["name"].as_str().unwrap_or("?").to_string();
            continue;
        }
        let Some(ts) = e["ts"].as_f64() else { continue };
        (first, last) = (first.min(ts), last.max(ts));
        match ph {
            "B" => open.entry(tid).or_default().push((name, ts, e["args"].clone())),
            "E" => {
                if let Some((name, start, mut args)) = open.entry(tid).or_default().pop() {
                    if let (Value::Object(a), Value::Object(b)) = (&mut args, &e["args"]) {
                        a.extend(b.clone());
                    }
                    lane.spans.push(Span { name, start, end: ts, args });
                }
            }
            _ => lane.instants.push((ts, name, e["args"].clone())),
        }
    }
    if first > last {
        return Err("the trace holds no timed event".into());
    }
    Ok((lanes, first, last))
}

/// Draw `text` (a trace) per `o`.
pub fn svg(text: &str, o: &Options) -> Result<String, String> {
    let (lanes, first, last) = lanes(text)?;
    let span_us = o.span_ms * 1e3;
    let t0 = match o.from_ms {
        Some(ms) => first + ms * 1e3,
        None => (last - span_us).max(first),
    };
    let t1 = t0 + span_us;
    let lanes: Vec<&Lane> = lanes
        .values()
        .filter(|l| o.thread.as_ref().is_none_or(|p| l.name.starts_with(p.as_str())))
        .filter(|l| l.spans.iter().any(|s| s.end >= t0 && s.start <= t1))
        .collect();
    let (w, left, right) = (1100.0, 90.0, 20.0);
    let lane_h = 170.0;
    let h = 60.0 + lane_h * lanes.len() as f64 + 40.0;
    let x = |t: f64| left + (w - left - right) * (t - t0) / span_us;
    let label_of = |args: &Value| -> String {
        let fd = args["fd"].as_i64().or_else(|| args["timer_fd"].as_i64());
        match fd.and_then(|fd| o.labels.iter().find(|(f, _)| *f == fd)) {
            Some((fd, name)) => format!("fd {fd}: {name}"),
            None => fd.map(|fd| format!("fd {fd}")).unwrap_or_default(),
        }
    };
    let mut s = String::new();
    let _infallible = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"20\" font-size=\"14\">the reactor's timeline: {:.0} ms from {:.3} s (CLOCK_MONOTONIC)</text>",
        o.span_ms,
        t0 / 1e6
    );
    // The time axis: round ticks in milliseconds.
    let axis_y = h - 24.0;
    for tick in super::leak_demo::ticks(o.span_ms.max(1.0) as usize) {
        let tx = x(t0 + tick as f64 * 1e3);
        if tx > w - right + 0.5 {
            break;
        }
        let _infallible = writeln!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"36\" x2=\"{tx:.1}\" y2=\"{axis_y}\" stroke=\"#eaeef2\"/>\n<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#57606a\">{tick} ms</text>",
            axis_y + 14.0
        );
    }
    for (i, lane) in lanes.iter().enumerate() {
        let y0 = 44.0 + lane_h * i as f64;
        let _infallible = writeln!(
            s,
            "<text x=\"6\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\n<text x=\"6\" y=\"{:.1}\" fill=\"#57606a\">wait</text><text x=\"6\" y=\"{:.1}\" fill=\"#57606a\">read</text><text x=\"6\" y=\"{:.1}\" fill=\"#57606a\">callback</text><text x=\"6\" y=\"{:.1}\" fill=\"#57606a\">syscalls</text>",
            y0 + 4.0,
            xml(&lane.name),
            y0 + 26.0,
            y0 + 64.0,
            y0 + 90.0,
            y0 + 115.0
        );
        // Labels that would overlap stack instead: the first level whose last
        // label ends left of this one (a label is ~5.5 px a character).
        let mut read_levels = Labels::new(2);
        let mut instant_levels = Labels::new(4);
        for sp in lane.spans.iter().filter(|sp| sp.end >= t0 && sp.start <= t1) {
            let (row, color) = match sp.name.as_str() {
                "epoll_wait" => (0.0, "#d0d7de"),
                "read" => (1.0, "#0969da"),
                "shared pass" => (2.0, "#8250df"),
                _ => (2.0, "#1a7f37"),
            };
            let (a, b) = (x(sp.start.max(t0)), x(sp.end.min(t1)));
            let y = y0 + 14.0 + row * 26.0 + if row > 0.0 { 12.0 } else { 0.0 };
            let _infallible = writeln!(
                s,
                "<rect x=\"{a:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"16\" fill=\"{color}\"><title>{} {:.1} µs {}</title></rect>",
                (b - a).max(1.0),
                xml(&sp.name),
                sp.end - sp.start,
                xml(&sp.args.to_string())
            );
            if sp.name == "read" {
                let n = sp.args["expirations"].as_i64().unwrap_or(0);
                let text = format!("{} ×{n}", label_of(&sp.args));
                if let Some(level) = read_levels.place(a, &text) {
                    let _infallible = writeln!(
                        s,
                        "<text x=\"{a:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#0969da\"{}>{}</text>",
                        y - 3.0 - 11.0 * level as f64,
                        anchor(a, &text, w),
                        xml(&text)
                    );
                }
            }
        }
        for (ts, name, args) in lane.instants.iter().filter(|(ts, ..)| (t0..=t1).contains(ts)) {
            let ix = x(*ts);
            let y = y0 + 104.0;
            let short = name.replace("timerfd_", "").replace("epoll_ctl ", "");
            let text = format!("{short} {}", label_of(args));
            let _infallible = writeln!(
                s,
                "<line x1=\"{ix:.1}\" y1=\"{y:.1}\" x2=\"{ix:.1}\" y2=\"{:.1}\" stroke=\"#57606a\"><title>{} {}</title></line>",
                y + 14.0,
                xml(name),
                xml(&args.to_string())
            );
            if let Some(level) = instant_levels.place(ix, &text) {
                let _infallible = writeln!(
                    s,
                    "<text x=\"{ix:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#57606a\"{}>{}</text>",
                    y + 25.0 + 10.0 * level as f64,
                    anchor(ix, &text, w),
                    xml(&text)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    Ok(s)
}

/// Levels of one row's labels: where each level's last label ends.
struct Labels(Vec<f64>);

impl Labels {
    fn new(levels: usize) -> Labels {
        Labels(vec![f64::MIN; levels])
    }

    /// The level for a label at `x`, or `None` when every level is taken
    /// there (the mark keeps its tooltip).
    fn place(&mut self, x: f64, text: &str) -> Option<usize> {
        let level = self.0.iter().position(|&end| end + 4.0 <= x)?;
        self.0[level] = x + 5.5 * text.chars().count() as f64;
        Some(level)
    }
}

/// A label that would run off the picture's right edge ends at its mark.
fn anchor(x: f64, text: &str, width: f64) -> &'static str {
    if x + 5.5 * text.chars().count() as f64 > width { " text-anchor=\"end\"" } else { "" }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"[
{"ph":"M","name":"thread_name","pid":1,"tid":7,"args":{"name":"worker-0"}},
{"ph":"B","name":"epoll_wait","ts":1000.0,"pid":1,"tid":7,"args":{"timeout_ms":-1}},
{"ph":"E","name":"epoll_wait","ts":1900.0,"pid":1,"tid":7,"args":{"events":1}},
{"ph":"B","name":"read","ts":1901.0,"pid":1,"tid":7,"args":{"fd":13}},
{"ph":"E","name":"read","ts":1902.0,"pid":1,"tid":7,"args":{"fd":13,"expirations":1}},
{"ph":"B","name":"callback","ts":1903.0,"pid":1,"tid":7,"args":{"timer_fd":13}},
{"ph":"i","name":"epoll_ctl DEL","ts":1904.0,"pid":1,"tid":7,"s":"t","args":{"fd":13}},
{"ph":"E","name":"callback","ts":1910.0,"pid":1,"tid":7,"args":{}},
"#;

    /// A trace cut off without its closing bracket draws: the wait, the read
    /// (named by its label), the callback and the instant, in time order.
    #[test]
    fn a_cut_trace_draws_each_step_in_order() {
        let o = Options { labels: vec![(13, "leaked".into())], ..Options::default() };
        let svg = svg(TRACE, &o).unwrap();
        let at = |needle: &str| svg.find(needle).unwrap_or_else(|| panic!("{needle}: {svg}"));
        assert!(svg.contains("worker-0"));
        assert!(at("epoll_wait 900.0 µs") < at("read 1.0 µs"));
        assert!(svg.contains("fd 13: leaked ×1"));
        assert!(svg.contains("callback 7.0 µs"));
        assert!(svg.contains("DEL fd 13: leaked"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(super::svg("not json", &o).is_err());
    }
}
