//! A/B: `timerfd_settime` through raw libc with a NULL old value, through
//! timerfd-sys, and through libc asking for the old value (what rustix's
//! call always does), interleaved in blocks so drift hits all three alike.
//! This run is what moved `TimerFd::set` off rustix's call.
//!
//!   cargo run --release --manifest-path benches/Cargo.toml --example ab_settime

use std::hint::black_box;
use std::time::{Duration, Instant};

use timerfd_sys::{Clock, Expiration, TimerFd};

fn main() {
    let t = TimerFd::new(Clock::Monotonic).unwrap();
    // SAFETY: plain syscall; the fd lives until the process exits.
    let fd = unsafe {
        libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
    };
    let hour = libc::timespec { tv_sec: 3600, tv_nsec: 0 };
    let spec = libc::itimerspec { it_interval: hour, it_value: hour };
    let mut old = spec;
    let (mut null_old, mut ours, mut with_old) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..200 {
        let s = Instant::now();
        for _ in 0..5000 {
            // SAFETY: valid fd and pointers for the call.
            unsafe { libc::timerfd_settime(fd, 0, black_box(&spec), std::ptr::null_mut()) };
        }
        null_old += s.elapsed();
        let s = Instant::now();
        for _ in 0..5000 {
            t.set(black_box(Expiration::every(Duration::from_secs(3600)))).unwrap();
        }
        ours += s.elapsed();
        let s = Instant::now();
        for _ in 0..5000 {
            // SAFETY: valid fd and pointers for the call.
            unsafe { libc::timerfd_settime(fd, 0, black_box(&spec), &mut old) };
        }
        with_old += s.elapsed();
    }
    let per = |d: Duration| d.as_nanos() as f64 / 1e6;
    println!(
        "libc, NULL old value: {:.1} ns; timerfd-sys: {:.1} ns; libc, old value copied out: {:.1} ns",
        per(null_old),
        per(ours),
        per(with_old)
    );
}
