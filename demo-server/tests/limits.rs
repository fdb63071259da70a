//! Deadlines, limits and faults: slowloris, idle keep-alive, --max-conns,
//! slow readers, EMFILE, SIGTERM and SIGINT, several workers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    SOON, Server, closed_within, open_stream, read_heartbeats, read_response, wait_until,
};
use rustix::process::Signal;

#[test]
fn a_slow_head_gets_408_and_a_close_at_the_deadline() {
    let server = Server::start(&["--header-timeout", "300ms"]);
    let mut s = server.connect();
    let start = Instant::now();
    s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n").unwrap(); // never finished
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 408);
    assert!(start.elapsed() >= Duration::from_millis(300), "cut before the deadline");
    assert!(closed_within(&mut s, SOON));
    // A connection that says nothing at all is cut the same way.
    let mut silent = server.connect();
    assert_eq!(read_response(&mut silent, false).status, 408);
    assert_eq!(server.metric("demo_server_http_responses_total{code=\"408\"}"), 2.0);
}

#[test]
fn the_header_deadline_is_cancelled_when_the_head_completes() {
    let server = Server::start(&["--header-timeout", "100ms", "--interval", "50ms"]);
    let mut s = open_stream(server.addr, "fixed");
    // Ten heartbeats span 500 ms, five times the header deadline.
    let text = read_heartbeats(&mut s, 10);
    assert!(!text.contains("408"), "{text}");
    assert_eq!(server.metric("demo_server_http_responses_total{code=\"408\"}"), 0.0);
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::start(&["--idle-timeout", "200ms"]);
    let mut s = server.connect();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let start = Instant::now();
    assert!(closed_within(&mut s, SOON), "idle connection kept");
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn over_max_conns_gets_503_with_retry_after() {
    let server = Server::start(&["--max-conns", "3"]);
    let _streams: Vec<TcpStream> = (0..3).map(|_| open_stream(server.addr, "fixed")).collect();
    let mut extra = server.connect();
    extra.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut extra, false);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(_streams);
    // Wait by the kernel's count, not /metrics: asking /metrics needs a
    // connection, which would itself be refused while the server is full.
    server.settled_fds(1);
    let _again = open_stream(server.addr, "fixed"); // room again
    assert_eq!(server.metric("demo_server_http_responses_total{code=\"503\"}"), 1.0);
}

#[test]
fn a_reader_too_slow_to_keep_up_is_disconnected() {
    let server = Server::start(&["--interval", "1ms", "--max-buffered", "4096"]);
    let s = std::net::TcpStream::connect(server.addr).unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&s, 4096).unwrap();
    let mut s = s;
    s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Never read: the kernel buffers fill, then the server's queue passes 4 KiB.
    assert!(
        wait_until(Duration::from_secs(20), || server
            .metric("demo_server_streams_active{route=\"fixed\"}")
            == 0.0
            && server.metric("demo_server_streams_opened_total{route=\"fixed\"}") == 1.0),
        "the slow reader was never cut off"
    );
    assert!(closed_within(&mut s, SOON));
}

#[test]
fn emfile_is_answered_without_spinning_and_the_server_recovers() {
    let mut server =
        Server::start_with_fd_limit(48, &["--interval", "50ms", "--max-conns", "1000"]);
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let (s, head) = ask_for_stream(&server);
        match head {
            Ok(head) if &head == b"HTTP/1.1 200" => streams.push(s),
            Ok(head) if &head == b"HTTP/1.1 503" => refused += 1,
            Ok(head) => panic!("unexpected {:?}", String::from_utf8_lossy(&head)),
            Err(_) => refused += 1, // closed without an answer also counts
        }
    }
    assert!(refused > 0 && !streams.is_empty(), "{} streams, {refused} refused", streams.len());

    // Saturated: more clients knock while every fd is taken. CPU stays low.
    let cpu = server.cpu_time();
    let start = Instant::now();
    for _ in 0..20 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        let _ = s.read(&mut [0u8; 64]);
    }
    std::thread::sleep(Duration::from_millis(500)); // a window in which a spinning server would burn CPU
    let used = server.cpu_time() - cpu;
    let wall = start.elapsed();
    assert!(used < wall / 2, "server used {used:?} CPU in {wall:?} while saturated");
    assert!(server.is_running(), "the server died");

    // The streams already open kept working.
    read_heartbeats(&mut streams[0], 2);

    // Free the fds: new streams are served again.
    drop(streams);
    assert!(wait_until(SOON, || {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(SOON)).unwrap();
        let _ = s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
    }));
    // Refusals were answered, and counted; the fd count was readable throughout.
    assert!(server.metric("demo_server_http_responses_total{code=\"503\"}") >= 1.0);
    assert!(
        server.metric("demo_server_accept_errors_total{reason=\"emfile\"}") >= 1.0,
        "{}",
        server.metrics()
    );
    assert!(server.metric("process_open_fds") > 0.0);
}

