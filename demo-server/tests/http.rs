//! Every HTTP behaviour the server promises, with its status, over loopback.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{SOON, Server, closed_within, get, raw, read_response};

const QUICK: Duration = Duration::from_secs(3);

fn status_then_closed(server: &Server, request: &[u8]) -> (u16, bool) {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let r = read_response(&mut s, false);
    (r.status, closed_within(&mut s, QUICK))
}

#[test]
fn refusals_get_the_right_status() {
    let server = Server::start(&[]);
    let cases: &[(&[u8], u16, bool)] = &[
        (b"GARBAGE\r\n\r\n", 400, true),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400, true), // HTTP/1.1 without Host
        (b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404, true),
        (b"POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405, true),
        (b"DELETE /stream/fixed HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405, true),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 413, true),
        (b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413, true),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            true,
        ),
    ];
    for (request, status, closes) in cases {
        let (got, closed) = status_then_closed(&server, request);
        let text = String::from_utf8_lossy(request);
        assert_eq!(got, *status, "{text}");
        assert_eq!(closed, *closes, "{text}: closed after the answer");
    }
    let r = raw(server.addr, b"PUT / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn rfc_9112_details_over_the_wire() {
    let server = Server::start(&[]);
    let cases: &[(&[u8], u16, bool)] = &[
        (b"GET http://t/metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200, true),
        (b"GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, true),
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: +0\r\n\r\n", 400, true),
        (b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 405, true),
        (b"PUT /stream/fixed HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405, true),
    ];
    for (request, status, closes) in cases {
        let (got, closed) = status_then_closed(&server, request);
        let text = String::from_utf8_lossy(request);
        assert_eq!(got, *status, "{text}");
        assert_eq!(closed, *closes, "{text}: closed after the answer");
    }
}

#[test]
fn a_cors_preflight_allows_resuming_with_last_event_id() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"OPTIONS /stream/fixed HTTP/1.1\r\nHost: t\r\nOrigin: http://elsewhere.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let allowed = r.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(allowed.split(',').any(|h| h.trim() == "last-event-id"), "{allowed}");
    assert!(r.header("access-control-allow-methods").unwrap().contains("GET"));
    // The connection stays usable: the stream request follows the preflight.
    s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 7\r\n\r\n").unwrap();
    let head = read_response(&mut s, true);
    assert_eq!((head.status, head.header("access-control-allow-origin")), (200, Some("*")));
}

#[test]
fn oversized_heads_get_431() {
    let server = Server::start(&[]);
    let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.resize(9 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_then_closed(&server, &big), (431, true));
    let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status_then_closed(&server, &many), (431, true));
}

#[test]
fn pages_and_head() {
    let server = Server::start(&[]);
    let page = get(server.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("new EventSource(\"/stream/stats\")"));
    assert!(page.body.contains("<link rel=\"icon\" href=\"data:,\">"), "no favicon request");
    let metrics = get(server.addr, "/metrics");
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));

    for path in ["/", "/metrics"] {
        let r = raw(
            server.addr,
            format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200, "HEAD {path}");
        assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 0);
    }
    for path in ["/stream/fixed", "/stream/leaky", "/stream/stats"] {
        let mut s = server.connect();
        write!(s, "HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, true);
        assert_eq!(
            (r.status, r.header("content-type")),
            (200, Some("text/event-stream")),
            "HEAD {path}"
        );
        assert!(
            closed_within(&mut s, QUICK),
            "HEAD {path}: no body follows, the connection closes"
        );
    }
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let a = read_response(&mut s, false);
    let b = read_response(&mut s, true);
    let c = read_response(&mut s, false);
    let d = read_response(&mut s, false);
    assert_eq!([a.status, b.status, c.status, d.status], [200, 200, 404, 200]);
    assert!(a.body.contains("process_open_fds"));
    assert_eq!(a.header("connection"), Some("keep-alive"));
    assert!(d.body.contains("<!doctype html>"));
    assert_eq!(d.header("connection"), Some("close"));
    assert!(closed_within(&mut s, QUICK), "Connection: close is honoured");

    // The same connection serves several requests sent one at a time.
    let mut s = server.connect();
    for _ in 0..3 {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 200);
    }
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = Server::start(&[]);
    let (status, closed) = status_then_closed(&server, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!((status, closed), (200, true));
    let mut s = server.connect();
    s.write_all(b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200, "still open after keep-alive");
}

