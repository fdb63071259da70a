//! Server-Sent Events on the wire ([the SSE spec]): `field: value` lines,
//! an empty line ending each event.
//!
//! [the SSE spec]: https://html.spec.whatwg.org/multipage/server-sent-events.html

use std::time::Duration;

use reactor::TimerMode;
use serde::Serialize;

pub use crate::wire::MAX_EVENT_ID;
use crate::wire::Route;

/// Reconnection delay sent to clients in the `retry:` line, in milliseconds.
pub const RETRY_MS: u32 = 2000;

/// The name of a stream's first event. Not `open`: EventSource fires its own
/// `open` event when a stream connects, and a server event of that name
/// would call `onopen` a second time.
pub const HELLO: &str = "hello";

/// The `hello` event's data: what the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hello {
    /// The route's label (`fixed`, `leaky`, `stats`).
    pub route: &'static str,
    /// The period between events, in milliseconds.
    pub interval_ms: u64,
    /// The timer mode behind the events (`dedicated` or `shared`).
    pub timer_mode: &'static str,
    /// The `Last-Event-ID` the stream resumed from, if any.
    pub resumed_from: Option<u64>,
}

impl Hello {
    /// The hello of a stream on `route`, every `interval`, from a timer in `mode`.
    pub fn new(
        route: Route,
        interval: Duration,
        mode: TimerMode,
        resumed_from: Option<u64>,
    ) -> Hello {
        Hello {
            route: route.label(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            timer_mode: mode.name(),
            resumed_from,
        }
    }
}

/// One heartbeat's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Beat {
    /// The stream's sequence number (also its `id:`).
    pub seq: u64,
    /// The route's label.
    pub route: &'static str,
    /// Expirations this wake-up delivered.
    pub expirations: u64,
    /// Ticks missed: `expirations - 1`.
    pub missed: u64,
}

/// The first bytes of a stream, flushed with the response head: one event
/// with a `retry:` field and a `hello` event that says what the stream is.
/// The `retry:` is in the same block as the event, not a block of its own:
/// some clients (httpx-sse) yield a block without data as an empty message.
pub fn opening(out: &mut Vec<u8>, hello: &Hello) {
    out.extend_from_slice(format!("retry: {RETRY_MS}\nevent: {HELLO}\ndata: ").as_bytes());
    json(out, hello);
    out.extend_from_slice(b"\n\n");
}

/// `value` as JSON, appended. Serializing these plain structs into a `Vec`
/// cannot fail: no map with non-string keys, no I/O.
fn json(out: &mut Vec<u8>, value: &impl Serialize) {
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        debug_assert!(false, "JSON of a plain struct failed: {e}");
    }
}

/// One heartbeat: `id:` is the stream's sequence number; the data carries
/// the timer's expiration count and the ticks it missed (count - 1), as
/// [`Beat`]'s JSON. Written into a stack buffer: no allocation per
/// heartbeat. Written by hand, since `serde_json` and `core::fmt` were a
/// fifth of the server's user-space time per heartbeat; a test holds the
/// bytes equal to `serde_json`'s encoding of the `Beat`. The longest
/// heartbeat (every number near `u64::MAX`) is 146 bytes.
pub fn heartbeat(buf: &mut [u8; 160], route: Route, seq: u64, expirations: u64) -> usize {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        buf[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    let mut num = itoa::Buffer::new();
    put(b"id: ");
    put(num.format(seq).as_bytes());
    put(b"\ndata: {\"seq\":");
    put(num.format(seq).as_bytes());
    put(b",\"route\":\"");
    put(route.label().as_bytes());
    put(b"\",\"expirations\":");
    put(num.format(expirations).as_bytes());
    put(b",\"missed\":");
    put(num.format(expirations.saturating_sub(1)).as_bytes());
    put(b"}\n\n");
    len
}

/// The reconnection delay a shutdown asks for, in milliseconds: short, so
/// that EventSource clients come back while the server still answers, get
/// 204 No Content, and stop reconnecting for good.
pub const SHUTDOWN_RETRY_MS: u32 = 250;

/// The `shutdown` event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shutdown {
    /// Why the stream ends.
    pub reason: &'static str,
}

/// The last event of a stream ended by a server shutdown; its `retry:` is
/// [`SHUTDOWN_RETRY_MS`].
pub fn shutdown(out: &mut Vec<u8>) {
    out.extend_from_slice(format!("retry: {SHUTDOWN_RETRY_MS}\n").as_bytes());
    json_event(out, Some("shutdown"), &Shutdown { reason: "server shutting down" });
}

/// A value as one JSON `data:` event, named `event` unless `None`
/// (`serde_json` writes no newline, so the payload is one line).
pub fn json_event(out: &mut Vec<u8>, event: Option<&str>, value: &impl Serialize) {
    if let Some(name) = event {
        out.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    out.extend_from_slice(b"data: ");
    json(out, value);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> [Route; 5] {
        [Route::Fixed, Route::Leaky, Route::Stats, Route::Metrics, Route::Dashboard]
    }

    /// What the hand-written heartbeat must equal: the `Beat` through serde.
    fn serde_heartbeat(route: Route, seq: u64, expirations: u64) -> String {
        let beat =
            Beat { seq, route: route.label(), expirations, missed: expirations.saturating_sub(1) };
        format!("id: {seq}\ndata: {}\n\n", serde_json::to_string(&beat).unwrap())
    }

    proptest::proptest! {
        #[test]
        fn a_heartbeat_is_its_beats_json(seq: u64, expirations: u64, r in 0usize..5) {
            let mut buf = [0u8; 160];
            let n = heartbeat(&mut buf, routes()[r], seq, expirations);
            proptest::prop_assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                serde_heartbeat(routes()[r], seq, expirations)
            );
        }
    }

    #[test]
    fn heartbeats_at_the_edges_are_their_beats_json() {
        let mut buf = [0u8; 160];
        for route in routes() {
            for v in [0, 1, 9, 10, 99, 100, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
                let n = heartbeat(&mut buf, route, v, v);
                assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), serde_heartbeat(route, v, v));
            }
        }
        assert_eq!(heartbeat(&mut buf, Route::Dashboard, u64::MAX, u64::MAX), 146);
    }

    #[test]
    fn heartbeat_wire_format() {
        let mut buf = [0u8; 160];
        let n = heartbeat(&mut buf, Route::Fixed, 7, 3);
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "id: 7\ndata: {\"seq\":7,\"route\":\"fixed\",\"expirations\":3,\"missed\":2}\n\n"
        );
        let n = heartbeat(&mut buf, Route::Leaky, u64::MAX, u64::MAX);
        assert!(buf[..n].ends_with(b"}\n\n"), "the largest values still fit");
    }

    #[test]
    fn the_shutdown_event_asks_for_a_quick_reconnect() {
        let mut out = Vec::new();
        shutdown(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(
                "retry: {SHUTDOWN_RETRY_MS}\nevent: shutdown\ndata: {{\"reason\":\"server shutting down\"}}\n\n"
            )
        );
    }

    #[test]
    fn opening_has_retry_then_an_event() {
        let mut out = Vec::new();
        let hello =
            Hello::new(Route::Leaky, Duration::from_millis(100), TimerMode::Shared, Some(9));
        opening(&mut out, &hello);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("retry: 2000\nevent: hello\ndata: {"));
        assert_eq!(text.matches("\n\n").count(), 1, "one block: {text}");
        assert!(text.contains("\"interval_ms\":100") && text.contains("\"resumed_from\":9"));
        assert!(text.contains("\"timer_mode\":\"shared\""));
        assert!(text.ends_with("}\n\n"));
    }
}
