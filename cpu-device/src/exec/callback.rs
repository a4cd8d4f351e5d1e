//! The host-callback thread: host functions (`cuLaunchHostFunc`), stream callbacks
//! (`cuStreamAddCallback`), stream memory-operation waits ([`super::value_wait`]) and the copies,
//! memsets, event records and stream waits that must complete after one of them run here, so that
//! the executor thread never sleeps until a host function's modelled start nor for a word in
//! memory (CUDA, too, runs host functions on a driver-internal thread).
//!
//! The executor hands over ([`Executor::defer`]) an op it has already placed on the timeline: its
//! modelled span is in its [`OpState`] ([`OpState::plan`]). This thread (`gpushare-hostfn`, one
//! per executor) runs the deferred ops one at a time in order of modelled start, then submission:
//! with pacing it sleeps until the earliest start (waking when an earlier op arrives), runs the op
//! and publishes its completion. That order respects every dependency between deferred ops: an op
//! that depends on another (same stream, event wait, legacy-stream barrier) is modelled to start no
//! earlier than that one ends, which is no earlier than it starts. Host functions of independent
//! streams have no mandated order in CUDA either. A stream wait whose condition does not hold is
//! parked instead of run to the end: the ops that depend on it (each deferred op carries the
//! pending ops it must follow, [`Deferred::after`]) are passed over, the others run, and with
//! nothing to run the thread sleeps on a parked wait's word (see [`super::value_wait`]).
//!
//! [`Pending`] is the executor's view of the deferred ops not yet done: which of them a new op
//! depends on. A kernel that depends on one waits for it on the executor thread (its modelled
//! duration comes from running it, and the timeline is built in submission order); copies,
//! memsets, event records, stream waits and host functions are deferred behind it instead (their
//! cost is known beforehand). A deferred copy or memset that fails poisons its context when it
//! runs.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use super::op::OpState;
use super::timing::{ModelOp, Nanos, StreamClass};
use super::value_wait::{self, Parked, ValueWait, RECHECK};
use super::work::{run_copy, run_memset, CopyWork, HostFn, MemsetWork, SendPtr, StreamCallback};
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};

/// What a deferred op runs before it completes.
pub(crate) enum Action {
    /// A host function and its user data.
    HostFn(HostFn, SendPtr),
    /// A stream callback: stream handle, user data, and the status it is told.
    Callback(StreamCallback, SendPtr, SendPtr, u32),
    /// A copy behind a pending host function.
    Copy(CopyWork),
    /// A memset behind a pending host function.
    Memset(MemsetWork),
    /// A stream wait on a word in memory.
    WaitValue(ValueWait),
    /// Nothing: the op (an event record, a stream wait, a skipped op) only completes.
    Complete,
}

/// An op handed to the host-callback thread.
pub(crate) struct Deferred {
    pub state: Arc<OpState>,
    /// The op's context (poisoned by a failing copy or memset).
    pub ctx: Arc<Context>,
    /// The error it completes with (the context's sticky error when it was skipped).
    pub error: Option<CuError>,
    pub action: Action,
    /// The deferred ops, pending when it was deferred, that it must follow.
    pub after: Vec<Arc<OpState>>,
}

/// What the host-callback thread does next.
enum Next {
    /// Run a deferred op.
    Run(Deferred),
    /// Publish parked waits now complete.
    Settled(Vec<Arc<OpState>>),
    /// Sleep on a parked wait's word (holding the value seen) for at most this long.
    Sleep(ValueWait, u32, Duration),
}

/// The host-callback thread's queue.
#[derive(Default)]
pub(crate) struct CallbackQueue {
    /// Deferred ops by (modelled start, sequence number).
    ops: BTreeMap<(Nanos, u64), Deferred>,
    /// The op being run: (context, sequence number).
    running: Option<(u64, u64)>,
    /// Stream waits whose condition did not hold yet.
    parked: Vec<Parked>,
    /// The address of the word the thread sleeps on (a parked wait's), to wake it for new work.
    sleeping_on: Option<u64>,
    /// The thread waits on the condition variable (no op may run now): a new op must notify it.
    /// A busy thread looks at the queue again anyway, so the executor need not wake it for
    /// every op it defers (a system call each, and a thread woken to contend for this lock).
    idle: bool,
}

