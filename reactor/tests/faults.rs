//! No failure is silent: each system call the reactor makes on its own
//! behalf is made to fail underneath it with `strace -e inject`, and the
//! loop must recover and report it (`Error::Retrying`), with every source
//! keeping its schedule.
//!
//! Each test re-runs itself under strace (`test_support::strace`): the
//! child does the work and prints `KEY=value` lines; the parent checks
//! that the intended call failed (the log's `(INJECTED)` lines) and what
//! the child saw. Without strace each test skips, saying so (CI installs
//! it). Every scenario runs on one thread, so `when=N` counts its calls.
//! `scripts/faults.sh` prints these outcomes as a table.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{SOON, open_fds, pair};
use reactor::channel::{Event, SendError};
use reactor::{Clock, Error, Expiration, Interest, Reactor, Signal, TimerMode};
use rustix::io::Errno;
use test_support::strace::{Injected, fail, fail_on, in_child, rerun};

const PERIOD: Duration = Duration::from_millis(10);

/// Run `name` under strace with `args`; `None` without strace.
fn injected(name: &str, args: &[String]) -> Option<Injected> {
    let run = rerun(name, args)?;
    assert!(run.success, "child failed:\n{}\n{}", run.stdout, run.stderr);
    println!("{}", run.injected().join("\n"));
    Some(run)
}

/// A result, as the child prints it: `ok:N`, `retrying:CALL:ERRNO` or `err:ERRNO`.
fn describe<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Ok(v) => format!("ok:{v:?}"),
        Err(Error::Retrying { call, errno }) => {
            format!("retrying:{}:{}", call.replace(' ', "_"), errno.raw_os_error())
        }
        Err(e) => format!("err:{}", e.errno().map_or(0, |e| e.raw_os_error())),
    }
}

/// Print what `turn` returned: counted by kind in the child's report.
fn tally(result: Result<usize, Error>, retrying: &Cell<u64>, call: &mut String) {
    match result {
        Ok(_) => {}
        Err(Error::Retrying { call: c, .. }) => {
            retrying.set(retrying.get() + 1);
            *call = c.to_string();
        }
        Err(e) => panic!("turn failed for good: {e}"),
    }
}

/// A periodic timer's promise under faults: the ticks it was given add up
/// to the deadlines that passed, no fewer (lost or stalled) and no more
/// (duplicated).
fn ticks_match_the_clock(start: u64, ticks: u64, last: u64) -> bool {
    let period = PERIOD.as_nanos() as u64;
    let passed = (last - start) / period; // deadlines at start + k * period, k >= 1
    ticks.abs_diff(passed) <= 1
}

fn now_ns() -> u64 {
    Clock::Monotonic.now().as_nanos().unwrap()
}

/// Item 3: one failed re-arm of a shared clock's timerfd used to stop
/// every shared timer on that clock for good, with `turn` returning `Ok`.
#[test]
fn a_failed_re_arm_strands_the_shared_clock_and_its_timers_keep_their_schedule() {
    const NAME: &str =
        "a_failed_re_arm_strands_the_shared_clock_and_its_timers_keep_their_schedule";
    if in_child() {
        let r = Reactor::new().unwrap();
        let (ticks, last) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let start = now_ns();
        let (t, l) = (ticks.clone(), last.clone());
        let _timer = r
            .add_timer(TimerMode::Shared, Expiration::every(PERIOD), move |_, n| {
                t.set(t.get() + n);
                l.set(now_ns());
            })
            .unwrap();
        let (retrying, mut call) = (Cell::new(0), String::new());
        let until = Instant::now() + SOON;
        while ticks.get() < 30 && Instant::now() < until {
            tally(r.turn(Some(SOON)), &retrying, &mut call);
        }
        println!("TICKS={} RETRYING={} CALL={call}", ticks.get(), retrying.get());
        println!("ON_SCHEDULE={}", ticks_match_the_clock(start, ticks.get(), last.get()));
        return;
    }
    // The add arms once; each pass re-arms: fail the second re-arm.
    let args = fail("timerfd_settime", "ENOMEM", "3");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert!(run.number("TICKS") >= 30, "the timer stopped: {}", run.stdout);
    assert!(run.number("RETRYING") >= 1, "the failure was not reported: {}", run.stdout);
    assert_eq!(run.value("CALL"), Some("timerfd_settime"));
    assert_eq!(run.value("ON_SCHEDULE"), Some("true"), "{}", run.stdout);
}

