//! The heap alone: lazy deletion, compaction, passes, and coalescing.

use super::*;

fn add(h: &mut Heap<()>, deadline: u64, period_ns: u64) -> u32 {
    h.insert(Schedule { deadline, period_ns }, 0, ()).0
}

#[test]
fn entry_sizes_stay_within_the_64_byte_budget() {
    assert_eq!(size_of::<Entry>(), 16);
    assert!(size_of::<Timer<Box<dyn FnMut()>>>() <= 48, "{}", size_of::<Timer<Box<dyn FnMut()>>>());
    // The slab's entry is this enum; its tag fits in the generation's niche.
    #[allow(dead_code)]
    enum SlabEntry<T> {
        Vacant(usize),
        Occupied(T),
    }
    assert_eq!(
        size_of::<SlabEntry<Timer<Box<dyn FnMut()>>>>(),
        size_of::<Timer<Box<dyn FnMut()>>>(),
        "the slab's tag lives in the generation's niche"
    );
}

#[test]
fn periodic_fire_folds_missed_ticks_on_the_original_grid() {
    let mut h = Heap::default();
    let key = add(&mut h, 1_100, 100);
    assert_eq!(h.collect_due(1_450), 1);
    let fired = h.fire(0, 1_450).unwrap();
    assert_eq!((fired.key, fired.ticks), (key, 4)); // 1100, 1200, 1300, 1400
    assert_eq!(h.wake_at(), Some(1_500));
}

#[test]
fn cancel_is_lazy_and_compaction_bounds_dead_entries() {
    let mut h = Heap::default();
    let keep = add(&mut h, 1_000_000_000, 0);
    for _ in 0..10 * COMPACT_MIN {
        let k = add(&mut h, 2_000_000_000, 0);
        h.remove(k);
    }
    assert!(h.heap_len() <= 2 * COMPACT_MIN + 2, "heap grew to {}", h.heap_len());
    assert_eq!(h.wake_at(), Some(1_000_000_000));
    assert!(h.cancel(keep));
    assert_eq!(h.wake_at(), None);
    assert_eq!(h.heap_len(), h.dead(), "only dead entries remain, all counted");
}

#[test]
fn a_timer_re_armed_during_a_pass_waits_for_the_next_pass() {
    let mut h = Heap::default();
    let a = add(&mut h, 10, 0);
    assert_eq!(h.collect_due(20), 1);
    assert!(h.fire(0, 20).is_some());
    h.set(a, Schedule { deadline: 1, period_ns: 0 }); // into the past
    assert_eq!(h.wake_at(), Some(1), "pushed for the next pass, not fired in this one");
}

#[test]
fn a_pass_cut_short_requeues_what_it_did_not_fire() {
    let mut h = Heap::default();
    let a = add(&mut h, 1, 0);
    let b = add(&mut h, 2, 0);
    assert_eq!(h.collect_due(10), 2);
    assert_eq!(h.fire(0, 10).unwrap().key, a);
    h.requeue_due(1); // the callback of `a` panicked: `b` must not be lost
    assert_eq!(h.wake_at(), Some(2));
    assert_eq!(h.collect_due(10), 1);
    assert_eq!(h.fire(0, 10).map(|f| f.key), Some(b));
}

#[test]
fn a_stale_entry_with_a_reused_seq_is_still_dead() {
    let mut h = Heap::default();
    let a = add(&mut h, 100, 0);
    h.next_seq = 0; // as if 2^32 arms later the counter came round
    h.set(a, Schedule { deadline: 500, period_ns: 0 });
    assert_eq!(h.wake_at(), Some(500), "the entry at 100 has the same seq but is dead");
}

/// A wake-up due for one timer serves every timer whose window has
/// opened: the clock wakes when the first window closes, and the pass
/// fires everything already due, never what is not.
#[test]
fn lazy_timers_wake_at_the_first_window_end_and_share_the_pass() {
    let mut h: Heap<()> = Heap::default();
    let lazy: Vec<u32> = (0..5)
        .map(|i| {
            let k = add(&mut h, 1_000 + i * 100, 0);
            h.set_leeway(k, 1_000);
            k
        })
        .collect();
    assert_eq!(h.wake_at(), Some(2_000), "the first window, [1000, 2000), closes at 2000");
    assert_eq!(h.collect_due(2_000), 5, "all five windows are open at 2000");
    let fired: Vec<u32> = (0..5).filter_map(|i| h.fire(i, 2_000)).map(|f| f.key).collect();
    assert_eq!(fired, lazy, "in deadline order");
    assert_eq!(h.dead(), 5, "their latest entries, dead once they fired");
    assert_eq!(h.wake_at(), None);
    assert_eq!(h.heap_len(), 0, "dropped from the top on the way");

    // A precise timer inside the window wakes the clock first, and its
    // pass takes the lazy timers already due along, not the others.
    let a = add(&mut h, 10_000, 0);
    h.set_leeway(a, 5_000);
    let b = add(&mut h, 10_500, 0);
    h.set_leeway(b, 5_000);
    let precise = add(&mut h, 12_000, 0);
    let later = add(&mut h, 13_000, 0);
    h.set_leeway(later, 5_000);
    assert_eq!(h.wake_at(), Some(12_000));
    assert_eq!(h.collect_due(12_000), 3);
    let keys: Vec<u32> = (0..3).filter_map(|i| h.fire(i, 12_000)).map(|f| f.key).collect();
    assert_eq!(keys, [a, b, precise]);
    assert_eq!(h.wake_at(), Some(18_000), "`later` may wait to the end of its window");
}

/// A periodic lazy timer fires once per period, within its window, and
/// moves on along its own schedule (missed ticks folded as ever).
#[test]
fn a_periodic_lazy_timer_keeps_its_schedule_and_its_counts() {
    let mut h: Heap<()> = Heap::default();
    let k = add(&mut h, 1_000, 1_000);
    h.set_leeway(k, 300);
    assert_eq!(h.wake_at(), Some(1_300));
    assert_eq!(h.collect_due(1_300), 1);
    assert_eq!(h.fire(0, 1_300).map(|f| f.ticks), Some(1));
    assert_eq!(h.wake_at(), Some(2_300));
    assert_eq!(h.collect_due(4_100), 1, "three deadlines passed");
    assert_eq!(h.fire(0, 4_100).map(|f| f.ticks), Some(3));
    assert_eq!(h.schedule(k).map(|s| s.deadline), Some(5_000));
    // A leeway longer than half the period waits half a period at most:
    // the window never reaches the next tick.
    h.set_leeway(k, 5_000);
    assert_eq!(h.wake_at(), Some(5_500));
    // Back to no leeway: one entry, at the deadline.
    h.set_leeway(k, 0);
    assert_eq!(h.wake_at(), Some(5_000));
    let live = h.heap_len() - h.dead();
    assert_eq!(live, 1, "one live entry for a timer with no leeway");
    h.cancel(k);
    assert_eq!((h.wake_at(), h.heap_len() - h.dead()), (None, 0));
}
