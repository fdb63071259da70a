//! The syscall layer timed the noise-resistant way: implementations take
//! turns in short blocks (libc, timerfd-sys, nix, timerfd, libc, ...), so
//! drift on this noisy machine hits them all alike; each gets the median of
//! its blocks. Criterion runs one contender after another, and its ratios
//! swing by 10-20% here; these hold to a few percent.
//!
//!   cargo run --release --manifest-path benches/Cargo.toml --bin interleave

use std::hint::black_box;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd as nixfd;
use timerfd_sys::{Clock, Expiration, TimerFd};

const HOUR: Duration = Duration::from_secs(3600);
const ROUNDS: usize = 150;
const BLOCK: u32 = 1000;

type Op<'a> = Box<dyn FnMut() + 'a>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn race(name: &str, mut ops: Vec<(&str, Op<'_>)>) {
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); ops.len()];
    for round in 0..ROUNDS {
        // Rotate the starting contender so none always runs first.
        for k in 0..ops.len() {
            let i = (round + k) % ops.len();
            let f = &mut ops[i].1;
            let start = Instant::now();
            for _ in 0..BLOCK {
                f();
            }
            times[i].push(start.elapsed().as_nanos() as f64 / f64::from(BLOCK));
        }
    }
    let med: Vec<f64> = times.into_iter().map(median).collect();
    let floor = med[0];
    let cells: Vec<String> = ops
        .iter()
        .zip(&med)
        .map(|((n, _), t)| format!("{n} {t:.0} ns ({:.3})", t / floor))
        .collect();
    println!("| {name} | {} |", cells.join(" | "));
}

fn set_ticks(fd: i32) {
    let one = 1u64;
    // SAFETY: valid fd; the kernel reads one u64.
    unsafe { libc::ioctl(fd, timerfd_sys::raw::TFD_IOC_SET_TICKS as libc::c_ulong, &one) };
}