/// Item 3, nested: while a clock is stranded, the reactor's fd stays
/// readable, so a host loop comes back for the retry and the due timers.
#[test]
fn a_stranded_guest_keeps_its_host_loop_coming_back() {
    const NAME: &str = "a_stranded_guest_keeps_its_host_loop_coming_back";
    if in_child() {
        let guest = Rc::new(Reactor::new().unwrap());
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let every = Expiration::every(PERIOD);
        let _timer = guest.add_timer(TimerMode::Shared, every, move |_, n| t.set(t.get() + n));
        let host = Reactor::new().unwrap();
        let retrying = Rc::new(Cell::new(0));
        let (g, rt) = (guest.clone(), retrying.clone());
        let _nested = host
            .add_io_borrowed(guest.as_fd(), Interest::READABLE, move |_, _| {
                if let Err(Error::Retrying { .. }) = g.turn(Some(Duration::ZERO)) {
                    rt.set(rt.get() + 1);
                }
            })
            .unwrap();
        let until = Instant::now() + SOON;
        while ticks.get() < 30 && Instant::now() < until {
            host.turn(Some(SOON)).unwrap();
        }
        println!("TICKS={} RETRYING={}", ticks.get(), retrying.get());
        return;
    }
    let args = fail("timerfd_settime", "ENOMEM", "3");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert!(run.number("TICKS") >= 30, "the nested timer stopped: {}", run.stdout);
    assert!(run.number("RETRYING") >= 1, "{}", run.stdout);
}

/// A ready timerfd whose read fails: reported, and the tick is delivered by
/// the next turn (the fd stays readable), neither lost nor doubled.
#[test]
fn a_failed_read_of_a_ready_timer_is_reported_and_its_tick_comes_next_turn() {
    const NAME: &str = "a_failed_read_of_a_ready_timer_is_reported_and_its_tick_comes_next_turn";
    if in_child() {
        let r = Reactor::new().unwrap();
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let once = Expiration::Once(Duration::from_millis(1));
        let _timer = r.add_timer(TimerMode::Dedicated, once, move |_, n| t.set(t.get() + n));
        let (retrying, mut call) = (Cell::new(0), String::new());
        let until = Instant::now() + SOON;
        while ticks.get() == 0 && Instant::now() < until {
            tally(r.turn(Some(SOON)), &retrying, &mut call);
        }
        // The one-shot fired once: nothing more may come.
        tally(r.turn(Some(Duration::from_millis(20))), &retrying, &mut call);
        println!("TICKS={} RETRYING={} CALL={call}", ticks.get(), retrying.get());
        return;
    }
    let args = fail_on("anon_inode:[timerfd]", "read", "EIO", "1");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert_eq!(run.number("TICKS"), 1, "{}", run.stdout);
    assert_eq!(run.number("RETRYING"), 1, "{}", run.stdout);
    assert_eq!(run.value("CALL"), Some("read"));
}

/// Item 5: a failed `EPOLL_CTL_DEL` used to leave the registration under a
/// stale token, so a re-add of the same fd failed with `EEXIST` and the
/// level-triggered stale events spun the loop.
#[test]
fn a_failed_epoll_ctl_del_parks_the_fd_and_a_re_add_of_it_succeeds() {
    const NAME: &str = "a_failed_epoll_ctl_del_parks_the_fd_and_a_re_add_of_it_succeeds";
    if in_child() {
        let r = Reactor::new().unwrap();
        let (a, b) = pair();
        rustix::io::write(&b, b"x").unwrap(); // `a` stays readable: level-triggered
        let shared: Rc<OwnedFd> = Rc::new(a);
        let calls = Rc::new(Cell::new(0u32));
        let io = r.add_io(shared.clone(), Interest::READABLE, |_, _| {}).unwrap();
        drop(io); // its DEL fails underneath
        let c = calls.clone();
        let again = r.add_io(shared.clone(), Interest::READABLE, move |_, _| c.set(c.get() + 1));
        println!("RE_ADD={}", if again.is_ok() { "ok" } else { "refused" });
        let mut turns = 0;
        let mut retrying = 0;
        while calls.get() < 5 && turns < 50 {
            turns += 1;
            if let Err(Error::Retrying { .. }) = r.turn(Some(SOON)) {
                retrying += 1;
            }
        }
        let s = r.stats();
        println!(
            "CALLS={} TURNS={turns} STALE={} RETRYING={retrying}",
            calls.get(),
            s.stale_events
        );
        drop(again);
        drop(r);
        println!("RC={}", Rc::strong_count(&shared)); // the parked copy is gone too
        return;
    }
    // epoll_ctl #1 is the first add, #2 its DEL.
    let args = fail("epoll_ctl", "ENOMEM", "2");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert!(run.injected()[0].contains("EPOLL_CTL_DEL"), "{}", run.log);
    assert_eq!(run.value("RE_ADD"), Some("ok"), "{}", run.stdout);
    assert_eq!(run.number("CALLS"), 5, "the new registration got its events: {}", run.stdout);
    assert_eq!(run.number("TURNS"), 5, "one event per turn, no stale spin: {}", run.stdout);
    assert_eq!(run.number("RC"), 1, "{}", run.stdout);
    assert!(run.number("RETRYING") <= 1, "{}", run.stdout);
}