impl CallbackQueue {
    /// Whether a deferred op of context `ctx` submitted no later than `seq` is not done yet.
    fn has_pending(&self, ctx: u64, seq: u64) -> bool {
        self.running.is_some_and(|(c, s)| c == ctx && s <= seq)
            || self
                .ops
                .values()
                .any(|d| d.ctx.id() == ctx && d.state.seq <= seq)
            || self
                .parked
                .iter()
                .any(|p| p.ctx.id() == ctx && p.state.seq <= seq)
    }

    /// The key of the first op (by modelled start) whose dependencies are done, or, when none may
    /// run now, the modelled start to wake up at (with pacing). An op can only depend on earlier
    /// keys, so with no wait parked the first op is always ready.
    fn first_ready(&self, now: Nanos, pacing: bool) -> Result<(Nanos, u64), Option<Nanos>> {
        for (&key, d) in &self.ops {
            if d.after.iter().any(|a| !a.is_done()) {
                continue;
            }
            if pacing && key.0 > now {
                return Err(Some(key.0));
            }
            return Ok(key);
        }
        Err(None)
    }
}

/// A deferred op the executor has not seen done yet.
struct Relayed {
    ctx: u64,
    stream: u64,
    class: StreamClass,
    state: Arc<OpState>,
}

/// The executor's deferred ops that may still be pending (executor-thread state).
#[derive(Default)]
pub(crate) struct Pending(Vec<Relayed>);

impl Pending {
    /// Remembers that the op modelled as `m` was deferred.
    pub(crate) fn push(&mut self, m: &ModelOp, state: &Arc<OpState>) {
        self.0.push(Relayed {
            ctx: m.ctx,
            stream: m.stream,
            class: m.class,
            state: Arc::clone(state),
        });
    }

    /// The deferred ops not yet done that an op modelled as `m` must follow: earlier ops of its
    /// stream, those behind a legacy-stream barrier, and `target` (the event record a stream wait
    /// waits for) when that is not done. Of each stream only the latest is named: the deferred ops
    /// of a stream complete in order (each follows the one before), and a long run of them (a
    /// stream of waits, copies and writes) would otherwise carry lists quadratic in its length.
    pub(crate) fn blockers(
        &mut self,
        m: &ModelOp,
        target: Option<&Arc<OpState>>,
    ) -> Vec<Arc<OpState>> {
        self.0.retain(|r| !r.state.is_done());
        let mut latest: Vec<&Relayed> = Vec::new();
        // Newest first (the ops were pushed in submission order).
        for r in self.0.iter().rev() {
            let depends = r.stream == m.stream || (r.ctx == m.ctx && barrier(m.class, r.class));
            if depends && !latest.iter().any(|l| l.stream == r.stream) {
                latest.push(r);
            }
        }
        let mut v: Vec<Arc<OpState>> = latest.iter().map(|r| Arc::clone(&r.state)).collect();
        if let Some(t) = target.filter(|t| !t.is_done()) {
            v.push(Arc::clone(t));
        }
        v
    }
}

/// Whether an op on a stream of class `op` waits for earlier work of the same context on a stream
/// of class `earlier` (the legacy default stream's implicit synchronisation).
fn barrier(op: StreamClass, earlier: StreamClass) -> bool {
    match op {
        StreamClass::Legacy => earlier != StreamClass::NonBlocking,
        StreamClass::Blocking => earlier == StreamClass::Legacy,
        StreamClass::NonBlocking => false,
    }
}

impl Executor {
    /// Hands `d` (its span already planned) to the host-callback thread.
    pub(crate) fn defer(&self, d: Deferred) {
        if !self.ensure_callback_thread() {
            // No thread: run it here, as the executor did before there was one (a stream wait
            // then blocks the executor).
            if self.pacing {
                self.sleep_until(d.state.span().start);
            }
            if let Some(p) = self.run_deferred(d) {
                self.wait_inline(&p);
            }
            return;
        }
        let key = (d.state.span().start, d.state.seq);
        // An op behind another that is not done waits for the callback thread to finish that one
        // (only it completes deferred ops), so a thread asleep on a parked wait's word need not
        // be woken for it: a streamed copy's run queues three ops a piece behind such a wait.
        let ready = d.after.iter().all(|a| a.is_done());
        let (sleeping_on, idle) = match self.callbacks.lock() {
            Ok(mut q) => {
                q.ops.insert(key, d);
                (q.sleeping_on, q.idle)
            }
            Err(_) => {
                d.state.complete(Some(CuError::UNKNOWN));
                (None, false)
            }
        };
        if idle {
            self.callbacks_cv.notify_one();
        }
        if let Some(addr) = sleeping_on.filter(|_| ready) {
            value_wait::wake(&self.memory, addr);
        }
    }

