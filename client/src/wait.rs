//! Wake-ups across processes: [`SeqWord`], a published 64-bit value that waiters spin on for a
//! bounded time and then sleep on with a futex.
//!
//! # Why spin first
//!
//! On this project's 2-core machines a blocking hand-off to a process on the other CPU (futex,
//! socket, eventfd alike) costs ~60 µs round trip — the wake-up interrupt plus waking a halted
//! vCPU — while two sides spinning on shared memory see each other in ~0.3 µs. A synchronous call
//! has a 10 µs p50 budget, so waiters spin for [`WaitPolicy::spin`] (default
//! [`DEFAULT_SPIN`] = 20 µs, enough to cover a short broker-side operation) and only then
//! block. Blocking is never replaced by unbounded polling: after the spin the thread sleeps.
//!
//! # Protocol (16 bytes in shared memory, 8-aligned)
//!
//! ```text
//! +0  value    u64  the published value (sequence number, position, state, counter)
//! +8  futex    u32  futex word; bumped by a publisher that saw waiters
//! +12 waiters  u32  number of threads (in any process) about to sleep or sleeping
//! ```
//!
//! Publisher: store `value` (SeqCst); load `waiters` (SeqCst); only if non-zero, bump `futex`
//! and `FUTEX_WAKE` all — so the hot path has no system call. Waiter: read `futex` (f0),
//! increment `waiters`, re-check `value`, then `FUTEX_WAIT(futex, f0)`. Sequential consistency of
//! the two stores and two loads guarantees that either the waiter sees the new value or the
//! publisher sees the waiter; if the publisher's bump lands before the waiter sleeps,
//! `FUTEX_WAIT` returns at once because the word no longer holds f0. Sleeps are also cut into
//! slices ([`WaitPolicy::slice`]) so cancellation (a closed session) is noticed even without a
//! wake-up.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::os::{futex_wait, futex_wake, Mapping, OsError, SharedAtomic};

/// Size of a [`SeqWord`] in shared memory.
pub const SEQ_WORD_SIZE: usize = 16;
/// Default spin budget before blocking.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);
/// Spin without yielding the CPU for this long first (a peer on another core answers in ~0.3 µs).
const PURE_SPIN: Duration = Duration::from_nanos(500);
/// Default longest single futex sleep before re-checking cancellation.
pub const DEFAULT_SLICE: Duration = Duration::from_millis(50);

/// Errors of waiting.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The policy's timeout elapsed.
    #[error("timed out waiting for the peer")]
    TimedOut,
    /// The cancellation check fired (e.g. the session was closed).
    #[error("wait cancelled: the session is closed")]
    Cancelled,
    /// A futex call or the word's placement failed.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// How long to spin, how long to wait in all, how long each sleep lasts at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Busy-wait budget before sleeping (0: sleep at once).
    pub spin: Duration,
    /// Give up after this long (`None`: wait until satisfied or cancelled).
    pub timeout: Option<Duration>,
    /// Longest single futex sleep; cancellation is re-checked after each.
    pub slice: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            spin: DEFAULT_SPIN,
            timeout: None,
            slice: DEFAULT_SLICE,
        }
    }
}

impl WaitPolicy {
    /// The default policy with a different spin budget.
    pub fn with_spin(spin: Duration) -> Self {
        WaitPolicy {
            spin,
            ..Self::default()
        }
    }

    /// This policy with a timeout.
    pub fn timeout(self, timeout: Duration) -> Self {
        WaitPolicy {
            timeout: Some(timeout),
            ..self
        }
    }
}

/// Waits in a row that outlasted the spin budget before [`AdaptiveSpin`] stops spinning.
const MISSES_TO_SLEEP: u32 = 8;
/// While [`AdaptiveSpin`] sleeps at once, one wait in this many spins again (a probe).
const PROBE_EVERY: u32 = 16;

/// A waiting loop's spin budget, adapted to whether spinning pays. A thread whose work arrives
/// every hundred µs or so (a bulk upload's chunks, a long kernel's slices) spins its whole budget
/// and sleeps anyway each time: on a 2-CPU host three such threads burned about half a CPU that a
/// latency-sensitive tenant's threads needed (docs/benchmarks-latency.md). After
/// [`MISSES_TO_SLEEP`] waits in a row that outlasted the budget it sleeps at once; one wait in
/// [`PROBE_EVERY`] spins again, and a wait that ends within the budget (a hit) restores
/// spinning.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveSpin {
    base: WaitPolicy,
    misses: u32,
    waits: u32,
}

impl AdaptiveSpin {
    /// Spinning as `base` says until it stops paying.
    pub fn new(base: WaitPolicy) -> AdaptiveSpin {
        AdaptiveSpin {
            base,
            misses: 0,
            waits: 0,
        }
    }

