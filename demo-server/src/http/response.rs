//! The answers: the statuses this server sends, and every response it
//! writes, into a byte buffer, with the CORS, `Retry-After` and `X-Reason`
//! rules in one builder.

use std::fmt::Write as _;

/// The statuses this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200 OK.
    Ok,
    /// 204 No Content: what a stream route answers during shutdown, so
    /// EventSource stops reconnecting; also the answer to `OPTIONS`.
    NoContent,
    /// 400 Bad Request.
    BadRequest,
    /// 404 Not Found.
    NotFound,
    /// 405 Method Not Allowed, with `Allow: GET, HEAD, OPTIONS`.
    MethodNotAllowed,
    /// 408 Request Timeout: the head did not arrive in time.
    RequestTimeout,
    /// 413 Content Too Large: these routes take no body.
    ContentTooLarge,
    /// 431 Request Header Fields Too Large.
    HeaderTooLarge,
    /// 503 Service Unavailable, with `Retry-After`.
    Unavailable,
}

impl Status {
    /// Every status, in code order (for metrics).
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::NoContent,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::RequestTimeout,
        Status::ContentTooLarge,
        Status::HeaderTooLarge,
        Status::Unavailable,
    ];

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::ContentTooLarge => 413,
            Status::HeaderTooLarge => 431,
            Status::Unavailable => 503,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NoContent => "No Content",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::ContentTooLarge => "Content Too Large",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::Unavailable => "Service Unavailable",
        }
    }

    /// Index into [`Status::ALL`], which lists the variants in declaration order.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The answer to `OPTIONS`, a CORS preflight included: fetch-based SSE
/// clients send `Last-Event-ID` (not a CORS-safelisted header) to resume,
/// so a cross-origin resume needs the preflight to allow it.
pub fn preflight(out: &mut Vec<u8>, keep_alive: bool) {
    out.extend_from_slice(b"HTTP/1.1 204 No Content\r\nAllow: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, HEAD\r\nAccess-Control-Allow-Headers: Last-Event-ID, Cache-Control, Accept\r\nAccess-Control-Max-Age: 86400\r\nConnection: ");
    out.extend_from_slice(if keep_alive { b"keep-alive\r\n\r\n" } else { b"close\r\n\r\n" });
}

/// Who may read a response from another origin.
///
/// Every response but the process's own fd table (`/debug/fds`) carries
/// `Access-Control-Allow-Origin: *`: the dashboard opens its streams
/// cross-origin (`s0.localhost`, ... from `127.0.0.1`), and a refusal's
/// status and reason must reach it and any fetch-based client, not only a
/// 200 stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// The same origin only: no CORS header.
    Same,
}

/// A complete response with a body (`Content-Length` set), readable from
/// any origin; `head_only` drops the body but keeps the length, as HEAD
/// requires. A 503 built here has no `Retry-After`: see [`unavailable`].
pub fn response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) {
    respond(out, status, content_type, body, keep_alive, head_only, Origin::Any, None);
}

/// [`response`] for the same origin only (no CORS header).
pub fn private_response(
    out: &mut Vec<u8>,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) {
    respond(out, Status::Ok, content_type, body, keep_alive, head_only, Origin::Same, None);
}

/// A 503, saying why in `body`. `retry_after`: when the condition passes
/// by itself (a full server), the seconds to wait, sent as `Retry-After`;
/// `None` when waiting will not help (a cap that lasts until a restart), so
/// the header never contradicts the body.
pub fn unavailable(out: &mut Vec<u8>, body: &str, retry_after: Option<u32>, head_only: bool) {
    let ct = "text/plain; charset=utf-8";
    respond(
        out,
        Status::Unavailable,
        ct,
        body.as_bytes(),
        false,
        head_only,
        Origin::Any,
        retry_after,
    );
}

