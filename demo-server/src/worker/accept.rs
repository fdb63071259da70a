//! Taking connections in: the listener's registration, `accept`,
//! `--max-conns`, and EMFILE without a busy loop (the spare-fd trick
//! refuses the whole backlog, up to [`REFUSALS_PER_EVENT`], then accepting
//! pauses briefly). How a refusal is answered is `refuse.rs`.
//!
//! # The listener is a repair the run loop owns
//!
//! Watching the listening socket is retried by the run loop on a deadline
//! of its own, not by a timer callback: after an accept error pauses it,
//! and whenever its `epoll_ctl(ADD)` fails (ENOSPC at
//! `fs.epoll.max_user_watches`, ENOMEM), the loop's wait is bounded by the
//! retry time, and the retry backs off from 20 ms to 1 s. Each failure is
//! counted and the episode logged once, so a server never goes deaf in
//! silence.

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use reactor::{Interest, Io, Reactor};
use rustix::io::Errno;
use rustix::net::{SocketFlags, accept_with, sockopt};

use super::conn::Conn;
use super::refuse::{RESERVED_SLOTS, Refusal};
use super::{CLIENT, Worker, WorkerEvent, on};
use crate::metrics::{AcceptError, Fault};

/// Accepts per listener event, so one busy listener cannot starve streams.
const ACCEPTS_PER_EVENT: usize = 64;
/// Clients refused per EMFILE event before accepting pauses: a backlog of
/// hundreds hears its 503 at once, not one per pause.
const REFUSALS_PER_EVENT: usize = 1024;
/// How long accepting pauses after an accept error, instead of spinning.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);
/// The longest wait between retries of a failed registration.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// An fd to give up at EMFILE: `/dev/null`, opened now.
pub(super) fn open_spare() -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags, open};
    // A failure here is the fd limit itself; the refusal it would have
    // made falls back to the accept pause, which still never spins.
    open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// The listening socket, its registration, and what EMFILE needs.
pub(super) struct Listener {
    /// `None` once a shutdown has ended.
    fd: Option<Rc<OwnedFd>>,
    io: Option<Io<'static>>,
    /// When to watch it again: after a pause, or a failed registration.
    retry_at: Option<Instant>,
    /// Registrations failed in a row (for the backoff, and the log).
    failures: u32,
    /// The spare-fd trick: an fd given up at EMFILE to accept and refuse one client.
    pub(super) spare: Option<OwnedFd>,
    /// A second spare fd, for a reserved (monitoring) connection at EMFILE.
    pub(super) monitor_spare: Option<OwnedFd>,
    /// Reserved connections open now (see `refuse.rs`).
    pub(super) reserved: usize,
}

impl Listener {
    pub(super) fn new(fd: OwnedFd) -> Listener {
        Listener {
            fd: Some(Rc::new(fd)),
            io: None,
            retry_at: None,
            failures: 0,
            spare: open_spare(),
            monitor_spare: open_spare(),
            reserved: 0,
        }
    }

    /// Register the listener now. Exclusive: every worker watches a dup of
    /// the one listener, and a new connection should wake one of them.
    pub(super) fn watch(&mut self, r: &Reactor<Worker>) -> Result<(), reactor::Error> {
        let Some(fd) = self.fd.clone() else { return Ok(()) };
        let interest = Interest::READABLE | Interest::EXCLUSIVE;
        self.io = Some(r.add_io(fd, interest, |ctx, _| on(ctx, WorkerEvent::Accept))?);
        Ok(())
    }

    /// Stop watching for a while; the run loop watches again at the time.
    fn pause(&mut self, for_: Duration) {
        self.io = None; // deregister; the listening socket stays open
        self.retry_at = Some(Instant::now() + for_);
    }

