//! The reactor driven from a tokio runtime through `AsyncFd`. It lives in
//! `benches/` because tokio is a comparison peer, never a dependency of a
//! product crate. Run it with:
//!
//! ```text
//! cargo run --manifest-path benches/Cargo.toml --example tokio_nested
//! ```
//!
//! tokio registers fds edge-triggered, while the reactor's fd is
//! level-triggered and a turn may leave work for the next one. So the loop
//! clears tokio's readiness only when the fd is no longer readable;
//! otherwise it turns again at once.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use reactor::{Expiration, Reactor, TimerMode};
use rustix::event::{PollFd, PollFlags, poll};
use tokio::io::unix::AsyncFd;

/// Whether the reactor's fd is still readable (a zero-timeout poll).
fn still_readable(r: &Reactor) -> bool {
    let mut fds = [PollFd::new(r, PollFlags::IN)];
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    poll(&mut fds, Some(&zero)).is_ok_and(|n| n == 1)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let guest = Reactor::new()?;
        let fired = Rc::new([Cell::new(0u64), Cell::new(0u64)]);
        let mut timers = Vec::new();
        for (i, mode) in [TimerMode::Dedicated, TimerMode::Shared].into_iter().enumerate() {
            let f = fired.clone();
            let every = Expiration::every(Duration::from_millis(5));
            timers.push(guest.add_timer(mode, every, move |_, n| f[i].set(f[i].get() + n))?);
        }
        // A tokio timer alongside, to show both loops make progress.
        let tokio_ticks = Rc::new(Cell::new(0u32));
        let t = tokio_ticks.clone();
        let local = tokio::task::LocalSet::new();
        local.spawn_local(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            loop {
                interval.tick().await;
                t.set(t.get() + 1);
            }
        });
        // The reactor owns its epoll fd for its whole life, which the AsyncFd
        // now owns, and `as_raw_fd` always returns that same fd.
        // SAFETY: register's contract, as said above.
        let guest = unsafe { AsyncFd::register(guest) }.map_err(std::io::Error::from)?;
        let driven = local.run_until(async {
            while fired.iter().any(|f| f.get() < 20) {
                let mut ready = guest.readable().await?;
                guest.get_ref().turn(Some(Duration::ZERO))?;
                if !still_readable(guest.get_ref()) {
                    ready.clear_ready();
                }
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        });
        tokio::time::timeout(Duration::from_secs(5), driven)
            .await
            .map_err(|_| "a deadline was missed")??;
        println!(
            "tokio host: dedicated fired {}, shared fired {}, tokio's own interval ticked {}",
            fired[0].get(),
            fired[1].get(),
            tokio_ticks.get()
        );
        Ok(())
    })
}
