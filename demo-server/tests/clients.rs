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

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    }
    found
}

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

    // A picture for humans, next to the build: target/tmp/dashboard.png.
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1100, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
    );
    std::thread::sleep(Duration::from_millis(1500)); // let the chart gather a few points for the picture
    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"), png).unwrap();

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
