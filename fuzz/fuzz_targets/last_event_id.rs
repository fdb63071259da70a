//! The handling of `Last-Event-ID`: any header value, from parse to the
//! stream's first event.
//!
//! The rule (README, `http::Request::last_event_id`): the value, without
//! the optional whitespace around it (space, tab), is either a decimal up to
//! `MAX_EVENT_ID` (the stream resumes from it), a larger decimal (400), or
//! anything else (ignored: the stream starts from 0). The oracle computes
//! that from the bytes independently, with arbitrary precision, and then
//! checks the next heartbeat's `id:` the stream would send. (The `hello`
//! event's `resumed_from` is checked over the wire by `demo-server`'s
//! `streams.rs`; this target uses only the parser and `sse::heartbeat`, whose
//! signatures stay put while the JSON moves to serde.)
#![no_main]

use demo_server::http::{self, Parsed, Route, Status};
use demo_server::sse::{self, MAX_EVENT_ID};
use libfuzzer_sys::fuzz_target;

enum Want {
    Resume(u64),
    TooLarge,
    Ignored,
}

fn want(value: &[u8]) -> Want {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    let v = &value[start..end];
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Want::Ignored;
    }
    let digits = {
        let first = v.iter().position(|&b| b != b'0').unwrap_or(v.len());
        &v[first..]
    };
    // Compare as decimals: 2^53 - 1 has 16 digits.
    let max = MAX_EVENT_ID.to_string();
    let fits = digits.len() < max.len() || (digits.len() == max.len() && digits <= max.as_bytes());
    if fits {
        let n = std::str::from_utf8(digits).unwrap();
        Want::Resume(if n.is_empty() { 0 } else { n.parse().unwrap() })
    } else {
        Want::TooLarge
    }
}

fuzz_target!(|value: &[u8]| {
    let mut head = b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ".to_vec();
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
    // A value httparse refuses (a control byte, a line break) is not a
    // header value at all: the request is malformed, whatever it says.
    let valid = value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80);
    let parsed = http::parse(&head);
    if !valid {
        if let Parsed::Request(r, _) = &parsed {
            // The bytes may have formed other headers (a bare \n ends one):
            // whatever they are, an id is still in range.
            assert!(r.last_event_id.is_none_or(|n| n <= MAX_EVENT_ID));
        }
        return;
    }
    match (want(value), parsed) {
        (Want::Resume(n), Parsed::Request(r, _)) => {
            assert_eq!(r.last_event_id, Some(n), "{value:?}");
            // The next heartbeat's id is n + 1, unless that would pass the
            // largest id, where the stream ends instead (worker/stream.rs).
            if let Some(next) = n.checked_add(1).filter(|&s| s <= MAX_EVENT_ID) {
                let mut buf = [0u8; 160];
                let len = sse::heartbeat(&mut buf, Route::Fixed, next, 1);
                assert!(buf[..len].starts_with(format!("id: {next}\n").as_bytes()));
                assert!(buf[..len].ends_with(b"}\n\n"));
            }
        }
        (Want::TooLarge, Parsed::Reject { status, close, .. }) => {
            assert_eq!(status, Status::BadRequest, "{value:?}");
            assert!(close);
        }
        (Want::Ignored, Parsed::Request(r, _)) => {
            assert_eq!(r.last_event_id, None, "{value:?} was not a decimal")
        }
        (_, other) => panic!("Last-Event-ID {value:?}: {other:?}"),
    }
});
