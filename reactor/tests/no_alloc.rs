//! The cost promise: once warm, a turn allocates nothing, whether it
//! dispatches dedicated timers, shared timers or I/O. Counted with a global
//! allocator; one test function so no other test thread allocates meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reactor::{Expiration, Reactor, TimerMode};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    // Warm up: let buffers reach their steady size.
    r.run_until_timeout(common::SOON, || fired.get() >= 2_000).unwrap();

    let before_fired = fired.get();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..200 {
        waker.wake().unwrap();
        r.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(fired.get() > before_fired, "timers fired during the measured turns");
    assert_eq!(allocations, 0, "{allocations} allocations in 200 warm turns");
}
