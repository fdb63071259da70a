//! The syscall layer: each timerfd call through raw libc (the floor),
//! timerfd-sys, nix and the `timerfd` crate, side by side in one run.
//!
//!   cargo bench --manifest-path benches/Cargo.toml --bench syscalls
//!
//! "read, expired" is `TFD_IOC_SET_TICKS` then `read` for every contender
//! (nix and the timerfd crate have no set_ticks, so theirs use the same
//! libc ioctl): the read of an expired timer needs the timer expired, and
//! this is the one way to do that without a kernel timer interrupt.

use std::hint::black_box;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd as nixfd;
use timerfd_sys::{Clock, Expiration, TimerFd};

const HOUR: Duration = Duration::from_secs(3600);

fn libc_timer() -> i32 {
    // SAFETY: plain syscall; the fd is closed by the caller.
    unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) }
}

fn spec(value_s: i64, interval_s: i64) -> libc::itimerspec {
    libc::itimerspec {
        it_interval: libc::timespec { tv_sec: interval_s, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: value_s, tv_nsec: 0 },
    }
}

fn libc_set(fd: i32, flags: i32, s: &libc::itimerspec) {
    // SAFETY: valid fd and pointers for the call's duration.
    unsafe { libc::timerfd_settime(fd, flags, s, std::ptr::null_mut()) };
}

fn set_ticks(fd: i32) {
    let one = 1u64;
    // SAFETY: valid fd; the kernel reads one u64.
    unsafe { libc::ioctl(fd, timerfd_sys::raw::TFD_IOC_SET_TICKS as libc::c_ulong, &one) };
}

fn libc_read(fd: i32) -> u64 {
    let mut v = 0u64;
    // SAFETY: 8 writable bytes.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    v
}

fn far_future_abs() -> (i64, timerfd_sys::ClockTime) {
    let t = Clock::Monotonic.now().saturating_add(HOUR * 24);
    (t.secs(), t)
}

