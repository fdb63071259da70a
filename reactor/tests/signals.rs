//! A signal delivered through the reactor's signalfd source. Its own test
//! binary, because it changes this thread's signal mask.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::SOON;
use reactor::{Reactor, Signal, SignalInfo};

#[test]
fn a_raised_signal_reaches_its_source_and_the_mask_is_restored_on_drop() {
    let r = Reactor::new().unwrap();
    let got: Rc<RefCell<Vec<SignalInfo>>> = Rc::default();
    let sink = got.clone();
    let signals = r
        .add_signals(&[Signal::USR1, Signal::USR2], move |ctx, info| {
            sink.borrow_mut().push(info);
            ctx.stop();
        })
        .unwrap();
    assert_eq!(r.stats().signal_sources, 1);
    // raise() targets this thread, which blocked the signal: it stays
    // pending until the signalfd reads it, and never runs a default action.
    // SAFETY: raising a signal this thread has blocked has no other effect.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    assert!(r.run_until_timeout(SOON, || !got.borrow().is_empty()).unwrap());
    let info = got.borrow()[0];
    assert_eq!(info.signal, Signal::USR2);
    assert_eq!(info.pid, std::process::id());

    drop(signals);
    assert_eq!(r.stats().signal_sources, 0);
    assert!(!blocked(libc::SIGUSR2), "dropping the source unblocked what it blocked");
}

/// Whether `signo` is blocked in this thread.
fn blocked(signo: i32) -> bool {
    // SAFETY: pthread_sigmask with a null new set only reads the current mask.
    unsafe {
        let mut old = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        libc::sigismember(&old, signo) == 1
    }
}

fn raise(signo: i32) {
    assert!(blocked(signo), "raising an unblocked signal would run its default action");
    // SAFETY: the signal is blocked in this thread (checked above): it stays pending.
    assert_eq!(unsafe { libc::raise(signo) }, 0);
}

/// Each test runs on its own thread, and masks are per thread, so tests
/// here do not disturb each other; these helpers count deliveries.
fn source(r: &Reactor, signal: Signal, got: &Rc<Cell<u32>>) -> reactor::Signals {
    let got = got.clone();
    r.add_signals(&[signal], move |_, _| got.set(got.get() + 1)).unwrap()
}

#[test]
fn two_sources_share_a_signal_by_count_and_each_delivery_reaches_exactly_one() {
    let r = Reactor::new().unwrap();
    let (a_got, b_got) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let a = source(&r, Signal::USR1, &a_got);
    let b = source(&r, Signal::USR1, &b_got);
    raise(libc::SIGUSR1);
    let total = || a_got.get() + b_got.get();
    assert!(r.run_until_timeout(SOON, || total() == 1).unwrap());
    r.turn(Some(std::time::Duration::from_millis(10))).unwrap();
    assert_eq!(total(), 1, "one delivery, one receiver");

    drop(a);
    assert!(blocked(libc::SIGUSR1), "the other source still wants it");
    raise(libc::SIGUSR1); // before the fix this ran the default action: the process died
    assert!(r.run_until_timeout(SOON, || b_got.get() + a_got.get() == 2).unwrap());
    drop(b);
    assert!(!blocked(libc::SIGUSR1), "the last source gave the mask back");
}

#[test]
fn a_signal_blocked_before_any_source_stays_blocked() {
    // SAFETY: an all-zero sigset_t is a valid (empty) set.
    let mut set = unsafe { std::mem::zeroed::<libc::sigset_t>() };
    // SAFETY: `set` is a valid sigset; blocking SIGWINCH in this test thread only.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let r = Reactor::new().unwrap();
    let got = Rc::new(Cell::new(0));
    drop(source(&r, Signal::WINCH, &got));
    assert!(blocked(libc::SIGWINCH), "the source did not block it, so it must not unblock it");
}

#[test]
fn a_panicking_signal_callback_removes_its_source_and_gives_back_its_claim() {
    let r = Reactor::new().unwrap();
    let s = r.add_signals(&[Signal::HUP], |_, _| panic!("signal callback")).unwrap();
    let waker = r.waker().unwrap(); // another source that must keep working
    raise(libc::SIGHUP);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.run_until_timeout(SOON, || false).unwrap();
    }));
    assert!(caught.is_err(), "the panic unwound out of the loop");
    assert!(!s.is_live());
    assert_eq!(r.stats().signal_sources, 0);
    assert!(!blocked(libc::SIGHUP), "the removed source's claim was released");
    waker.wake().unwrap();
    assert_eq!(r.turn(Some(SOON)).unwrap(), 1, "the reactor still works");
}
