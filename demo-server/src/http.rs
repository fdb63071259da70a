//! HTTP/1.1 request heads: parse with httparse, decide the status for
//! everything this server refuses. Pure functions, no I/O. The answers
//! themselves, and the statuses, are in `http/response.rs`, re-exported here.

mod response;

pub use response::*;

use crate::wire::MAX_EVENT_ID;
pub use crate::wire::Route;

/// Largest request head accepted; more is `431`.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers accepted; more is `431`.
pub const MAX_HEADERS: usize = 64;

/// A request this server will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which page or stream.
    pub route: Route,
    /// `HEAD`: headers only.
    pub head_only: bool,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// `OPTIONS`: answered with [`preflight`].
    pub preflight: bool,
    /// A well-formed `Last-Event-ID` (a decimal up to
    /// [`MAX_EVENT_ID`]); one that is not a
    /// decimal is ignored, a larger one is refused with 400.
    pub last_event_id: Option<u64>,
}

/// What a buffer of request bytes holds so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A request, and how many bytes of the buffer it used.
    Request(Request, usize),
    /// A request that gets this status. `close` says whether the connection
    /// must close after it (the request could not be delimited, or it had a
    /// body we will not read).
    Reject {
        /// The status to answer with.
        status: Status,
        /// Close after answering.
        close: bool,
        /// `HEAD`: headers only.
        head_only: bool,
        /// Bytes used, when the connection can continue.
        consumed: usize,
    },
}

fn reject(status: Status, close: bool, head_only: bool, consumed: usize) -> Parsed {
    Parsed::Reject { status, close, head_only, consumed }
}

/// The target's path: origin-form (`/metrics`) as it is, absolute-form
/// (`http://host:8080/metrics`, RFC 9112 section 3.2.2) without its scheme
/// and authority. `None` for anything else.
fn target_path(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_at);
    if authority.is_empty() {
        return None;
    }
    Some(if path.is_empty() { "/" } else { path })
}

/// A `Host` value as RFC 9110 allows it: `uri-host [ ":" port ]`, where the
/// host is a bracketed IP literal or a reg-name / IPv4 address. Empty is
/// allowed (a target with no authority).
fn valid_host(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else { return false };
        let ok = !literal.is_empty()
            && literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", port),
                None => return false,
            },
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (value, ""),
        }
    };
    let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
    host.bytes().all(reg_name) && port.bytes().all(|b| b.is_ascii_digit())
}