fn main() {
    // SAFETY: plain syscall; closed at exit.
    let raw = unsafe {
        libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
    };
    let ours = TimerFd::new(Clock::Monotonic).unwrap();
    let nix = nixfd::TimerFd::new(
        nixfd::ClockId::CLOCK_MONOTONIC,
        nixfd::TimerFlags::TFD_NONBLOCK | nixfd::TimerFlags::TFD_CLOEXEC,
    )
    .unwrap();
    let crate_fd = std::cell::RefCell::new(
        timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true).unwrap(),
    );
    let nix_raw = nix.as_fd().as_raw_fd();
    let crate_raw = crate_fd.borrow().as_raw_fd();
    let ts = |s| libc::timespec { tv_sec: s, tv_nsec: 0 };
    let rel = libc::itimerspec { it_interval: ts(0), it_value: ts(3600) };
    let off = libc::itimerspec { it_interval: ts(0), it_value: ts(0) };
    let abs_t = Clock::Monotonic.now().saturating_add(HOUR * 24);
    let abs = libc::itimerspec { it_interval: ts(0), it_value: ts(abs_t.secs()) };
    // SAFETY (all libc closures below): valid fd and pointers for each call.
    let set = |s: &libc::itimerspec, flags| unsafe {
        libc::timerfd_settime(raw, flags, black_box(s), std::ptr::null_mut())
    };
    let read = |fd: i32| {
        let mut v = 0u64;
        // SAFETY: 8 writable bytes.
        unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        black_box(v);
    };
    let one = NonZeroU64::new(1).unwrap();
    let h = TimeSpec::from_duration(HOUR);

    println!(
        "interleaved timing, {ROUNDS} rounds of {BLOCK} calls each; median ns per call (ratio to libc)\n"
    );
    println!("| call | libc | timerfd-sys | nix | timerfd |");
    println!("|---|---|---|---|---|");
    race(
        "settime relative",
        vec![
            (
                "libc",
                Box::new(|| {
                    set(&rel, 0);
                }),
            ),
            ("timerfd-sys", Box::new(|| ours.set(black_box(Expiration::Once(HOUR))).unwrap())),
            (
                "nix",
                Box::new(|| {
                    nix.set(
                        nixfd::Expiration::OneShot(black_box(h)),
                        nixfd::TimerSetTimeFlags::empty(),
                    )
                    .unwrap()
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    crate_fd.borrow_mut().set_state(
                        timerfd::TimerState::Oneshot(black_box(HOUR)),
                        timerfd::SetTimeFlags::Default,
                    );
                }),
            ),
        ],
    );
    let abs_d = Duration::from_secs(abs_t.secs() as u64);
    race(
        "settime absolute",
        vec![
            (
                "libc",
                Box::new(|| {
                    set(&abs, libc::TFD_TIMER_ABSTIME);
                }),
            ),
            ("timerfd-sys", Box::new(|| ours.set(black_box(Expiration::OnceAt(abs_t))).unwrap())),
            (
                "nix",
                Box::new(|| {
                    nix.set(
                        nixfd::Expiration::OneShot(TimeSpec::new(black_box(abs_t.secs()), 0)),
                        nixfd::TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                    )
                    .unwrap()
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    crate_fd.borrow_mut().set_state(
                        timerfd::TimerState::Oneshot(black_box(abs_d)),
                        timerfd::SetTimeFlags::Abstime,
                    );
                }),
            ),
        ],
    );
    race(
        "disarm",
        vec![
            (
                "libc",
                Box::new(|| {
                    set(&off, 0);
                }),
            ),
            ("timerfd-sys", Box::new(|| ours.disarm().unwrap())),
            ("nix", Box::new(|| nix.unset().unwrap())),
            (
                "timerfd",
                Box::new(|| {
                    crate_fd
                        .borrow_mut()
                        .set_state(timerfd::TimerState::Disarmed, timerfd::SetTimeFlags::Default);
                }),
            ),
        ],
    );
    // Armed periodic timers for gettime and read.
    let per = libc::itimerspec { it_interval: ts(3600), it_value: ts(3600) };
    set(&per, 0);
    ours.set(Expiration::every(HOUR)).unwrap();
    nix.set(nixfd::Expiration::IntervalDelayed(h, h), nixfd::TimerSetTimeFlags::empty()).unwrap();
    crate_fd.borrow_mut().set_state(
        timerfd::TimerState::Periodic { current: HOUR, interval: HOUR },
        timerfd::SetTimeFlags::Default,
    );
    race(
        "gettime",
        vec![
            (
                "libc",
                Box::new(|| {
                    let mut cur = off;
                    // SAFETY: valid fd and out-pointer.
                    unsafe { libc::timerfd_gettime(raw, &mut cur) };
                    black_box(cur.it_value.tv_sec);
                }),
            ),
            (
                "timerfd-sys",
                Box::new(|| {
                    black_box(ours.get().unwrap());
                }),
            ),
            (
                "nix",
                Box::new(|| {
                    black_box(nix.get().unwrap());
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    black_box(crate_fd.borrow().get_state());
                }),
            ),
        ],
    );
    race(
        "read, EAGAIN",
        vec![
            ("libc", Box::new(|| read(raw))),
            (
                "timerfd-sys",
                Box::new(|| {
                    black_box(ours.read().unwrap());
                }),
            ),
            (
                "nix",
                Box::new(|| {
                    black_box(nix.wait().is_err());
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    black_box(crate_fd.borrow().read());
                }),
            ),
        ],
    );
    race(
        "set_ticks + read",
        vec![
            (
                "libc",
                Box::new(|| {
                    set_ticks(raw);
                    read(raw);
                }),
            ),
            (
                "timerfd-sys",
                Box::new(|| {
                    ours.set_ticks(one).unwrap();
                    black_box(ours.read().unwrap());
                }),
            ),
            (
                "nix",
                Box::new(|| {
                    set_ticks(nix_raw);
                    black_box(nix.wait().is_ok());
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    set_ticks(crate_raw);
                    black_box(crate_fd.borrow().read());
                }),
            ),
        ],
    );
    race(
        "create + close",
        vec![
            (
                "libc",
                Box::new(|| {
                    // SAFETY: we own the new fd and close it.
                    unsafe {
                        libc::close(black_box(libc::timerfd_create(
                            libc::CLOCK_MONOTONIC,
                            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                        )))
                    };
                }),
            ),
            ("timerfd-sys", Box::new(|| drop(black_box(TimerFd::new(Clock::Monotonic).unwrap())))),
            (
                "nix",
                Box::new(|| {
                    drop(black_box(
                        nixfd::TimerFd::new(
                            nixfd::ClockId::CLOCK_MONOTONIC,
                            nixfd::TimerFlags::TFD_NONBLOCK | nixfd::TimerFlags::TFD_CLOEXEC,
                        )
                        .unwrap(),
                    ))
                }),
            ),
            (
                "timerfd",
                Box::new(|| {
                    drop(black_box(
                        timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true)
                            .unwrap(),
                    ))
                }),
            ),
        ],
    );
}
