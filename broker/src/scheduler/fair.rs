//! [`Fair`]: the [`FairQueue`] behind a lock, on the broker's clock, fed by the device's
//! completions ([`CompletionSink`]).
//!
//! Threads: sessions' ring threads `enqueue` (blocking while their tenant has
//! [`MAX_QUEUED`] jobs waiting); the dispatcher calls `next`/`finish`; links' notify threads call
//! `completed`. Each takes only this scheduler's lock, never while holding another, and the
//! dispatcher submits with the lock released.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::cost::{CostClass, CostModel, Engine, Nanos, Shape};
use super::queue::{Charge, FairQueue, Lane, Pick, QueueConfig, Work};
use super::{
    Job, JobSink, Next, SchedError, Scheduler, TenantId, TenantParams, TenantReport, MAX_QUEUED,
};
use crate::device::{CompletionSink, FailureSink, Stream, Timing};
use crate::work::{memset_extent, Op};

impl Work for Job {
    fn class(&self) -> CostClass {
        op_class(&self.op)
    }

    fn lane(&self) -> Lane {
        op_lane(&self.op)
    }

    fn stream_key(&self) -> u64 {
        op_stream(&self.op).map_or(0, |s| Arc::as_ptr(s) as u64)
    }

    fn slice_class(&self, parts: u32) -> Option<CostClass> {
        let (plan, _) = slice_plan(self, parts)?;
        let Op::Launch {
            sliced: Some(variant),
            block,
            shared,
            ..
        } = &self.op
        else {
            return None;
        };
        Some(CostClass::Kernel(Shape {
            kernel: Arc::clone(&variant.name),
            grid: plan.first()?.grid,
            block: *block,
            shared: *shared,
        }))
    }

    fn holds(&self) -> bool {
        matches!(self.op, Op::Exclusive { .. })
    }

    fn split(self, parts: u32) -> Result<Vec<Job>, Job> {
        let pieces = match &self.op {
            Op::CopyHtoD { .. } | Op::CopyDtoH { .. } => copy_chunks(&self.op, parts),
            Op::Streamed { .. } => streamed_runs(&self.op, parts),
            _ => slices(&self, parts),
        };
        match pieces {
            Some(ops) => {
                let n = ops.len();
                Ok(ops
                    .into_iter()
                    .enumerate()
                    .map(|(i, op)| Job {
                        tenant: self.tenant,
                        seq: self.seq,
                        order: self.order,
                        op,
                        // Only the last slice counts as the tenant's submission.
                        sink: if i + 1 == n {
                            Arc::clone(&self.sink)
                        } else {
                            Arc::new(SliceSink(Arc::clone(&self.sink)))
                        },
                    })
                    .collect())
            }
            None => Err(self),
        }
    }
}

/// `job`'s kernel cut into `parts` block-range slices of its grid, and the end of its own
/// parameters; `None` when it cannot be sliced (no variant, no parameter layout, one slice).
fn slice_plan(job: &Job, parts: u32) -> Option<(Vec<gpushare_ptx::Slice>, usize)> {
    let Op::Launch {
        sliced: Some(_),
        grid,
        params,
        layout,
        ..
    } = &job.op
    else {
        return None;
    };
    let end = layout
        .iter()
        .map(|p| p.offset as usize + p.size as usize)
        .max()?;
    if params.len() < end {
        return None;
    }
    let plan = gpushare_ptx::plan_slices(*grid, parts);
    (plan.len() >= 2).then_some((plan, end))
}