    /// Wakes the host-callback thread to look at its parked waits again (a context is being
    /// released).
    pub(crate) fn nudge_callbacks(&self) {
        let sleeping_on = self.callbacks.lock().ok().and_then(|q| q.sleeping_on);
        self.callbacks_cv.notify_one();
        if let Some(addr) = sleeping_on {
            value_wait::wake(&self.memory, addr);
        }
    }

    fn ensure_callback_thread(&self) -> bool {
        self.start_once(
            &self.callback_worker,
            "gpushare-hostfn",
            Executor::run_callbacks,
        )
    }

    fn run_callbacks(&self) {
        Self::mark_internal_thread();
        while let Some(next) = self.next_deferred() {
            match next {
                Next::Run(d) => self.run_next(d),
                Next::Settled(done) => done.iter().for_each(|s| self.publish(s)),
                Next::Sleep(wait, seen, timeout) => wait.sleep(&self.memory, seen, timeout),
            }
        }
    }

    /// Runs `d` (taken from the queue), parks it if it is a stream wait that must wait, and
    /// publishes its completion otherwise.
    fn run_next(&self, d: Deferred) {
        let state = Arc::clone(&d.state);
        let parked = self.run_deferred(d);
        let waits = parked.is_some();
        match self.callbacks.lock() {
            Ok(mut q) => {
                q.running = None;
                q.parked.extend(parked);
            }
            Err(_) => {
                if waits {
                    state.complete(Some(CuError::UNKNOWN));
                }
            }
        }
        if !state.is_done() {
            return;
        }
        self.publish(&state);
    }

    /// What to do next: publish the parked waits that are over, run the first deferred op that
    /// may run (with pacing: once the clock reaches its modelled start), or sleep, on a parked
    /// wait's word (at most [`RECHECK`]) if there is one, else until an op arrives or is due.
    fn next_deferred(&self) -> Option<Next> {
        let mut q = self.callbacks.lock().ok()?;
        q.sleeping_on = None;
        loop {
            let (settled, sleep_on) = self.settle_parked(&mut q);
            if !settled.is_empty() {
                return Some(Next::Settled(settled));
            }
            let now = self.now_ns();
            let due = match q.first_ready(now, self.pacing) {
                Ok(key) => {
                    let d = q.ops.remove(&key)?;
                    q.running = Some((d.ctx.id(), d.state.seq));
                    return Some(Next::Run(d));
                }
                Err(due) => due.map(|start| Duration::from_nanos(start.saturating_sub(now))),
            };
            if let Some((wait, seen)) = sleep_on {
                q.sleeping_on = Some(wait.addr);
                let timeout = due.map_or(RECHECK, |t| t.min(RECHECK));
                return Some(Next::Sleep(wait, seen, timeout));
            }
            q.idle = true;
            q = match due {
                None => self.callbacks_cv.wait(q).ok()?,
                Some(t) => self.callbacks_cv.wait_timeout(q, t).ok()?.0,
            };
            q.idle = false;
        }
    }

    /// Checks every parked wait: returns those now complete (to publish once the queue is
    /// unlocked) and a wait still parked with the value seen at its word, to sleep on.
    fn settle_parked(
        &self,
        q: &mut CallbackQueue,
    ) -> (Vec<Arc<OpState>>, Option<(ValueWait, u32)>) {
        let mut settled = Vec::new();
        let mut sleep_on = None;
        q.parked.retain(|p| match self.settle_wait(p) {
            Some(seen) => {
                sleep_on.get_or_insert((p.wait, seen));
                true
            }
            None => {
                settled.push(Arc::clone(&p.state));
                false
            }
        });
        (settled, sleep_on)
    }