/// Parse the first request head in `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return reject(Status::HeaderTooLarge, true, false, 0);
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return reject(Status::HeaderTooLarge, true, false, 0);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return reject(Status::HeaderTooLarge, true, false, 0);
        }
        Err(_) => return reject(Status::BadRequest, true, false, 0),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return reject(Status::BadRequest, true, false, 0);
    };
    let head_only = method == "HEAD";
    let http10 = version == 0;

    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut chunked_or_te = false;
    let mut last_event_id = None;
    for h in req.headers.iter() {
        // Optional whitespace around a value is space or tab (RFC 9110
        // section 5.6.3), not every Unicode space: `str::trim` would make
        // "\u{a0}41" a Last-Event-ID of 41 (found by fuzz/last_event_id).
        let ows = [' ', '\t'];
        let Ok(value) = std::str::from_utf8(h.value).map(|v| v.trim_matches(ows)) else {
            if h.name.eq_ignore_ascii_case("host") || h.name.eq_ignore_ascii_case("content-length")
            {
                return reject(Status::BadRequest, true, head_only, 0);
            }
            continue;
        };
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 || !valid_host(value) {
                return reject(Status::BadRequest, true, head_only, 0);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // 1*DIGIT (RFC 9110 section 8.6): no sign, no space, no list.
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            let Some(n) = value.parse::<u64>().ok().filter(|_| digits) else {
                return reject(Status::BadRequest, true, head_only, 0);
            };
            if content_length.is_some_and(|m| m != n) {
                return reject(Status::BadRequest, true, head_only, 0);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked_or_te = true;
        } else if h.name.eq_ignore_ascii_case("last-event-id") {
            // Our ids are decimals; anything else is not one of them and
            // is ignored. A decimal past the largest id we send is refused:
            // resuming from it could only send smaller ids.
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                match value.parse::<u64>() {
                    Ok(n) if n <= MAX_EVENT_ID => last_event_id = Some(n),
                    _ => return reject(Status::BadRequest, true, head_only, 0),
                }
            }
        }
    }
    if !http10 && hosts == 0 {
        return reject(Status::BadRequest, true, head_only, 0);
    }
    if chunked_or_te && content_length.is_some() {
        return reject(Status::BadRequest, true, head_only, 0);
    }
    let has_body = chunked_or_te || content_length.is_some_and(|n| n > 0);
    let keep_alive = if http10 { connection_keep_alive } else { !connection_close };
    // A body we do not read leaves the connection undelimited: close after.
    let close = !keep_alive || has_body;
    let preflight = method == "OPTIONS";
    let route = if preflight && target == "*" {
        Route::Dashboard // OPTIONS *: the server's own options, as for any route
    } else {
        let Some(route) = target_path(target).and_then(Route::from_path) else {
            return reject(Status::NotFound, close, head_only, consumed);
        };
        route
    };
    if method != "GET" && method != "HEAD" && !preflight {
        return reject(Status::MethodNotAllowed, close, head_only, consumed);
    }
    if has_body {
        return reject(Status::ContentTooLarge, true, head_only, 0);
    }
    Parsed::Request(Request { route, head_only, keep_alive, last_event_id, preflight }, consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(buf: &[u8]) -> u16 {
        match parse(buf) {
            Parsed::Request(..) => 200,
            Parsed::Reject { status, .. } => status.code(),
            Parsed::Partial => 0,
        }
    }

    #[test]
    fn statuses_for_bad_requests() {
        assert_eq!(status(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(status(b"GET /stream/fixed HTTP/1.1\r\n\r\n"), 400, "1.1 without Host");
        assert_eq!(status(b"GET /stream/fixed HTTP/1.0\r\n\r\n"), 200, "1.0 needs no Host");
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"), 413);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), 200);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 413);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"), 400);
        assert_eq!(status(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n"), 0, "partial");
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(status(&big), 431, "head over 8 KiB");
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431, "too many headers");
    }

    #[test]
    fn rfc_9112_targets_hosts_lengths_and_methods() {
        let route = |b: &[u8]| match parse(b) {
            Parsed::Request(r, _) => Some(r.route),
            _ => None,
        };
        // Absolute-form targets.
        assert_eq!(
            route(b"GET http://x:8080/metrics HTTP/1.1\r\nHost: x:8080\r\n\r\n"),
            Some(Route::Metrics)
        );
        assert_eq!(route(b"GET HTTP://x HTTP/1.1\r\nHost: x\r\n\r\n"), Some(Route::Dashboard));
        assert_eq!(
            route(b"GET http://x/stream/fixed?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Route::Fixed)
        );
        assert_eq!(status(b"GET ftp://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
        // Host: missing, duplicate, invalid; valid forms.
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400, "duplicate");
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400, "duplicate, 1.0");
        for bad in ["a b", "a/b", "a@b", "a:80x", "[::1", "[zz]", "a:b:c"] {
            let head = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(status(head.as_bytes()), 400, "Host: {bad}");
        }
        for good in
            ["", "a", "a.b-c_d", "127.0.0.1:8080", "[::1]", "[::1]:80", "xn--bcher-kva.example"]
        {
            let head = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert_eq!(status(head.as_bytes()), 200, "Host: {good}");
        }
        // Content-Length is 1*DIGIT.
        for bad in ["+0", "-0", "0x0", "1,1", "", "1 1"] {
            let head = format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(head.as_bytes()), 400, "Content-Length: {bad}");
        }
        // A wrong method on a known route is 405, body or not; unknown is 404.
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
            405
        );
        assert_eq!(
            status(b"PUT /stream/fixed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            405
        );
        assert_eq!(status(b"DELETE http://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
        assert_eq!(status(b"POST /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
        // OPTIONS is a preflight.
        let Parsed::Request(r, _) = parse(b"OPTIONS /stream/fixed HTTP/1.1\r\nHost: x\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n") else { panic!() };
        assert!(r.preflight && r.route == Route::Fixed);
        let mut out = Vec::new();
        preflight(&mut out, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 204")
                && text.contains("Access-Control-Allow-Headers: Last-Event-ID")
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let ka = |b: &[u8]| match parse(b) {
            Parsed::Request(r, _) => r.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn last_event_id_is_parsed_or_ignored() {
        let id = |b: &[u8]| match parse(b) {
            Parsed::Request(r, _) => r.last_event_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            id(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 41\r\n\r\n"),
            Some(41)
        );
        assert_eq!(id(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: x1\r\n\r\n"), None);
        assert_eq!(id(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: -3\r\n\r\n"), None);
        assert_eq!(id(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: +3\r\n\r\n"), None);
        let max = crate::sse::MAX_EVENT_ID;
        let at_max =
            format!("GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {max}\r\n\r\n");
        assert_eq!(id(at_max.as_bytes()), Some(max));
        for huge in [max + 1, u64::MAX] {
            let head =
                format!("GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {huge}\r\n\r\n");
            assert_eq!(status(head.as_bytes()), 400, "{huge}");
        }
        assert_eq!(status(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 99999999999999999999999\r\n\r\n"), 400);
    }

    /// Regression inputs from `fuzz/` (see RELIABILITY.md): each one replays
    /// the exact bytes the fuzzer found.
    #[test]
    fn fuzz_regressions() {
        // fuzz/last_event_id crash-1d671bb2: a no-break space (U+00A0) before
        // the digits. It is not HTTP whitespace, so the value is not a
        // decimal and is ignored; it was trimmed and resumed from 1901.
        let value: &[u8] = &[0xc2, 0xa0, b'1', b'9', b'0', b'1'];
        let mut head = b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ".to_vec();
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n\r\n");
        let Parsed::Request(r, _) = parse(&head) else { panic!("{:?}", parse(&head)) };
        assert_eq!(r.last_event_id, None);
        // The same rule for every header: U+00A0 around a Content-Length
        // makes it not a number (400), where it used to read as 5 (413).
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \u{a0}5\r\n\r\n".as_bytes()),
            400
        );
        // Space and tab are still optional whitespace.
        let id = |v: &str| match parse(
            format!("GET /stream/fixed HTTP/1.1\r\nHost: x\r\nLast-Event-ID:{v}\r\n\r\n")
                .as_bytes(),
        ) {
            Parsed::Request(r, _) => r.last_event_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(id(" \t7\t "), Some(7));
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
        let Parsed::Request(first, used) = parse(two) else { panic!() };
        assert_eq!(first.route, Route::Metrics);
        let Parsed::Request(second, _) = parse(&two[used..]) else { panic!() };
        assert_eq!((second.route, second.head_only), (Route::Dashboard, true));
    }
}
