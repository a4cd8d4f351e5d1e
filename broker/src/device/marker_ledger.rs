//! Which completion markers have not finished yet, per worker stream, so a synchronising call
//! can wait for them.
//!
//! A marker that is not a gate does not hold its stream up: the worker reports "reached" on the
//! notify ring and goes on, and the broker's events thread runs the marker's function a moment
//! later. `cuStreamSynchronize` in the worker may therefore return before the functions of the
//! markers ahead of it ran — and those functions are what raise a tenant's completion slots.
//! A tenant that synchronised and then asks its slot (`cuEventQuery` after `cuCtxSynchronize`)
//! must see "complete", so the broker's stream synchronisation ends with
//! [`MarkerLedger::wait`] for the markers issued on that stream before the call.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often a wait looks at whether the worker is still alive.
const RECHECK: Duration = Duration::from_millis(50);

/// Markers issued and not finished: token → worker stream.
#[derive(Default)]
pub struct MarkerLedger {
    open: Mutex<BTreeMap<u64, u64>>,
    finished: Condvar,
}

impl MarkerLedger {
    fn open(&self) -> MutexGuard<'_, BTreeMap<u64, u64>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marker `token` was issued on `stream`.
    pub fn issued(&self, token: u64, stream: u64) {
        self.open().insert(token, stream);
    }

    /// Marker `token`'s function ran (or never will).
    pub fn finished(&self, token: u64) {
        if self.open().remove(&token).is_some() {
            self.finished.notify_all();
        }
    }

    /// Waits until no marker issued on `stream` with a token below `below` is open, or until
    /// `alive` says the worker is gone (its death runs every marker anyway).
    pub fn wait(&self, stream: u64, below: u64, alive: impl Fn() -> bool) {
        let mut open = self.open();
        while open.range(..below).any(|(_, s)| *s == stream) && alive() {
            open = match self.finished.wait_timeout(open, RECHECK) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_when_the_markers_before_it_on_its_stream_finished() {
        let ledger = Arc::new(MarkerLedger::default());
        ledger.issued(1, 7);
        ledger.issued(2, 8);
        ledger.issued(5, 7);
        // Other streams and later markers do not hold a wait up.
        ledger.wait(9, 100, || true);
        ledger.wait(7, 1, || true);
        let l = Arc::clone(&ledger);
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            l.finished(1);
        });
        ledger.wait(7, 3, || true);
        assert_eq!(ledger.open().len(), 2, "marker 1 finished, 2 and 5 open");
        finisher.join().unwrap();
        ledger.wait(8, 3, || false);
        assert_eq!(ledger.open().len(), 2, "a dead worker ends the wait");
    }
}
