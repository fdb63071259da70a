//! Counting allocations, for the "a warm path allocates nothing" promises.
//!
//! A test binary installs it with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;` and reads
//! [`allocations`] before and after the code under test. The count is
//! process-wide, so such a binary holds one test function (or serialises
//! its tests) to keep other threads out of the window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting every `alloc` call.
pub struct CountingAlloc;

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for CountingAlloc {
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

/// Allocations made so far through [`CountingAlloc`], process-wide.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}