/// The launches of `job`'s kernel as `parts` block-range slices of its grid, through its
/// sliced variant (the kernel's parameters, padded to 4 bytes, then block offset x, y, z and
/// the whole grid x, y, z; see `gpushare_ptx::slice`); `None` when it cannot be sliced.
fn slices(job: &Job, parts: u32) -> Option<Vec<Op>> {
    let (plan, end) = slice_plan(job, parts)?;
    let Op::Launch {
        sliced: Some(variant),
        grid,
        block,
        shared,
        stream,
        params,
        layout,
        ..
    } = &job.op
    else {
        return None;
    };
    Some(
        plan.iter()
            .map(|s| {
                let mut p = params[..end].to_vec();
                p.resize(end.next_multiple_of(4), 0);
                for v in s.params(*grid) {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                Op::Launch {
                    function: variant.function,
                    kernel: Arc::clone(&variant.name),
                    sliced: None,
                    grid: s.grid,
                    block: *block,
                    shared: *shared,
                    stream: Arc::clone(stream),
                    params: p,
                    layout: Arc::clone(layout),
                }
            })
            .collect(),
    )
}

/// A host-to-device or device-to-host copy cut into `parts` chunks in order (whole multiples of
/// 64 KiB but the last), on the same stream; `None` for other operations or one chunk.
fn copy_chunks(op: &Op, parts: u32) -> Option<Vec<Op>> {
    let (host, len) = match op {
        Op::CopyHtoD { src, .. } => (src, src.len() as u64),
        Op::CopyDtoH { dst, .. } => (dst, dst.len() as u64),
        _ => return None,
    };
    let chunk = len
        .div_ceil(u64::from(parts.max(1)))
        .next_multiple_of(64 << 10);
    if parts < 2 || chunk >= len {
        return None;
    }
    (0..len.div_ceil(chunk))
        .map(|k| {
            let (at, n) = (k * chunk, chunk.min(len - k * chunk));
            let piece = host.sub(at, n)?;
            Some(match op {
                Op::CopyHtoD {
                    dst, stream, skip, ..
                } => Op::CopyHtoD {
                    dst: dst + at,
                    src: piece,
                    stream: Arc::clone(stream),
                    skip: skip.clone(),
                },
                Op::CopyDtoH { src, stream, .. } => Op::CopyDtoH {
                    dst: piece,
                    src: src + at,
                    stream: Arc::clone(stream),
                },
                _ => return None,
            })
        })
        .collect()
}

/// A streamed copy's run cut into `parts` runs of whole pieces in order, on the same stream;
/// `None` for other operations or one run.
fn streamed_runs(op: &Op, parts: u32) -> Option<Vec<Op>> {
    let Op::Streamed {
        copy,
        first,
        len,
        stream,
    } = op
    else {
        return None;
    };
    let piece = gpushare_client::shm::channel::PIECE;
    let chunk = len
        .div_ceil(u64::from(parts.max(1)))
        .next_multiple_of(piece);
    if parts < 2 || chunk >= *len {
        return None;
    }
    Some(
        (0..len.div_ceil(chunk))
            .map(|k| Op::Streamed {
                copy: Arc::clone(copy),
                first: first + k * chunk / piece,
                len: chunk.min(len - k * chunk),
                stream: Arc::clone(stream),
            })
            .collect(),
    )
}

/// The sink of a slice before the last: failures go to the tenant, the submission is counted
/// once, by the last slice.
struct SliceSink(Arc<dyn JobSink>);

impl FailureSink for SliceSink {
    fn failed(&self, seq: u64, op: &'static str, code: u32) {
        self.0.failed(seq, op, code);
    }

    fn owner(&self) -> String {
        self.0.owner()
    }
}

impl JobSink for SliceSink {
    fn submitted(&self, seq: u64, _: u64, op: &'static str, result: crate::device::DResult<()>) {
        if let Err(e) = result {
            self.0.failed(seq, op, e.code());
        }
    }
}

/// The cost class of an operation.
pub fn op_class(op: &Op) -> CostClass {
    match op {
        Op::Launch {
            kernel,
            grid,
            block,
            shared,
            ..
        } => CostClass::Kernel(Shape {
            kernel: Arc::clone(kernel),
            grid: *grid,
            block: *block,
            shared: *shared,
        }),
        Op::CopyHtoD { src, .. } => CostClass::Transfer {
            engine: Engine::H2D,
            bytes: src.len() as u64,
        },
        Op::CopyDtoH { dst, .. } => CostClass::Transfer {
            engine: Engine::D2H,
            bytes: dst.len() as u64,
        },
        Op::Streamed { copy, len, .. } => CostClass::Transfer {
            engine: if copy.htod { Engine::H2D } else { Engine::D2H },
            bytes: *len,
        },
        Op::CopyDtoD { len, .. } => CostClass::Transfer {
            engine: Engine::Compute,
            bytes: len.saturating_mul(2),
        },
        Op::Memset {
            pitch,
            element_size,
            width,
            height,
            ..
        } => CostClass::Transfer {
            engine: Engine::Compute,
            bytes: memset_extent(*pitch, *width, *height, u64::from(*element_size)).unwrap_or(0),
        },
        Op::WriteValue { .. }
        | Op::EventRecord { .. }
        | Op::StreamWait { .. }
        | Op::Join { .. }
        | Op::HostFn { .. }
        | Op::Exclusive { .. }
        | Op::Nop => CostClass::Free,
    }
}

/// Where an operation sits among its tenant's streams: one stream's work, or an operation that
/// orders several (an event record or wait, a legacy-stream join, a stream memory write that
/// another stream may wait for).
pub fn op_lane(op: &Op) -> Lane {
    match op {
        Op::WriteValue { .. } | Op::StreamWait { .. } | Op::Join { .. } | Op::Exclusive { .. } => {
            Lane::Barrier
        }
        _ => Lane::Stream(op_stream(op).map_or(0, |s| s.priority())),
    }
}

/// The one stream an operation runs on (`None` for barriers and `Nop`; an event record is its
/// stream's).
fn op_stream(op: &Op) -> Option<&Arc<Stream>> {
    match op {
        Op::Launch { stream, .. }
        | Op::CopyHtoD { stream, .. }
        | Op::CopyDtoH { stream, .. }
        | Op::Streamed { stream, .. }
        | Op::CopyDtoD { stream, .. }
        | Op::Memset { stream, .. }
        | Op::HostFn { stream, .. }
        | Op::EventRecord { stream, .. } => Some(stream),
        Op::WriteValue { .. }
        | Op::StreamWait { .. }
        | Op::Join { .. }
        | Op::Exclusive { .. }
        | Op::Nop => None,
    }
}

struct State {
    queue: FairQueue<Job>,
    executing: Option<TenantId>,
    closed: bool,
}

/// Weighted fair scheduling of device time (see [`super::queue`]).
pub struct Fair {
    state: Mutex<State>,
    /// Signalled when work is queued or completes, parameters change, or the scheduler closes.
    work: Condvar,
    /// Signalled when a job leaves a queue or finishes submitting.
    space: Condvar,
    epoch: Instant,
    me: Weak<Fair>,
}

impl Fair {
    /// A fair scheduler with `cfg`, its cost model seeded with `model`.
    pub fn new(cfg: QueueConfig, model: CostModel) -> Arc<Fair> {
        Arc::new_cyclic(|me| Fair {
            state: Mutex::new(State {
                queue: FairQueue::new(cfg, model),
                executing: None,
                closed: false,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            epoch: Instant::now(),
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    /// Replaces the quantum and slicing switch (a policy reload).
    pub fn set_config(&self, cfg: QueueConfig) {
        self.lock().queue.set_config(cfg);
        self.work.notify_all();
    }

    fn timing(&self, ticket: Option<u64>) -> Option<Timing> {
        let sink: Arc<dyn CompletionSink> = self.me.upgrade()?;
        ticket.map(|ticket| Timing { sink, ticket })
    }
}

impl CompletionSink for Fair {
    fn completed(&self, ticket: u64, device_ns: Option<u64>) {
        let now = self.now();
        let charge = device_ns.map_or(Charge::Refund, Charge::Measured);
        self.lock().queue.complete(ticket, charge, now);
        self.work.notify_all();
    }

    fn completed_unmeasured(&self, ticket: u64) {
        let now = self.now();
        self.lock().queue.complete(ticket, Charge::Estimate, now);
        self.work.notify_all();
    }
}

impl Scheduler for Fair {
    fn add_tenant(&self, tenant: TenantId, params: TenantParams) {
        let now = self.now();
        self.lock().queue.add_tenant(tenant, params, now);
    }

    fn set_params(&self, tenant: TenantId, params: TenantParams) {
        self.lock().queue.set_params(tenant, params);
        self.work.notify_all();
    }

    fn remove_tenant(&self, tenant: TenantId) -> Vec<Job> {
        let mut st = self.lock();
        let dropped = st.queue.remove_tenant(tenant);
        while st.executing == Some(tenant) {
            st = self.space.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        self.space.notify_all();
        self.work.notify_all();
        dropped
    }

    fn enqueue(&self, job: Job) -> Result<(), SchedError> {
        let id = job.tenant;
        let mut st = self.lock();
        loop {
            if st.closed || !st.queue.has_tenant(id) {
                return Err(SchedError::Closed(id));
            }
            // A held tenant's queue may grow past the bound: the exclusive work holding it may
            // need the tables lock its ring thread holds while queueing.
            if st.queue.queued(id) < MAX_QUEUED || st.queue.is_held(id) {
                break;
            }
            st = self.space.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let now = self.now();
        st.queue
            .push(id, job, now)
            .map_err(|_| SchedError::Closed(id))?;
        self.work.notify_one();
        Ok(())
    }

    fn next(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            let now = self.now();
            let wait = match st.queue.pick(now) {
                Pick::Job {
                    tenant,
                    job,
                    ticket,
                } => {
                    st.executing = Some(tenant);
                    drop(st);
                    self.space.notify_all();
                    return Next::Job(job, self.timing(ticket));
                }
                Pick::WaitUntil(at) => Duration::from_nanos(at.saturating_sub(now)),
                Pick::Wait if st.closed => return Next::Closed,
                Pick::Wait => Duration::MAX,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Idle;
            }
            st = self
                .work
                .wait_timeout(st, wait.min(left))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn finish(&self, tenant: TenantId) {
        let mut st = self.lock();
        if st.executing == Some(tenant) {
            st.executing = None;
        }
        self.space.notify_all();
    }

    fn queued(&self, tenant: TenantId) -> usize {
        self.lock().queue.queued(tenant)
    }

    fn release(&self, tenant: TenantId) {
        self.lock().queue.release(tenant);
        self.work.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.space.notify_all();
    }

    fn report(&self, tenant: TenantId) -> Option<TenantReport> {
        let now = self.now();
        self.lock().queue.report(tenant, now)
    }

    fn profile(&self) -> Option<String> {
        Some(self.lock().queue.model().to_profile())
    }

    fn configure(&self, cfg: &crate::policy::SchedulerConfig) {
        self.set_config(super::queue_config(cfg));
    }
}
