//! Three timers and the kernel path each one takes, with the lifecycle trace
//! on. Run it with:
//!
//! ```text
//! cargo run -p timerfd-reactor --example ticker
//! ```
//!
//! * `early` ticks every 20 ms and is dropped after its third tick: its
//!   fd is deregistered and closed, and it never fires again.
//! * `leaky` is detached: nobody can stop it, so it fires until the reactor
//!   is dropped. This is the "ticker never stopped" leak, on purpose.
//! * `backoff` is a one-shot that re-arms itself from its own callback with a
//!   doubling delay, five times.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use reactor::{Expiration, Reactor, TimerMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    // The same trace as REACTOR_TRACE=1, sent through an observer so this
    // example shows it without the variable.
    reactor.set_observer(Some(Box::new(|e| println!("    kernel: {e}"))));

    println!("-- early: every 20 ms, dropped after 3 ticks");
    let early_slot: Rc<RefCell<Option<reactor::Timer>>> = Rc::default();
    let slot = early_slot.clone();
    let early_ticks = Rc::new(Cell::new(0u64));
    let seen = early_ticks.clone();
    let early = reactor.add_timer(
        TimerMode::Dedicated,
        Expiration::every(Duration::from_millis(20)),
        move |_, ticks| {
            seen.set(seen.get() + ticks);
            println!("early: tick (total {})", seen.get());
            if seen.get() >= 3 {
                println!("early: disarming, then dropping my own handle");
                let handle = slot.borrow_mut().take().expect("still here");
                handle.disarm().expect("alive");
                drop(handle); // from inside its own callback
            }
        },
    )?;
    *early_slot.borrow_mut() = Some(early);

    println!("-- leaky: every 50 ms, detached");
    let leaky_ticks = Rc::new(Cell::new(0u64));
    let seen = leaky_ticks.clone();
    reactor
        .add_timer(
            TimerMode::Dedicated,
            Expiration::every(Duration::from_millis(50)),
            move |_, ticks| {
                seen.set(seen.get() + ticks);
                println!("leaky: tick (total {}); no handle exists to stop me", seen.get());
            },
        )?
        .detach();

    println!("-- backoff: one-shot re-armed from its own callback, 5 ms doubling");
    let delay = Rc::new(Cell::new(Duration::from_millis(5)));
    let rounds = Rc::new(Cell::new(0));
    let (d, r) = (delay.clone(), rounds.clone());
    let _backoff =
        reactor.add_timer(TimerMode::Dedicated, Expiration::Once(delay.get()), move |ctx, _| {
            r.set(r.get() + 1);
            if r.get() < 5 {
                d.set(d.get() * 2);
                println!("backoff: round {}, next in {:?}", r.get(), d.get());
                ctx.rearm(Expiration::Once(d.get())).expect("valid expiration");
            } else {
                println!("backoff: round {}, done (a fired one-shot stays disarmed)", r.get());
            }
        })?;

    println!("-- running for up to 2 s until backoff is done and leaky has ticked 4 times");
    reactor.run_until_timeout(Duration::from_secs(2), || {
        rounds.get() >= 5 && leaky_ticks.get() >= 4
    })?;

    let stats = reactor.stats();
    println!(
        "-- stats: {} timerfds open, {} dedicated timers ({} detached), {} expirations, {} wake-ups",
        stats.timerfds_open,
        stats.dedicated_timers,
        stats.detached_timers,
        stats.timer_expirations,
        stats.wakeups
    );
    println!("-- dropping the reactor closes what is left, the detached timer included");
    drop(reactor);
    println!(
        "early ticked {}, leaky {}, backoff ran {} rounds",
        early_ticks.get(),
        leaky_ticks.get(),
        rounds.get()
    );
    Ok(())
}