    /// Runs `d`; a stream wait whose condition does not hold yet comes back, to be parked. Work
    /// of a context poisoned since it was deferred (a failed copy, a cancelled wait) is skipped, as
    /// the executor skips it; stream callbacks still run.
    fn run_deferred(&self, d: Deferred) -> Option<Parked> {
        let Deferred {
            state,
            ctx,
            error,
            action,
            after: _,
        } = d;
        let poisoned = match action {
            Action::Callback(..) | Action::Complete => None,
            _ => ctx.sticky_error(),
        };
        if let Some(e) = poisoned {
            state.complete(Some(e));
            return None;
        }
        if let Action::WaitValue(wait) = action {
            let p = Parked { state, ctx, wait };
            return self.settle_wait(&p).map(|_| p);
        }
        let run = catch_unwind(AssertUnwindSafe(|| match action {
            Action::HostFn(f, data) => {
                // SAFETY: the caller of cuLaunchHostFunc provided a valid function and user data.
                unsafe { f(data.0) };
                Ok(())
            }
            Action::Callback(f, handle, data, status) => {
                // SAFETY: the caller of cuStreamAddCallback provided a valid callback and data.
                unsafe { f(handle.0, status, data.0) };
                Ok(())
            }
            Action::Copy(c) => run_copy(&self.memory, &c),
            Action::Memset(s) => run_memset(&self.memory, &s),
            Action::Complete | Action::WaitValue(_) => Ok(()),
        }));
        let failed = run.unwrap_or_else(|_| {
            tracing::error!("internal error running deferred op {}", state.seq);
            Err(CuError::UNKNOWN)
        });
        if let Err(e) = failed {
            ctx.poison(e);
        }
        state.complete(error.or(failed.err()));
        None
    }

    /// Waits until no deferred op (host function, or what waits on one) of context `ctx` that was
    /// submitted up to sequence number `seq` is pending.
    pub(crate) fn wait_deferred(&self, ctx: u64, seq: u64) -> CuResult {
        // A poisoned queue (a panic in this module while it was held) would stay "pending"
        // forever: an error instead of a hang.
        let pending = || {
            self.callbacks
                .lock()
                .map(|q| q.has_pending(ctx, seq))
                .map_err(|_| CuError::UNKNOWN)
        };
        if Self::on_executor_thread() {
            return if pending()? {
                Err(CuError::NOT_PERMITTED)
            } else {
                Ok(())
            };
        }
        let _general = self.general_wait();
        let mut g = self.done_lock.lock().map_err(|_| CuError::UNKNOWN)?;
        while pending()? {
            g = self.done_cv.wait(g).map_err(|_| CuError::UNKNOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StreamClass::{Blocking, Legacy, NonBlocking};

    fn model(ctx: u64, stream: u64, class: StreamClass) -> ModelOp {
        ModelOp {
            ctx,
            stream,
            class,
            submit: 0,
            engine: super::super::timing::EngineUse::None,
            duration: 0,
            after: 0,
        }
    }

    #[test]
    fn legacy_barriers() {
        assert!(barrier(Legacy, Legacy) && barrier(Legacy, Blocking));
        assert!(!barrier(Legacy, NonBlocking));
        assert!(barrier(Blocking, Legacy) && !barrier(Blocking, Blocking));
        assert!(!barrier(NonBlocking, Legacy) && !barrier(NonBlocking, NonBlocking));
    }

    #[test]
    fn blockers_are_the_dependencies_not_yet_done() {
        let mut p = Pending::default();
        let a = Arc::new(OpState::new(1));
        let b = Arc::new(OpState::new(2));
        p.push(&model(1, 10, NonBlocking), &a);
        p.push(&model(1, 11, Blocking), &b);
        // Same stream.
        assert_eq!(p.blockers(&model(1, 10, NonBlocking), None).len(), 1);
        // Another non-blocking stream: independent.
        assert!(p.blockers(&model(1, 12, NonBlocking), None).is_empty());
        // The legacy stream waits for the blocking stream's host function, not another context's.
        assert_eq!(p.blockers(&model(1, 1, Legacy), None)[0].seq, 2);
        assert!(p.blockers(&model(2, 1, Legacy), None).is_empty());
        // A stream wait on a pending record.
        assert_eq!(p.blockers(&model(1, 12, NonBlocking), Some(&a)).len(), 1);
        a.complete(None);
        assert!(p.blockers(&model(1, 10, NonBlocking), Some(&a)).is_empty());
        assert_eq!(p.0.len(), 1);
    }

    #[test]
    fn blockers_name_the_latest_pending_op_of_each_stream() {
        let mut p = Pending::default();
        let ops: Vec<Arc<OpState>> = (1..=4).map(|s| Arc::new(OpState::new(s))).collect();
        p.push(&model(1, 10, Blocking), &ops[0]);
        p.push(&model(1, 11, Blocking), &ops[1]);
        p.push(&model(1, 10, Blocking), &ops[2]);
        p.push(&model(1, 11, Blocking), &ops[3]);
        let seqs = |v: Vec<Arc<OpState>>| v.iter().map(|o| o.seq).collect::<Vec<_>>();
        assert_eq!(seqs(p.blockers(&model(1, 10, Blocking), None)), [3]);
        assert_eq!(seqs(p.blockers(&model(1, 1, Legacy), None)), [4, 3]);
    }
}
