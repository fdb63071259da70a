//! A minimal blocking HTTP/1.1 client for `leak-demo`: open a stream, ask
//! `/metrics` on a kept-alive connection. Loopback only, every read bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Reads give up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What opening a stream got.
#[derive(Debug)]
pub enum Opened {
    /// 200 and the opening event: the stream is live.
    Stream(TcpStream),
    /// Another status (503 at the limit).
    Refused(u16),
    /// The connection failed or closed without an answer.
    Closed,
}

/// Open `GET /stream/{route}` and read through its `hello` event.
pub fn open_stream(addr: SocketAddr, route: &str) -> Opened {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, TIMEOUT) else { return Opened::Closed };
    // Without a read timeout a silent server could hold the caller forever.
    if s.set_read_timeout(Some(TIMEOUT)).is_err() {
        return Opened::Closed;
    }
    let request = format!("GET /stream/{route} HTTP/1.1\r\nHost: leak-demo\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return Opened::Closed;
    }
    let mut seen = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    let hello = format!("event: {}\n", crate::sse::HELLO);
    while !seen.ends_with(hello.as_bytes()) {
        match s.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
        if seen.len() == 12 && !seen.starts_with(b"HTTP/1.1 200") {
            let code =
                std::str::from_utf8(&seen[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
            return Opened::Refused(code);
        }
    }
    if seen.ends_with(hello.as_bytes()) { Opened::Stream(s) } else { Opened::Closed }
}

/// A kept-alive connection for asking `/metrics` again and again.
pub struct Control {
    stream: TcpStream,
}

impl Control {
    /// Connect.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Control> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(Control { stream })
    }

    /// `GET /metrics` on this connection: the body.
    pub fn metrics(&mut self) -> std::io::Result<String> {
        self.stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: leak-demo\r\n\r\n")?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if self.stream.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// One sample of `/metrics`, like `demo_server_streams_active{route="leaky"}`.
    pub fn metric(&mut self, sample: &str) -> std::io::Result<f64> {
        let text = self.metrics()?;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}
