//! What a callback receives besides its event: the reactor, the caller's
//! data, and its own source.

use std::ops::Deref;
use std::time::Duration;

use timerfd_sys::Expiration;

use crate::token::SourceId;
use crate::{Error, Reactor};

/// Handed to every callback: the reactor, the data the turn was given, and
/// the source being dispatched.
///
/// * **The reactor.** `Context` dereferences to the [`Reactor`], so a
///   callback adds sources, defers work or stops the loop with the same
///   calls as outside one: `ctx.add_timer(..)`, `ctx.defer(..)`,
///   `ctx.stop()`. Through handles it captured it can re-arm or drop any
///   source. The reactor holds no borrow of itself while a callback runs,
///   so all of these are safe from inside one.
/// * **The data.** [`data`](Self::data) is the `&mut D` handed to
///   [`turn_with`](Reactor::turn_with) or [`run_with`](Reactor::run_with):
///   state every callback can change, without `Rc<RefCell<_>>` (calloop's
///   `&mut Data`). For a `Reactor` (that is, `Reactor<()>`) it is `()`.
/// * **Its own source**, which has no handle it could capture: `Context`
///   acts on it directly with [`rearm`](Self::rearm), [`disarm`](Self::disarm),
///   [`set_leeway`](Self::set_leeway) and [`remove`](Self::remove).
pub struct Context<'r, D = ()> {
    reactor: &'r Reactor<D>,
    data: &'r mut D,
    current: SourceId,
}

impl<'r, D: 'static> Context<'r, D> {
    pub(crate) fn new(reactor: &'r Reactor<D>, data: &'r mut D, current: SourceId) -> Self {
        Context { reactor, data, current }
    }

    /// The reactor running this callback. (`Context` dereferences to it too.)
    pub fn reactor(&self) -> &'r Reactor<D> {
        self.reactor
    }

    /// The data this turn was given: `&mut D` from
    /// [`turn_with`](Reactor::turn_with) or [`run_with`](Reactor::run_with).
    pub fn data(&mut self) -> &mut D {
        self.data
    }

    /// Ask [`run`](Reactor::run) to return after this turn: the reactor's
    /// [`stop`](Reactor::stop).
    pub fn stop(&self) {
        self.reactor.stop();
    }

    /// Re-arm the timer whose callback this is. [`Error::NotATimer`] from
    /// any other callback.
    pub fn rearm(&mut self, exp: Expiration) -> Result<(), Error> {
        self.reactor.set_timer(self.current, Some(exp))
    }

    /// Disarm the timer whose callback this is: it stays registered and
    /// can be re-armed.
    pub fn disarm(&mut self) -> Result<(), Error> {
        self.reactor.set_timer(self.current, None)
    }

    /// Set the leeway of the timer whose callback this is (see
    /// [`Timer::set_leeway`](crate::Timer::set_leeway)).
    pub fn set_leeway(&mut self, leeway: Duration) -> Result<(), Error> {
        self.reactor.set_leeway(self.current, leeway)
    }

    /// Remove the source whose callback this is, as dropping its handle
    /// would; a detached source this way stops being counted as detached.
    /// Its callback (this one) is dropped as soon as it returns, and never
    /// runs again, not even for the rest of a batch being delivered (a
    /// channel's messages, signals). A handle still held elsewhere then
    /// reports [`Error::Gone`]. In a deferred callback, which runs once
    /// anyway, it does nothing.
    pub fn remove(&mut self) {
        self.reactor.remove(self.current);
    }

    /// Whether the source whose callback this is still exists: false once
    /// it was removed, by [`remove`](Self::remove) or by dropping its handle.
    pub fn is_live(&self) -> bool {
        self.reactor.is_live(self.current)
    }

    /// Record a failure of a step this callback took on the loop's behalf,
    /// for `turn` to return as [`Error::Retrying`].
    pub(crate) fn fault(&self, call: &'static str, errno: rustix::io::Errno) {
        self.reactor.fault(call, errno);
    }
}

impl<D> Deref for Context<'_, D> {
    type Target = Reactor<D>;

    fn deref(&self) -> &Reactor<D> {
        self.reactor
    }
}