fn bench(c: &mut Criterion) {
    let raw = libc_timer();
    let ours = TimerFd::new(Clock::Monotonic).unwrap();
    let nix = nixfd::TimerFd::new(
        nixfd::ClockId::CLOCK_MONOTONIC,
        nixfd::TimerFlags::TFD_NONBLOCK | nixfd::TimerFlags::TFD_CLOEXEC,
    )
    .unwrap();
    let mut crate_fd =
        timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true).unwrap();
    let nix_raw = nix.as_fd().as_raw_fd();
    let (abs_secs, abs_time) = far_future_abs();

    let mut g = c.benchmark_group("settime_relative");
    g.bench_function("libc", |b| b.iter(|| libc_set(raw, 0, black_box(&spec(3600, 0)))));
    g.bench_function("timerfd-sys", |b| {
        b.iter(|| ours.set(black_box(Expiration::Once(HOUR))).unwrap())
    });
    g.bench_function("nix", |b| {
        b.iter(|| {
            let e = nixfd::Expiration::OneShot(TimeSpec::from_duration(black_box(HOUR)));
            nix.set(e, nixfd::TimerSetTimeFlags::empty()).unwrap()
        })
    });
    g.bench_function("timerfd", |b| {
        b.iter(|| {
            crate_fd.set_state(
                timerfd::TimerState::Oneshot(black_box(HOUR)),
                timerfd::SetTimeFlags::Default,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("settime_absolute");
    g.bench_function("libc", |b| {
        b.iter(|| libc_set(raw, libc::TFD_TIMER_ABSTIME, black_box(&spec(abs_secs, 0))))
    });
    g.bench_function("timerfd-sys", |b| {
        b.iter(|| ours.set(black_box(Expiration::OnceAt(abs_time))).unwrap())
    });
    g.bench_function("nix", |b| {
        b.iter(|| {
            let e = nixfd::Expiration::OneShot(TimeSpec::new(black_box(abs_secs), 0));
            nix.set(e, nixfd::TimerSetTimeFlags::TFD_TIMER_ABSTIME).unwrap()
        })
    });
    g.bench_function("timerfd", |b| {
        let d = Duration::from_secs(abs_secs as u64);
        b.iter(|| {
            crate_fd.set_state(
                timerfd::TimerState::Oneshot(black_box(d)),
                timerfd::SetTimeFlags::Abstime,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("settime_disarm");
    g.bench_function("libc", |b| b.iter(|| libc_set(raw, 0, black_box(&spec(0, 0)))));
    g.bench_function("timerfd-sys", |b| b.iter(|| ours.disarm().unwrap()));
    g.bench_function("nix", |b| b.iter(|| nix.unset().unwrap()));
    g.bench_function("timerfd", |b| {
        b.iter(|| crate_fd.set_state(timerfd::TimerState::Disarmed, timerfd::SetTimeFlags::Default))
    });
    g.finish();

    // Armed, periodic, for gettime.
    libc_set(raw, 0, &spec(3600, 3600));
    ours.set(Expiration::every(HOUR)).unwrap();
    let p = TimeSpec::from_duration(HOUR);
    nix.set(nixfd::Expiration::IntervalDelayed(p, p), nixfd::TimerSetTimeFlags::empty()).unwrap();
    crate_fd.set_state(
        timerfd::TimerState::Periodic { current: HOUR, interval: HOUR },
        timerfd::SetTimeFlags::Default,
    );

    let mut g = c.benchmark_group("gettime");
    g.bench_function("libc", |b| {
        b.iter(|| {
            let mut cur = spec(0, 0);
            // SAFETY: valid fd and out-pointer.
            unsafe { libc::timerfd_gettime(raw, &mut cur) };
            black_box(cur.it_value.tv_nsec)
        })
    });
    g.bench_function("timerfd-sys", |b| b.iter(|| black_box(ours.get().unwrap())));
    g.bench_function("nix", |b| b.iter(|| black_box(nix.get().unwrap())));
    g.bench_function("timerfd", |b| b.iter(|| black_box(crate_fd.get_state())));
    g.finish();

    let mut g = c.benchmark_group("read_eagain");
    g.bench_function("libc", |b| b.iter(|| black_box(libc_read(raw))));
    g.bench_function("timerfd-sys", |b| b.iter(|| black_box(ours.read().unwrap())));
    g.bench_function("nix", |b| b.iter(|| black_box(nix.wait().is_err())));
    g.bench_function("timerfd", |b| b.iter(|| black_box(crate_fd.read())));
    g.finish();

    let one = NonZeroU64::new(1).unwrap();
    let mut g = c.benchmark_group("read_expired");
    g.bench_function("libc", |b| {
        b.iter(|| {
            set_ticks(raw);
            black_box(libc_read(raw))
        })
    });
    g.bench_function("timerfd-sys", |b| {
        b.iter(|| {
            ours.set_ticks(one).unwrap();
            black_box(ours.read().unwrap())
        })
    });
    g.bench_function("nix", |b| {
        b.iter(|| {
            set_ticks(nix_raw);
            black_box(nix.wait().is_ok())
        })
    });
    g.bench_function("timerfd", |b| {
        b.iter(|| {
            set_ticks(crate_fd.as_raw_fd());
            black_box(crate_fd.read())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("create_close");
    g.bench_function("libc", |b| {
        b.iter(|| {
            let fd = libc_timer();
            // SAFETY: we own fd.
            unsafe { libc::close(black_box(fd)) };
        })
    });
    g.bench_function("timerfd-sys", |b| {
        b.iter(|| drop(black_box(TimerFd::new(Clock::Monotonic).unwrap())))
    });
    g.bench_function("nix", |b| {
        b.iter(|| {
            let flags = nixfd::TimerFlags::TFD_NONBLOCK | nixfd::TimerFlags::TFD_CLOEXEC;
            drop(black_box(nixfd::TimerFd::new(nixfd::ClockId::CLOCK_MONOTONIC, flags).unwrap()))
        })
    });
    g.bench_function("timerfd", |b| {
        b.iter(|| {
            drop(black_box(
                timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true).unwrap(),
            ))
        })
    });
    g.finish();

    // SAFETY: we own raw.
    unsafe { libc::close(raw) };
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
