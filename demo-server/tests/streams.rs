//! The two stream routes end to end over loopback: wire format, resume,
//! and what closing a stream leaves behind in each.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{SOON, Server, open_stream, read_heartbeats, read_response, wait_until};

#[test]
fn both_stream_routes_speak_sse() {
    let server = Server::start(&["--interval", "50ms"]);
    for route in ["fixed", "leaky"] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        write!(s, "GET /stream/{route} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let head = read_response(&mut s, true);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert_eq!(head.header("cache-control"), Some("no-cache"));
        assert_eq!(head.header("content-length"), None, "a stream has no length");
        let text = read_heartbeats(&mut s, 3);
        // One block: retry with the first event (not an empty message of
        // its own), and not named `open` (EventSource's own event).
        assert!(text.starts_with("retry: 2000\nevent: hello\ndata: {"), "{route}: {text}");
        assert!(!text.contains("event: open"), "{text}");
        assert!(text.contains(&format!("\"route\":\"{route}\"")));
        let events: Vec<&str> = text.split("\n\n").filter(|e| e.starts_with("id: ")).collect();
        for (i, e) in events.iter().take(3).enumerate() {
            let seq = i + 1;
            assert!(
                e.starts_with(&format!(
                    "id: {seq}\ndata: {{\"seq\":{seq},\"route\":\"{route}\",\"expirations\":"
                )),
                "{route}: event {seq}: {e}"
            );
            assert!(e.contains("\"missed\":"));
        }
    }
}

#[test]
fn last_event_id_resumes_the_sequence_and_a_malformed_one_is_ignored() {
    let server = Server::start(&["--interval", "30ms"]);
    for (header, first) in [("Last-Event-ID: 41\r\n", 42), ("Last-Event-ID: forty\r\n", 1)] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        write!(s, "GET /stream/fixed HTTP/1.1\r\nHost: t\r\n{header}\r\n").unwrap();
        let text = read_heartbeats(&mut s, 1);
        assert!(
            text.contains(&format!("\nid: {first}\ndata: {{\"seq\":{first},")),
            "{header}: {text}"
        );
    }
}

fn close_like(s: TcpStream, how: usize) {
    match how % 3 {
        0 => drop(s), // FIN
        1 => {
            // RST: linger 0, then close
            rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
            drop(s);
        }
        _ => {
            s.shutdown(Shutdown::Write).unwrap(); // half-close: the server sees RDHUP
            let mut s = s;
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink); // the server closes its side in turn
        }
    }
}

#[test]
fn two_hundred_fixed_streams_closed_by_fin_rst_or_shut_wr_leave_nothing_behind() {
    let server = Server::start(&["--interval", "20ms"]);
    // Warm up once so lazily created things (the shared housekeeping timer
    // fd, the spare fd) are in the baseline.
    close_like(open_stream(server.addr, "fixed"), 0);
    assert!(
        wait_until(SOON, || server.metric("demo_server_streams_active{route=\"fixed\"}") == 0.0)
    );
    let timers = server.metric("reactor_timers_active{worker=\"0\",mode=\"dedicated\"}");
    let (fds, timerfds) = (server.settled_fds(1), server.timerfds());

    for i in 0..200 {
        let mut s = open_stream(server.addr, "fixed");
        if i % 10 == 0 {
            read_heartbeats(&mut s, 1); // some get a heartbeat before they go
        }
        close_like(s, i);
    }
    assert!(
        wait_until(SOON, || server.metric("demo_server_streams_active{route=\"fixed\"}") == 0.0)
    );
    assert_eq!(server.settled_fds(1), fds, "fd count back at its baseline");
    assert_eq!(server.timerfds(), timerfds, "a fixed stream's timerfd outlived it");
    assert_eq!(server.metric("reactor_timers_active{worker=\"0\",mode=\"dedicated\"}"), timers);
    assert_eq!(server.metric("demo_server_orphan_timers{route=\"fixed\"}"), 0.0);
    assert_eq!(server.metric("demo_server_streams_opened_total{route=\"fixed\"}"), 201.0);
}

