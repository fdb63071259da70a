//! A signal delivered through the reactor's signalfd source. Its own test
//! binary, because it changes this thread's signal mask.

mod common;

use std::cell::RefCell;
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
    // SAFETY: sigprocmask with a null new set only reads the current mask.
    let blocked = unsafe {
        let mut old = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        libc::sigismember(&old, libc::SIGUSR2)
    };
    assert_eq!(blocked, 0, "dropping the source unblocked what it blocked");
}
