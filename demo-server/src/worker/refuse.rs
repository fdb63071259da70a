//! Refusing a client the server cannot take (`--max-conns`, EMFILE), so that
//! the refusal reaches it, and monitoring still gets through.
//!
//! A refused socket used to be closed with its request unread, and closing
//! a socket with unread input makes the kernel send a reset, not the 503 in
//! front of it: some refused clients saw "connection reset". Now the head
//! that has arrived is read first, the answer is sent, the write side is
//! shut down (FIN after the answer), what else arrived is drained, and only
//! then is the socket closed.
//!
//! Monitoring must work exactly when the server is full: a refused client
//! whose head is a complete `GET /metrics` gets the metrics (O(1) now that
//! the fd census runs on its own thread), not a 503. A client whose head has
//! not arrived yet may take one of [`RESERVED_SLOTS`] reserved connections,
//! which serve everything but streams; at EMFILE the fd for it comes from a
//! second spare fd kept for that purpose.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, Shutdown, recv, send, shutdown};

use super::Worker;
use crate::http::{self, Parsed, Status};
use crate::wire::Route;

/// Connections per worker admitted past the limits for monitoring.
pub(super) const RESERVED_SLOTS: usize = 2;

/// Bytes drained from a refused socket after its answer, at most.
const DRAIN_LIMIT: usize = 64 * 1024;

/// What to do with a client that cannot be admitted normally.
pub(super) enum Refusal {
    /// Answered and closed.
    Done,
    /// Its head has not arrived: admit it to a reserved slot, if one is free.
    Reserve(OwnedFd),
}

impl Worker {
    /// Answer a client the server cannot take: `/metrics` if that is what
    /// it asks for, else 503; then close it cleanly. With `may_reserve`, a
    /// client whose head has not arrived yet is handed back to be admitted
    /// to a reserved slot instead.
    pub(super) fn refuse(&mut self, fd: OwnedFd, may_reserve: bool) -> Refusal {
        let mut head = Vec::new();
        let mut eof = false;
        while head.len() < http::MAX_HEAD {
            match recv(&fd, &mut self.scratch[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    eof = true;
                    break;
                }
                Ok((n, _)) => head.extend_from_slice(&self.scratch[..n]),
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        match http::parse(&head) {
            Parsed::Request(req, _) if req.route == Route::Metrics && !req.preflight => {
                let body = self.metrics.render();
                let ct = "text/plain; version=0.0.4; charset=utf-8";
                http::response(&mut out, Status::Ok, ct, body.as_bytes(), false, req.head_only);
                self.metrics.response(Status::Ok);
            }
            Parsed::Partial if may_reserve && !eof => return Refusal::Reserve(fd),
            _ => {
                out.extend_from_slice(http::OVERLOADED);
                self.metrics.response(Status::Unavailable);
            }
        }
        close_after(fd, &out, &mut self.scratch[..]);
        Refusal::Done
    }

    /// Answer 503 "full, try again" to a client the worker could not set up
    /// (no registration, no deadline), without reading what it sent.
    pub(super) fn refuse_now(&mut self, fd: OwnedFd) {
        self.metrics.response(Status::Unavailable);
        close_after(fd, http::OVERLOADED, &mut self.scratch[..]);
    }
}

/// Send `answer`, shut the write side (FIN after it), drain what the client
/// sent meanwhile, and close: no unread input, so no reset.
fn close_after(fd: OwnedFd, answer: &[u8], scratch: &mut [u8]) {
    let mut done = 0;
    while done < answer.len() {
        match send(&fd, &answer[done..], SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) => done += n,
            Err(Errno::INTR) => continue,
            Err(_) => break, // a fresh socket takes a small answer at once
        }
    }
    // ENOTCONN if the client already left: then there is nobody to tell.
    let _gone_already = shutdown(&fd, Shutdown::Write);
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match recv(&fd, &mut *scratch, RecvFlags::DONTWAIT) {
            Ok((0, _)) => break,
            Ok((n, _)) => drained += n,
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    drop(fd);
}
