//! Model-based test: random sequences of add (valid, far and refused),
//! drop, re-arm (valid and refused), disarm, leeway, detach, slot reuse, poisoning
//! (the timer's next callback panics, caught outside `turn`) and turn, over
//! both timer modes, with I/O sources, channels, deferred callbacks and idle
//! hooks alongside, checked after every step against a model of which
//! sources exist and what each may deliver.
//!
//! The model is the reactor's user data: every callback records what it
//! saw through `ctx.data()`, handed in by `turn_with`.
//!
//! Checked: no leak (the kernel's fd census, `Stats`, heap size, every
//! callback dropped in the end); no stale fire (after a handle was dropped
//! or a refusal), no early fire (before its deadline), no duplicate (more
//! ticks than periods elapsed), and no lost fire (every due timer fires by
//! the end); every byte written to an I/O source and every message sent on
//! a channel delivered once, in order, and nothing after its source is
//! gone (a send then returns its message); every deferred callback run once,
//! in the next turn; every idle hook once per turn while it lives. One test
//! function, so the fd counts it reads are its own.
//!
//! 10,000 cases by default; `PROPTEST_CASES=1000000` runs the long variant.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use common::{open_fds, pair};
use proptest::prelude::*;
use reactor::channel::{Event, SendError};
use reactor::{
    Channel, Clock, ClockTime, Expiration, Idle, Interest, Io, Reactor, Sender, Timer, TimerMode,
};
use timerfd_sys::MAX_TIME;

#[derive(Debug, Clone)]
enum Op {
    Add {
        shared: bool,
        periodic: bool,
        us: u64,
    },
    AddFar {
        shared: bool,
        which: usize,
    },
    AddRefused {
        shared: bool,
        which: usize,
    },
    Drop(usize),
    /// Drop timer `i` and add one at once: the freed slab slot is reused.
    Replace(usize, bool),
    Rearm(usize, u64),
    RearmRefused(usize, usize),
    Disarm(usize),
    /// Give timer `i` a leeway of this many µs (0 takes it away).
    Leeway(usize, u64),
    Detach(usize),
    Poison(usize),
    Turn(u64),
    AddIo,
    /// Write `n` bytes to I/O source `i`'s peer.
    Write(usize, u8),
    DropIo(usize),
    AddChannel,
    /// Send `n` messages on channel `i`.
    Send(usize, u8),
    DropChannel(usize),
    Defer,
    AddIdle,
    DropIdle(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), 0u64..1_000).prop_map(|(shared, periodic, us)| Op::Add { shared, periodic, us }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(shared, which)| Op::AddFar { shared, which }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(shared, which)| Op::AddRefused { shared, which }),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, shared)| Op::Replace(i, shared)),
        1 => (any::<usize>(), 0u64..1_000).prop_map(|(i, us)| Op::Rearm(i, us)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, which)| Op::RearmRefused(i, which)),
        1 => any::<usize>().prop_map(Op::Disarm),
        1 => (any::<usize>(), 0u64..2_000).prop_map(|(i, us)| Op::Leeway(i, us)),
        1 => any::<usize>().prop_map(Op::Detach),
        1 => any::<usize>().prop_map(Op::Poison),
        4 => (0u64..600).prop_map(Op::Turn),
        1 => Just(Op::AddIo),
        1 => (any::<usize>(), 1u8..8).prop_map(|(i, n)| Op::Write(i, n)),
        1 => any::<usize>().prop_map(Op::DropIo),
        1 => Just(Op::AddChannel),
        1 => (any::<usize>(), 1u8..8).prop_map(|(i, n)| Op::Send(i, n)),
        1 => any::<usize>().prop_map(Op::DropChannel),
        1 => Just(Op::Defer),
        1 => Just(Op::AddIdle),
        1 => any::<usize>().prop_map(Op::DropIdle),
    ]
}

const POISON: &str = "model: poisoned callback";

fn expiration(periodic: bool, us: u64) -> Expiration {
    let d = Duration::from_micros(us);
    if periodic {
        Expiration::Every { first: d, period: d.max(Duration::from_micros(200)) }
    } else {
        Expiration::Once(d)
    }
}

fn far(which: usize) -> Expiration {
    let at = ClockTime::new(MAX_TIME.as_secs() as i64, 0).unwrap();
    let all = [
        Expiration::Once(MAX_TIME),
        Expiration::Once(MAX_TIME - Duration::from_secs(1)),
        Expiration::Every { first: MAX_TIME, period: MAX_TIME },
        Expiration::OnceAt(at),
    ];
    all[which % all.len()]
}

