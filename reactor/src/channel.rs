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
//! every rule of one: dropping the [`Channel`] handle removes it, and so do
//! its callback's [`Context::remove`] and a panic in it. The queue closes at
//! that moment: nothing more is delivered, not even the rest of a batch
//! being delivered, later sends return their message inside
//! [`SendError::Closed`], and messages still queued are dropped.
//!
//! Senders come from the handle ([`Channel::sender`]), so a channel cannot
//! be dropped by a `let (tx, _) = ..` pattern before anything was sent
//! (the older [`Reactor::add_channel`] allowed exactly that).
//!
//! One type serves both needs: unbounded by default, or bounded with
//! [`Reactor::bounded_channel`], where a send to a full queue returns the
//! message in [`SendError::Full`] at once. A send never blocks the sending
//! thread, so a slow loop cannot stall its producers; they decide what to
//! do with a refused message. A send either wakes the loop or gives its
//! message back: the eventfd write happens under the queue's lock, and if
//! it fails (after a bounded retry) the message comes back in
//! [`SendError::Failed`].

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
    /// removed it or panicked, or its reactor was dropped).
    Closed(T),
    /// A bounded channel is at its capacity.
    Full(T),
    /// The wake-up of the loop (an eventfd write) failed, so the message
    /// was taken back instead of left waiting for a wake that would not come.
    Failed(T, Error),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Full(t) | SendError::Failed(t, _) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Failed(_, e) => write!(f, "Failed(.., {e:?})"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("the channel's receiving source is gone"),
            SendError::Full(_) => f.write_str("the channel is full"),
            SendError::Failed(_, e) => write!(f, "the loop could not be woken: {e}"),
        }
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

/// Attempts at an eventfd write that fails with something other than
/// `EINTR` (retried without counting) or `EAGAIN` (a wake is pending).
const WAKE_ATTEMPTS: usize = 3;

impl<T> Shared<T> {
    /// The queue; a sender that panicked while holding the lock left it
    /// consistent (every change under it is a single push, pop or swap).
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the eventfd, retried a few times.
    fn wake(&self) -> Result<(), Errno> {
        let mut result = Ok(());
        for _ in 0..WAKE_ATTEMPTS {
            result = crate::waker::wake(&self.fd);
            if result.is_ok() {
                break;
            }
        }
        result
    }

    /// Close the queue: later sends get their message back; what is queued
    /// is returned, to be dropped outside the lock (a message's `Drop` may send).
    fn close(&self) -> VecDeque<T> {
        let mut queue = self.lock();
        queue.open = false;
        std::mem::take(&mut queue.messages)
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
        // The wake happens under the lock: senders after this one see a
        // non-empty queue and count on it, so if it fails the message comes
        // back out before anyone else can look.
        if was_empty {
            if let Err(errno) = self.shared.wake() {
                if let Some(msg) = queue.messages.pop_back() {
                    return Err(SendError::Failed(msg, Error::Os(errno)));
                }
            }
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
            // So the loop learns that the last sender left. A drop cannot
            // report: an eventfd write fails only with EAGAIN (a wake is
            // pending: fine) or EINTR (retried), short of a closed or bad fd,
            // which the Arc rules out; injected failures get the retries.
            let _cannot_report_from_drop = self.shared.wake();
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

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        drop(self.shared.close()); // outside the lock
    }
}

/// The receiving source, from [`Reactor::channel`]. Dropping it removes the
/// source and closes the channel.
#[must_use = "dropping the handle closes the channel at once"]
pub struct Channel<T> {
    io: Io<'static>,
    shared: Arc<Shared<T>>,
}

impl<T> Channel<T> {
    /// A new sender for this channel.
    pub fn sender(&self) -> Sender<T> {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: Arc::clone(&self.shared) }
    }

    /// Whether the source is still registered.
    pub fn is_live(&self) -> bool {
        self.io.is_live()
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel").field("io", &self.io).finish()
    }
}

