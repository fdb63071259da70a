//! The HTTP head parser and router: any bytes, no panic, and answers that
//! agree with themselves.
//!
//! Checked for every input:
//! - `Request(_, n)`: `n` is within the buffer and ends the head (a blank
//!   line); the head alone parses to the same request; a request for a
//!   stream route is `GET`/`HEAD` (or an `OPTIONS` preflight);
//! - `Reject`: `consumed` is within the buffer, and the status is one this
//!   server sends for a refused request (never 200, 204 or 503);
//! - `Partial`: the buffer is below the 8 KiB head limit;
//! - the response written for the outcome is a well-formed status line.
#![no_main]

use demo_server::http::{self, MAX_HEAD, Parsed, Route, Status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match http::parse(data) {
        Parsed::Partial => assert!(data.len() < MAX_HEAD, "Partial at {} bytes", data.len()),
        Parsed::Request(req, n) => {
            assert!(n > 0 && n <= data.len() && n <= MAX_HEAD, "consumed {n} of {}", data.len());
            assert!(data[..n].ends_with(b"\n\n") || data[..n].ends_with(b"\n\r\n"));
            assert_eq!(http::parse(&data[..n]), Parsed::Request(req.clone(), n), "head alone");
            if let Some(id) = req.last_event_id {
                assert!(id <= demo_server::sse::MAX_EVENT_ID);
            }
            let mut out = Vec::new();
            if req.preflight {
                http::preflight(&mut out, req.keep_alive);
                assert!(out.starts_with(b"HTTP/1.1 204 "));
            } else {
                http::response(
                    &mut out,
                    Status::Ok,
                    "text/plain",
                    b"x",
                    req.keep_alive,
                    req.head_only,
                );
                assert!(
                    out.starts_with(b"HTTP/1.1 200 OK\r\n")
                        && out.ends_with(if req.head_only { b"\r\n\r\n" } else { b"\r\n\r\nx" })
                );
            }
            let _ = (req.route.is_stream(), Route::from_path(req.route.label()));
        }
        Parsed::Reject { status, close, head_only, consumed } => {
            assert!(consumed <= data.len(), "consumed {consumed} of {}", data.len());
            assert!(
                !matches!(status, Status::Ok | Status::NoContent | Status::Unavailable),
                "a refusal answered {status:?}"
            );
            assert!(close || consumed > 0, "a connection kept open must move past the request");
            let mut out = Vec::new();
            http::error_response(&mut out, status, !close, head_only);
            let line = format!("HTTP/1.1 {} {}\r\n", status.code(), status.reason());
            assert!(out.starts_with(line.as_bytes()));
        }
    }
    // The router on its own: any target string.
    if let Ok(path) = std::str::from_utf8(data)
        && let Some(route) = Route::from_path(path)
    {
        assert!(path.starts_with('/'), "{path:?} routed to {route:?}");
    }
});
