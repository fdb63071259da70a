//! The turn's guards: each ends what it guards when dropped, on return or
//! while a callback's panic unwinds through it.

use crate::{Context, Reactor};

/// A turn in progress. Dropping it, at the end of the turn or while a
/// callback's panic unwinds through it, ends the turn; events the panic cut
/// off stay in the buffer for the next turn.
pub(super) struct InTurn<'a, D: 'static>(pub(super) &'a Reactor<D>);

impl<D: 'static> Drop for InTurn<'_, D> {
    fn drop(&mut self) {
        // Callbacks hold no borrow, and theirs end before this runs.
        if let Ok(mut core) = self.0.inner.core.try_borrow_mut() {
            core.end_turn();
        }
    }
}

/// Armed around a callback, and holding the [`Context`] it gets: if the
/// callback panics, its source is removed while the panic unwinds. The
/// callback itself unwinds with the panic, so the source could never be
/// served again; removing it closes its fd, stops its wake-ups and keeps
/// `Stats` true. Defused when the callback returns.
pub(super) struct RemoveOnUnwind<'a, D: 'static>(pub(super) Context<'a, D>);

impl<D: 'static> RemoveOnUnwind<'_, D> {
    #[inline]
    pub(super) fn returned(self) {
        std::mem::forget(self);
    }
}

impl<D: 'static> Drop for RemoveOnUnwind<'_, D> {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// A shared pass in progress. Dropping it ends the pass, on return or
/// while a callback's panic unwinds through it: due timers the pass did
/// not reach go back on the heap (none, on return), and the clock's timerfd
/// is armed for the earliest deadline, so no other shared timer is lost. A
/// failed arm strands the clock (see the `shared` module); the next turn
/// retries it and reports the failure.
pub(super) struct InPass<'a, D: 'static> {
    pub(super) reactor: &'a Reactor<D>,
    pub(super) clock: u8,
    pub(super) reached: usize,
}

impl<D: 'static> Drop for InPass<'_, D> {
    fn drop(&mut self) {
        if let Ok(mut core) = self.reactor.inner.core.try_borrow_mut() {
            core.end_pass(self.clock, self.reached);
        }
    }
}