#[test]
fn each_closed_leaky_stream_leaves_exactly_one_timerfd_and_one_orphan() {
    let server = Server::start(&["--interval", "20ms"]);
    close_like(open_stream(server.addr, "fixed"), 0);
    let (fds, timerfds) = (server.settled_fds(1), server.timerfds());

    for i in 1..=20 {
        close_like(open_stream(server.addr, "leaky"), i);
        let settled = wait_until(SOON, || {
            server.metric("demo_server_streams_active{route=\"leaky\"}") == 0.0
        });
        assert!(settled);
        assert_eq!(server.timerfds(), timerfds + i, "after {i} closed leaky streams");
        assert_eq!(server.settled_fds(1), fds + i, "the socket was closed; only the timerfd stays");
        assert_eq!(server.metric("demo_server_orphan_timers{route=\"leaky\"}"), i as f64);
        assert_eq!(server.metric("reactor_detached_timers{worker=\"0\"}"), i as f64);
    }
    // The orphans keep firing for nobody.
    let ticks = server.metric("demo_server_orphan_expirations_total");
    assert!(wait_until(SOON, || server.metric("demo_server_orphan_expirations_total") > ticks));
}

#[test]
fn in_shared_mode_the_leak_is_heap_entries_not_fds() {
    let server = Server::start(&["--interval", "20ms", "--timer-mode", "shared"]);
    close_like(open_stream(server.addr, "fixed"), 0);
    assert!(
        wait_until(SOON, || server.metric("demo_server_streams_active{route=\"fixed\"}") == 0.0)
    );
    let shared = server.metric("reactor_timers_active{worker=\"0\",mode=\"shared\"}");
    let (fds, timerfds) = (server.settled_fds(1), server.timerfds());

    for i in 1..=10 {
        close_like(open_stream(server.addr, "leaky"), i);
    }
    assert!(
        wait_until(SOON, || server.metric("demo_server_orphan_timers{route=\"leaky\"}") == 10.0)
    );
    assert_eq!(server.settled_fds(1), fds, "shared mode keeps no fd per orphan");
    assert_eq!(server.timerfds(), timerfds);
    assert_eq!(server.metric("reactor_timers_active{worker=\"0\",mode=\"shared\"}"), shared + 10.0);
    assert_eq!(server.metric("reactor_timers_active{worker=\"0\",mode=\"dedicated\"}"), 0.0);
}

#[test]
fn a_huge_last_event_id_is_refused_and_ids_never_wrap() {
    let server = Server::start(&["--interval", "20ms"]);
    for huge in [u64::MAX.to_string(), "18446744073709551616".into(), (1u64 << 53).to_string()] {
        let r = common::raw(
            server.addr,
            format!("GET /stream/fixed HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {huge}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 400, "Last-Event-ID: {huge}");
    }
    // One id left before the largest: it is sent, then the stream ends
    // rather than wrap to 0.
    let max = demo_server::sse::MAX_EVENT_ID;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    write!(s, "GET /stream/fixed HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {}\r\n\r\n", max - 1)
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("the stream ends cleanly");
    assert!(text.contains(&format!("\nid: {max}\n")), "{text}");
    assert_eq!(text.matches("\nid: ").count(), 1, "{text}");
    // The server is alive and well.
    assert_eq!(server.metric("demo_server_streams_active{route=\"fixed\"}"), 0.0);
}

#[test]
fn the_orphan_cap_refuses_leaky_streams_saying_why() {
    let server = Server::start(&["--interval", "50ms", "--max-orphans", "3"]);
    for _ in 0..3 {
        drop(open_stream(server.addr, "leaky"));
    }
    assert!(wait_until(SOON, || server.metric("demo_server_orphan_timers{route=\"leaky\"}") == 3.0));
    let r = common::get(server.addr, "/stream/leaky");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("--max-orphans 3"), "{}", r.body);
    assert_eq!(
        server.metric("reactor_detached_timers{worker=\"0\"}"),
        3.0,
        "no fourth timer was made"
    );
    // The fixed route is not affected.
    let mut s = open_stream(server.addr, "fixed");
    read_heartbeats(&mut s, 1);
}

#[test]
fn no_leaky_turns_the_route_off() {
    let server = Server::start(&["--no-leaky"]);
    let r = common::get(server.addr, "/stream/leaky");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("--no-leaky"), "{}", r.body);
    assert_eq!(server.metric("reactor_detached_timers{worker=\"0\"}"), 0.0);
    drop(open_stream(server.addr, "fixed"));
}

