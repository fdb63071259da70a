//! Deadlines: every connection that is not streaming has one timer that
//! will end it. A header deadline (408) while a request head is arriving,
//! an idle deadline between keep-alive requests, and a linger deadline once
//! it is closing with output still queued (a client that pipelines requests
//! and never reads). Streams end by their own rule: a reader that falls
//! `--max-buffered` bytes behind is cut off.

use reactor::{Expiration, Reactor, Timer};

use super::{HOUSEKEEPING, LINGER, Worker, with_worker};
use crate::conn::Deadline;
use crate::http::{self, Status};

impl Worker {
    /// A deadline for connection `key`: a shared timer, dropped (cancelled)
    /// the moment it is no longer needed.
    pub(super) fn deadline(
        &self,
        reactor: &Reactor,
        key: usize,
        generation: u64,
        kind: Deadline,
    ) -> Option<(Deadline, Timer)> {
        let after = match kind {
            Deadline::Header => self.cfg.header_timeout,
            Deadline::Idle => self.cfg.idle_timeout,
            Deadline::Linger => LINGER,
        };
        let me = self.me.clone();
        let timer = reactor.add_timer(HOUSEKEEPING, Expiration::Once(after), move |ctx, _| {
            with_worker(&me, |w| w.deadline_passed(ctx.reactor(), key, generation, kind))
        });
        timer.ok().map(|t| (kind, t))
    }

    fn deadline_passed(&mut self, reactor: &Reactor, key: usize, generation: u64, kind: Deadline) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else { return };
        conn.deadline = None;
        match kind {
            Deadline::Header => {
                let mut out = Vec::new();
                http::error_response(&mut out, Status::RequestTimeout, false, false);
                let _ = conn.send(&out, max);
                conn.closing = true;
                self.metrics.response(Status::RequestTimeout);
            }
            Deadline::Idle => conn.closing = true,
            Deadline::Linger => return self.close(key),
        }
        // Closes now, or (output still queued) arms the linger deadline.
        self.settle(reactor, key);
    }
}
