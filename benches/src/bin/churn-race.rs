//! Shared-timer churn against the peers, side by side in one run: the
//! reactor's shared mode, tokio's timer wheel and calloop's timer, each with
//! N timers live (1,000, 100,000 and 1,000,000 by default).
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin churn-race [-- --sizes 1000,100000 --rounds 15]
//! ```
//!
//! * **Arm + cancel**, ns per pair, interleaved: the five loops below take
//!   turns in blocks of `--ops` pairs, their order rotating each round, and
//!   each gets the median of its `--rounds` blocks.
//!   - reactor `set+disarm`: re-arm a live shared timer and cancel it through
//!     its handle; reactor `add+drop`: create a shared timer and drop it;
//!   - tokio `reset+poll`: re-arm a registered `Sleep` (`Sleep::reset`) and
//!     poll it, which moves its wheel entry; tokio `sleep+drop`: create a
//!     `Sleep`, poll it once (which registers it) and drop it;
//!   - calloop `insert+remove`: insert a `Timer` source and remove it
//!     (fewer pairs per block at large N: its cancel scans the heap).
//! * **Fire**, ns per expiry: N more timers, all due, fired through each
//!   loop (the reactor's and calloop's callbacks; for tokio, N tasks awaiting
//!   one deadline, which is how tokio code waits on a timer); the time from
//!   the first expiry seen to the last, over N - 1.
//! * calloop runs only up to `--calloop-max` live timers (100,000): its
//!   `insert_source` scans the loop's source slab for a free slot, so
//!   inserting 1,000,000 takes minutes (O(N²)), and its cancel scans its
//!   timer heap.
//! * **Memory**, heap bytes per live timer, counted by this binary's global
//!   allocator while the N live timers are created (spare capacity of the
//!   loops' Vecs included): a shared timer with its callback; a pinned,
//!   registered `Box<Sleep>`; an inserted calloop `Timer` with its callback.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use benches::alloc::{LiveBytes, live_bytes};
use benches::median;
use calloop::timer::{TimeoutAction, Timer as CTimer};
use reactor::{Clock, Expiration, Reactor, TimerMode};

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

const HOUR: Duration = Duration::from_secs(3600);

fn poll_once<F: Future>(f: Pin<&mut F>) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = f.poll(&mut cx);
}

const LOOPS: [&str; 5] = [
    "reactor shared set+disarm",
    "reactor shared add+drop",
    "tokio reset+poll",
    "tokio sleep+drop",
    "calloop insert+remove",
];

/// (first, last, count) of the expiries a fire run has seen.
#[derive(Default)]
struct Seen {
    first: Cell<Option<Instant>>,
    last: Cell<Option<Instant>>,
    count: Cell<usize>,
}

impl Seen {
    fn hit(&self) {
        let now = Instant::now();
        if self.first.get().is_none() {
            self.first.set(Some(now));
        }
        self.last.set(Some(now));
        self.count.set(self.count.get() + 1);
    }
    fn ns_per_fire(&self) -> f64 {
        let (Some(a), Some(b)) = (self.first.get(), self.last.get()) else { return f64::NAN };
        (b - a).as_nanos() as f64 / (self.count.get().max(2) - 1) as f64
    }
}

fn fire_reactor(n: usize) -> f64 {
    let r = Reactor::new().unwrap();
    let seen = Rc::new(Seen::default());
    let now = Clock::Monotonic.now();
    let timers: Vec<_> = (0..n)
        .map(|_| {
            let s = seen.clone();
            r.add_timer(TimerMode::Shared, Expiration::OnceAt(now), move |_, _| s.hit()).unwrap()
        })
        .collect();
    while seen.count.get() < n {
        r.turn(Some(Duration::from_millis(100))).unwrap();
    }
    drop(timers);
    seen.ns_per_fire()
}

