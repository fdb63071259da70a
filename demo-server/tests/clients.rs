//! Real clients against a real server: curl, promtool, headless Chromium,
//! and Node with the `eventsource` package. Each skips with a printed reason
//! when its tool is not installed; CI installs them all (see .ci/run).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SOON, Server, get, open_stream, wait_until};
use rustix::process::Signal;
use serde_json::{Value, json};
use test_support::have;

#[test]
fn curl_n_reads_heartbeats() {
    if !have("curl") {
        return;
    }
    let server = Server::start(&["--interval", "100ms"]);
    let out = Command::new("curl")
        .args(["-sN", "--max-time", "1.5"])
        .arg(format!("http://{}/stream/fixed", server.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("retry: 2000\n"), "{text}");
    let ids = text.lines().filter(|l| l.starts_with("id: ")).count();
    assert!(ids >= 3, "curl saw {ids} heartbeats in 1.5 s at 100 ms:\n{text}");
    assert_eq!(
        out.status.code(),
        Some(28),
        "curl stopped by its own --max-time, not by the server"
    );
}

#[test]
fn promtool_accepts_the_metrics() {
    if !have("promtool") {
        return;
    }
    let server = Server::start(&["--interval", "20ms"]);
    // Some activity first, so every family has samples worth checking.
    drop(open_stream(server.addr, "leaky"));
    drop(open_stream(server.addr, "fixed"));
    assert_eq!(get(server.addr, "/nope").status, 404);
    let body = server.metrics();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{body}");
    // HELP and TYPE once per family.
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert_eq!(body.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        assert_eq!(body.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
    }
}

/// A headless Chromium driven over the DevTools protocol.
struct Browser {
    child: Child,
    _profile: TempDir,
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    fn launch() -> Browser {
        Browser::launch_with(&[])
    }

    /// Launch with extra command-line switches.
    fn launch_with(extra: &[&str]) -> Browser {
        // One profile per browser: tests in this binary run in parallel.
        static LAUNCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LAUNCHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("demo-server-chromium-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&profile).unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port_file = profile.join("DevToolsActivePort");
        assert!(
            wait_until(Duration::from_secs(20), || port_file.exists()),
            "chromium did not start"
        );
        let port: u16 = wait_for_port(&port_file);
        // DevTools answers only a Host that is an IP or localhost.
        let request = format!(
            "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        let targets = common::raw(([127, 0, 0, 1], port).into(), request.as_bytes()).body;
        let targets: Value = serde_json::from_str(&targets).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap().to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
        Browser { child, _profile: TempDir(profile), ws, next_id: 0 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(tungstenite::Message::text(msg)).unwrap();
        loop {
            let reply = self.ws.read().unwrap();
            let Ok(text) = reply.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate `expr`, awaiting it if it is a promise.
    fn eval_async(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Save a PNG of the page under target/tmp and print its path.
    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"));
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true }));
        r["result"]["value"].clone()
    }

    fn text(&mut self, id: &str) -> String {
        self.eval(&format!("document.getElementById('{id}').textContent"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Poll (bounded) until the element `id` reads `want`.
    fn wait_text(&mut self, id: &str, want: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.text(id) == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

fn wait_for_port(file: &Path) -> u16 {
    let mut port = 0;
    assert!(wait_until(Duration::from_secs(10), || {
        port = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.lines().next()?.parse().ok())
            .unwrap_or(0);
        port != 0
    }));
    port
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_dashboard_in_headless_chromium_opens_and_closes_streams() {
    if !have("chromium") {
        return;
    }
    let server = Server::start(&["--interval", "200ms"]);
    let mut browser = Browser::launch();
    browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    let live = wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0");
    assert!(live, "the stats EventSource never delivered a snapshot: {}", browser.text("status"));

    browser.eval("document.getElementById('count').value = '8'");
    browser.eval("document.getElementById('open-fixed').click()");
    browser.eval("document.getElementById('open-leaky').click()");
    assert_eq!(browser.text("page-fixed"), "8");
    assert_eq!(browser.text("page-leaky"), "8");
    assert!(
        browser.wait_text("srv-fixed", "8", SOON * 3),
        "server saw {} fixed",
        browser.text("srv-fixed")
    );
    assert!(
        browser.wait_text("srv-leaky", "8", SOON * 3),
        "server saw {} leaky",
        browser.text("srv-leaky")
    );
    assert!(
        wait_until(SOON, || browser
            .eval("Number(document.getElementById('page-events').textContent)")
            .as_f64()
            > Some(0.0)),
        "the page's EventSources received no heartbeat"
    );

    browser.eval("document.getElementById('close-fixed').click()");
    browser.eval("document.getElementById('close-leaky').click()");
    assert_eq!(browser.text("page-fixed"), "0");
    assert!(browser.wait_text("srv-fixed", "0", SOON * 2), "fixed back to baseline");
    assert!(browser.wait_text("srv-leaky", "0", SOON * 2));
    assert!(browser.wait_text("srv-orphans", "8", SOON * 2), "the leaky line stays up: 8 orphans");
    assert_eq!(browser.text("srv-leaky-timers"), "8");
    assert_eq!(browser.text("srv-fixed-timers"), "0");
    assert_eq!(server.metric("demo_server_orphan_timers{route=\"leaky\"}"), 8.0);
}

/// The pixels of the chart's canvas that are the leaky line's red
/// (#cf222e), give or take antialiasing.
const LEAKY_PIXELS: &str = r#"(() => {
  const c = document.getElementById("chart"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - 207) < 24 && Math.abs(d[i + 1] - 34) < 24 && Math.abs(d[i + 2] - 46) < 24 && d[i + 3] > 200) n++;
  return n;
})()"#;

/// Read `/stream/stats` until its history event: the points the server holds.
fn server_history_len(addr: std::net::SocketAddr) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    s.write_all(b"GET /stream/stats HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 16 * 1024];
    while !text.contains("event: history\ndata: ")
        || !text.split("event: history\ndata: ").nth(1).unwrap().contains("\n\n")
    {
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(n > 0, "{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let data = text.split("event: history\ndata: ").nth(1).unwrap().split("\n\n").next().unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    v["points"].as_array().unwrap().len()
}

#[test]
fn the_dashboard_at_1280_and_400_px_shows_the_servers_numbers_its_history_and_the_leaky_line() {
    if !have("chromium") {
        return;
    }
    let mut server = Server::start(&["--interval", "200ms"]);
    // Leak 6 timers before any page exists: a fresh page must show them.
    drop((0..6).map(|_| open_stream(server.addr, "leaky")).collect::<Vec<_>>());
    assert!(wait_until(SOON, || server.metric("demo_server_orphan_timers{route=\"leaky\"}") == 6.0));
    assert!(
        wait_until(SOON, || server_history_len(server.addr) >= 4),
        "the server records history"
    );
    let mut browser = Browser::launch();
    for width in [1280, 400] {
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": 1100, "deviceScaleFactor": 1, "mobile": width < 600 }),
        );
        browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
        assert!(
            wait_until(Duration::from_secs(20), || browser.text("srv-orphans") == "6"),
            "{width}px: no live snapshot: {}",
            browser.text("status")
        );
        // The history arrived with the first snapshot: no empty chart.
        let drawn = browser.eval("dashboard.drawn.leaky").as_u64().unwrap();
        assert!(drawn >= 4, "{width}px: a fresh page draws the past at once, drew {drawn}");
        let server_points = server_history_len(server.addr) as i64;
        let page_points = browser.eval("dashboard.points.length").as_i64().unwrap();
        assert!(
            (page_points - server_points).abs() <= 3,
            "page {page_points}, server {server_points}"
        );

        // Its numbers are the server's.
        let same = wait_until(SOON, || {
            let pairs = [
                ("srv-orphans", "demo_server_orphan_timers{route=\"leaky\"}"),
                ("srv-leaky", "demo_server_streams_active{route=\"leaky\"}"),
                ("srv-fixed", "demo_server_streams_active{route=\"fixed\"}"),
                ("srv-timerfds", "demo_server_timerfds_open"),
            ];
            pairs.iter().all(|(id, metric)| browser.text(id) == server.metric(metric).to_string())
                && browser.text("srv-fds").split(" / ").nth(1)
                    == Some(&server.metric("process_max_fds").to_string())
        });
        assert!(same, "{width}px: the page's numbers are the server's");

        // One point per snapshot, each series, in time order with no gap.
        // A few more live snapshots: they join the history's points.
        let before = browser.eval("dashboard.points.length").as_u64().unwrap();
        assert!(wait_until(SOON, || browser.eval("dashboard.points.length").as_u64()
            >= Some(before + 2)));
        let chart: Value = browser.eval(
            "({ n: dashboard.points.length, drawn: dashboard.drawn, \
               steps: dashboard.points.slice(1).map((p, i) => p.t - dashboard.points[i].t) })",
        );
        let n = chart["n"].as_u64().unwrap();
        for key in ["fds", "tfd", "orph", "fixed", "leaky"] {
            assert_eq!(chart["drawn"][key].as_u64(), Some(n), "{width}px: {key}: {chart}");
        }
        let steps: Vec<u64> =
            chart["steps"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert!(
            steps.iter().all(|d| (1..=1000).contains(d)),
            "{width}px: snapshot times {steps:?}"
        );

        // The leaky line is drawn last: red pixels, not hidden under the orphans.
        // (A line 2.5 px thick over extentPx px is about 2.5 × extentPx red
        // pixels; under the orphans band it would be almost none.)
        let red = browser.eval(LEAKY_PIXELS).as_f64().unwrap();
        let extent = browser.eval("dashboard.extentPx").as_f64().unwrap();
        assert!(
            extent > 20.0 && red >= 1.5 * extent,
            "{width}px: {red} red pixels over {extent} px"
        );
        let overflow = browser.eval("document.documentElement.scrollWidth").as_u64().unwrap();
        assert!(overflow <= width, "{width}px: the page is {overflow}px wide");
        browser.screenshot(&format!("dashboard-{width}.png"));
    }
    assert_eq!(
        server.metric("demo_server_http_responses_total{code=\"404\"}"),
        0.0,
        "no favicon request 404s"
    );

    // An outage: the page says so, and the numbers stop looking live.
    server.signal(Signal::TERM);
    assert!(server.wait_exit(SOON).is_some());
    assert!(
        wait_until(SOON, || browser.eval("document.body.classList.contains('disconnected')")
            == json!(true)),
        "the page noticed the server is gone"
    );
    assert!(browser.text("conn").starts_with("Disconnected from the server"));
    let weight =
        browser.eval("getComputedStyle(document.getElementById('srv-orphans')).fontWeight");
    assert_eq!(weight, json!("400"), "stale numbers are not bold");
    browser.screenshot("dashboard-disconnected.png");
}

#[test]
fn off_loopback_the_dashboard_holds_only_the_streams_the_browser_can_open() {
    if !have("chromium") {
        return;
    }
    let server = Server::start(&["--interval", "200ms"]);
    // lan.test resolves to 127.0.0.1 for this browser only: the page sees a
    // host name that is not loopback, the traffic stays on loopback.
    let mut browser = Browser::launch_with(&["--host-resolver-rules=MAP lan.test 127.0.0.1"]);
    let url = format!("http://lan.test:{}/", server.addr.port());
    browser.call("Page.navigate", json!({ "url": url }));
    assert!(wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0"));
    browser.eval("document.getElementById('count').value = '10'");
    browser.eval("document.getElementById('open-fixed').click()");
    assert_eq!(browser.text("page-fixed"), "4", "at most 4: 6 per host, one is the stats stream");
    assert!(
        browser.text("limit-note").contains("not a loopback name"),
        "{}",
        browser.text("limit-note")
    );
    assert!(browser.wait_text("srv-fixed", "4", SOON * 2), "the server has what the page says");
    assert!(browser.wait_text("page-pending", "0", SOON), "none left pending");
    // And a connection is still free for the page's own requests.
    let status = browser.eval_async(
        "Promise.race([fetch('/metrics').then(r => r.status), new Promise(r => setTimeout(() => r('hung'), 5000))])",
    );
    assert_eq!(status, json!(200));
}

/// The kernel panel: while open, the page reads `/debug/fds` once a second
/// and shows every timerfd with its setting and token, the leaked one
/// marked, and the epoll interest lists; at 1280 and at 400 px.
#[test]
fn the_dashboards_kernel_panel_shows_the_leaked_timerfd() {
    if !have("chromium") {
        return;
    }
    let server = Server::start(&["--interval", "200ms"]);
    let mut browser = Browser::launch();
    browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    assert!(wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0"));
    browser.eval("document.getElementById('count').value = '1'");
    browser.eval("document.getElementById('open-fixed').click()");
    browser.eval("document.getElementById('open-leaky').click()");
    assert!(browser.wait_text("srv-leaky", "1", SOON * 2));
    browser.eval("document.getElementById('close-leaky').click()");
    assert!(browser.wait_text("srv-orphans", "1", SOON * 2), "the leaky stream's client left");
    assert_eq!(
        browser.eval("window.dashboard.kernel === undefined"),
        json!(true),
        "closed: no reads"
    );
    browser.eval("document.getElementById('kernel').open = true");
    let leaked = wait_until(SOON * 2, || {
        browser.eval("document.querySelectorAll('#kernel-timerfds tr.leaked').length") == json!(1)
    });
    assert!(leaked, "no leaked row: {}", browser.text("kernel-status"));
    let status = browser.text("kernel-status");
    assert!(status.contains("timerfds (1 leaked)"), "{status}");
    let rows = browser.eval("document.querySelectorAll('#kernel-timerfds tr').length").as_u64();
    assert_eq!(
        rows,
        Some(1 + 3),
        "a header, the fixed and the leaked heartbeat, the heap: {status}"
    );
    assert!(browser.text("kernel-epolls").contains("epoll fd"), "the interest lists");
    for (width, name) in [(1280, "dashboard-kernel-1280.png"), (400, "dashboard-kernel-400.png")] {
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": 1400, "deviceScaleFactor": 1, "mobile": width < 500 }),
        );
        browser.eval("document.getElementById('kernel').scrollIntoView()");
        let overflow = browser.eval("document.documentElement.scrollWidth").as_u64().unwrap();
        assert!(overflow <= width, "{width}px: the page is {overflow}px wide");
        browser.screenshot(name);
    }
    // Closing the panel stops the reads: no poll stays scheduled.
    assert_eq!(browser.eval("window.dashboard.kernelPolling()"), json!(true));
    browser.eval("document.getElementById('kernel').open = false");
    let stopped =
        wait_until(SOON, || browser.eval("window.dashboard.kernelPolling()") == json!(false));
    assert!(stopped, "the page kept reading /debug/fds with the panel closed");
}

/// A stream the server refuses reaches an EventSource as a bare error: the
/// page asks the server why (HEAD, which opens nothing) and says so.
#[test]
fn the_dashboard_says_why_the_server_refused_a_stream() {
    if !have("chromium") {
        return;
    }
    let server = Server::start(&["--interval", "1s", "--max-orphans", "5"]);
    let mut browser = Browser::launch();
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
    );
    browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    assert!(wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0"));
    browser.eval("document.getElementById('count').value = '8'");
    browser.eval("document.getElementById('open-leaky').click()");
    let said = wait_until(SOON * 2, || browser.text("refused").contains("--max-orphans 5"));
    let note = browser.text("refused");
    assert!(said, "the page did not say why: {note:?}");
    assert!(note.starts_with("The server refused 3 leaky streams: 503: "), "{note}");
    assert!(browser.wait_text("page-leaky", "5", SOON), "five opened");
    browser.screenshot("dashboard-refused.png");
    // Asking why opened no stream: still five leaky timers, not six.
    assert_eq!(server.metric("demo_server_streams_active{route=\"leaky\"}"), 5.0);
    assert_eq!(server.metric("demo_server_orphan_timers{route=\"leaky\"}"), 0.0);
}

#[test]
fn near_the_fd_limit_the_dashboard_warns_and_draws_the_limit() {
    if !have("chromium") {
        return;
    }
    let server = Server::start_with_fd_limit(60, &["--interval", "1s", "--max-conns", "30"]);
    let mut browser = Browser::launch();
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
    );
    browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    assert!(wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0"));
    // Streams from here (a socket and a timerfd each) to about 85 % of 60.
    let baseline = server.fds();
    let mut streams = Vec::new();
    for i in 0..(51 - baseline) / 2 {
        match demo_server::client::open_stream(server.addr, "fixed") {
            demo_server::client::Opened::Stream(s) => streams.push(s),
            other => panic!("stream {i}, baseline {baseline}: {other:?}, {} fds", server.fds()),
        }
    }
    assert!(wait_until(SOON, || server.metric("process_open_fds") >= 48.0), "{}", server.fds());
    let open = server.metric("process_open_fds");
    assert!((48.0..57.0).contains(&open), "{open} of 60 fds");
    let warned = wait_until(SOON * 2, || {
        browser.eval("document.getElementById('srv-fds-cell').className").as_str().unwrap_or("")
            != "num"
    });
    assert!(warned, "{} fds of 60 and no warning colour: {}", open, browser.text("srv-fds-pct"));
    assert!(browser.text("srv-fds-pct").contains("EMFILE is near"));
    assert_eq!(browser.eval("dashboard.limitOnScale"), json!(true), "the fd limit line is drawn");
    browser.screenshot("dashboard-near-limit.png");
    drop(streams);
}

/// Standard base64, as DevTools returns screenshots.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n =
                c.iter().enumerate().fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}

/// Where `.ci/run` installs the npm `eventsource` package: `target/npm`,
/// or `$EVENTSOURCE_NODE_MODULES`.
fn eventsource_package() -> Option<PathBuf> {
    let modules =
        std::env::var_os("EVENTSOURCE_NODE_MODULES").map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/npm/node_modules")
        });
    if !have("node") {
        return None;
    }
    if !modules.join("eventsource/package.json").exists() {
        println!(
            "SKIPPED: the npm eventsource package is not in {} (CI installs it; see .ci/run)",
            modules.display()
        );
        return None;
    }
    Some(modules)
}

/// A Node EventSource on `url` that prints one line per thing it sees and,
/// once the source is CLOSED, a JSON summary; it gives up after 10 s.
const NODE_CLIENT: &str = r#"
const { EventSource } = require('eventsource');
const es = new EventSource(process.argv[1]);
const seen = { opens: 0, hello: 0, beats: 0, shutdown: 0, errors: [] };
es.onopen = () => { seen.opens++; };
es.addEventListener('hello', () => { seen.hello++; });
es.onmessage = () => { if (++seen.beats === 1) console.log('heartbeat'); };
es.addEventListener('shutdown', () => { seen.shutdown++; });
es.onerror = (e) => {
  seen.errors.push(e.code ?? null);
  if (es.readyState === EventSource.CLOSED) { console.log(JSON.stringify(seen)); process.exit(0); }
};
setTimeout(() => { console.log('gave up: ' + JSON.stringify(seen)); process.exit(1); }, 10000);
"#;

#[test]
fn node_eventsource_opens_once_and_stops_for_good_at_shutdown() {
    let Some(modules) = eventsource_package() else { return };
    let mut server = Server::start(&["--interval", "100ms"]);
    let mut node = Command::new("node")
        .args(["-e", NODE_CLIENT, &format!("http://{}/stream/fixed", server.addr)])
        .env("NODE_PATH", &modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(node.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "heartbeat");
    server.signal(Signal::TERM);
    let summary = lines.next().expect("a summary line").unwrap();
    let status = node.wait().unwrap();
    let seen: Value = serde_json::from_str(summary.trim_start_matches("gave up: ")).unwrap();
    assert!(status.success(), "the source never closed: {summary}");
    assert_eq!(seen["opens"], 1, "onopen once per connection: {summary}");
    assert_eq!(seen["hello"], 1, "{summary}");
    assert_eq!(seen["shutdown"], 1, "{summary}");
    // The stream's end (an error with no code: reconnect), then the 204.
    assert_eq!(seen["errors"], json!([null, 204]), "closed by the 204 on reconnect: {summary}");
    assert!(server.wait_exit(SOON).expect("the server exits").success());
}

#[test]
fn chromium_eventsource_opens_once_and_stops_for_good_at_shutdown() {
    if !have("chromium") {
        return;
    }
    let mut server = Server::start(&["--interval", "100ms"]);
    let mut browser = Browser::launch();
    browser.call("Page.navigate", json!({ "url": format!("http://{}/", server.addr) }));
    assert!(wait_until(Duration::from_secs(20), || browser.text("srv-fixed") == "0"));
    browser.eval(
        r#"window.seen = { opens: 0, hello: 0, beats: 0, shutdown: 0, errors: 0, states: [] };
        window.es = new EventSource("/stream/fixed");
        es.onopen = () => seen.opens++;
        es.addEventListener("hello", () => seen.hello++);
        es.onmessage = () => seen.beats++;
        es.addEventListener("shutdown", () => seen.shutdown++);
        es.onerror = () => { seen.errors++; seen.states.push(es.readyState); };
        1"#,
    );
    assert!(wait_until(SOON, || browser.eval("seen.beats").as_u64() > Some(0)), "no heartbeat");
    server.signal(Signal::TERM);
    let closed = wait_until(SOON, || browser.eval("es.readyState").as_u64() == Some(2));
    let seen = browser.eval("JSON.stringify(seen)");
    assert!(closed, "EventSource never reached CLOSED: {seen}");
    let seen: Value = serde_json::from_str(seen.as_str().unwrap()).unwrap();
    assert_eq!(seen["opens"], 1, "onopen once per connection: {seen}");
    assert_eq!(seen["hello"], 1, "{seen}");
    assert_eq!(seen["shutdown"], 1, "{seen}");
    assert!(server.wait_exit(SOON).expect("the server exits").success());
}
