//! Helpers shared by the reactor's integration tests.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::time::Duration;

pub use test_support::{open_fds, open_timerfds};

/// Loose bound for "soon" in tests; precision belongs to the benchmarks.
pub const SOON: Duration = Duration::from_secs(2);

/// A connected, nonblocking Unix stream socket pair.
pub fn pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None).unwrap()
}

/// Tests that count this process's fds run one at a time within their
/// binary: every such test (and every test beside it that opens fds) holds this.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