impl<D: 'static> Reactor<D> {
    /// An unbounded channel: messages sent from any thread (through
    /// [`Channel::sender`]) reach `callback` on this loop, in order per
    /// sender, in batches per wake-up; then [`Event::Closed`] once every
    /// sender is gone. See the [`channel`](crate::channel) module docs.
    pub fn channel<T: 'static>(
        &self,
        callback: impl FnMut(&mut Context<'_, D>, Event<T>) + 'static,
    ) -> Result<Channel<T>, Error> {
        self.channel_with(0, callback)
    }

    /// Like [`channel`](Self::channel), but a send to a queue that holds
    /// `capacity` messages (at least 1) returns [`SendError::Full`].
    pub fn bounded_channel<T: 'static>(
        &self,
        capacity: usize,
        callback: impl FnMut(&mut Context<'_, D>, Event<T>) + 'static,
    ) -> Result<Channel<T>, Error> {
        self.channel_with(capacity.max(1), callback)
    }

    /// An unbounded channel and its first sender.
    #[deprecated(
        note = "use `channel` and `Channel::sender`: `let (tx, _) = add_channel(..)` closed the channel at once"
    )]
    pub fn add_channel<T: 'static>(
        &self,
        callback: impl FnMut(&mut Context<'_, D>, Event<T>) + 'static,
    ) -> Result<(Sender<T>, Channel<T>), Error> {
        let channel = self.channel_with(0, callback)?;
        Ok((channel.sender(), channel))
    }

    /// A bounded channel and its first sender.
    #[deprecated(note = "use `bounded_channel` and `Channel::sender`")]
    pub fn add_bounded_channel<T: 'static>(
        &self,
        capacity: usize,
        callback: impl FnMut(&mut Context<'_, D>, Event<T>) + 'static,
    ) -> Result<(Sender<T>, Channel<T>), Error> {
        let channel = self.channel_with(capacity.max(1), callback)?;
        Ok((channel.sender(), channel))
    }

    fn channel_with<T: 'static>(
        &self,
        capacity: usize,
        mut callback: impl FnMut(&mut Context<'_, D>, Event<T>) + 'static,
    ) -> Result<Channel<T>, Error> {
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        let queue = Mutex::new(Queue { messages: VecDeque::new(), open: true });
        let shared = Arc::new(Shared { queue, capacity, senders: AtomicUsize::new(0), fd });
        let mut receiver =
            Receiver { shared: Arc::clone(&shared), batch: VecDeque::new(), closed_sent: false };
        // The receiver lives in the callback; the fd the reactor watches is
        // the shared eventfd, and dropping the source's copy closes the queue.
        let watched = EventFd(Arc::clone(&shared));
        let io = self.add_io(watched, Interest::READABLE, move |ctx, _| {
            receiver.deliver(ctx, &mut callback);
        })?;
        Ok(Channel { io, shared })
    }
}

impl<T> Receiver<T> {
    fn deliver<D: 'static>(
        &mut self,
        ctx: &mut Context<'_, D>,
        callback: &mut impl FnMut(&mut Context<'_, D>, Event<T>),
    ) {
        // Reset the eventfd first, then take the batch (see the module docs).
        // If the reset fails the eventfd stays readable and the loop comes
        // back; the batch is delivered now all the same.
        if let Err(errno) = crate::waker::drain(&self.shared.fd) {
            ctx.fault("read", errno);
        }
        std::mem::swap(&mut self.shared.lock().messages, &mut self.batch);
        while let Some(msg) = self.batch.pop_front() {
            callback(ctx, Event::Msg(msg));
            if !ctx.is_live() {
                // Removed by its own callback: not one more message.
                self.batch.clear();
                drop(self.shared.close());
                return;
            }
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

/// The shared eventfd as the reactor's I/O source owns it. Dropping it (the
/// source's removal) closes the queue there and then.
struct EventFd<T>(Arc<Shared<T>>);

impl<T> AsFd for EventFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.fd.as_fd()
    }
}

impl<T> Drop for EventFd<T> {
    fn drop(&mut self) {
        drop(self.0.close());
    }
}