/// The DEL fails and nothing re-adds the fd: the next turn retries the DEL,
/// reports the failure, and the fd closes once it succeeds.
#[test]
fn a_parked_fd_is_closed_once_the_retried_del_succeeds() {
    const NAME: &str = "a_parked_fd_is_closed_once_the_retried_del_succeeds";
    if in_child() {
        let r = Reactor::new().unwrap();
        let base = open_fds();
        let (a, b) = pair();
        rustix::io::write(&b, b"x").unwrap();
        let io = r.add_io(a, Interest::READABLE, |_, _| {}).unwrap();
        drop(io);
        // `a` is still open (parked), with `b` and the waker's new eventfd.
        println!("PARKED={}", open_fds() - base);
        let first = r.turn(Some(Duration::ZERO));
        println!("FIRST={}", matches!(first, Err(Error::Retrying { .. })));
        r.turn(Some(Duration::ZERO)).unwrap();
        drop(b);
        println!("LEFT={}", open_fds() - base);
        return;
    }
    // #1 add, #2 its DEL (fails), #3 the waker's add, #4 the retried DEL.
    let args = fail("epoll_ctl", "ENOMEM", "2");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert_eq!(run.number("PARKED"), 3, "{}", run.stdout);
    assert_eq!(run.value("FIRST"), Some("true"), "the failed DEL is reported: {}", run.stdout);
    assert_eq!(run.number("LEFT"), 1, "the waker's eventfd only: {}", run.stdout);
}

/// Item 7: `EINTR` on a signalfd was retried by recursion; a long run of
/// them overflowed the stack. Now it is a loop.
#[test]
fn a_storm_of_eintr_on_a_signalfd_is_retried_in_a_loop() {
    const NAME: &str = "a_storm_of_eintr_on_a_signalfd_is_retried_in_a_loop";
    if in_child() {
        let r = Reactor::new().unwrap();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let _s = r.add_signals(&[Signal::USR1], move |_, _| g.set(g.get() + 1)).unwrap();
        // SAFETY: the source blocked SIGUSR1 in this thread: it stays pending.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        r.run_until_timeout(SOON, || got.get() > 0).unwrap();
        println!("GOT={}", got.get());
        return;
    }
    let args = fail_on("anon_inode:[signalfd]", "read", "EINTR", "1..30000");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 30000);
    assert_eq!(run.number("GOT"), 1, "{}", run.stdout);
}

/// Item 8: a send whose eventfd wake failed returned `Ok`, and the message
/// waited for some later wake-up. Now it comes back in the error.
#[test]
fn a_channel_send_whose_wake_fails_gives_the_message_back() {
    const NAME: &str = "a_channel_send_whose_wake_fails_gives_the_message_back";
    if in_child() {
        let r = Reactor::new().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let channel = r
            .channel(move |_, e| {
                if let Event::Msg(m) = e {
                    g.borrow_mut().push(m);
                }
            })
            .unwrap();
        let tx = channel.sender();
        let first = match tx.send(1u32) {
            Err(SendError::Failed(m, e)) => format!("failed:{m}:{}", e.errno() == Some(Errno::IO)),
            other => format!("{other:?}").replace(' ', "_"),
        };
        let second = tx.send(2u32).is_ok();
        r.run_until_timeout(SOON, || !got.borrow().is_empty()).unwrap();
        println!("FIRST={first} SECOND={second} GOT={:?}", got.borrow());
        return;
    }
    // Three attempts at the first wake fail; the second send's wake works.
    let args = fail_on("anon_inode:[eventfd]", "write", "EIO", "1..3");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 3, "{}", run.log);
    assert_eq!(run.value("FIRST"), Some("failed:1:true"), "{}", run.stdout);
    assert_eq!(run.value("SECOND"), Some("true"));
    assert_eq!(run.value("GOT"), Some("[2]"), "{}", run.stdout);
}

