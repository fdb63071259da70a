//! The reactor's timeline, from a real server: `REACTOR_TRACE=chrome:PATH`
//! writes Chrome trace-event JSON with the data path in time order, flushed
//! at SIGTERM, bounded in size; `demo-server timeline` draws it.

mod common;

use common::{SOON, Server, open_stream, read_heartbeats};
use serde_json::Value;

/// Start a traced server, let one stream get `beats` heartbeats, stop it
/// with SIGTERM; the trace's events.
fn traced_run(max_events: Option<&str>, beats: usize) -> (Vec<Value>, String) {
    let path = std::env::temp_dir().join(format!("timeline-{}-{beats}.json", std::process::id()));
    let trace = format!("chrome:{}", path.display());
    let mut env = vec![("REACTOR_TRACE", trace.as_str())];
    if let Some(max) = max_events {
        env.push(("REACTOR_TRACE_MAX_EVENTS", max));
    }
    let mut server = Server::start_with_env(&env, &["--interval", "50ms"]);
    let mut s = open_stream(server.addr, "fixed");
    read_heartbeats(&mut s, beats);
    drop(s);
    server.signal(rustix::process::Signal::TERM);
    assert_eq!(server.wait_exit(SOON).and_then(|s| s.code()), Some(0));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let body = text.trim().trim_end_matches(',');
    let events: Vec<Value> = serde_json::from_str(&format!("{body}]")).expect("valid JSON array");
    (events, text)
}

#[test]
fn a_heartbeat_shows_wait_read_callback_in_time_order_and_the_picture_draws_it() {
    let (events, text) = traced_run(None, 3);
    // The heartbeat's timerfd: the one created with a 50 ms period.
    let fd = events
        .iter()
        .find(|e| {
            e["name"] == "timerfd_settime"
                && e["args"]["setting"].as_str().is_some_and(|s| s.contains("period: 50ms"))
        })
        .and_then(|e| e["args"]["fd"].as_i64())
        .expect("the heartbeat's settime");
    // On the worker's track: a wait that returned, then the read of that fd,
    // then its callback; timestamps never go back.
    let worker = events
        .iter()
        .find(|e| e["ph"] == "M" && e["args"]["name"] == "worker-0")
        .and_then(|e| e["tid"].as_i64())
        .expect("a worker-0 track");
    let track: Vec<&Value> =
        events.iter().filter(|e| e["tid"] == worker && e["ph"] != "M").collect();
    assert!(track.windows(2).all(|w| w[0]["ts"].as_f64() <= w[1]["ts"].as_f64()), "time order");
    let steps: Vec<String> = track
        .iter()
        .map(|e| format!("{} {}", e["ph"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    let read = track
        .iter()
        .position(|e| e["ph"] == "B" && e["name"] == "read" && e["args"]["fd"] == fd)
        .expect("a read of the heartbeat's fd");
    assert_eq!(steps[read - 1], "E epoll_wait", "{steps:?}");
    assert_eq!(steps[read + 1], "E read", "{steps:?}");
    assert_eq!(track[read + 1]["args"]["expirations"], 1);
    assert_eq!(steps[read + 2], "B callback", "{steps:?}");
    // Flushed at SIGTERM: the shutdown's DEL and close of that fd are in.
    assert!(events.iter().any(|e| e["name"] == "close" && e["args"]["fd"] == fd), "no close");
    // Drawn around that read (a window fixed by the trace, not by how long
    // the shutdown took), the picture labels it.
    let first = events.iter().filter_map(|e| e["ts"].as_f64()).fold(f64::MAX, f64::min);
    let at_ms = (track[read]["ts"].as_f64().unwrap() - first) / 1e3;
    let window = demo_server::timeline::Options {
        from_ms: Some((at_ms - 5.0).max(0.0)),
        span_ms: 20.0,
        ..Default::default()
    };
    let svg = demo_server::timeline::svg(&text, &window).unwrap();
    assert!(svg.contains("worker-0") && svg.contains(&format!("fd {fd} ×1")), "{svg}");
}

#[test]
fn the_trace_is_bounded_and_says_so() {
    let (events, _) = traced_run(Some("50"), 8);
    let counted = events.iter().filter(|e| e["ph"] != "M").count();
    assert_eq!(counted, 51, "50 events and the note of the bound");
    let note = |e: &&Value| e["name"].as_str().is_some_and(|n| n.starts_with("trace full: 50 "));
    assert!(events.iter().any(|e| note(&e)), "the bound is said in the trace");
}
