//! Small loopback HTTP/1.1 clients for tests: one request, one parsed
//! response, every read bounded by a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::wait::SOON;

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    /// The status code (0 if the status line was unreadable).
    pub status: u16,
    /// Status line and headers, CRLFs included.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// The first header named `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Read one response from `s`: head, then a body of Content-Length bytes
/// (none for HEAD or when absent and `head_only`), else until close.
pub fn read_response(s: &mut impl Read, head_only: bool) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) => {
                panic!("reading response head: {e} after {:?}", String::from_utf8_lossy(&buf))
            }
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut r = Response { status, head, body: String::new() };
    if head_only || status == 204 {
        return r;
    }
    match r.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
        Some(n) => {
            let mut body = vec![0; n];
            s.read_exact(&mut body).unwrap();
            r.body = String::from_utf8(body).unwrap();
        }
        None => {
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            r.body = body;
        }
    }
    r
}

/// A one-shot request with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Send raw bytes, read one response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    s.write_all(bytes).unwrap();
    read_response(&mut s, bytes.starts_with(b"HEAD"))
}

/// Whether the server closed `s`: a read returns 0 (or a reset) within `limit`.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
