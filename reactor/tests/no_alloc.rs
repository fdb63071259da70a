//! The cost promise: once warm, a turn allocates nothing, whether it
//! dispatches dedicated timers, shared timers, I/O, channel messages, idle
//! hooks or deferred callbacks (whose closures capture nothing). Counted with a global
//! allocator; one test function so no other test thread allocates meanwhile.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use reactor::{Expiration, Reactor, TimerMode};
use test_support::{CountingAlloc, allocations};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn a_warm_turn_allocates_nothing() {
    let r = Reactor::new().unwrap();
    let fired = Rc::new(Cell::new(0u64));
    let mut timers = Vec::new();
    for mode in [TimerMode::Dedicated, TimerMode::Shared] {
        for _ in 0..32 {
            let f = fired.clone();
            let every = Expiration::every(Duration::from_micros(500));
            timers.push(r.add_timer(mode, every, move |_, n| f.set(f.get() + n)).unwrap());
        }
    }
    let waker = r.waker().unwrap();
    let hooks = Rc::new(Cell::new(0u64));
    let h = hooks.clone();
    let _idle = r.add_idle(move |_| h.set(h.get() + 1)).unwrap();
    let received = Rc::new(Cell::new(0u64));
    let got = received.clone();
    let rx = r
        .channel(move |_, e| {
            if let reactor::channel::Event::Msg(n) = e {
                got.set(got.get() + n)
            }
        })
        .unwrap();
    let tx = rx.sender();
    // Warm up: let buffers reach their steady size.
    for _ in 0..50 {
        tx.send(1u64).unwrap();
        r.defer(|_| {}).unwrap();
        r.turn(Some(Duration::from_millis(1))).unwrap();
    }
    r.run_until_timeout(common::SOON, || fired.get() >= 2_000).unwrap();

    let before_fired = fired.get();
    let before = allocations();
    let (before_hooks, before_received) = (hooks.get(), received.get());
    for _ in 0..200 {
        waker.wake().unwrap();
        tx.send(1u64).unwrap(); // a message
        r.defer(|_| {}).unwrap(); // a deferred closure that captures nothing
        r.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let allocations = allocations() - before;
    assert!(fired.get() > before_fired, "timers fired during the measured turns");
    assert_eq!(hooks.get() - before_hooks, 200, "the idle hook ran every turn");
    assert!(received.get() - before_received >= 199, "messages were delivered");
    assert_eq!(allocations, 0, "{allocations} allocations in 200 warm turns");
}
