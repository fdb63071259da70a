//! `TFD_TIMER_CANCEL_ON_SET` against a real clock change.
//!
//! Ignored by default because it sets the system's realtime clock (to the
//! value it already has, so the wall time is unchanged). It needs
//! `CAP_SYS_TIME`. Run it with:
//!
//! ```text
//! sudo -E cargo test -p timerfd-sys --test cancel_on_set -- --ignored
//! ```

use std::time::Duration;

use rustix::time::{ClockId, clock_settime};
use timerfd_sys::{Clock, Error, Expiration, TimerFd};

#[test]
#[ignore = "sets CLOCK_REALTIME; needs CAP_SYS_TIME (see the file's docs)"]
fn setting_the_realtime_clock_cancels_the_timer() {
    let t = TimerFd::new(Clock::Realtime).unwrap();
    let deadline = Clock::Realtime.now().saturating_add(Duration::from_secs(3600));
    t.set_cancel_on_set(Expiration::OnceAt(deadline)).unwrap();
    assert_eq!(t.read(), Ok(0), "nothing has happened yet");

    let now = Clock::Realtime.now();
    let ts = rustix::time::Timespec { tv_sec: now.secs(), tv_nsec: now.nanos().into() };
    clock_settime(ClockId::Realtime, ts).expect("clock_settime needs CAP_SYS_TIME");

    assert_eq!(t.read(), Err(Error::Canceled));
    // Re-arming clears the condition.
    t.set_cancel_on_set(Expiration::OnceAt(deadline)).unwrap();
    assert_eq!(t.read(), Ok(0));
}
