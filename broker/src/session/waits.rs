//! What a tenant's threads wait for: the progress of its commands and calls ([`Progress`]) and
//! the host functions the tenant has run ([`HostFnsDone`]).
//!
//! Each is a mutex paired with its condition variable. The mutex is locked only inside the
//! methods below, which take no other lock and run no caller code while holding it: these are
//! leaves of the tenant's lock order (see [`super::tenant`]) by construction. Waits are sliced
//! (50 ms) so that a closing session (`closing`) is noticed without a wake-up.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long one condition-variable wait lasts before the closing flag is looked at again.
const SLICE: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Counters {
    enqueued: u64,
    /// Every operation up to this ordinal was submitted.
    submitted: u64,
    /// Ordinals past `submitted` already submitted: work of a more urgent stream that passed
    /// the tenant's earlier work (see `crate::scheduler::queue`).
    ahead: BTreeSet<u64>,
    processed: u64,
    ring_done: bool,
    calls_pending: u64,
}

/// How far the tenant's work has come: operations queued and submitted, ring records processed,
/// calls pending, whether the ring thread stopped.
#[derive(Default)]
pub struct Progress {
    counters: Mutex<Counters>,
    changed: Condvar,
}

impl Progress {
    /// Wakes every waiter (the session is closing).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// Operations queued so far.
    pub fn enqueued(&self) -> u64 {
        lock(&self.counters).enqueued
    }

    /// One more operation queued (no waiter waits for this); returns its ordinal (from 1).
    pub fn add_enqueued(&self) -> u64 {
        let mut c = lock(&self.counters);
        c.enqueued += 1;
        c.enqueued
    }

    /// The queued operation `order` was submitted to the device (or will never be: it could
    /// not be queued after all). Operations may be submitted out of order; waiters see the
    /// prefix submitted in full.
    pub fn add_submitted(&self, order: u64) {
        let mut c = lock(&self.counters);
        if order == c.submitted + 1 {
            c.submitted = order;
            while c.ahead.first() == Some(&(c.submitted + 1)) {
                c.ahead.pop_first();
                c.submitted += 1;
            }
        } else if order > c.submitted {
            c.ahead.insert(order);
        }
        drop(c);
        self.changed.notify_all();
    }

    /// The ring thread finished record `seq`.
    pub fn set_processed(&self, seq: u64) {
        lock(&self.counters).processed = seq;
        self.changed.notify_all();
    }

    /// The ring thread exited.
    pub fn set_ring_done(&self) {
        lock(&self.counters).ring_done = true;
        self.changed.notify_all();
    }

    /// Counts a call handed to the executor (`+1`) or finished (`-1`).
    pub fn add_calls_pending(&self, delta: i64) {
        let mut c = lock(&self.counters);
        c.calls_pending = c.calls_pending.saturating_add_signed(delta);
        self.changed.notify_all();
    }