    /// True while waits spin (for tests and figures).
    pub fn is_spinning(&self) -> bool {
        self.misses < MISSES_TO_SLEEP
    }

    /// The policy for the next wait.
    fn next_policy(&mut self) -> WaitPolicy {
        self.waits = self.waits.wrapping_add(1);
        if self.is_spinning() || self.waits.is_multiple_of(PROBE_EVERY) {
            self.base
        } else {
            WaitPolicy {
                spin: Duration::ZERO,
                ..self.base
            }
        }
    }

    /// Records how long a wait took: within the spin budget is a hit.
    fn record(&mut self, waited: Duration) {
        if waited <= self.base.spin {
            self.misses = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
        }
    }
}

/// A cancellation condition for long waits: cancelled once a [`SeqWord`] (typically the
/// region's session state) no longer holds its "open" value. The default never cancels.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    word: Option<SeqWord>,
    open: u64,
}

impl Cancel {
    /// Never cancelled.
    pub fn never() -> Cancel {
        Cancel::default()
    }

    /// Cancelled as soon as `word` holds anything but `open`.
    pub fn unless(word: SeqWord, open: u64) -> Cancel {
        Cancel {
            word: Some(word),
            open,
        }
    }

    /// True once the condition has fired.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.word.as_ref().is_some_and(|w| w.load() != self.open)
    }
}

/// A published value with spin-then-futex waiting; see the module documentation.
#[derive(Clone, Debug)]
pub struct SeqWord {
    value: SharedAtomic<AtomicU64>,
    futex: SharedAtomic<AtomicU32>,
    waiters: SharedAtomic<AtomicU32>,
}

impl SeqWord {
    /// The word at `offset` (8-aligned) of `map`.
    pub fn at(map: &Arc<Mapping>, offset: usize) -> Result<SeqWord, WaitError> {
        Ok(SeqWord {
            value: map.atomic(offset)?,
            futex: map.atomic(offset + 8)?,
            waiters: map.atomic(offset + 12)?,
        })
    }

    /// A word in its own private (anonymous shared) page: for tests and in-process use.
    pub fn standalone() -> Result<SeqWord, WaitError> {
        let map = Arc::new(Mapping::anonymous(4096)?);
        SeqWord::at(&map, 0)
    }

    /// The current value (Acquire).
    #[inline]
    pub fn load(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// Publishes `v` and wakes sleepers if there are any (no system call otherwise).
    #[inline]
    pub fn publish(&self, v: u64) {
        self.value.store(v, Ordering::SeqCst);
        self.wake_if_waiting();
    }

    /// Adds `delta` to the value (for counters several threads or both sides bump), wakes
    /// sleepers if any, and returns the new value.
    #[inline]
    pub fn publish_add(&self, delta: u64) -> u64 {
        let new = self
            .value
            .fetch_add(delta, Ordering::SeqCst)
            .wrapping_add(delta);
        self.wake_if_waiting();
        new
    }

    /// Raises the value to at least `v` (for out-of-order completions); wakes sleepers if any.
    #[inline]
    pub fn publish_max(&self, v: u64) {
        self.value.fetch_max(v, Ordering::SeqCst);
        self.wake_if_waiting();
    }

    /// Publishes `new` only if the value is still `current` (e.g. a sticky error: only the first
    /// one sticks). Returns the value found when it was not `current`.
    pub fn compare_publish(&self, current: u64, new: u64) -> Result<(), u64> {
        self.value
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)?;
        self.wake_if_waiting();
        Ok(())
    }

