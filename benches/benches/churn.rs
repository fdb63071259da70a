//! Timer churn: arm plus cancel with 1,000, 100,000 and 1,000,000 timers
//! live, for shared mode, dedicated mode (where the fd limit allows) and
//! tokio's timer; and the heap memory each live timer costs.
//!
//!   cargo bench --manifest-path benches/Cargo.toml --bench churn
//!
//! "set + disarm" re-arms one existing timer and cancels it through its
//! handle. "add + drop" creates a timer and drops it, which is how tokio
//! arms and cancels (`sleep` + first poll registers it, drop deregisters).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use benches::alloc::{LiveBytes, live_bytes};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use reactor::{Expiration, Reactor, Timer, TimerMode};

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

const HOUR: Duration = Duration::from_secs(3600);

/// `n` live timers; returns them and the reactor's heap growth in bytes
/// (the handles' own Vec is allocated before counting starts).
fn live(mode: TimerMode, r: &Reactor, n: usize) -> (Vec<Timer>, isize) {
    let mut v = Vec::with_capacity(n);
    let before = live_bytes();
    for i in 0..n {
        v.push(
            r.add_timer(mode, Expiration::Once(HOUR + Duration::from_nanos(i as u64)), |_, _| {})
                .unwrap(),
        );
    }
    (v, live_bytes() - before)
}

/// A no-op waker context, to poll a tokio Sleep once inside the runtime.
fn poll_once<F: Future>(f: Pin<&mut F>) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let _: Poll<_> = f.poll(&mut cx);
}

fn churn(c: &mut Criterion) {
    let fd_room = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024) as usize;
    let mut g = c.benchmark_group("arm_cancel");
    for n in [1_000usize, 100_000, 1_000_000] {
        for mode in [TimerMode::Shared, TimerMode::Dedicated] {
            let name =
                if mode == TimerMode::Shared { "reactor-shared" } else { "reactor-dedicated" };
            if mode == TimerMode::Dedicated && n + 100 > fd_room {
                println!(
                    "arm_cancel/{name}/{n}: skipped, {n} timerfds exceed the fd limit {fd_room}"
                );
                continue;
            }
            let r = Reactor::new().unwrap();
            let (timers, bytes) = live(mode, &r, n);
            println!(
                "memory/{name}/{n}: {:.1} bytes of reactor heap per live timer, spare Vec capacity included (handle: {} bytes, held by the caller)",
                bytes as f64 / n as f64,
                size_of::<Timer>()
            );
            let t = r.add_timer(mode, Expiration::Once(HOUR), |_, _| {}).unwrap();
            let mut k = 0u64;
            g.bench_function(BenchmarkId::new(format!("{name} set+disarm"), n), |b| {
                b.iter(|| {
                    k += 1;
                    t.set(Expiration::Once(HOUR - Duration::from_nanos(k % 1_000_000))).unwrap();
                    t.disarm().unwrap();
                })
            });
            g.bench_function(BenchmarkId::new(format!("{name} add+drop"), n), |b| {
                b.iter(|| {
                    drop(black_box(r.add_timer(mode, Expiration::Once(HOUR), |_, _| {}).unwrap()))
                })
            });
            drop(t);
            drop(timers);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let mut sleeps: Vec<Pin<Box<tokio::time::Sleep>>> = Vec::with_capacity(n);
            let before = live_bytes();
            sleeps.extend((0..n).map(|_| Box::pin(tokio::time::sleep(HOUR))));
            for s in &mut sleeps {
                poll_once(s.as_mut()); // registers it with the timer wheel
            }
            let bytes = live_bytes() - before;
            println!(
                "memory/tokio/{n}: {:.1} bytes of heap per live timer (capacity included)",
                bytes as f64 / n as f64
            );
            let mut one = Box::pin(tokio::time::sleep(HOUR));
            poll_once(one.as_mut());
            let mut k = 0u64;
            g.bench_function(BenchmarkId::new("tokio reset+poll", n), |b| {
                b.iter(|| {
                    k += 1;
                    let at =
                        tokio::time::Instant::now() + HOUR - Duration::from_nanos(k % 1_000_000);
                    one.as_mut().reset(at);
                    poll_once(one.as_mut());
                })
            });
            g.bench_function(BenchmarkId::new("tokio add+drop", n), |b| {
                b.iter(|| {
                    let mut s = Box::pin(tokio::time::sleep(HOUR));
                    poll_once(s.as_mut());
                    drop(black_box(s));
                })
            });
            drop(sleeps);
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
}

criterion_group! { name = benches; config = config(); targets = churn }
criterion_main!(benches);
