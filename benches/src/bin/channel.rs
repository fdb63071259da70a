//! Cross-thread messages into an event loop: throughput and send-to-callback
//! latency, in one run, side by side:
//!
//! * `reactor`: `Reactor::channel` (one eventfd write per batch);
//! * `mpsc+waker`: `std::sync::mpsc` plus a `reactor::Waker::wake` per send,
//!   the hand-rolled way;
//! * `calloop`: calloop's `channel` in its `EventLoop`.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin channel [-- MESSAGES]
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reactor::Reactor;
use reactor::channel::Event;

/// A throughput run: messages in, (elapsed, wake-ups) out.
type Throughput = fn(u64) -> (Duration, u64);

/// Receive `n` messages sent by one other thread as fast as it can; returns
/// the elapsed time and the loop's wake-ups.
fn throughput_reactor(n: u64) -> (Duration, u64) {
    let r = Reactor::new().unwrap();
    let got = Rc::new(Cell::new(0u64));
    let g = got.clone();
    let ch = r
        .channel(move |_, e: Event<u64>| {
            if let Event::Msg(_) = e {
                g.set(g.get() + 1)
            }
        })
        .unwrap();
    let tx = ch.sender();
    let start = Instant::now();
    let p = std::thread::spawn(move || (0..n).for_each(|i| tx.send(i).unwrap()));
    let w0 = r.stats().wakeups;
    r.run_until_timeout(Duration::MAX, || got.get() == n).unwrap();
    p.join().unwrap();
    (start.elapsed(), r.stats().wakeups - w0)
}

fn throughput_mpsc_waker(n: u64) -> (Duration, u64) {
    let r = Reactor::new().unwrap();
    let waker = r.waker().unwrap();
    let (tx, rx) = mpsc::channel::<u64>();
    let start = Instant::now();
    let p = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(i).unwrap();
            waker.wake().unwrap();
        }
    });
    let mut got = 0;
    let w0 = r.stats().wakeups;
    while got < n {
        r.turn(None).unwrap();
        got += rx.try_iter().count() as u64;
    }
    p.join().unwrap();
    (start.elapsed(), r.stats().wakeups - w0)
}

fn throughput_calloop(n: u64) -> (Duration, u64) {
    let mut el: calloop::EventLoop<'_, (u64, u64)> = calloop::EventLoop::try_new().unwrap();
    let (tx, ch) = calloop::channel::channel::<u64>();
    el.handle()
        .insert_source(ch, |e, _, data: &mut (u64, u64)| {
            if let calloop::channel::Event::Msg(_) = e {
                data.0 += 1
            }
        })
        .unwrap();
    let start = Instant::now();
    let p = std::thread::spawn(move || (0..n).for_each(|i| tx.send(i).unwrap()));
    let mut data = (0u64, 0u64);
    while data.0 < n {
        el.dispatch(None, &mut data).unwrap();
        data.1 += 1;
    }
    p.join().unwrap();
    (start.elapsed(), data.1)
}

/// Median and p99 of `rounds` one-at-a-time sends: the sender stamps the
/// message, the callback measures, and the sender waits for an ack before
/// the next one.
/// The producer thread of a latency run: `rounds` times, send the time
/// now, then wait for the loop's acknowledgement (the measured latency).
fn producer(
    rounds: usize,
    acks: mpsc::Receiver<Duration>,
    mut send: impl FnMut(Instant) + Send + 'static,
) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        (0..rounds)
            .map(|_| {
                send(Instant::now());
                acks.recv().unwrap()
            })
            .collect()
    })
}

fn latency(rounds: usize, kind: &str) -> (Duration, Duration) {
    let (ack_tx, ack_rx) = mpsc::channel::<Duration>();
    let mut samples = match kind {
        "reactor" => {
            let r = Reactor::new().unwrap();
            let ch = r
                .channel(move |_, e: Event<Instant>| {
                    if let Event::Msg(t) = e {
                        ack_tx.send(t.elapsed()).unwrap();
                    }
                })
                .unwrap();
            let tx = ch.sender();
            let p = producer(rounds, ack_rx, move |t| tx.send(t).unwrap());
            while !p.is_finished() {
                r.turn(Some(Duration::from_millis(10))).unwrap();
            }
            p.join().unwrap()
        }
        "mpsc+waker" => {
            let r = Reactor::new().unwrap();
            let waker = r.waker().unwrap();
            let (tx, rx) = mpsc::channel::<Instant>();
            let p = producer(rounds, ack_rx, move |t| {
                tx.send(t).unwrap();
                waker.wake().unwrap();
            });
            while !p.is_finished() {
                r.turn(Some(Duration::from_millis(10))).unwrap();
                for t in rx.try_iter() {
                    ack_tx.send(t.elapsed()).unwrap();
                }
            }
            p.join().unwrap()
        }
        _ => {
            let mut el: calloop::EventLoop<'_, ()> = calloop::EventLoop::try_new().unwrap();
            let (tx, ch) = calloop::channel::channel::<Instant>();
            el.handle()
                .insert_source(ch, move |e, _, _| {
                    if let calloop::channel::Event::Msg(t) = e {
                        ack_tx.send(t.elapsed()).unwrap();
                    }
                })
                .unwrap();
            let p = producer(rounds, ack_rx, move |t| tx.send(t).unwrap());
            while !p.is_finished() {
                el.dispatch(Some(Duration::from_millis(10)), &mut ()).unwrap();
            }
            p.join().unwrap()
        }
    };
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    println!("throughput: {n} messages from one thread, 3 alternating rounds, best of each");
    let kinds: [(&str, Throughput); 3] = [
        ("reactor", throughput_reactor),
        ("mpsc+waker", throughput_mpsc_waker),
        ("calloop", throughput_calloop),
    ];
    let mut best = [(Duration::MAX, 0u64); 3];
    for _ in 0..3 {
        for (i, (_, f)) in kinds.iter().enumerate() {
            let (t, w) = f(n);
            if t < best[i].0 {
                best[i] = (t, w);
            }
        }
    }
    println!("| loop | Mmsg/s | ns/msg | wake-ups |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in kinds.iter().enumerate() {
        let (t, w) = best[i];
        let per = t.as_nanos() as f64 / n as f64;
        println!("| {name} | {:.2} | {per:.0} | {w} |", 1e3 / per);
    }
    let rounds = 5_000;
    println!("\nlatency: send -> callback, {rounds} one-at-a-time messages");
    println!("| loop | p50 µs | p99 µs |");
    println!("|---|---|---|");
    for name in ["reactor", "mpsc+waker", "calloop"] {
        let (p50, p99) = latency(rounds, name);
        println!("| {name} | {:.1} | {:.1} |", p50.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6);
    }
}