#[test]
fn sigterm_ends_streams_cleanly_answers_204_and_exits_0_within_2s() {
    for signal in [Signal::TERM, Signal::INT] {
        let mut server = Server::start(&["--interval", "50ms"]);
        let mut stream = open_stream(server.addr, "fixed");
        read_heartbeats(&mut stream, 1);
        let mut idle = server.connect();
        idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut idle, false).status, 200);

        let start = Instant::now();
        server.signal(signal);
        // The stream gets a last event, then a clean end of stream.
        let mut rest = String::new();
        stream.read_to_string(&mut rest).expect("a clean close, not a reset");
        assert!(rest.contains("event: shutdown"), "{rest}");
        // During shutdown a new stream request is told to stop reconnecting.
        idle.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut idle, true).status, 204);
        let status = server.wait_exit(Duration::from_secs(2)).expect("exited within 2 s");
        assert!(status.success(), "{signal:?}: {status:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
        // Nobody is listening any more.
        assert!(TcpStream::connect(server.addr).is_err());
    }
}

#[test]
fn several_workers_share_one_listener_and_the_metrics() {
    let server = Server::start(&["--workers", "3", "--interval", "50ms"]);
    let streams: Vec<TcpStream> = (0..12).map(|_| open_stream(server.addr, "fixed")).collect();
    assert!(
        wait_until(SOON, || server.metric("demo_server_streams_active{route=\"fixed\"}") == 12.0)
    );
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid)).unwrap().count();
    assert!(threads >= 4, "main + 3 workers, saw {threads}");
    assert!(server.settled_fds(15) > 0, "3 dups of the one listener + 12 streams");
    // One series per worker; together they hold the 12 heartbeat timers.
    let dedicated = |m: &str| -> Vec<f64> {
        (0..3)
            .map(|w| {
                let sample = format!("reactor_timers_active{{worker=\"{w}\",mode=\"dedicated\"}} ");
                let line = m.lines().find_map(|l| l.strip_prefix(sample.as_str()));
                line.unwrap_or_else(|| panic!("no {sample}in\n{m}")).parse().unwrap()
            })
            .collect()
    };
    // Each worker publishes its reactor's stats after its turn, which may
    // come a little after the stream it opened was counted: wait for it.
    let mut sum = 0.0;
    assert!(
        wait_until(SOON, || {
            sum = dedicated(&server.metrics()).iter().sum::<f64>();
            sum == 12.0
        }),
        "the workers' heartbeat timers sum to {sum}, not 12"
    );
    drop(streams);
    assert_eq!(server.settled_fds(3), server.fds());
    assert!(wait_until(SOON, || dedicated(&server.metrics()).iter().sum::<f64>() == 0.0));
}

