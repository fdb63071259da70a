//! Messages from other threads: a queue plus an eventfd, delivered to a
//! callback on the loop thread.
//!
//! The design is calloop's `channel` with libuv's `uv_async_send`
//! coalescing. A send pushes under a mutex and writes the eventfd only when
//! its push made the queue non-empty, so a burst of sends before the loop
//! wakes costs one `write` and one wake-up, and the loop then takes the
//! whole batch in one swap. The loop reads (resets) the eventfd *before*
//! taking the queue: a message pushed after the take found the queue empty
//! and wrote again, so no wake-up is lost.
//!
//! The receiving end is an ordinary I/O source on the eventfd
//! ([`Stats::io_sources`](crate::Stats::io_sources) counts it), so it obeys
//! every rule of one: dropping the [`Channel`] handle removes it, and a
//! callback that panics removes it. Either way the queue closes: later
//! sends return their message inside [`SendError::Closed`], and messages
//! still queued are dropped.
//!
//! One type serves both needs: unbounded by default, or bounded with
//! [`Reactor::add_bounded_channel`], where a send to a full queue returns
//! the message in [`SendError::Full`] at once. A send never blocks the
//! sending thread, so a slow loop cannot stall its producers; they decide
//! what to do with a refused message.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;

use crate::{Context, Error, Interest, Io, Reactor};

/// What a channel callback receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// The next message, in send order per sender.
    Msg(T),
    /// Every [`Sender`] is gone and every message was delivered. Sent once;
    /// the source stays registered until its handle is dropped.
    Closed,
}

/// Why a send failed. Either way the message comes back.
#[derive(PartialEq, Eq)]
pub enum SendError<T> {
    /// The channel's source is gone (its handle was dropped, its callback
    /// panicked, or its reactor was dropped).
    Closed(T),
    /// A bounded channel is at its capacity.
    Full(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Full(t) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed(_) => "Closed(..)",
            SendError::Full(_) => "Full(..)",
        })
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed(_) => "the channel's receiving source is gone",
            SendError::Full(_) => "the channel is full",
        })
    }
}

impl<T> std::error::Error for SendError<T> {}

struct Queue<T> {
    messages: VecDeque<T>,
    /// False once the receiving source is gone.
    open: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// 0 for unbounded.
    capacity: usize,
    senders: AtomicUsize,
    fd: OwnedFd,
}

impl<T> Shared<T> {
    /// The queue; a sender that panicked while holding the lock left it
    /// consistent (every change under it is a single push or swap).
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        // EAGAIN: the counter is at its maximum, so a wake is pending anyway.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }
}

/// The sending half: `Send + Clone` (for `T: Send`), usable from any thread.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queue `msg` for the loop. Costs one eventfd `write` only when the
    /// queue was empty; otherwise a wake-up is already on its way.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let mut queue = self.shared.lock();
        if !queue.open {
            return Err(SendError::Closed(msg));
        }
        let capacity = self.shared.capacity;
        if capacity != 0 && queue.messages.len() >= capacity {
            return Err(SendError::Full(msg));
        }
        let was_empty = queue.messages.is_empty();
        queue.messages.push_back(msg);
        drop(queue);
        if was_empty {
            self.shared.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.wake(); // so the loop learns that the last sender left
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving end as the reactor owns it: its `Drop` closes the queue.
struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The batch being delivered, swapped with the queue: capacity reused.
    batch: VecDeque<T>,
    closed_sent: bool,
}

impl<T> AsFd for Receiver<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.fd.as_fd()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.open = false;
        let pending = std::mem::take(&mut queue.messages);
        drop(queue);
        drop(pending); // outside the lock: a message's Drop may send
    }
}

/// The receiving source, from [`Reactor::add_channel`]. Dropping it removes
/// the source and closes the channel.
#[must_use = "dropping the handle closes the channel at once"]
#[derive(Debug)]
pub struct Channel {
    io: Io<'static>,
}

impl Channel {
    /// Whether the source is still registered.
    pub fn is_live(&self) -> bool {
        self.io.is_live()
    }
}

impl Reactor {
    /// An unbounded channel: messages sent from any thread reach `callback`
    /// on this loop, in order per sender, in batches per wake-up; then
    /// [`Event::Closed`] once every sender is gone. See the
    /// [`channel`](crate::channel) module docs.
    pub fn add_channel<T: 'static>(
        &self,
        callback: impl FnMut(&mut Context<'_>, Event<T>) + 'static,
    ) -> Result<(Sender<T>, Channel), Error> {
        self.channel_with(0, callback)
    }

    /// Like [`add_channel`](Self::add_channel), but a send to a queue that
    /// holds `capacity` messages (at least 1) returns [`SendError::Full`].
    pub fn add_bounded_channel<T: 'static>(
        &self,
        capacity: usize,
        callback: impl FnMut(&mut Context<'_>, Event<T>) + 'static,
    ) -> Result<(Sender<T>, Channel), Error> {
        self.channel_with(capacity.max(1), callback)
    }

    fn channel_with<T: 'static>(
        &self,
        capacity: usize,
        mut callback: impl FnMut(&mut Context<'_>, Event<T>) + 'static,
    ) -> Result<(Sender<T>, Channel), Error> {
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        let queue = Mutex::new(Queue { messages: VecDeque::new(), open: true });
        let shared = Arc::new(Shared { queue, capacity, senders: AtomicUsize::new(1), fd });
        let mut receiver =
            Receiver { shared: Arc::clone(&shared), batch: VecDeque::new(), closed_sent: false };
        // The receiver lives in the callback; the fd the reactor watches is
        // the shared eventfd, kept open by the senders' Arc as well.
        let watched = Arc::clone(&shared);
        let io = self.add_io(EventFd(watched), Interest::READABLE, move |ctx, _| {
            receiver.deliver(ctx, &mut callback);
        })?;
        Ok((Sender { shared }, Channel { io }))
    }
}

impl<T> Receiver<T> {
    fn deliver(
        &mut self,
        ctx: &mut Context<'_>,
        callback: &mut impl FnMut(&mut Context<'_>, Event<T>),
    ) {
        // Reset the eventfd first, then take the batch (see the module docs).
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.shared.fd, &mut buf) {
            Ok(_) | Err(Errno::AGAIN) => {}
            Err(_) => return,
        }
        std::mem::swap(&mut self.shared.lock().messages, &mut self.batch);
        while let Some(msg) = self.batch.pop_front() {
            callback(ctx, Event::Msg(msg));
        }
        if !self.closed_sent
            && self.shared.senders.load(Ordering::Acquire) == 0
            && self.shared.lock().messages.is_empty()
        {
            self.closed_sent = true;
            callback(ctx, Event::Closed);
        }
    }
}

/// The shared eventfd as the reactor's I/O source owns it.
struct EventFd<T>(Arc<Shared<T>>);

impl<T> AsFd for EventFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.fd.as_fd()
    }
}