#[allow(clippy::too_many_arguments)] // one private builder behind the three above
fn respond(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
    origin: Origin,
    retry_after: Option<u32>,
) {
    let mut head = String::with_capacity(200);
    // `fmt::Write` for a `String` cannot fail.
    let _infallible = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: {}\r\n",
        status.code(),
        status.reason(),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if status == Status::MethodNotAllowed {
        head.push_str("Allow: GET, HEAD, OPTIONS\r\n");
    }
    if let Some(secs) = retry_after {
        let _infallible = write!(head, "Retry-After: {secs}\r\n");
    }
    // A refusal's reason in a header too: an answer to HEAD has no body, and
    // a page whose EventSource was refused asks with HEAD (the dashboard
    // does), so it learns why without opening a stream.
    let reason = (status.code() >= 400).then(|| reason_line(body)).flatten();
    if let Some(reason) = reason {
        let _infallible = write!(head, "X-Reason: {reason}\r\n");
    }
    if origin == Origin::Any {
        head.push_str("Access-Control-Allow-Origin: *\r\n");
        if reason.is_some() || retry_after.is_some() {
            head.push_str("Access-Control-Expose-Headers: X-Reason, Retry-After\r\n");
        }
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// The first line of a plain-text body, if it can be a header value
/// (visible ASCII and spaces only).
fn reason_line(body: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(body).ok()?.lines().next()?.trim();
    let printable = line.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    (!line.is_empty() && printable).then_some(line)
}

/// The plain-text error response for `status`.
pub fn error_response(out: &mut Vec<u8>, status: Status, keep_alive: bool, head_only: bool) {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(out, status, "text/plain; charset=utf-8", body.as_bytes(), keep_alive, head_only);
}

/// The head of an event stream: no `Content-Length`; the body runs until
/// the connection closes.
pub const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n";

/// What a stream request gets during a shutdown: 204 No Content, which
/// tells EventSource to stop reconnecting for good.
pub const GONE_FOR_GOOD: &[u8] =
    b"HTTP/1.1 204 No Content\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n";

/// A 503 sent to a connection refused before it was read (`--max-conns`, or
/// the spare-fd trick under EMFILE): the server is full now, so it says to
/// come back in a second, in the body and in `Retry-After`.
pub const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 47\r\nRetry-After: 1\r\nX-Reason: 503: the server is full; try again in a second\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: X-Reason, Retry-After\r\n\r\n503: the server is full; try again in a second\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_the_order_of_all() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn head_keeps_content_length_and_drops_the_body() {
        let mut out = Vec::new();
        response(&mut out, Status::Ok, "text/plain", b"hello", true, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Length: 5\r\n") && text.ends_with("\r\n\r\n"));
    }

    /// The canned answers' `Content-Length` is their body's length.
    #[test]
    fn canned_answers_say_their_own_length() {
        for canned in [OVERLOADED, GONE_FOR_GOOD] {
            let text = std::str::from_utf8(canned).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.parse().unwrap());
            assert_eq!(body.len(), length, "{text:?}");
        }
    }

    /// Every answer carries the CORS header a 200 stream does, so a
    /// cross-origin client sees the status and the reason; only the
    /// process's own fd table is same-origin.
    #[test]
    fn every_answer_but_the_private_one_allows_any_origin() {
        const CORS: &str = "\r\nAccess-Control-Allow-Origin: *\r\n";
        let mut answers: Vec<Vec<u8>> = Vec::new();
        for status in Status::ALL {
            let mut out = Vec::new();
            error_response(&mut out, status, false, false);
            answers.push(out);
        }
        let mut out = Vec::new();
        unavailable(&mut out, "full", Some(1), false);
        answers.extend([out, OVERLOADED.to_vec(), GONE_FOR_GOOD.to_vec(), SSE_HEAD.to_vec()]);
        let mut out = Vec::new();
        preflight(&mut out, true);
        answers.push(out);
        for a in &answers {
            let text = String::from_utf8_lossy(a);
            assert!(text.contains(CORS), "{text}");
        }
        let mut private = Vec::new();
        private_response(&mut private, "application/json", b"{}", true, false);
        assert!(!String::from_utf8_lossy(&private).contains("Access-Control"));
    }

    /// A refusal says why in a header too, so an answer to HEAD carries it.
    #[test]
    fn a_refusal_says_why_in_a_header_that_a_page_may_read() {
        let mut out = Vec::new();
        unavailable(&mut out, "503: capped until a restart\nmore\n", None, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-Reason: 503: capped until a restart\r\n"), "{text}");
        assert!(text.contains("Access-Control-Expose-Headers: X-Reason"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "HEAD: no body");
        let mut ok = Vec::new();
        response(&mut ok, Status::Ok, "text/plain", b"fine", true, false);
        assert!(!String::from_utf8(ok).unwrap().contains("X-Reason"));
    }

    /// `Retry-After` only where waiting helps, so it never contradicts a body.
    #[test]
    fn retry_after_only_when_asked() {
        let mut out = Vec::new();
        unavailable(&mut out, "capped until a restart", None, false);
        assert!(!String::from_utf8_lossy(&out).contains("\r\nRetry-After:"));
        let mut out = Vec::new();
        unavailable(&mut out, "full: try again in 2 s", Some(2), false);
        assert!(String::from_utf8_lossy(&out).contains("Retry-After: 2\r\n"));
    }
}
