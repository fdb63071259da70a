//! What a callback receives besides its event: a way back into the reactor.

use timerfd_sys::Expiration;

use crate::token::SourceId;
use crate::{Error, Reactor, Readiness, SignalInfo};

/// A timer callback: gets the expirations since it last ran (missed ticks
/// folded in, so always at least 1).
pub type TimerCallback = Box<dyn FnMut(&mut Context<'_>, u64)>;
/// An I/O callback: gets the readiness epoll reported.
pub type IoCallback = Box<dyn FnMut(&mut Context<'_>, Readiness)>;
/// A signal callback: gets one delivered signal.
pub type SignalCallback = Box<dyn FnMut(&mut Context<'_>, SignalInfo)>;

/// Handed to every callback: the reactor, and the source being dispatched.
///
/// Through [`reactor`](Self::reactor) a callback can add any source; through
/// handles it captured it can re-arm or drop any source. Its own source has
/// no handle it could capture, so `Context` acts on it directly:
/// [`rearm`](Self::rearm), [`disarm`](Self::disarm) and
/// [`remove`](Self::remove). The reactor holds no borrow of itself while a
/// callback runs, so all of these are safe from inside one.
pub struct Context<'r> {
    reactor: &'r Reactor,
    current: SourceId,
}

impl<'r> Context<'r> {
    pub(crate) fn new(reactor: &'r Reactor, current: SourceId) -> Context<'r> {
        Context { reactor, current }
    }

    /// The reactor running this callback, to add sources or read stats.
    pub fn reactor(&self) -> &'r Reactor {
        self.reactor
    }

    /// Ask the reactor to return from [`run`](Reactor::run) after this turn.
    pub fn stop(&self) {
        self.reactor.stop();
    }

    /// Re-arm the timer whose callback this is. [`Error::NotATimer`] from an
    /// I/O or signal callback.
    pub fn rearm(&mut self, exp: Expiration) -> Result<(), Error> {
        self.reactor.core()?.set_timer(self.current.timer()?, Some(exp))
    }

    /// Disarm the timer whose callback this is: it stays registered and
    /// can be re-armed through its handle.
    pub fn disarm(&mut self) -> Result<(), Error> {
        self.reactor.core()?.set_timer(self.current.timer()?, None)
    }

    /// Remove the source whose callback this is, as dropping its handle
    /// would; a detached source this way stops being counted as detached.
    /// Its callback (this one) is dropped as soon as it returns, and never
    /// runs again. A handle still held elsewhere then reports [`Error::Gone`].
    pub fn remove(&mut self) {
        self.reactor.remove(self.current);
    }
}
