//! One log line per episode of a failure: the first failure of a kind says
//! what failed and what it costs; the ones after it are only counted
//! (`demo_server_faults_total`), until that kind heals and says so.

use std::fmt::Display;

use crate::metrics::Fault;

/// Failures of each kind in its open episode (none: no episode).
#[derive(Default)]
pub(super) struct Episodes {
    open: [Option<u64>; Fault::ALL.len()],
}

impl Episodes {
    /// A failure of kind `what`: logged if it opens an episode.
    pub(super) fn failed(&mut self, worker: usize, what: Fault, detail: impl Display) {
        let count = &mut self.open[what as usize];
        match count {
            Some(n) => *n += 1,
            None => {
                *count = Some(1);
                crate::errln!(
                    "demo-server: worker-{worker}: {} ({detail}); {}",
                    what.what(),
                    what.cost()
                );
            }
        }
    }

    /// Kind `what` worked again: close its episode, saying so.
    pub(super) fn healed(&mut self, worker: usize, what: Fault) {
        if let Some(n) = self.open[what as usize].take() {
            let s = if n == 1 { "" } else { "s" };
            crate::errln!(
                "demo-server: worker-{worker}: {}: recovered after {n} failure{s}",
                what.what()
            );
        }
    }

    /// Like [`healed`](Self::healed), for a repair that counted its own
    /// failures (`after`, at least one).
    pub(super) fn healed_after(&mut self, worker: usize, what: Fault, after: u32) {
        let count = &mut self.open[what as usize];
        *count = Some(count.unwrap_or(0).max(u64::from(after)));
        self.healed(worker, what);
    }
}
