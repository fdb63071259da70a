//! Model-based test: random sequences of add, drop, re-arm, disarm, detach
//! and turn, over both timer modes, checked after every step against a
//! simple model of which timers exist. One test function, so the fd counts
//! it reads are this test's alone.

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use common::open_fds;
use proptest::prelude::*;
use reactor::{Expiration, Reactor, Timer, TimerMode};

#[derive(Debug, Clone)]
enum Op {
    Add { shared: bool, periodic: bool, us: u64 },
    Drop(usize),
    Rearm(usize, u64),
    Disarm(usize),
    Detach(usize),
    Turn(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), any::<bool>(), 0u64..2_000).prop_map(|(shared, periodic, us)| Op::Add { shared, periodic, us }),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), 0u64..2_000).prop_map(|(i, us)| Op::Rearm(i, us)),
        1 => any::<usize>().prop_map(Op::Disarm),
        1 => any::<usize>().prop_map(Op::Detach),
        3 => (0u64..2_000).prop_map(Op::Turn),
    ]
}

fn expiration(periodic: bool, us: u64) -> Expiration {
    let d = Duration::from_micros(us);
    if periodic {
        Expiration::Every { first: d, period: d.max(Duration::from_micros(200)) }
    } else {
        Expiration::Once(d)
    }
}

#[derive(Default)]
struct Model {
    /// Ids of timers that may fire: a live handle or detached.
    alive: HashSet<u64>,
    /// Every fire, and every fire of a timer not in `alive` at that moment.
    fires: Vec<u64>,
    violations: Vec<u64>,
}

struct Live {
    id: u64,
    shared: bool,
    timer: Timer,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let base = open_fds();
    let r = Reactor::new().unwrap();
    let model = Rc::new(RefCell::new(Model::default()));
    let mut live: Vec<Live> = Vec::new();
    let mut detached_dedicated = 0usize;
    let mut detached_shared = 0usize;
    let mut shared_fd = false;
    let mut next_id = 0u64;

    for op in ops {
        match op {
            Op::Add { shared, periodic, us } => {
                let id = next_id;
                next_id += 1;
                let m = model.clone();
                let mode = if shared { TimerMode::Shared } else { TimerMode::Dedicated };
                let timer = r
                    .add_timer(mode, expiration(periodic, us), move |_, ticks| {
                        let mut m = m.borrow_mut();
                        assert!(ticks >= 1);
                        if !m.alive.contains(&id) {
                            m.violations.push(id);
                        }
                        m.fires.push(id);
                    })
                    .unwrap();
                model.borrow_mut().alive.insert(id);
                shared_fd |= shared;
                live.push(Live { id, shared, timer });
            }
            Op::Drop(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                model.borrow_mut().alive.remove(&l.id);
                drop(l.timer);
            }
            Op::Rearm(i, us) if !live.is_empty() => {
                let n = live.len();
                live[i % n].timer.set(expiration(us % 2 == 0, us)).unwrap();
            }
            Op::Disarm(i) if !live.is_empty() => {
                let n = live.len();
                live[i % n].timer.disarm().unwrap();
            }
            Op::Detach(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                if l.shared {
                    detached_shared += 1
                } else {
                    detached_dedicated += 1
                }
                l.timer.detach(); // still alive in the model: it may keep firing
            }
            Op::Turn(us) => {
                r.turn(Some(Duration::from_micros(us))).unwrap();
            }
            _ => {}
        }
        let live_dedicated = live.iter().filter(|l| !l.shared).count();
        let live_shared = live.len() - live_dedicated;
        let s = r.stats();
        prop_assert_eq!(s.dedicated_timers, live_dedicated + detached_dedicated);
        prop_assert_eq!(s.shared_timers, live_shared + detached_shared);
        prop_assert_eq!(s.detached_timers, detached_dedicated + detached_shared);
        let expected_fds = base + 1 + live_dedicated + detached_dedicated + usize::from(shared_fd);
        prop_assert_eq!(open_fds(), expected_fds, "kernel fd count vs model");
        prop_assert_eq!(s.timerfds_open, expected_fds - base - 1);
        let m = model.borrow();
        prop_assert!(
            m.violations.is_empty(),
            "fired after its handle was dropped: {:?}",
            m.violations
        );
    }
    drop(live);
    drop(r);
    prop_assert_eq!(open_fds(), base, "dropping the reactor closed everything");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reactor_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
