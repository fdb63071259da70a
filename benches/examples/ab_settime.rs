use std::hint::black_box;
use std::time::{Duration, Instant};
use timerfd_sys::{Clock, Expiration, TimerFd};
fn main() {
    let t = TimerFd::new(Clock::Monotonic).unwrap();
    let fd = unsafe {
        libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
    };
    let hour = libc::timespec { tv_sec: 3600, tv_nsec: 0 };
    let spec = libc::itimerspec { it_interval: hour, it_value: hour };
    let mut old = spec;
    let (mut a, mut b, mut c) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..200 {
        let s = Instant::now();
        for _ in 0..5000 {
            unsafe { libc::timerfd_settime(fd, 0, black_box(&spec), std::ptr::null_mut()) };
        }
        a += s.elapsed();
        let s = Instant::now();
        for _ in 0..5000 {
            t.set(black_box(Expiration::every(Duration::from_secs(3600)))).unwrap();
        }
        b += s.elapsed();
        let s = Instant::now();
        for _ in 0..5000 {
            unsafe { libc::timerfd_settime(fd, 0, black_box(&spec), &mut old) };
        }
        c += s.elapsed();
    }
    let per = |d: Duration| d.as_nanos() as f64 / 1e6;
    println!(
        "libc NULL old: {:.1} ns, timerfd-sys: {:.1} ns, libc with old: {:.1} ns",
        per(a),
        per(b),
        per(c)
    );
}
