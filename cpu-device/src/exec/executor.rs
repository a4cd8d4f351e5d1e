//! The executor: one thread per device takes every queued operation in global submission order,
//! computes its modelled start and end with the [`Timeline`], and publishes completion.
//!
//! Submission order is always a valid CUDA order (stream FIFO, legacy-stream barriers and event
//! waits all point backwards), so the functional result is right without a dependency graph; the
//! timing model supplies the overlap a GPU would have. Host functions, stream callbacks and stream
//! memory-operation waits are handed to the host-callback thread ([`super::callback`]) and run
//! there at their modelled start with pacing; device work that depends on one not yet done (same
//! stream, an event recorded after it, a legacy-stream barrier) waits for it, everything else goes
//! on (a kernel waits on this thread, so a kernel behind a stream wait holds back every stream's
//! later work until the wait is over). Completion is tracked per op ([`OpState`]); waiters block
//! on a condition variable, and with pacing (`GPUSHARE_CPU_PACING=1`) an op is only complete once
//! the driver clock has also passed its modelled end.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::callback::{Action, Deferred, Pending};
use super::op::OpState;
use super::stream::Stream;
use super::timing::{self, EngineUse, KernelCost, ModelOp, Nanos, Span, Timeline};
use super::work::{run_copy, run_memset, CopyWork, KernelWork, MemsetWork, Work};
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};

/// A thread counted among the executor's general waiters ([`Executor::general_wait`]).
pub(crate) struct GeneralWait<'a>(&'a Executor);

impl Drop for GeneralWait<'_> {
    fn drop(&mut self) {
        self.0.general_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) struct Op {
    state: Arc<OpState>,
    ctx: Option<Arc<Context>>,
    stream: Option<Arc<Stream>>,
    submit: Nanos,
    work: Work,
}

/// What a wait waits for beyond functional completion (with pacing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// The op's modelled end.
    End,
    /// The latest modelled end of its context's work up to it.
    Horizon,
    /// Functional completion only.
    Done,
}

thread_local! {
    static ON_EXECUTOR: Cell<bool> = const { Cell::new(false) };
}

impl Executor {
    /// The driver clock, ns.
    pub(crate) fn now_ns(&self) -> Nanos {
        self.clock.now_ns()
    }

    /// Sleeps until the driver clock reaches `t`.
    pub(crate) fn sleep_until(&self, t: Nanos) {
        loop {
            let now = self.now_ns();
            if now >= t {
                return;
            }
            std::thread::sleep(Duration::from_nanos(t - now));
        }
    }

    fn enqueue(
        &self,
        ctx: Option<&Arc<Context>>,
        stream: Option<&Arc<Stream>>,
        work: Work,
    ) -> CuResult<Arc<OpState>> {
        let submit = self.now_ns();
        let mut q = self.queue.lock().map_err(|_| CuError::UNKNOWN)?;
        let state = Arc::new(OpState::new(q.next_seq));
        q.next_seq += 1;
        if let Some(s) = stream {
            *s.last.lock().map_err(|_| CuError::UNKNOWN)? = Some(Arc::clone(&state));
        }
        if let Some(c) = ctx {
            let cs = self.ctx_streams(c.id());
            *cs.last.lock().map_err(|_| CuError::UNKNOWN)? = Some(Arc::clone(&state));
        }
        q.ops.push_back(Op {
            state: Arc::clone(&state),
            ctx: ctx.cloned(),
            stream: stream.cloned(),
            submit,
            work,
        });
        let idle = q.idle;
        drop(q);
        if idle {
            self.queue_cv.notify_one();
        }
        self.ensure_thread()?;
        Ok(state)
    }

    /// Appends `work` to `stream` of `ctx`.
    pub(crate) fn submit(
        &self,
        ctx: &Arc<Context>,
        stream: &Arc<Stream>,
        work: Work,
    ) -> CuResult<Arc<OpState>> {
        self.enqueue(Some(ctx), Some(stream), work)
    }

    /// Queues a timeline clean-up (no context, no stream).
    pub(crate) fn submit_forget(&self, stream: Option<u64>, ctx: Option<u64>) {
        let _ = self.enqueue(None, None, Work::Forget { stream, ctx });
    }