    /// Waits until `done` holds (true), or the session closes or `limit` passes (false).
    fn wait(
        &self,
        mut done: impl FnMut(&Counters) -> bool,
        closing: &AtomicBool,
        limit: Option<Instant>,
    ) -> bool {
        let mut c = lock(&self.counters);
        loop {
            if done(&c) {
                return true;
            }
            if closing.load(Ordering::Acquire) || limit.is_some_and(|l| Instant::now() >= l) {
                return false;
            }
            c = self
                .changed
                .wait_timeout(c, SLICE)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits until the operations up to ordinal `target` have all been submitted (false: the
    /// session closed).
    pub fn wait_submitted(&self, target: u64, closing: &AtomicBool) -> bool {
        self.wait(|c| c.submitted >= target, closing, None)
    }

    /// Waits until the ring has been processed up to `fence`, or the ring thread stopped, or
    /// `limit` passed; true only when `fence` was reached.
    pub fn wait_processed(&self, fence: u64, closing: &AtomicBool, limit: Instant) -> bool {
        let mut reached = false;
        self.wait(
            |c| {
                reached = c.processed >= fence;
                reached || c.ring_done
            },
            closing,
            Some(limit),
        );
        reached
    }

    /// Waits (until `limit`) for the ring thread to stop and every call to finish.
    pub fn wait_ring_and_calls(&self, closing: &AtomicBool, limit: Instant) -> bool {
        self.wait(
            |c| c.ring_done && c.calls_pending == 0,
            closing,
            Some(limit),
        )
    }
}

/// The host functions whose stream waits for the tenant's `HOST_FN_DONE`: each token is
/// expected from the `HOST_FN_READY` that asks the tenant to run it until its wait ends (done,
/// timed out or closing), and only expected tokens are recorded done — so the set holds at
/// most one entry per waiting host function, whatever the tenant sends.
#[derive(Default)]
pub struct HostFnsDone {
    /// Expected tokens: `true` once done.
    tokens: Mutex<HashMap<u64, bool>>,
    changed: Condvar,
}

impl HostFnsDone {
    /// Wakes every waiter (the session is closing).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// Host function `token` is about to be offered to the tenant (before its `HOST_FN_READY`).
    pub fn expect(&self, token: u64) {
        lock(&self.tokens).insert(token, false);
    }

    /// The tenant ran host function `token`; false (and nothing kept) when no host function
    /// `token` is waiting.
    pub fn done(&self, token: u64) -> bool {
        let known = match lock(&self.tokens).get_mut(&token) {
            Some(done) => {
                *done = true;
                true
            }
            None => false,
        };
        self.changed.notify_all();
        known
    }

    /// Stops expecting `token` (its `HOST_FN_READY` could not be sent).
    pub fn forget(&self, token: u64) {
        lock(&self.tokens).remove(&token);
    }

    /// Host functions waiting (expected, done or not).
    pub fn waiting(&self) -> usize {
        lock(&self.tokens).len()
    }

    /// Forgets every token (the session ended).
    pub fn clear(&self) {
        lock(&self.tokens).clear();
        self.changed.notify_all();
    }

    /// Waits for the expected `token` to be done; the token is forgotten whatever the outcome
    /// (false: `timeout` passed or closing).
    pub fn wait(&self, token: u64, closing: &AtomicBool, timeout: Duration) -> bool {
        let start = Instant::now();
        let mut m = lock(&self.tokens);
        loop {
            if m.get(&token) != Some(&false) {
                return m.remove(&token).is_some();
            }
            if closing.load(Ordering::Acquire) || start.elapsed() >= timeout {
                m.remove(&token);
                return false;
            }
            m = self
                .changed
                .wait_timeout(m, SLICE)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn progress_waits_end_on_their_condition_on_closing_or_at_their_limit() {
        let p = Arc::new(Progress::default());
        let closing = Arc::new(AtomicBool::new(false));
        let (p2, c2) = (Arc::clone(&p), Arc::clone(&closing));
        let waiter = std::thread::spawn(move || p2.wait_submitted(2, &c2));
        p.add_submitted(1);
        p.add_submitted(2);
        assert!(waiter.join().unwrap());
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!p.wait_processed(5, &closing, soon), "fence not reached");
        p.set_processed(5);
        assert!(p.wait_processed(5, &closing, soon));
        p.set_ring_done();
        assert!(!p.wait_processed(9, &closing, Instant::now() + Duration::from_secs(5)));
        p.add_calls_pending(1);
        closing.store(true, Ordering::Release);
        assert!(!p.wait_ring_and_calls(&closing, Instant::now() + Duration::from_secs(5)));
        p.add_calls_pending(-1);
        assert!(p.wait_ring_and_calls(&closing, Instant::now()));
        assert_eq!((p.add_enqueued(), p.add_enqueued()), (1, 2));
        assert_eq!(p.enqueued(), 2);
    }

    #[test]
    fn waiters_see_only_a_prefix_submitted_in_full() {
        let p = Progress::default();
        let closing = AtomicBool::new(true);
        // 2 and 4 (a more urgent stream's work) go before 1 and 3.
        p.add_submitted(2);
        p.add_submitted(4);
        assert!(p.wait_submitted(0, &closing));
        assert!(!p.wait_submitted(1, &closing), "1 is still queued");
        p.add_submitted(1);
        assert!(p.wait_submitted(2, &closing));
        assert!(!p.wait_submitted(3, &closing), "3 is still queued");
        p.add_submitted(3);
        assert!(p.wait_submitted(4, &closing));
        assert!(!p.wait_submitted(5, &closing));
        // A repeated report changes nothing.
        p.add_submitted(2);
        assert!(!p.wait_submitted(5, &closing));
    }

    #[test]
    fn host_functions_are_collected_once() {
        let h = HostFnsDone::default();
        let closing = AtomicBool::new(false);
        h.expect(7);
        assert!(h.done(7));
        assert!(h.wait(7, &closing, Duration::from_secs(5)));
        assert!(!h.wait(7, &closing, Duration::from_millis(10)));
        closing.store(true, Ordering::Release);
        h.expect(8);
        assert!(!h.wait(8, &closing, Duration::from_secs(5)));
        assert_eq!(h.waiting(), 0, "a wait that ends forgets its token");
    }

    #[test]
    fn tokens_nobody_waits_for_are_not_kept() {
        let h = HostFnsDone::default();
        let closing = AtomicBool::new(false);
        for token in 0..10_000 {
            assert!(!h.done(token), "never offered");
        }
        assert_eq!(h.waiting(), 0);
        h.expect(1);
        assert!(!h.wait(1, &closing, Duration::from_millis(1)), "timed out");
        assert!(!h.done(1), "a late answer is dropped");
        assert_eq!(h.waiting(), 0);
        h.expect(2);
        h.clear();
        assert_eq!(h.waiting(), 0);
    }
}