#[test]
fn a_second_instance_on_the_same_port_fails_with_address_in_use() {
    let server = Server::start(&["--workers", "2"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["serve", "--addr", &server.addr.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = common::Proc::from(out);
    let status = second.wait_exit(SOON).expect("the second instance exits at once");
    assert!(!status.success());
    let said = second.stderr();
    assert!(said.contains("address in use") && said.contains("--addr 127.0.0.1:0"), "{said}");
    // The first instance still has every client.
    for _ in 0..20 {
        assert_eq!(common::get(server.addr, "/metrics").status, 200);
    }
}

#[test]
fn a_client_that_pipelines_and_never_reads_is_closed_after_the_linger() {
    // Small socket buffers, so that a few answers fill them and the rest
    // stays queued in the server (but under --max-buffered: not cut off).
    let server = Server::start(&["--idle-timeout", "200ms", "--max-buffered", "16384"]);
    assert_eq!(common::get(server.addr, "/").status, 200); // lazily made things in the baseline
    let baseline = server.settled_fds(1);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut s = common::connect_with_recv_buffer(server.addr, 4096);
        s.write_all(&b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(4)).unwrap();
        clients.push(s); // and never read
    }
    assert!(wait_until(SOON, || server.sockets() == 4), "the server took all three in");
    let start = Instant::now();
    // Idle deadline (200 ms), then the linger deadline (2 s): closed.
    assert!(
        wait_until(Duration::from_secs(8), || server.sockets() == 1),
        "connections with queued output were never closed: {} sockets",
        server.sockets()
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1), "closed before the linger deadline: {took:?}");
    assert_eq!(server.fds(), baseline);
}

#[test]
fn a_worker_that_dies_ends_the_process_with_an_error() {
    let mut server = Server::start_with_env(&[("DEMO_SERVER_TEST_PANIC", "1")], &[]);
    let _ = TcpStream::connect(server.addr); // worker 0 panics on it
    let status = server.wait_exit(SOON).expect("a dead worker ends the process promptly");
    assert!(!status.success(), "{status:?}");
    let said = server.stderr();
    assert!(said.contains("worker-0 panicked"), "{said}");
    assert!(TcpStream::connect(server.addr).is_err(), "the port is free for a restart");
}

/// Ask for a fixed stream; the connection and the first 12 bytes of its
/// answer ("HTTP/1.1 200"), or the error if it closed before them.
fn ask_for_stream(server: &Server) -> (TcpStream, std::io::Result<[u8; 12]>) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    let head = s.read_exact(&mut head).map(|()| head);
    (s, head)
}

/// Fill a server under a small fd limit with streams until it refuses.
fn fill_to_emfile(server: &Server) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..200 {
        let (s, head) = ask_for_stream(server);
        match head {
            Ok(head) if &head == b"HTTP/1.1 200" => streams.push(s),
            _ => return streams,
        }
    }
    panic!("the fd limit never bit");
}

#[test]
fn at_emfile_a_backlog_is_refused_at_once_and_every_refusal_arrives() {
    let server = Server::start_with_fd_limit(64, &["--interval", "1s", "--max-conns", "1000"]);
    let streams = fill_to_emfile(&server);
    assert!(!streams.is_empty());
    // 300 clients knock at once and ask for a stream.
    let mut knocking = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET /stream/fixed HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        s.set_read_timeout(Some(SOON * 2)).unwrap();
        knocking.push(s);
    }
    let start = Instant::now();
    let mut answers = std::collections::BTreeMap::new();
    for mut s in knocking {
        let mut text = String::new();
        let got = match s.read_to_string(&mut text) {
            Ok(_) => text.get(..12).unwrap_or("closed unanswered").to_string(),
            Err(e) => format!("{:?}", e.kind()),
        };
        *answers.entry(got).or_insert(0) += 1;
    }
    let took = start.elapsed();
    // One refusal per 20 ms pause would take 6 s; a reset would lose the 503.
    assert_eq!(answers.get("HTTP/1.1 503"), Some(&300), "{answers:?}");
    assert!(took < Duration::from_secs(3), "300 refusals took {took:?}");
    // Monitoring still answers at EMFILE.
    let m = common::get(server.addr, "/metrics");
    assert_eq!(m.status, 200, "{}", m.head);
    assert!(m.body.contains("demo_server_accept_errors_total{reason=\"emfile\"}"));
    drop(streams);
}

#[test]
fn metrics_answer_at_max_conns_and_streams_are_refused() {
    let server = Server::start(&["--max-conns", "2"]);
    let _streams: Vec<TcpStream> = (0..2).map(|_| open_stream(server.addr, "fixed")).collect();
    for _ in 0..5 {
        // A one-shot scrape, and one on a connection whose head comes late.
        assert_eq!(common::get(server.addr, "/metrics").status, 200);
        let mut late = server.connect();
        std::thread::sleep(Duration::from_millis(20)); // the head arrives after the accept
        late.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut late, false).status, 200);
    }
    let r = common::get(server.addr, "/stream/fixed");
    assert_eq!(r.status, 503);
}
