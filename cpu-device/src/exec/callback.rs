//! The host-callback thread: host functions (`cuLaunchHostFunc`), stream callbacks
//! (`cuStreamAddCallback`) and the copies, memsets, event records and stream waits that must
//! complete after one of them run here, so that the executor thread never sleeps until a host
//! function's modelled start (CUDA, too, runs host functions on a driver-internal thread).
//!
//! The executor hands over ([`Executor::defer`]) an op it has already placed on the timeline: its
//! modelled span is in its [`OpState`] ([`OpState::plan`]). This thread (`gpushare-hostfn`, one
//! per executor) runs the deferred ops one at a time in order of modelled start, then submission:
//! with pacing it sleeps until the earliest start (waking when an earlier op arrives), runs the op
//! and publishes its completion. That order respects every dependency between deferred ops: an op
//! that depends on another (same stream, event wait, legacy-stream barrier) is modelled to start no
//! earlier than that one ends, which is no earlier than it starts. Host functions of independent
//! streams have no mandated order in CUDA either.
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
}

/// The host-callback thread's queue.
#[derive(Default)]
pub(crate) struct CallbackQueue {
    /// Deferred ops by (modelled start, sequence number).
    ops: BTreeMap<(Nanos, u64), Deferred>,
    /// The op being run: (context, sequence number).
    running: Option<(u64, u64)>,
}

impl CallbackQueue {
    /// Whether a deferred op of context `ctx` submitted no later than `seq` is not done yet.
    fn has_pending(&self, ctx: u64, seq: u64) -> bool {
        self.running.is_some_and(|(c, s)| c == ctx && s <= seq)
            || self
                .ops
                .values()
                .any(|d| d.ctx.id() == ctx && d.state.seq <= seq)
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
    /// waits for) when that is not done.
    pub(crate) fn blockers(
        &mut self,
        m: &ModelOp,
        target: Option<&Arc<OpState>>,
    ) -> Vec<Arc<OpState>> {
        self.0.retain(|r| !r.state.is_done());
        let mut v: Vec<Arc<OpState>> = self
            .0
            .iter()
            .filter(|r| r.stream == m.stream || (r.ctx == m.ctx && barrier(m.class, r.class)))
            .map(|r| Arc::clone(&r.state))
            .collect();
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
            // No thread: run it here, as the executor did before there was one.
            if self.pacing {
                self.sleep_until(d.state.span().start);
            }
            self.run_deferred(d);
            return;
        }
        let key = (d.state.span().start, d.state.seq);
        match self.callbacks.lock() {
            Ok(mut q) => {
                q.ops.insert(key, d);
            }
            Err(_) => d.state.complete(Some(CuError::UNKNOWN)),
        }
        self.callbacks_cv.notify_one();
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
        while let Some(d) = self.next_deferred() {
            let state = Arc::clone(&d.state);
            self.run_deferred(d);
            if let Ok(mut q) = self.callbacks.lock() {
                q.running = None;
            }
            self.publish(&state);
        }
    }

    /// The next deferred op to run (with pacing: once the clock reaches its modelled start).
    fn next_deferred(&self) -> Option<Deferred> {
        let mut q = self.callbacks.lock().ok()?;
        loop {
            let sleep = match q.ops.first_key_value() {
                None => None,
                Some((&(start, _), _)) => {
                    let now = self.now_ns();
                    if !self.pacing || now >= start {
                        let (_, d) = q.ops.pop_first()?;
                        q.running = Some((d.ctx.id(), d.state.seq));
                        return Some(d);
                    }
                    Some(Duration::from_nanos(start - now))
                }
            };
            q = match sleep {
                None => self.callbacks_cv.wait(q).ok()?,
                Some(t) => self.callbacks_cv.wait_timeout(q, t).ok()?.0,
            };
        }
    }

    fn run_deferred(&self, d: Deferred) {
        let Deferred {
            state,
            ctx,
            error,
            action,
        } = d;
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
            Action::Complete => Ok(()),
        }));
        let failed = run.unwrap_or_else(|_| {
            tracing::error!("internal error running deferred op {}", state.seq);
            Err(CuError::UNKNOWN)
        });
        if let Err(e) = failed {
            ctx.poison(e);
        }
        state.complete(error.or(failed.err()));
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
}