fn refused(which: usize) -> Expiration {
    let all = [
        Expiration::Every { first: Duration::ZERO, period: Duration::ZERO },
        Expiration::Once(MAX_TIME + Duration::from_nanos(1)),
        Expiration::Once(Duration::MAX),
        Expiration::OnceAt(ClockTime::new(-1, 0).unwrap()),
    ];
    all[which % all.len()]
}

fn now_ns() -> u128 {
    let t = Clock::Monotonic.now();
    t.secs() as u128 * 1_000_000_000 + u128::from(t.nanos())
}

/// When a timer may fire, from the model's side of the `add` or `set` call.
#[derive(Debug, Clone, Copy)]
struct Arming {
    /// The clock just before the call: the kernel's deadline is no earlier
    /// than `before + first`.
    before: u128,
    first: u128,
    /// 0 for a one-shot; `None` for a timer that must never fire.
    period: Option<u128>,
    ticks: u64,
}

impl Arming {
    fn new(exp: Expiration, before: u128) -> Arming {
        let (first, period) = match exp {
            Expiration::Once(d) if d >= Duration::from_secs(3600) => (0, None),
            Expiration::Every { first, .. } | Expiration::Once(first)
                if first >= Duration::from_secs(3600) =>
            {
                (0, None)
            }
            Expiration::Once(d) => (d.as_nanos().max(1), Some(0)),
            Expiration::Every { first, period } => {
                (first.as_nanos().max(1), Some(period.as_nanos()))
            }
            _ => (0, None), // absolute: only the far one is used
        };
        Arming { before, first, period, ticks: 0 }
    }

    fn due(&self) -> Option<u128> {
        self.period.map(|_| self.before + self.first)
    }
}

#[derive(Default)]
struct Model {
    /// Timers that may fire, by id, and how.
    armed: HashMap<u64, Arming>,
    /// Timers that exist (a handle or detached), armed or not.
    alive: HashSet<u64>,
    poisoned: HashSet<u64>,
    /// The timer whose poisoned callback panicked in the last turn.
    panicked: Option<u64>,
    fired: HashSet<u64>,
    violations: Vec<String>,
    /// Sources of the other kinds that exist, by id.
    sources: HashSet<u64>,
    /// Bytes read by each I/O source's callback.
    read: HashMap<u64, usize>,
    /// Messages delivered on each channel, in order.
    delivered: HashMap<u64, Vec<u32>>,
    /// Deferred callbacks that ran.
    deferred_ran: u64,
    /// Runs of each idle hook.
    hook_runs: HashMap<u64, u64>,
}

impl Model {
    /// A callback of a non-timer source ran: it must still exist.
    fn delivered_to(&mut self, id: u64, what: &str) {
        if !self.sources.contains(&id) {
            self.violations.push(format!("{what} {id} delivered after it was dropped"));
        }
    }

    fn fire(&mut self, id: u64, ticks: u64) {
        let now = now_ns();
        if !self.alive.contains(&id) {
            self.violations.push(format!("timer {id} fired after it was dropped"));
        }
        let Some(a) = self.armed.get_mut(&id) else {
            self.violations.push(format!("timer {id} fired while disarmed"));
            return;
        };
        let Some(period) = a.period else {
            self.violations.push(format!("far timer {id} fired"));
            return;
        };
        let due = a.before + a.first;
        if now < due {
            self.violations.push(format!("timer {id} fired {} ns early", due - now));
        }
        a.ticks += ticks;
        // A one-shot (period 0) fires once; a periodic timer once per period.
        let most = now.saturating_sub(due).checked_div(period).map_or(1, |n| n as u64 + 1);
        if ticks == 0 || a.ticks > most {
            self.violations.push(format!("timer {id}: {} ticks, at most {most} elapsed", a.ticks));
        }
        self.fired.insert(id);
        if period == 0 {
            self.armed.remove(&id);
        }
        if self.poisoned.remove(&id) {
            self.panicked = Some(id);
            std::panic::panic_any(POISON);
        }
    }
}

struct Live {
    id: u64,
    shared: bool,
    timer: Timer,
}

struct LiveIo {
    id: u64,
    io: Io<'static>,
    peer: OwnedFd,
    written: usize,
}

struct LiveChannel {
    id: u64,
    channel: Channel<u32>,
    tx: Sender<u32>,
    sent: Vec<u32>,
}

