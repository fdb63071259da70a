//! The reactor inside other event loops: first a plain `poll(2)` loop, then
//! another reactor's I/O callback. Run it with:
//!
//! ```text
//! cargo run -p timerfd-reactor --example nested
//! ```
//!
//! The host never calls `turn(None)`: it waits on the reactor's fd and calls
//! `turn(Some(Duration::ZERO))` when that fd is readable, which it is
//! whenever a turn has something to dispatch (a due timer of either mode, a
//! channel message, deferred work).

use std::cell::Cell;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::channel::Event;
use reactor::{Expiration, Interest, Reactor, TimerMode};
use rustix::event::{PollFd, PollFlags, poll};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A poll(2) host loop, which also watches its own fds in real code.
    let guest = Reactor::new()?;
    let ticks = Rc::new(Cell::new(0u64));
    let t = ticks.clone();
    let _shared = guest.add_timer(
        TimerMode::Shared,
        Expiration::every(Duration::from_millis(10)),
        move |_, n| {
            t.set(t.get() + n);
        },
    )?;
    let messages = Rc::new(Cell::new(0u32));
    let m = messages.clone();
    let channel = guest.channel(move |_, e: Event<u32>| {
        if let Event::Msg(n) = e {
            m.set(m.get() + n);
        }
    })?;
    let tx = channel.sender();
    let producer = std::thread::spawn(move || {
        for _ in 0..100 {
            let _ = tx.send(1);
        }
    });
    let start = Instant::now();
    let mut host_wakeups = 0;
    while ticks.get() < 5 || messages.get() < 100 {
        let mut fds = [PollFd::new(&guest, PollFlags::IN)];
        let second = rustix::time::Timespec { tv_sec: 1, tv_nsec: 0 };
        if poll(&mut fds, Some(&second))? == 0 {
            return Err("the host waited a whole second: a deadline was missed".into());
        }
        host_wakeups += 1;
        guest.turn(Some(Duration::ZERO))?;
    }
    let _ = producer.join();
    println!(
        "poll(2) host: {} ticks and {} messages in {:?}, {host_wakeups} host wake-ups",
        ticks.get(),
        messages.get(),
        start.elapsed()
    );

    // 2. Another reactor as the host: the guest's fd is one of its I/O sources.
    let host = Reactor::new()?;
    let guest = Rc::new(Reactor::new()?);
    let fired = Rc::new(Cell::new(0u64));
    let f = fired.clone();
    let _dedicated = guest.add_timer(
        TimerMode::Dedicated,
        Expiration::every(Duration::from_millis(10)),
        move |_, n| {
            f.set(f.get() + n);
        },
    )?;
    let inner = guest.clone();
    let _nested = host.add_io_borrowed(guest.as_fd(), Interest::READABLE, move |_, _| {
        let _ = inner.turn(Some(Duration::ZERO));
    })?;
    if !host.run_until_timeout(Duration::from_secs(2), || fired.get() >= 5)? {
        return Err("the nested reactor's timer did not fire through the host".into());
    }
    println!("reactor host: the nested reactor's timer fired {} times", fired.get());
    Ok(())
}
