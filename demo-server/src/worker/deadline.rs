//! Deadlines: every connection has one timer that will end it. A header
//! deadline (408) while a request head is arriving, an idle deadline
//! between keep-alive requests.

use reactor::{Context, Expiration, Timer};

use super::{HOUSEKEEPING, Worker, with_worker};
use crate::conn::Deadline;
use crate::http::{self, Status};

impl Worker {
    /// A header or idle deadline for connection `key`: a shared timer,
    /// dropped (cancelled) the moment it is no longer needed.
    pub(super) fn deadline(
        &self,
        ctx: &mut Context<'_>,
        key: usize,
        generation: u64,
        kind: Deadline,
    ) -> Option<(Deadline, Timer)> {
        let after = match kind {
            Deadline::Header => self.cfg.header_timeout,
            Deadline::Idle => self.cfg.idle_timeout,
        };
        let me = self.me.clone();
        let timer = ctx.reactor().add_timer(HOUSEKEEPING, Expiration::Once(after), move |_, _| {
            with_worker(&me, |w| w.deadline_passed(key, generation, kind))
        });
        timer.ok().map(|t| (kind, t))
    }

    fn deadline_passed(&mut self, key: usize, generation: u64, kind: Deadline) {
        let max = self.cfg.max_buffered;
        let Some(conn) = self.conn(key, generation) else { return };
        conn.deadline = None;
        if kind == Deadline::Header {
            let mut out = Vec::new();
            http::error_response(&mut out, Status::RequestTimeout, false, false);
            let _ = conn.send(&out, max);
            conn.closing = true;
            self.metrics.response(Status::RequestTimeout);
        } else {
            conn.closing = true;
        }
        self.settle(key);
    }
}