/// Read from `s` (bounded by its read timeout) until `text` holds `n` events.
fn read_events(s: &mut TcpStream, n: usize) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 16 * 1024];
    while text.matches("\n\n").count() < n {
        let k = s.read(&mut buf).expect("an event within the read timeout");
        assert!(k > 0, "stream ended: {text}");
        text.push_str(std::str::from_utf8(&buf[..k]).unwrap());
    }
    text
}

/// Subscribe to `/stream/stats`: its hello, its history and its first
/// live snapshot, as JSON.
fn subscribe(server: &Server) -> [serde_json::Value; 3] {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    write!(s, "GET /stream/stats HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, true).status, 200);
    let text = read_events(&mut s, 3);
    let mut events = text.split("\n\n");
    let hello = events.next().unwrap().rsplit("data: ").next().unwrap();
    let history = events.next().unwrap();
    let history = history.strip_prefix("event: history\ndata: ").expect(history);
    let live = events.next().unwrap();
    let live = live.strip_prefix("data: ").expect(live);
    [hello, history, live].map(|j| serde_json::from_str(j).unwrap())
}

#[test]
fn the_stats_stream_says_shared_timers_and_starts_with_the_history() {
    let server = Server::start(&["--interval", "50ms"]);
    drop(open_stream(server.addr, "leaky"));
    // Worker 0 records a snapshot every 500 ms whether or not anyone
    // watches: a new subscriber soon gets a past that shows the orphan.
    let orphans = |h: &serde_json::Value| {
        let col = h["columns"].as_array().unwrap().iter().position(|c| c == "leaky_orphans");
        h["points"].as_array().unwrap().last().map(|p| p[col.unwrap()].clone())
    };
    let mut got = subscribe(&server);
    let past = wait_until(SOON * 2, || {
        got = subscribe(&server);
        got[1]["points"].as_array().unwrap().len() >= 2 && orphans(&got[1]) == Some(1.into())
    });
    let [hello, history, live] = got;
    assert!(past, "a fresh subscriber gets the past: {history}");
    assert_eq!(hello["route"], "stats");
    assert_eq!(hello["timer_mode"], "shared", "stats run on the shared housekeeping timer");
    assert_eq!(hello["interval_ms"], 500);
    assert_eq!(history["period_ms"], 500);
    assert_eq!(live["orphans"]["leaky"], 1);
    let last_t = history["points"].as_array().unwrap().last().unwrap()[0].as_u64();
    assert!(live["t"].as_u64() >= last_t, "live after the history: {live}");
}

#[test]
fn a_stats_subscriber_keeps_the_fd_census_fresh() {
    // Unwatched, the census runs every IDLE_PERIOD; a subscriber keeps it
    // at PERIOD. Every live snapshot carries the age of its census, so four
    // snapshots in a row (1.5 s) all younger than two periods can only come
    // from a census that runs about every period.
    use demo_server::census::{IDLE_PERIOD, PERIOD};
    let fresh = (2 * PERIOD + PERIOD / 2).as_millis() as u64;
    // Unwatched, ages grow by a stats period per snapshot between censuses
    // an IDLE_PERIOD apart: no four in a row stay under `fresh`.
    let span = 3 * demo_server::stats::PERIOD;
    assert!(span.as_millis() as u64 >= fresh && IDLE_PERIOD > span + demo_server::stats::PERIOD);
    let server = Server::start(&["--interval", "1s"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    write!(s, "GET /stream/stats HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, true).status, 200);
    // The hello, the history, then up to 12 live snapshots (6 s).
    let text = read_events(&mut s, 2 + 12);
    let ages: Vec<u64> = text
        .split("\n\n")
        .skip(2)
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap()["census_age_ms"].as_u64())
        .map(Option::unwrap)
        .collect();
    assert!(
        ages.windows(4).any(|w| w.iter().all(|&age| age < fresh)),
        "census ages (ms) of the live snapshots: {ages:?}"
    );
}
