//! Taking connections in, and refusing them at the limits: the listener's
//! registration, `accept`, `--max-conns`, and EMFILE without a busy loop:
//! the spare-fd trick refuses the whole backlog (up to
//! [`REFUSALS_PER_EVENT`]) in one go, then accepting pauses briefly.
//! How a refusal is answered is `refuse.rs`.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use reactor::{Context, Expiration, Interest, Reactor};
use rustix::io::Errno;
use rustix::net::{SocketFlags, accept_with, sockopt};

use super::refuse::{RESERVED_SLOTS, Refusal};
use super::{ACCEPT_PAUSE, ACCEPTS_PER_EVENT, CLIENT, HOUSEKEEPING, Worker, with_worker};
use crate::conn::{Conn, Deadline};
use crate::metrics::AcceptError;

/// Clients refused per EMFILE event before accepting pauses: a backlog of
/// hundreds hears its 503 at once, not one per pause.
const REFUSALS_PER_EVENT: usize = 1024;

pub(super) fn open_spare() -> Option<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

impl Worker {
    /// Register the listener (again, after a pause).
    pub(super) fn listen(&mut self, reactor: &Reactor) -> Result<(), reactor::Error> {
        let Some(listener) = self.listener.clone() else { return Ok(()) };
        let me = self.me.clone();
        // Exclusive: every worker watches a dup of the one listener, and a
        // new connection should wake one of them, not all.
        let interest = Interest::READABLE | Interest::EXCLUSIVE;
        self.listener_io =
            Some(reactor.add_io(listener, interest, move |ctx, _| {
                with_worker(&me, |w| w.accept_ready(ctx))
            })?);
        Ok(())
    }

    pub(super) fn accept_ready(&mut self, ctx: &mut Context<'_>) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let Some(listener) = self.listener.clone() else { return };
            match accept_with(&*listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => self.admit(ctx, fd),
                Err(Errno::AGAIN) => return,
                // The client gave up while queued, or a signal: try the next.
                Err(Errno::CONNABORTED | Errno::INTR) => continue,
                Err(e) => {
                    let reason = match e {
                        Errno::MFILE => AcceptError::Emfile,
                        Errno::NFILE => AcceptError::Enfile,
                        _ => AcceptError::Other,
                    };
                    self.metrics.accept_error(reason);
                    if reason != AcceptError::Other {
                        self.refuse_backlog(ctx, &listener);
                    }
                    // Level-triggered: returning now would wake us again at
                    // once. Stop listening for a moment instead.
                    self.pause_accepting(ctx);
                    return;
                }
            }
        }
    }

    /// At the fd limit: give up the spare fd, accept one client, answer it
    /// (`refuse.rs`), close it, take the spare back; again, until the backlog
    /// is empty. Clients hear "over limit" instead of waiting in the backlog.
    /// One whose head has not arrived may get a reserved slot, with the fd of
    /// the monitoring spare.
    pub(super) fn refuse_backlog(&mut self, ctx: &mut Context<'_>, listener: &OwnedFd) {
        for _ in 0..REFUSALS_PER_EVENT {
            if self.spare.take().is_none() {
                return;
            }
            let accepted = accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC);
            let may_reserve = self.monitor_spare.is_some() && self.reserved < RESERVED_SLOTS;
            let more = match accepted {
                Ok(fd) => match self.refuse(fd, may_reserve) {
                    Refusal::Done => true,
                    Refusal::Reserve(fd) => {
                        self.monitor_spare = None; // its fd now serves the reserved client
                        self.admit_reserved(ctx, fd);
                        true
                    }
                },
                Err(Errno::CONNABORTED | Errno::INTR) => true,
                Err(_) => false, // EAGAIN: the backlog is empty
            };
            self.spare = open_spare();
            if !more {
                return;
            }
        }
    }

    pub(super) fn pause_accepting(&mut self, ctx: &mut Context<'_>) {
        if self.accept_paused.is_some() {
            return;
        }
        self.listener_io = None; // deregister; the listening socket stays open
        let me = self.me.clone();
        let resume =
            ctx.reactor().add_timer(HOUSEKEEPING, Expiration::Once(ACCEPT_PAUSE), move |ctx, _| {
                with_worker(&me, |w| {
                    w.accept_paused = None;
                    if w.spare.is_none() {
                        w.spare = open_spare();
                    }
                    // (After a shutdown's end the listener is gone: a no-op.)
                    let _ = w.listen(ctx.reactor());
                })
            });
        match resume {
            Ok(t) => self.accept_paused = Some(t),
            // Not even a shared timer could be armed: listen again next time round.
            Err(_) => {
                let _ = self.listen(ctx.reactor());
            }
        }
    }

    pub(super) fn admit(&mut self, ctx: &mut Context<'_>, fd: OwnedFd) {
        assert!(!self.test_panic, "DEMO_SERVER_TEST_PANIC is set");
        if self.metrics.connections.load(Relaxed) >= self.cfg.max_conns as u64 {
            let may_reserve = self.reserved < RESERVED_SLOTS;
            if let Refusal::Reserve(fd) = self.refuse(fd, may_reserve) {
                self.admit_reserved(ctx, fd);
            }
            return;
        }
        self.admit_as(ctx, fd, false);
    }

    /// Admit a client past the limits, to a reserved slot: it is served
    /// everything but streams (monitoring must answer when the server is full).
    fn admit_reserved(&mut self, ctx: &mut Context<'_>, fd: OwnedFd) {
        self.reserved += 1;
        if !self.admit_as(ctx, fd, true) {
            self.release_reserved();
        }
    }

    /// A reserved slot is free again; take the monitoring spare fd back.
    pub(super) fn release_reserved(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
        if self.monitor_spare.is_none() {
            self.monitor_spare = open_spare();
        }
    }

    fn admit_as(&mut self, ctx: &mut Context<'_>, fd: OwnedFd, reserved: bool) -> bool {
        let _ = sockopt::set_tcp_nodelay(&fd, true);
        // Cap the kernel's send buffer too, so "too slow" is reached in
        // seconds rather than after megabytes of autotuned buffer.
        let _ = sockopt::set_socket_send_buffer_size(&fd, self.cfg.max_buffered);
        let sock = Rc::new(fd);
        let key = self.conns.vacant_key();
        let generation = self.next_generation;
        self.next_generation += 1;
        let me = self.me.clone();
        let Ok(io) = ctx.reactor().add_io(sock.clone(), CLIENT, move |ctx, r| {
            with_worker(&me, |w| w.on_conn(ctx, key, generation, r))
        }) else {
            return false;
        };
        let deadline = self.deadline(ctx.reactor(), key, generation, Deadline::Header);
        self.conns.insert(Conn {
            generation,
            sock,
            io: Some(io),
            inbuf: Vec::new(),
            out: Vec::new(),
            interest: CLIENT,
            backlog: false,
            deadline,
            stream: None,
            closing: false,
            reserved,
        });
        self.metrics.connections.fetch_add(1, Relaxed);
        true
    }
}
