//! The reactor against a raw epoll loop (the floor) and against mio, in one
//! run: dispatch per ready timer event, and a cross-thread wake.
//!
//!   cargo bench --manifest-path benches/Cargo.toml --bench reactor
//!
//! Dispatch: N timerfds are made ready with `TFD_IOC_SET_TICKS` (outside the
//! timed region), then one timed turn waits, reads each timerfd once and
//! runs its callback. Reported per event.

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reactor::{Expiration, Reactor, TimerMode};
use timerfd_sys::{Clock, TimerFd};

const FAR: Expiration = Expiration::Once(Duration::from_secs(3600));
const ONE: NonZeroU64 = NonZeroU64::new(1).unwrap();

fn set_ticks(fd: i32) {
    let one = 1u64;
    // SAFETY: valid fd; the kernel reads one u64.
    unsafe { libc::ioctl(fd, timerfd_sys::raw::TFD_IOC_SET_TICKS as libc::c_ulong, &one) };
}

/// The floor: epoll_wait and read written directly on libc, a Vec of
/// callbacks indexed by the event's data.
fn raw_epoll(n: usize, iters: u64) -> Duration {
    // SAFETY: plain syscalls on fds this function owns and closes.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let timers: Vec<TimerFd> =
            (0..n).map(|_| TimerFd::new(Clock::Monotonic).unwrap()).collect();
        let count = Cell::new(0u64);
        let mut callbacks: Vec<Box<dyn FnMut(u64) + '_>> = Vec::new();
        for (i, t) in timers.iter().enumerate() {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, t.as_raw_fd(), &mut ev);
            callbacks.push(Box::new(|ticks| count.set(count.get() + ticks)));
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            timers.iter().for_each(|t| set_ticks(t.as_raw_fd()));
            let start = Instant::now();
            let k = libc::epoll_wait(ep, events.as_mut_ptr(), 1024, 0);
            for e in &events[..k.max(0) as usize] {
                let i = e.u64 as usize;
                let mut v = 0u64;
                libc::read(timers[i].as_raw_fd(), (&mut v as *mut u64).cast(), 8);
                callbacks[i](v);
            }
            total += start.elapsed();
        }
        libc::close(ep);
        assert_eq!(count.get(), iters * n as u64);
        total
    }
}

fn ours(n: usize, iters: u64) -> Duration {
    let r = Reactor::new().unwrap();
    let count = Rc::new(Cell::new(0u64));
    let timers: Vec<_> = (0..n)
        .map(|_| {
            let c = count.clone();
            r.add_timer(TimerMode::Dedicated, FAR, move |_, ticks| c.set(c.get() + ticks)).unwrap()
        })
        .collect();
    let fds: Vec<i32> = timers.iter().map(|t| t.fd().unwrap()).collect();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fds.iter().for_each(|fd| set_ticks(*fd));
        let start = Instant::now();
        r.turn(Some(Duration::ZERO)).unwrap();
        total += start.elapsed();
    }
    assert_eq!(count.get(), iters * n as u64);
    total
}

fn mio_timers(n: usize, iters: u64) -> Duration {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().unwrap();
    let timers: Vec<TimerFd> = (0..n).map(|_| TimerFd::new(Clock::Monotonic).unwrap()).collect();
    let count = Cell::new(0u64);
    let mut callbacks: Vec<Box<dyn FnMut(u64) + '_>> = Vec::new();
    for (i, t) in timers.iter().enumerate() {
        let raw = t.as_raw_fd();
        poll.registry().register(&mut SourceFd(&raw), Token(i), Interest::READABLE).unwrap();
        callbacks.push(Box::new(|ticks| count.set(count.get() + ticks)));
    }
    let mut events = Events::with_capacity(1024);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        timers.iter().for_each(|t| t.set_ticks(ONE).unwrap());
        let start = Instant::now();
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        for e in events.iter() {
            let i = e.token().0;
            let ticks = timers[i].read().unwrap();
            callbacks[i](ticks);
        }
        total += start.elapsed();
    }
    assert_eq!(count.get(), iters * n as u64);
    total
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch_per_event");
    for n in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("raw-epoll", n), &n, |b, &n| {
            b.iter_custom(|it| raw_epoll(n, it))
        });
        g.bench_with_input(BenchmarkId::new("reactor", n), &n, |b, &n| {
            b.iter_custom(|it| ours(n, it))
        });
        g.bench_with_input(BenchmarkId::new("mio", n), &n, |b, &n| {
            b.iter_custom(|it| mio_timers(n, it))
        });
    }
    g.finish();
}

/// Ping-pong between two threads, each blocked in its loop's wait until the
/// other wakes it: the time of one round trip (two wakes).
fn waker(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread_wake_round_trip");
    g.bench_function("reactor::Waker", |b| {
        b.iter_custom(|iters| {
            let (a, b_) = (Reactor::new().unwrap(), Reactor::new().unwrap());
            let (wa, wb) = (a.waker().unwrap(), b_.waker().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            let echo = std::thread::spawn(move || {
                let r = Reactor::new().unwrap();
                tx.send(r.waker().unwrap()).unwrap();
                let wa: reactor::Waker = wa;
                while !s.load(Ordering::Relaxed) {
                    r.turn(None).unwrap();
                    wa.wake().unwrap();
                }
            });
            let to_echo = rx.recv().unwrap();
            drop(wb);
            let start = Instant::now();
            for _ in 0..iters {
                to_echo.wake().unwrap();
                a.turn(None).unwrap();
            }
            let t = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            to_echo.wake().unwrap();
            echo.join().unwrap();
            black_box(&b_);
            t
        })
    });
    g.bench_function("mio::Waker", |b| {
        b.iter_custom(|iters| {
            use mio::{Events, Poll, Token, Waker};
            let mut home = Poll::new().unwrap();
            let wake_home = Arc::new(Waker::new(home.registry(), Token(0)).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let (s, wh) = (stop.clone(), wake_home.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            let echo = std::thread::spawn(move || {
                let mut p = Poll::new().unwrap();
                tx.send(Arc::new(Waker::new(p.registry(), Token(0)).unwrap())).unwrap();
                let mut ev = Events::with_capacity(8);
                while !s.load(Ordering::Relaxed) {
                    p.poll(&mut ev, None).unwrap();
                    wh.wake().unwrap();
                }
            });
            let to_echo: Arc<Waker> = rx.recv().unwrap();
            let mut ev = Events::with_capacity(8);
            let start = Instant::now();
            for _ in 0..iters {
                to_echo.wake().unwrap();
                home.poll(&mut ev, None).unwrap();
            }
            let t = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            to_echo.wake().unwrap();
            echo.join().unwrap();
            t
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = dispatch, waker }
criterion_main!(benches);
