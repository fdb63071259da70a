//! The core's side of a turn (see `turn.rs`): starting and ending it, the
//! wait, and the events it returned.

use super::*;

impl<D: 'static> Core<D> {
    /// Start a turn: refuse a nested one.
    pub(crate) fn begin_turn(&mut self) -> Result<(), Error> {
        if self.in_turn {
            return Err(Error::Reentrant);
        }
        self.in_turn = true;
        self.deferred.phase = crate::deferred::Phase::BeforeDeferred;
        Ok(())
    }

    /// An observer's panic, caught while it reported, to resume now.
    pub(crate) fn take_observer_panic(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.tracer.take_panic()
    }

    /// Whether a turn must not block: work is pending that no fd shows.
    pub(crate) fn has_pending_work(&self) -> bool {
        self.deferred.has_queued() || self.next_event < self.events.len()
    }

    /// Whether the last wait's events are all dispatched.
    pub(crate) fn batch_done(&self) -> bool {
        self.next_event >= self.events.len()
    }

    /// Wait for events into the buffer (at most `timeout`).
    pub(crate) fn wait(&mut self, timeout: Option<std::time::Duration>) -> Result<usize, Error> {
        self.next_event = 0;
        let n = self.poller.wait(&mut self.events, timeout)?;
        bump(&self.counters.wakeups, 1);
        Ok(n)
    }

    /// The next event of the batch, if any.
    #[inline]
    pub(crate) fn next_event(&mut self) -> Option<(Token, Readiness)> {
        let event = self.events.get(self.next_event)?;
        self.next_event += 1;
        Some(event)
    }

    /// The live source an event is for, counted as dispatched; `None` (and
    /// counted stale) if it was removed, or its slot reused, since the wait.
    #[inline]
    pub(crate) fn source_for(&mut self, token: Token) -> Option<&mut Source<D>> {
        let Some(entry) =
            self.sources.get_mut(token.key()).filter(|e| e.generation == token.generation())
        else {
            bump(&self.counters.stale_events, 1);
            return None;
        };
        bump(&self.counters.events_dispatched, 1);
        Some(&mut entry.source)
    }

    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// End a turn, on return or while a callback's panic unwinds out of it.
    /// If the panic cut the batch short, the next turn resumes it, and a host
    /// loop must see the fd readable for that.
    pub(crate) fn end_turn(&mut self) {
        self.in_turn = false;
        self.deferred.phase = crate::deferred::Phase::Outside;
        if self.next_event < self.events.len() || self.deferred.has_queued() {
            self.notify_or_fault();
        }
    }
}