#[test]
fn a_request_sent_one_byte_per_write_still_parses() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    for b in b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
    }
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert!(server.metric("demo_server_http_responses_total{code=\"200\"}") >= 1.0);
}

#[test]
fn response_counts_by_code_reach_the_metrics() {
    let server = Server::start(&[]);
    for _ in 0..3 {
        assert_eq!(get(server.addr, "/missing").status, 404);
    }
    assert_eq!(status_then_closed(&server, b"GARBAGE\r\n\r\n").0, 400);
    assert_eq!(server.metric("demo_server_http_responses_total{code=\"404\"}"), 3.0);
    assert_eq!(server.metric("demo_server_http_responses_total{code=\"400\"}"), 1.0);
}

#[test]
fn a_long_pipeline_is_answered_in_full_and_in_order_even_after_a_half_close() {
    let server = Server::start(&[]);
    for half_close in [false, true] {
        let mut s = server.connect();
        let mut request = Vec::new();
        for i in 0..150 {
            let path = if i % 2 == 0 { "/metrics" } else { "/nope" };
            request.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(&request).unwrap();
        if half_close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        for i in 0..150 {
            let want = if i % 2 == 0 { 200 } else { 404 };
            assert_eq!(read_response(&mut s, false).status, want, "response {i}");
        }
        let last = read_response(&mut s, false);
        assert!(last.body.contains("<!doctype html>"), "the last answer is the page");
        assert!(closed_within(&mut s, QUICK));
    }
}

/// The first scrape after start is true: the census it reads was taken
/// once every worker was set up (before the banner), not before they existed.
#[test]
fn the_first_scrape_counts_the_workers_fds() {
    for workers in ["1", "2"] {
        let server = Server::start(&["--interval", "1s", "--workers", workers]);
        let text = server.metrics();
        let sample = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        // Everything but the scrape's own connection, which came after it.
        let kernel = server.settled_fds(workers.parse().unwrap());
        assert_eq!(
            sample("process_open_fds") as usize,
            kernel,
            "{workers} workers: {:?}",
            server.links()
        );
        assert_eq!(
            sample("demo_server_timerfds_open") as usize,
            server.timerfds(),
            "{workers} workers"
        );
        assert!(sample("demo_server_timerfds_open") >= 1.0, "the housekeeping heap's timerfd");
    }
}

#[test]
fn fd_counts_come_from_a_census_that_says_how_old_it_is() {
    let server = Server::start(&["--interval", "1s"]);
    // On its own the census runs every IDLE_PERIOD.
    let idle = demo_server::census::IDLE_PERIOD.as_secs_f64();
    let age = server.metric("demo_server_fd_census_age_seconds");
    assert!((0.0..idle + 2.0).contains(&age), "census age {age}");
    // A scrape that finds it older than a period asks for one census, for
    // the next scrape: scraping again, it is soon at most a period or two old.
    let period = demo_server::census::PERIOD.as_secs_f64();
    assert!(
        common::wait_until(SOON, || {
            server.metric("demo_server_fd_census_age_seconds") < 2.0 * period + 0.5
        }),
        "a scraped census stayed old"
    );
    let before = server.metric("process_open_fds");
    let streams: Vec<TcpStream> =
        (0..20).map(|_| common::open_stream(server.addr, "fixed")).collect();
    // The census thread catches up within a period or two.
    assert!(
        common::wait_until(SOON, || server.metric("process_open_fds") >= before + 40.0),
        "20 streams (a socket and a timerfd each) never reached the census"
    );
    drop(streams);
}

/// The families `/metrics` serves, as (name, type), in order.
fn families(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

#[test]
fn every_family_follows_the_naming_guide_and_is_in_the_metrics_table() {
    let server = Server::start(&["--workers", "2"]);
    let body = server.metrics();
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md"))
        .unwrap();
    let documented: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect();
    let served = families(&body);
    assert_eq!(served, documented, "docs/METRICS.md lists exactly what /metrics serves, in order");
    for (name, kind) in &served {
        assert!(
            ["process_", "reactor_", "demo_server_"].iter().any(|p| name.starts_with(p)),
            "{name}: the prefix says which layer owns it"
        );
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        if name.starts_with("reactor_") {
            for w in ["0", "1"] {
                assert!(
                    body.lines()
                        .any(|l| l.starts_with(name.as_str())
                            && l.contains(&format!("worker=\"{w}\""))),
                    "{name} has a series for worker {w}"
                );
            }
        }
    }
    assert!(!body.contains("process_fd_usage_ratio"), "not a process collector family");
}

#[test]
fn the_process_families_are_the_kernels_numbers() {
    let server = Server::start(&[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let started = server.metric("process_start_time_seconds");
    assert!(
        started <= now.as_secs_f64() + 1.0 && started > now.as_secs_f64() - 120.0,
        "started {started}, now {now:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid)).unwrap();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let rss = server.metric("process_resident_memory_bytes");
    // The census is up to 500 ms old; RSS moves little meanwhile.
    assert!((rss / 1024.0 - rss_kib).abs() < rss_kib / 2.0 + 1024.0, "{rss} B vs {rss_kib} KiB");
    assert!(server.metric("process_virtual_memory_bytes") >= rss);
    assert!(server.metric("process_cpu_seconds_total") >= 0.0);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid)).unwrap();
    let soft = demo_server::inspect::parse_nofile(&limits).0.unwrap();
    assert_eq!(server.metric("process_max_fds"), soft as f64);
    let info = format!(
        "demo_server_build_info{{version=\"{}\",timer_mode=\"dedicated\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(server.metric(&info), 1.0);
}

/// `/debug/fds`: the schema of `inspect --json` (a `fds` list, each with its
/// `kind`), what only the server knows added (the token, the leaked flag),
/// same-origin only, and served off loopback only when asked for.
#[test]
fn debug_fds_is_inspect_of_the_server_itself_with_what_it_knows() {
    let server = Server::start(&["--interval", "100ms"]);
    drop(common::open_stream(server.addr, "leaky")); // its client leaves: an orphan
    assert!(common::wait_until(SOON, || {
        server.metric("demo_server_orphan_timers{route=\"leaky\"}") == 1.0
    }));
    let report = |server: &Server| -> serde_json::Value {
        let mut v = serde_json::Value::Null;
        let got = common::wait_until(SOON, || {
            let r = get(server.addr, "/debug/fds");
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(!r.head.contains("Access-Control"), "same-origin only: {}", r.head);
            v = serde_json::from_str(&r.body).unwrap();
            v.get("pending").is_none() && v["fds"].as_array().is_some_and(|f| !f.is_empty())
        });
        assert!(got, "no report: {v}");
        v
    };
    let v = report(&server);
    assert_eq!(v["pid"], server.pid);
    let fds = v["fds"].as_array().unwrap();
    assert!(fds.iter().all(|e| e["kind"].is_string() && e["fd"].is_i64()), "{v}");
    let leaked: Vec<&serde_json::Value> = fds.iter().filter(|e| e["leaked"] == true).collect();
    assert_eq!(leaked.len(), 1, "{v}");
    let orphan = leaked[0];
    assert_eq!(orphan["kind"], "timerfd");
    assert_eq!(orphan["timer"]["interval_ns"], 100_000_000);
    assert!(orphan["slab_key"].is_u64() && orphan["generation"].is_u64(), "{orphan}");
    // The same fd, as the kernel lists it, is a timerfd.
    let fd = orphan["fd"].as_i64().unwrap();
    let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", server.pid)).unwrap();
    assert_eq!(link.to_string_lossy(), "anon_inode:[timerfd]");

    // Off loopback, only with --debug-fds.
    let wildcard = Server::start_with_env(&[], &["--addr", "0.0.0.0:0"]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], wildcard.addr.port()));
    let r = get(addr, "/debug/fds");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("--debug-fds"), "{}", r.body);
    let opted = Server::start_with_env(&[], &["--addr", "0.0.0.0:0", "--debug-fds"]);
    assert_eq!(report(&opted)["pid"], opted.pid);
}