    /// Starts `run` on a thread named `name` the first time `started` is asked; whether it
    /// runs.
    pub(super) fn start_once(
        &self,
        started: &std::sync::OnceLock<bool>,
        name: &str,
        run: fn(&Executor),
    ) -> bool {
        *started.get_or_init(|| {
            let Some(this) = self.this.upgrade() else {
                return false;
            };
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&this))
                .map_err(|e| tracing::error!("cannot start the {name} thread: {e}"))
                .is_ok()
        })
    }

    fn ensure_thread(&self) -> CuResult {
        if self.start_once(&self.worker, "gpushare-exec", Executor::run) {
            Ok(())
        } else {
            Err(CuError::OPERATING_SYSTEM)
        }
    }

    /// True on the executor or the host-callback thread (host functions run there and must not
    /// wait for device work).
    pub fn on_executor_thread() -> bool {
        ON_EXECUTOR.with(Cell::get)
    }

    /// Marks the calling thread as the executor's or the host-callback thread.
    pub(crate) fn mark_internal_thread() {
        ON_EXECUTOR.with(|c| c.set(true));
    }

    /// Waits until every op of `blockers` is done (the executor, before device work that depends
    /// on a deferred host function).
    fn wait_for(&self, blockers: &[Arc<OpState>]) {
        let _general = self.general_wait();
        let Ok(mut g) = self.done_lock.lock() else {
            return;
        };
        while blockers.iter().any(|b| !b.is_done()) {
            g = match self.done_cv.wait(g) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
    }

    /// Counts the calling thread among the general waiters (woken by every completion) until
    /// the guard drops. The fence pairs with [`Executor::publish`]'s.
    pub(crate) fn general_wait(&self) -> GeneralWait<'_> {
        self.general_waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        GeneralWait(self)
    }

    /// Wakes the threads waiting for `op`, now done, and the general waiters; none if there are
    /// none. The completer's store of `done` and the waiter's count are ordered against each
    /// other's loads by `SeqCst` fences (Dekker), so a waiter either sees the op done before it
    /// sleeps or is seen here and woken.
    pub(crate) fn publish(&self, op: &OpState) {
        fence(Ordering::SeqCst);
        if op.is_watched() || self.general_waiters.load(Ordering::SeqCst) != 0 {
            // Take the lock so that a waiter between its check and its wait is not missed.
            drop(self.done_lock.lock());
            self.done_cv.notify_all();
        }
    }

    /// Waits until `op` is done and, with pacing, until the driver clock reaches the modelled time
    /// `until` names.
    pub(crate) fn wait(&self, op: &OpState, until: Until) -> CuResult {
        if Self::on_executor_thread() {
            if op.is_done() {
                return Ok(());
            }
            tracing::error!("a host function or stream callback waited for device work (CUDA forbids API calls there)");
            return Err(CuError::NOT_PERMITTED);
        }
        let watch = op.watch();
        let mut g = self.done_lock.lock().map_err(|_| CuError::UNKNOWN)?;
        while !op.is_done() {
            g = self.done_cv.wait(g).map_err(|_| CuError::UNKNOWN)?;
        }
        drop((g, watch));
        if self.pacing {
            match until {
                Until::End => self.sleep_until(op.span().end),
                Until::Horizon => self.sleep_until(op.horizon()),
                Until::Done => {}
            }
        }
        Ok(())
    }

    /// Whether `op` is complete as seen from outside (done, and with pacing past its modelled end).
    pub(crate) fn is_complete(&self, op: &OpState) -> bool {
        op.is_done() && (!self.pacing || self.now_ns() >= op.span().end)
    }

    /// Waits for the last op submitted to `stream`.
    pub fn synchronize_stream(&self, stream: &Stream) -> CuResult {
        match stream.last_op() {
            Some(op) => self.wait(&op, Until::End),
            None => Ok(()),
        }
    }

    /// `NOT_READY` while `stream` has pending work.
    pub fn query_stream(&self, stream: &Stream) -> CuResult {
        match stream.last_op() {
            Some(op) if !self.is_complete(&op) => Err(CuError::NOT_READY),
            _ => Ok(()),
        }
    }

    fn run(&self) {
        Self::mark_internal_thread();
        let mut timeline = Timeline::new();
        let mut pending = Pending::default();
        loop {
            let op = {
                let Ok(mut q) = self.queue.lock() else { return };
                loop {
                    if let Some(op) = q.ops.pop_front() {
                        break op;
                    }
                    q.idle = true;
                    q = match self.queue_cv.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                    q.idle = false;
                }
            };
            let state = Arc::clone(&op.state);
            let result = catch_unwind(AssertUnwindSafe(|| {
                self.execute(&mut timeline, &mut pending, op)
            }));
            if result.is_err() {
                tracing::error!("internal error while executing op {}", state.seq);
                if !state.is_done() {
                    state.finish(Span::default(), 0, Some(CuError::UNKNOWN));
                }
            }
            self.publish(&state);
        }
    }

    fn execute(&self, timeline: &mut Timeline, pending: &mut Pending, op: Op) {
        let Op {
            state,
            ctx,
            stream,
            submit,
            work,
        } = op;
        let (Some(ctx), Some(stream)) = (ctx, stream) else {
            if let Work::Forget { stream, ctx } = work {
                if let Some(s) = stream {
                    timeline.forget_stream(s);
                }
                if let Some(c) = ctx {
                    timeline.forget_context(c);
                }
            }
            let span = Span {
                start: submit,
                end: submit,
            };
            state.finish(span, 0, None);
            return;
        };
        let mut m = ModelOp {
            ctx: ctx.id(),
            stream: stream.key,
            class: stream.class(),
            submit,
            engine: EngineUse::None,
            duration: 0,
            after: 0,
        };
        let target = match &work {
            Work::Wait(t) => {
                m.after = t.span().end;
                Some(t)
            }
            _ => None,
        };
        let blockers = pending.blockers(&m, target);
        let skipped = |ctx: &Context| {
            if ctx.is_active() {
                ctx.sticky_error()
            } else {
                Some(CuError::CONTEXT_IS_DESTROYED)
            }
        };
        // Kernels (whose modelled duration needs a run) and device work that depends on nothing
        // pending run here; copies and memsets behind a pending host function are deferred.
        let deferrable = matches!(work, Work::Copy(_) | Work::Memset(_)) && !blockers.is_empty();
        if matches!(work, Work::Kernel(_)) || (is_device_work(&work) && !deferrable) {
            self.wait_for(&blockers);
            let error = match skipped(&ctx) {
                Some(e) => Some(e),
                None => self.run_work(timeline, &mut m, &ctx, work),
            };
            let span = timeline.schedule(&m);
            state.finish(span, timeline.context_horizon(ctx.id()), error);
            return;
        }
        let error = skipped(&ctx);
        let action = self.deferred_action(&mut m, work, error, blockers.is_empty());
        let span = timeline.schedule(&m);
        let horizon = timeline.context_horizon(ctx.id());
        if matches!(action, Action::Complete) && blockers.is_empty() {
            state.finish(span, horizon, error);
            return;
        }
        state.plan(span, horizon);
        pending.push(&m, &state);
        self.defer(Deferred {
            state,
            ctx,
            error,
            action,
            after: blockers,
        });
    }

    /// What the host-callback thread does for `work` (not a kernel) when it is deferred, with the
    /// engine and duration of a copy or memset filled in; `error` is the context's sticky error.
    /// `ready`: nothing the op depends on is pending, so a stream wait whose condition holds
    /// already completes at once.
    fn deferred_action(
        &self,
        m: &mut ModelOp,
        work: Work,
        error: Option<CuError>,
        ready: bool,
    ) -> Action {
        match work {
            Work::WaitValue(w) if error.is_none() => {
                if ready && matches!(w.check(&self.memory), Ok(None)) {
                    Action::Complete
                } else {
                    Action::WaitValue(w)
                }
            }
            Work::HostFn(f, data) if error.is_none() => Action::HostFn(f, data),
            // Stream callbacks still run after an error, and are told about it.
            Work::Callback(f, handle, data) => {
                Action::Callback(f, handle, data, error.map_or(0, CuError::code))
            }
            Work::Copy(c) if error.is_none() => {
                (m.engine, m.duration) = self.copy_model(&c);
                Action::Copy(c)
            }
            Work::Memset(s) if error.is_none() => {
                (m.engine, m.duration) = self.memset_model(&s);
                Action::Memset(s)
            }
            _ => Action::Complete,
        }
    }

    fn copy_model(&self, c: &CopyWork) -> (EngineUse, Nanos) {
        let bytes = c.width.saturating_mul(c.height);
        timing::copy_cost(&self.profile.rates, c.kind, bytes, c.pinned)
    }

    fn memset_model(&self, s: &MemsetWork) -> (EngineUse, Nanos) {
        let bytes = s.width * u64::from(s.elem) * s.height;
        let duration = timing::memset_cost(&self.profile.rates, bytes);
        (EngineUse::Compute, duration)
    }

    /// Runs a kernel, copy or memset, filling in its engine and duration; returns its error (the
    /// context is poisoned by it).
    fn run_work(
        &self,
        timeline: &Timeline,
        m: &mut ModelOp,
        ctx: &Context,
        work: Work,
    ) -> Option<CuError> {
        let result = match work {
            Work::Kernel(k) => {
                m.engine = EngineUse::Compute;
                let start = timeline.peek_start(m);
                let run = catch_unwind(AssertUnwindSafe(|| self.run_kernel(&k, start)));
                let result = run.unwrap_or_else(|_| {
                    tracing::error!("internal error in the interpreter running `{}`", k.kernel);
                    Err(CuError::LAUNCH_FAILED)
                });
                match result {
                    Ok(cost) => {
                        m.duration = timing::kernel_duration(&self.profile, &cost);
                        Ok(())
                    }
                    Err(e) => {
                        m.duration = self.profile.rates.launch_latency_ns;
                        Err(e)
                    }
                }
            }
            Work::Copy(c) => {
                (m.engine, m.duration) = self.copy_model(&c);
                run_copy(&self.memory, &c)
            }
            Work::Memset(s) => {
                (m.engine, m.duration) = self.memset_model(&s);
                run_memset(&self.memory, &s)
            }
            _ => Ok(()),
        };
        let error = result.err();
        if let Some(e) = error {
            ctx.poison(e);
        }
        error
    }

    fn run_kernel(&self, k: &KernelWork, start: Nanos) -> CuResult<KernelCost> {
        let ptx = &k.module.ptx;
        let kernel = ptx.kernel(&k.kernel).ok_or(CuError::INVALID_HANDLE)?;
        let opts = gpushare_ptx::ExecOptions {
            worker_threads: self.worker_threads,
            time_source: gpushare_ptx::TimeSource::Offset(start),
            ..Default::default()
        };
        let stats = gpushare_ptx::launch(
            ptx,
            kernel,
            &k.config,
            &k.params,
            &k.module.global_addrs,
            &*self.memory,
            &opts,
        )
        .map_err(|e| {
            let code = exec_error_code(&e);
            tracing::error!("kernel `{}` failed: {e} -> {}", k.kernel, code.name());
            code
        })?;
        let [gx, gy, gz] = k.config.grid;
        let [bx, by, bz] = k.config.block;
        let named = stats.fp32 + stats.fp64 + stats.sfu;
        Ok(KernelCost {
            fp32: stats.fp32,
            fp64: stats.fp64,
            sfu: stats.sfu,
            other: stats.thread_instructions.saturating_sub(named),
            global_bytes: stats.global_load_bytes + stats.global_store_bytes,
            max_block_sleep_ns: stats.sleep_ns_max,
            blocks: u64::from(gx) * u64::from(gy) * u64::from(gz),
            threads_per_block: bx * by * bz,
            shared_per_block: k.shared_per_block,
        })
    }
}

fn is_device_work(work: &Work) -> bool {
    matches!(work, Work::Kernel(_) | Work::Copy(_) | Work::Memset(_))
}

/// The `CUresult` a kernel failure surfaces as.
pub fn exec_error_code(e: &gpushare_ptx::ExecError) -> CuError {
    use gpushare_ptx::ExecError as E;
    match e {
        E::IllegalAddress { .. } => CuError::ILLEGAL_ADDRESS,
        E::MisalignedAddress { .. } => CuError::MISALIGNED_ADDRESS,
        E::IllegalInstruction { .. } => CuError::ILLEGAL_INSTRUCTION,
        E::Trap { .. } | E::Deadlock { .. } => CuError::LAUNCH_FAILED,
        E::Aborted { .. } => CuError::LAUNCH_TIMEOUT,
        E::InvalidConfig(_) => CuError::LAUNCH_OUT_OF_RESOURCES,
    }
}