    #[inline]
    fn wake_if_waiting(&self) {
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake_all();
        }
    }

    /// Wakes every sleeper unconditionally (e.g. after marking a session closed).
    pub fn wake_all(&self) {
        self.futex.fetch_add(1, Ordering::SeqCst);
        // A failing FUTEX_WAKE (only possible with a bad address, which `at` excludes) leaves
        // sleepers to their slice timeout, so there is nothing better to do with the error.
        let _ = futex_wake(&self.futex, u32::MAX);
    }

    /// True when some thread has announced it is sleeping (or about to) on this word.
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Waits until `ready(value)` holds; returns that value.
    pub fn wait_until(
        &self,
        ready: impl FnMut(u64) -> bool,
        policy: &WaitPolicy,
    ) -> Result<u64, WaitError> {
        self.wait_until_or(ready, policy, || false)
    }

    /// [`SeqWord::wait_until_or`] with `spin`'s adapted budget (and what the wait took
    /// recorded in it).
    pub fn wait_adaptive(
        &self,
        ready: impl FnMut(u64) -> bool,
        spin: &mut AdaptiveSpin,
        cancelled: impl Fn() -> bool,
    ) -> Result<u64, WaitError> {
        let policy = spin.next_policy();
        let start = Instant::now();
        let r = self.wait_until_or(ready, &policy, cancelled);
        spin.record(start.elapsed());
        r
    }

    /// Waits until `ready(value)` holds, giving up with [`WaitError::Cancelled`] when
    /// `cancelled()` returns true (checked after the spin and after every sleep slice).
    pub fn wait_until_or(
        &self,
        mut ready: impl FnMut(u64) -> bool,
        policy: &WaitPolicy,
        cancelled: impl Fn() -> bool,
    ) -> Result<u64, WaitError> {
        let v = self.load();
        if ready(v) {
            return Ok(v);
        }
        let start = Instant::now();
        let deadline = policy.timeout.map(|t| start + t);
        if !policy.spin.is_zero() {
            let mut i = 0u32;
            loop {
                std::hint::spin_loop();
                let v = self.load();
                if ready(v) {
                    return Ok(v);
                }
                i = i.wrapping_add(1);
                // Reading the clock costs ~20 ns; every 32 spins keeps it a small fraction.
                if i & 31 == 0 {
                    let spun = start.elapsed();
                    if spun >= policy.spin {
                        break;
                    }
                    if spun >= PURE_SPIN {
                        // More spinners than cores (tenant, broker and worker on two): let
                        // the thread that will publish run here instead of waiting for our
                        // time slice to end.
                        std::thread::yield_now();
                    }
                }
            }
        }
        loop {
            if cancelled() {
                return Err(WaitError::Cancelled);
            }
            let mut sleep = policy.slice.max(Duration::from_micros(1));
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(WaitError::TimedOut);
                }
                sleep = sleep.min(d - now);
            }
            let f0 = self.futex.load(Ordering::SeqCst);
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let v = self.value.load(Ordering::SeqCst);
            if ready(v) {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return Ok(v);
            }
            let r = futex_wait(&self.futex, f0, Some(sleep));
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            r?;
            let v = self.load();
            if ready(v) {
                return Ok(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_wait_across_threads() {
        let w = SeqWord::standalone().unwrap();
        for spin in [Duration::ZERO, DEFAULT_SPIN] {
            let w2 = w.clone();
            let base = w.load();
            let t = std::thread::spawn(move || {
                let policy = WaitPolicy::with_spin(spin);
                w2.wait_until(|v| v >= base + 3, &policy).unwrap()
            });
            std::thread::sleep(Duration::from_millis(5));
            w.publish_add(1);
            w.publish_add(1);
            w.publish_add(1);
            assert_eq!(t.join().unwrap(), base + 3);
        }
        assert!(!w.has_waiters());
    }

    #[test]
    fn timeout_and_cancel() {
        let w = SeqWord::standalone().unwrap();
        let p = WaitPolicy {
            spin: Duration::from_micros(5),
            timeout: Some(Duration::from_millis(3)),
            slice: Duration::from_millis(1),
        };
        assert!(matches!(
            w.wait_until(|v| v == 1, &p),
            Err(WaitError::TimedOut)
        ));
        let p = WaitPolicy::with_spin(Duration::ZERO);
        assert!(matches!(
            w.wait_until_or(|v| v == 1, &p, || true),
            Err(WaitError::Cancelled)
        ));
        w.publish_max(9);
        w.publish_max(4);
        assert_eq!(w.load(), 9);
        assert_eq!(w.compare_publish(0, 5), Err(9));
        assert_eq!(w.compare_publish(9, 5), Ok(()));
        assert_eq!(w.load(), 5);
    }

    #[test]
    fn adaptive_spin_stops_when_it_never_pays_and_comes_back_when_it_does() {
        let mut a = AdaptiveSpin::new(WaitPolicy::default());
        assert!(a.is_spinning());
        for _ in 0..MISSES_TO_SLEEP {
            assert_eq!(a.next_policy().spin, DEFAULT_SPIN);
            a.record(DEFAULT_SPIN * 5);
        }
        assert!(!a.is_spinning());
        let spins = (0..PROBE_EVERY)
            .filter(|_| !a.next_policy().spin.is_zero())
            .count();
        assert_eq!(spins, 1, "one probe in {PROBE_EVERY} waits spins");
        a.record(DEFAULT_SPIN / 4);
        assert!(a.is_spinning(), "a hit restores spinning");

        // End to end: a word published long after each wait began.
        let w = SeqWord::standalone().unwrap();
        let mut a = AdaptiveSpin::new(WaitPolicy::default());
        for i in 1..=MISSES_TO_SLEEP as u64 {
            let w2 = w.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                w2.publish(i);
            });
            assert_eq!(w.wait_adaptive(|v| v == i, &mut a, || false).unwrap(), i);
            t.join().unwrap();
        }
        assert!(!a.is_spinning());
        // Already there: a hit.
        assert_eq!(
            w.wait_adaptive(|_| true, &mut a, || false).unwrap(),
            MISSES_TO_SLEEP as u64
        );
        assert!(a.is_spinning());
    }
}