    /// When the run loop must come back to watch the listener again.
    pub(super) fn repair_due(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Watch the listener again if it is time. `Ok(Some(n))`: it works
    /// again after `n` failed attempts; `Err`: this attempt failed, and the
    /// next is scheduled.
    pub(super) fn repair(&mut self, r: &Reactor<Worker>) -> Result<Option<u32>, reactor::Error> {
        match self.retry_at {
            Some(at) if Instant::now() >= at => {}
            _ => return Ok(None),
        }
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        match self.watch(r) {
            Ok(()) => {
                self.retry_at = None;
                Ok(Some(std::mem::take(&mut self.failures)).filter(|&n| n > 0))
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let wait = ACCEPT_PAUSE.saturating_mul(1 << self.failures.min(6)).min(MAX_RETRY);
                self.retry_at = Some(Instant::now() + wait);
                Err(e)
            }
        }
    }

    /// The end of a shutdown: nobody is let in any more.
    pub(super) fn close(&mut self) {
        self.io = None;
        self.fd = None;
        self.retry_at = None;
    }

    /// A reserved slot is free again; take the monitoring spare fd back.
    pub(super) fn release_reserved(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
        if self.monitor_spare.is_none() {
            self.monitor_spare = open_spare();
        }
    }
}

impl Worker {
    pub(super) fn accept_ready(&mut self, r: &Reactor<Worker>) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let Some(listener) = self.listener.fd.clone() else { return };
            match accept_with(&*listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => self.admit(r, fd),
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
                        self.refuse_backlog(r, &listener);
                    }
                    // Level-triggered: returning now would wake us again at
                    // once. Stop listening for a moment instead.
                    self.listener.pause(ACCEPT_PAUSE);
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
    fn refuse_backlog(&mut self, r: &Reactor<Worker>, listener: &OwnedFd) {
        for _ in 0..REFUSALS_PER_EVENT {
            if self.listener.spare.take().is_none() {
                return;
            }
            let accepted = accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC);
            let may_reserve =
                self.listener.monitor_spare.is_some() && self.listener.reserved < RESERVED_SLOTS;
            let more = match accepted {
                Ok(fd) => match self.refuse(fd, may_reserve) {
                    Refusal::Done => true,
                    Refusal::Reserve(fd) => {
                        self.listener.monitor_spare = None; // its fd now serves the client
                        self.admit_reserved(r, fd);
                        true
                    }
                },
                Err(Errno::CONNABORTED | Errno::INTR) => true,
                Err(_) => false, // EAGAIN: the backlog is empty
            };
            self.listener.spare = open_spare();
            if !more {
                return;
            }
        }
    }

    fn admit(&mut self, r: &Reactor<Worker>, fd: OwnedFd) {
        assert!(!self.test_panic, "DEMO_SERVER_TEST_PANIC is set");
        if self.metrics.connections.load(Relaxed) >= self.cfg.max_conns as u64 {
            let may_reserve = self.listener.reserved < RESERVED_SLOTS;
            if let Refusal::Reserve(fd) = self.refuse(fd, may_reserve) {
                self.admit_reserved(r, fd);
            }
            return;
        }
        self.admit_as(r, fd, false);
    }

    /// Admit a client past the limits, to a reserved slot: it is served
    /// everything but streams (monitoring must answer when the server is full).
    fn admit_reserved(&mut self, r: &Reactor<Worker>, fd: OwnedFd) {
        self.listener.reserved += 1;
        if !self.admit_as(r, fd, true) {
            self.listener.release_reserved();
        }
    }

    /// A connection in `Reading { Header }`: its registration and its
    /// deadline made first. A client either gets both, or a 503 at once,
    /// never a reset and never a connection nothing will end.
    fn admit_as(&mut self, r: &Reactor<Worker>, fd: OwnedFd, reserved: bool) -> bool {
        // Best effort: without NODELAY a small answer may wait 40 ms for its
        // ACK; without the smaller buffer "too slow" takes longer to reach.
        // Neither changes what the client gets.
        let _nodelay_is_an_optimisation = sockopt::set_tcp_nodelay(&fd, true);
        // Cap the kernel's send buffer too, so "too slow" is reached in
        // seconds rather than after megabytes of autotuned buffer.
        let _sndbuf_is_an_optimisation =
            sockopt::set_socket_send_buffer_size(&fd, self.cfg.max_buffered);
        let key = self.conns.vacant_key();
        let deadline = match self.deadline(r, key, self.cfg.header_timeout) {
            Ok(timer) => timer,
            Err(e) => {
                self.fault(Fault::Deadline, e);
                self.refuse_now(fd);
                return false;
            }
        };
        let sock = Rc::new(fd);
        let io = r.add_io(sock.clone(), CLIENT, move |ctx, readiness| {
            on(ctx, WorkerEvent::Conn { key, readiness })
        });
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                self.fault(Fault::Register, e);
                // The registration's copy is gone: the socket is ours again.
                if let Ok(fd) = Rc::try_unwrap(sock) {
                    self.refuse_now(fd);
                }
                return false;
            }
        };
        self.conns.insert(Conn::new(sock, io, reserved, deadline));
        self.metrics.connections.fetch_add(1, Relaxed);
        true
    }
}