struct Harness {
    r: Reactor<Model>,
    model: Model,
    live: Vec<Live>,
    detached: HashMap<u64, bool>,
    ios: Vec<LiveIo>,
    channels: Vec<LiveChannel>,
    hooks: Vec<(u64, Idle)>,
    /// Turns run while each hook lived, and how many of them came right
    /// after a turn that panicked (those may resume the cut batch and skip
    /// the hooks).
    hook_turns: HashMap<u64, (u64, u64)>,
    last_panicked: bool,
    deferred: u64,
    next_id: u64,
    /// Held by every callback ever made: when all are dropped, only this one is left.
    callbacks: Rc<()>,
}

impl Harness {
    fn add(&mut self, shared: bool, exp: Expiration) -> Result<(), reactor::Error> {
        let id = self.next_id;
        self.next_id += 1;
        let token = self.callbacks.clone();
        let mode = if shared { TimerMode::Shared } else { TimerMode::Dedicated };
        let before = now_ns();
        let timer = self.r.add_timer(mode, exp, move |ctx, ticks| {
            let _ = &token;
            ctx.data().fire(id, ticks);
        })?;
        let m = &mut self.model;
        m.alive.insert(id);
        m.armed.insert(id, Arming::new(exp, before));
        self.live.push(Live { id, shared, timer });
        Ok(())
    }

    fn add_io(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let (a, peer) = pair();
        let a = Rc::new(a);
        let (fd, token) = (a.clone(), self.callbacks.clone());
        let io = self
            .r
            .add_io(a, Interest::READABLE, move |ctx, _| {
                let _ = &token;
                let m = ctx.data();
                m.delivered_to(id, "I/O source");
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = rustix::io::read(&*fd, &mut buf) {
                    *m.read.entry(id).or_default() += n;
                }
            })
            .unwrap();
        self.model.sources.insert(id);
        self.ios.push(LiveIo { id, io, peer, written: 0 });
    }

    fn add_channel(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let token = self.callbacks.clone();
        let channel = self
            .r
            .channel(move |ctx, e: Event<u32>| {
                let _ = &token;
                let m = ctx.data();
                m.delivered_to(id, "channel");
                if let Event::Msg(n) = e {
                    m.delivered.entry(id).or_default().push(n);
                }
            })
            .unwrap();
        self.model.sources.insert(id);
        let tx = channel.sender();
        self.channels.push(LiveChannel { id, channel, tx, sent: Vec::new() });
    }

    fn add_idle(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let token = self.callbacks.clone();
        let hook = self
            .r
            .add_idle(move |ctx| {
                let _ = &token;
                let m = ctx.data();
                m.delivered_to(id, "idle hook");
                *m.hook_runs.entry(id).or_default() += 1;
            })
            .unwrap();
        self.model.sources.insert(id);
        self.hook_turns.insert(id, (0, 0));
        self.hooks.push((id, hook));
    }

    fn forget(&mut self, id: u64) {
        let m = &mut self.model;
        m.alive.remove(&id);
        m.armed.remove(&id);
        m.poisoned.remove(&id);
    }

    fn drop_live(&mut self, i: usize) {
        let l = self.live.swap_remove(i % self.live.len());
        self.forget(l.id);
        drop(l.timer);
    }