/// A waker never reports a wake that did not happen, and a defer whose
/// wake fails is refused rather than left waiting.
#[test]
fn a_failed_wake_is_an_error_never_a_silent_wait() {
    const NAME: &str = "a_failed_wake_is_an_error_never_a_silent_wait";
    if in_child() {
        let r = Reactor::new().unwrap();
        let waker = r.waker().unwrap();
        let woke = describe(waker.wake());
        let ran = Rc::new(Cell::new(false));
        let x = ran.clone();
        let deferred = describe(r.defer(move |_| x.set(true)));
        r.turn(Some(Duration::from_millis(20))).unwrap();
        println!("WAKE={woke} DEFER={deferred} RAN={}", ran.get());
        return;
    }
    let args = fail_on("anon_inode:[eventfd]", "write", "EIO", "1..2");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 2, "{}", run.log);
    assert_eq!(run.value("WAKE"), Some("err:5"), "EIO: {}", run.stdout);
    assert_eq!(run.value("DEFER"), Some("err:5"), "EIO: {}", run.stdout);
    assert_eq!(run.value("RAN"), Some("false"), "a refused defer never runs");
}

/// A failed drain of the reactor's eventfd: reported, retried next turn,
/// and then the loop sleeps again instead of spinning.
#[test]
fn a_failed_drain_of_the_waker_is_reported_and_retried() {
    const NAME: &str = "a_failed_drain_of_the_waker_is_reported_and_retried";
    if in_child() {
        let r = Reactor::new().unwrap();
        r.waker().unwrap().wake().unwrap();
        let first = describe(r.turn(Some(SOON)));
        let second = describe(r.turn(Some(SOON)));
        let third = describe(r.turn(Some(Duration::ZERO)));
        println!("FIRST={first} SECOND={second} THIRD={third}");
        return;
    }
    let args = fail_on("anon_inode:[eventfd]", "read", "EIO", "1");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.injected().len(), 1, "{}", run.log);
    assert_eq!(run.value("FIRST"), Some("retrying:read:5"), "{}", run.stdout);
    assert_eq!(run.value("SECOND"), Some("ok:1"), "still readable: drained now");
    assert_eq!(run.value("THIRD"), Some("ok:0"), "drained: nothing left");
}

/// Item 9: the first shared add on a clock creates its timerfd; if arming
/// it fails, the timerfd is closed again, and the trace says so.
#[test]
fn a_rolled_back_shared_timerfd_shows_its_close_in_the_trace() {
    const NAME: &str = "a_rolled_back_shared_timerfd_shows_its_close_in_the_trace";
    if in_child() {
        let r = Reactor::new().unwrap();
        let lines = Rc::new(RefCell::new(Vec::new()));
        let sink = lines.clone();
        r.set_observer(Some(Box::new(move |e| sink.borrow_mut().push(e.to_string()))));
        let base = open_fds();
        let refused = r.add_timer(TimerMode::Shared, Expiration::every(PERIOD), |_, _| {});
        println!("REFUSED={} LEFT={}", refused.is_err(), open_fds() - base);
        for l in lines.borrow().iter() {
            println!("TRACE={}", l.replace(' ', "_"));
        }
        return;
    }
    let args = fail("timerfd_settime", "ENOMEM", "1");
    let Some(run) = injected(NAME, &args) else { return };
    assert_eq!(run.value("REFUSED"), Some("true"));
    assert_eq!(run.number("LEFT"), 0, "no fd left behind: {}", run.stdout);
    let trace: Vec<&str> =
        run.stdout.lines().filter_map(|l| l.split_once("TRACE=")).map(|(_, t)| t).collect();
    let kinds: Vec<&str> = trace.iter().map(|t| t.split('(').next().unwrap_or("")).collect();
    assert_eq!(kinds, ["timerfd_create", "epoll_ctl", "epoll_ctl", "close"], "{trace:?}");
    assert!(trace[2].starts_with("epoll_ctl(EPOLL_CTL_DEL"), "{trace:?}");
}