fn fire_calloop(n: usize) -> f64 {
    let mut ev: calloop::EventLoop<'_, ()> = calloop::EventLoop::try_new().unwrap();
    let h = ev.handle();
    let seen = Rc::new(Seen::default());
    let now = Instant::now();
    for _ in 0..n {
        let s = seen.clone();
        h.insert_source(CTimer::from_deadline(now), move |_, _, _| {
            s.hit();
            TimeoutAction::Drop
        })
        .unwrap();
    }
    while seen.count.get() < n {
        ev.dispatch(Some(Duration::from_millis(100)), &mut ()).unwrap();
    }
    seen.ns_per_fire()
}

fn fire_tokio(n: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let seen = Rc::new(Seen::default());
    let local = tokio::task::LocalSet::new();
    // Every task registers its Sleep before the deadline: allow 3 µs a task.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50 + n as u64 * 3 / 1000);
    for _ in 0..n {
        let s = seen.clone();
        local.spawn_local(async move {
            tokio::time::sleep_until(deadline).await;
            s.hit();
        });
    }
    rt.block_on(local);
    assert!(seen.first.get().unwrap() >= deadline.into_std(), "fired early");
    seen.ns_per_fire()
}

fn main() {
    let mut sizes = vec![1_000usize, 100_000, 1_000_000];
    let mut rounds = 15usize;
    let mut ops = 20_000usize;
    let mut calloop_max = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--sizes" => sizes = v.split(',').filter_map(|x| x.parse().ok()).collect(),
            "--rounds" => rounds = v.parse().unwrap_or(rounds).max(1),
            "--ops" => ops = v.parse().unwrap_or(ops).max(1),
            "--calloop-max" => calloop_max = v.parse().unwrap_or(calloop_max),
            _ => {
                eprintln!(
                    "usage: churn-race [--sizes 1000,100000,1000000] [--rounds 15] [--ops 20000] [--calloop-max 100000]"
                );
                std::process::exit(2);
            }
        }
    }
    println!(
        "Arm + cancel with N timers live, ns per pair: medians of {rounds} interleaved blocks of {ops}\n"
    );
    let mut memory = Vec::new();
    let mut fire = Vec::new();
    println!("| live timers | {} |", LOOPS.join(" | "));
    println!("|---:|{}", "---:|".repeat(LOOPS.len()));
    for &n in &sizes {
        // The reactor: N live shared timers, plus one to churn.
        let r = Reactor::new().unwrap();
        let mut live = Vec::with_capacity(n); // the caller's handles: not counted
        let before = live_bytes();
        live.extend((0..n).map(|i| {
            let exp = Expiration::Once(HOUR + Duration::from_nanos(i as u64));
            r.add_timer(TimerMode::Shared, exp, |_, _| {}).unwrap()
        }));
        let reactor_bytes = live_bytes() - before;
        let t = r.add_timer(TimerMode::Shared, Expiration::Once(HOUR), |_, _| {}).unwrap();

        // tokio: N registered Sleeps, plus one to churn.
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let guard = rt.enter();
        let before = live_bytes();
        let mut sleeps: Vec<Pin<Box<tokio::time::Sleep>>> = Vec::with_capacity(n);
        let vec_bytes = live_bytes() - before;
        sleeps.extend(
            (0..n).map(|i| Box::pin(tokio::time::sleep(HOUR + Duration::from_nanos(i as u64)))),
        );
        for s in &mut sleeps {
            poll_once(s.as_mut()); // registers it with the wheel
        }
        let tokio_bytes = live_bytes() - before - vec_bytes;
        let mut one = Box::pin(tokio::time::sleep(HOUR));
        poll_once(one.as_mut());

        // calloop: N inserted Timer sources (unless N > --calloop-max).
        let with_calloop = n <= calloop_max;
        let ev: calloop::EventLoop<'_, ()> = calloop::EventLoop::try_new().unwrap();
        let h = ev.handle();
        let mut tokens = Vec::with_capacity(n); // the caller's tokens: not counted
        let before = live_bytes();
        tokens.extend((0..if with_calloop { n } else { 0 }).map(|i| {
            let timer = CTimer::from_duration(HOUR + Duration::from_nanos(i as u64));
            h.insert_source(timer, |_, _, _| TimeoutAction::Drop).unwrap()
        }));
        let calloop_bytes = if with_calloop { live_bytes() - before } else { 0 };
        memory.push((n, reactor_bytes, tokio_bytes, calloop_bytes));

        let mut k = 0u64;
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); LOOPS.len()];
        for round in 0..rounds {
            for j in 0..LOOPS.len() {
                let which = (j + round) % LOOPS.len();
                if which == 4 && !with_calloop {
                    continue;
                }
                // calloop cancels by scanning its heap (O(N) a cancel): fewer
                // pairs per block at large N keep a block's time bounded.
                let ops = if which == 4 { (ops * 1000 / n.max(1)).clamp(10, ops) } else { ops };
                let start = Instant::now();
                for _ in 0..ops {
                    k += 1;
                    let jitter = Duration::from_nanos(k % 1_000_000);
                    match which {
                        0 => {
                            t.set(Expiration::Once(HOUR - jitter)).unwrap();
                            t.disarm().unwrap();
                        }
                        1 => drop(black_box(
                            r.add_timer(
                                TimerMode::Shared,
                                Expiration::Once(HOUR - jitter),
                                |_, _| {},
                            )
                            .unwrap(),
                        )),
                        2 => {
                            one.as_mut().reset(tokio::time::Instant::now() + HOUR - jitter);
                            poll_once(one.as_mut());
                        }
                        3 => {
                            let mut s = Box::pin(tokio::time::sleep(HOUR - jitter));
                            poll_once(s.as_mut());
                            drop(black_box(s));
                        }
                        _ => {
                            let timer = CTimer::from_duration(HOUR - jitter);
                            let tok =
                                h.insert_source(timer, |_, _, _| TimeoutAction::Drop).unwrap();
                            h.remove(tok);
                        }
                    }
                }
                times[which].push(start.elapsed().as_nanos() as f64 / ops as f64);
            }
        }
        let cells: Vec<String> = times
            .iter_mut()
            .map(|v| if v.is_empty() { "–".into() } else { format!("{:.0}", median(v)) })
            .collect();
        println!("| {n} | {} |", cells.join(" | "));
        // Dropping the loop frees its timers at once (removing them one by
        // one would scan calloop's heap for each: O(N^2)).
        drop((t, live, r, one, sleeps, tokens, h, ev));
        drop(guard);
        drop(rt);

        // Fire: N due timers through each loop, in rotating order.
        let fire_rounds = if n >= 1_000_000 { 1 } else { 3 };
        let mut f: [Vec<f64>; 3] = Default::default();
        for round in 0..fire_rounds {
            for j in 0..3 {
                let which = (j + round) % 3;
                if which == 2 && !with_calloop {
                    continue;
                }
                f[which].push(match which {
                    0 => fire_reactor(n),
                    1 => fire_tokio(n),
                    _ => fire_calloop(n),
                });
            }
        }
        fire.push((n, f.map(|mut v| median(&mut v))));
    }
    println!("\nFire: ns per expiry, N timers all due (median of 3 runs; 1 at 1,000,000)\n");
    println!("| timers | reactor shared | tokio (a task per timer) | calloop |");
    println!("|---:|---:|---:|---:|");
    for (n, [a, b, c]) in &fire {
        let c = if c.is_nan() { "–".to_string() } else { format!("{c:.0}") };
        println!("| {n} | {a:.0} | {b:.0} | {c} |");
    }
    println!("\nHeap bytes per live timer (spare capacity included)\n");
    println!("| live timers | reactor shared | tokio `Box<Sleep>` | calloop `Timer` |");
    println!("|---:|---:|---:|---:|");
    for (n, a, b, c) in memory {
        let per = |x: isize| x as f64 / n as f64;
        let c = if c == 0 { "–".to_string() } else { format!("{:.1}", per(c)) };
        println!("| {n} | {:.1} | {:.1} | {c} |", per(a), per(b));
    }
}