    fn turn(&mut self, timeout: Duration) {
        let (r, model) = (&self.r, &mut self.model);
        let result = catch_unwind(AssertUnwindSafe(|| r.turn_with(model, Some(timeout))));
        let panicked = result.is_err();
        for (turns, resumed) in self.hook_turns.values_mut() {
            *turns += 1;
            *resumed += u64::from(self.last_panicked);
        }
        self.last_panicked = panicked;
        if !panicked && self.model.deferred_ran != self.deferred {
            let (ran, queued) = (self.model.deferred_ran, self.deferred);
            self.model.violations.push(format!("{ran} of {queued} deferred callbacks ran"));
        }
        match result {
            Ok(r) => {
                r.unwrap();
            }
            Err(payload) => {
                assert_eq!(payload.downcast_ref::<&str>(), Some(&POISON), "an unexpected panic");
                let id = self.model.panicked.take().expect("the poisoned timer");
                // Policy: the source whose callback panicked is removed.
                if let Some(i) = self.live.iter().position(|l| l.id == id) {
                    let l = self.live.swap_remove(i);
                    assert!(!l.timer.is_live(), "timer {id} panicked but is still live");
                }
                self.detached.remove(&id);
                self.forget(id);
            }
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let base = open_fds();
    let mut h = Harness {
        r: Reactor::try_new().unwrap(),
        model: Model::default(),
        live: Vec::new(),
        detached: HashMap::new(),
        ios: Vec::new(),
        channels: Vec::new(),
        hooks: Vec::new(),
        hook_turns: HashMap::new(),
        last_panicked: false,
        deferred: 0,
        next_id: 0,
        callbacks: Rc::new(()),
    };
    let mut shared_fd = false;

    for op in ops {
        let before = (h.r.stats(), open_fds());
        match op {
            Op::Add { shared, periodic, us } => {
                h.add(shared, expiration(periodic, us)).unwrap();
                shared_fd |= shared;
            }
            Op::AddFar { shared, which } => {
                h.add(shared, far(which)).unwrap();
                shared_fd |= shared;
            }
            Op::AddRefused { shared, which } => {
                let exp = refused(which);
                prop_assert!(h.add(shared, exp).is_err(), "{:?} accepted", exp);
                prop_assert_eq!((h.r.stats(), open_fds()), before, "a refusal left a trace");
            }
            Op::Drop(i) if !h.live.is_empty() => h.drop_live(i),
            Op::Replace(i, shared) if !h.live.is_empty() => {
                h.drop_live(i);
                h.add(shared, Expiration::Once(Duration::from_micros(100))).unwrap();
                shared_fd |= shared;
            }
            Op::Rearm(i, us) if !h.live.is_empty() => {
                let n = h.live.len();
                let (id, exp) = (h.live[i % n].id, expiration(us % 2 == 0, us));
                let before = now_ns();
                h.live[i % n].timer.set(exp).unwrap();
                h.model.armed.insert(id, Arming::new(exp, before));
            }
            Op::RearmRefused(i, which) if !h.live.is_empty() => {
                let n = h.live.len();
                prop_assert!(h.live[i % n].timer.set(refused(which)).is_err());
                prop_assert_eq!((h.r.stats(), open_fds()), before, "a refused set left a trace");
            }
            Op::Disarm(i) if !h.live.is_empty() => {
                let n = h.live.len();
                h.live[i % n].timer.disarm().unwrap();
                h.model.armed.remove(&h.live[i % n].id);
            }
            Op::Leeway(i, us) if !h.live.is_empty() => {
                // Never early, so the model's arming stands: a leeway only
                // lets the timer come later (within the lost-fire bound).
                let n = h.live.len();
                h.live[i % n].timer.set_leeway(Duration::from_micros(us)).unwrap();
            }
            Op::Detach(i) if !h.live.is_empty() => {
                let l = h.live.swap_remove(i % h.live.len());
                h.detached.insert(l.id, l.shared);
                l.timer.detach(); // still alive in the model: it may keep firing
            }
            Op::Poison(i) if !h.live.is_empty() => {
                let id = h.live[i % h.live.len()].id;
                h.model.poisoned.insert(id);
            }
            Op::Turn(us) => h.turn(Duration::from_micros(us)),
            Op::AddIo => h.add_io(),
            Op::Write(i, n) if !h.ios.is_empty() => {
                let k = i % h.ios.len();
                let io = &mut h.ios[k];
                io.written += rustix::io::write(&io.peer, &vec![b'x'; n as usize]).unwrap();
            }
            Op::DropIo(i) if !h.ios.is_empty() => {
                let io = h.ios.swap_remove(i % h.ios.len());
                h.model.sources.remove(&io.id);
                drop(io.io);
                prop_assert!(!h.model.violations.iter().any(|v| v.contains("I/O")));
            }
            Op::AddChannel => h.add_channel(),
            Op::Send(i, n) if !h.channels.is_empty() => {
                let k = i % h.channels.len();
                let c = &mut h.channels[k];
                for _ in 0..n {
                    let msg = c.sent.len() as u32;
                    c.tx.send(msg).unwrap();
                    c.sent.push(msg);
                }
            }
            Op::DropChannel(i) if !h.channels.is_empty() => {
                let c = h.channels.swap_remove(i % h.channels.len());
                h.model.sources.remove(&c.id);
                drop(c.channel);
                prop_assert_eq!(c.tx.send(7), Err(SendError::Closed(7)), "a send after the drop");
            }
            Op::Defer => {
                h.r.defer(|ctx| ctx.data().deferred_ran += 1).unwrap();
                h.deferred += 1;
            }
            Op::AddIdle => h.add_idle(),
            Op::DropIdle(i) if !h.hooks.is_empty() => {
                let (id, hook) = h.hooks.swap_remove(i % h.hooks.len());
                h.model.sources.remove(&id);
                h.hook_turns.remove(&id);
                drop(hook);
            }
            _ => {}
        }
        check(&h, base, shared_fd)?;
    }

    // No lost fire: every armed timer that is due fires (bounded), and a
    // poisoned one panics and is removed on the way; every byte, message and
    // deferred callback arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pending: Vec<u64> = {
            let m = &h.model;
            let now = now_ns();
            let due = |(id, a): (&u64, &Arming)| a.due().is_some_and(|d| d <= now).then_some(*id);
            m.armed.iter().filter_map(due).filter(|id| !m.fired.contains(id)).collect()
        };
        let unread =
            h.ios.iter().any(|io| h.model.read.get(&io.id).copied().unwrap_or(0) < io.written);
        let undelivered = h
            .channels
            .iter()
            .any(|c| h.model.delivered.get(&c.id).map_or(0, Vec::len) < c.sent.len());
        if pending.is_empty() && !unread && !undelivered && h.model.deferred_ran == h.deferred {
            break;
        }
        prop_assert!(
            std::time::Instant::now() < deadline,
            "lost: timers {:?}, bytes {}, messages {}, deferred {}/{}",
            pending,
            unread,
            undelivered,
            h.model.deferred_ran,
            h.deferred
        );
        h.turn(Duration::from_millis(1));
        check(&h, base, shared_fd)?;
    }

