//! The reactor against a raw epoll loop (the floor) and against mio, in one
//! run: dispatch per ready timer event, and a cross-thread wake.
//!
//!   cargo bench --manifest-path benches/Cargo.toml --bench reactor
//!
//! Dispatch: N timerfds are made ready with `TFD_IOC_SET_TICKS` (outside the
//! timed region), then one timed turn waits, reads each timerfd once and
//! runs its callback. Reported per event.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benches::dispatch::{mio_timers, ours, raw_epoll};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reactor::Reactor;

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