    drop(h.live);
    drop(h.ios);
    drop(h.channels);
    drop(h.hooks);
    drop(h.r);
    prop_assert_eq!(open_fds(), base, "dropping the reactor closed everything");
    prop_assert_eq!(Rc::strong_count(&h.callbacks), 1, "every callback was dropped");
    Ok(())
}

/// The invariants that hold after every step.
fn check(h: &Harness, base: usize, shared_fd: bool) -> Result<(), TestCaseError> {
    let live_dedicated = h.live.iter().filter(|l| !l.shared).count();
    let live_shared = h.live.len() - live_dedicated;
    let detached_shared = h.detached.values().filter(|&&s| s).count();
    let detached_dedicated = h.detached.len() - detached_shared;
    let s = h.r.stats();
    prop_assert_eq!(s.io_sources, h.ios.len() + h.channels.len());
    prop_assert_eq!(s.dedicated_timers, live_dedicated + detached_dedicated);
    prop_assert_eq!(s.shared_timers, live_shared + detached_shared);
    prop_assert_eq!(s.detached_timers, h.detached.len());
    let timerfds = live_dedicated + detached_dedicated + usize::from(shared_fd);
    // epoll, the timerfds, the eventfd a panic mid-batch or a defer creates
    // to wake the next turn (counted in `wakers`), a socket pair per I/O
    // source and an eventfd per channel.
    let others = 2 * h.ios.len() + h.channels.len();
    prop_assert_eq!(
        open_fds(),
        base + 1 + timerfds + s.wakers + others,
        "kernel fd count vs model"
    );
    prop_assert_eq!(s.timerfds_open, timerfds);
    // Lazy deletion stays bounded (see the `shared` module rules).
    let bound = 2 * s.shared_timers + reactor::shared::COMPACT_MIN;
    prop_assert!(s.shared_heap_entries <= bound, "heap {} > {}", s.shared_heap_entries, bound);
    prop_assert!(h.live.iter().all(|l| l.timer.is_live()), "a live handle reports gone");
    let m = &h.model;
    prop_assert!(m.violations.is_empty(), "{:?}", m.violations);
    for io in &h.ios {
        prop_assert!(
            m.read.get(&io.id).copied().unwrap_or(0) <= io.written,
            "read unwritten bytes"
        );
    }
    for c in &h.channels {
        let got = m.delivered.get(&c.id).map_or(&[][..], Vec::as_slice);
        prop_assert!(c.sent.starts_with(got), "channel {}: {:?} of {:?}", c.id, got, c.sent);
    }
    // Deferred from outside a turn: each runs in the next turn, unless a
    // panic cut that turn short (then in a later one).
    prop_assert!(m.deferred_ran <= h.deferred);
    for (id, _) in &h.hooks {
        let (turns, resumed) = h.hook_turns[id];
        let runs = m.hook_runs.get(id).copied().unwrap_or(0);
        // Once per turn; a turn that resumed a batch cut short by a panic
        // runs no hooks.
        prop_assert!(
            runs <= turns && runs + resumed >= turns,
            "hook {id}: {runs} runs in {turns} turns"
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn reactor_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        // Poisoned callbacks panic on purpose; keep their reports off stderr.
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.payload().downcast_ref::<&str>() != Some(&POISON) {
                    default(info);
                }
            }));
        });
        run(ops)?;
    }
}
