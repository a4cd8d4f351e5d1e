//! The scheduler: every submission to the device passes through here.
//!
//! Tenants' sessions [`Scheduler::enqueue`] [`Job`]s (resolved [`Op`]s, in each tenant's command
//! order); one dispatcher thread ([`spawn_dispatcher`]) takes them with [`Scheduler::next`] and
//! submits them to the device. A scheduler decides only the *order* across tenants; within a
//! tenant, jobs keep their order (the tenant's stream semantics depend on it).
//!
//! - [`Fair`] (the default): weighted fair sharing of device time by learned cost, priorities,
//!   share caps and kernel slicing. The algorithm is the pure [`queue::FairQueue`]; the cost
//!   model is [`cost::CostModel`]; per-tenant figures are [`stats::TenantReport`]s. The
//!   dispatcher asks the device to time every kernel, copy and memset ([`Timing`]); the
//!   completions feed the model and release the work ahead in the device.
//! - [`Fifo`]: one queue, first come first served (`[scheduler] policy = "fifo"`): the baseline
//!   the benchmarks compare against.
//!
//! Back-pressure: a tenant with [`MAX_QUEUED`] jobs waiting blocks in `enqueue` (its session's
//! ring thread stops reading its ring) until the dispatcher catches up — except while an
//! [`Op::Exclusive`] job holds it (the exclusive work may need the tables lock the blocked
//! ring thread would hold).

pub mod cost;
mod fair;
mod fifo;
mod ops;
pub mod queue;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_copies;
#[cfg(test)]
mod sim_estimates;
#[cfg(test)]
mod sim_streams;
pub mod stats;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::device::{DResult, FailureSink, Origin, Timing};
use crate::policy::{Priority, SchedulerConfig, SchedulingPolicy};
use crate::work::Op;

pub use fair::Fair;
pub use fifo::Fifo;
pub use stats::TenantReport;

/// Identifies a tenant (its session id).
pub type TenantId = u64;

/// Most jobs one tenant may have queued before `enqueue` blocks.
pub const MAX_QUEUED: usize = 8192;

/// How a tenant is scheduled (from its policy rules).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TenantParams {
    /// Share of device time relative to other tenants of the same priority (≥ 1).
    pub weight: u32,
    /// Scheduling class.
    pub priority: Priority,
    /// Hard cap on the tenant's share of device time (0 < cap ≤ 1), held even when it is alone.
    pub max_share: Option<f64>,
}

impl Default for TenantParams {
    fn default() -> Self {
        TenantParams {
            weight: 1,
            priority: Priority::Normal,
            max_share: None,
        }
    }
}

impl TenantParams {
    /// A tenant's parameters from its policy rules.
    pub fn from_rules(rules: &crate::policy::Rules) -> TenantParams {
        TenantParams {
            weight: rules.weight,
            priority: rules.priority,
            max_share: rules.max_share,
        }
    }
}

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// The scheduler is closed (broker shutting down) or the tenant was removed.
    #[error("the scheduler no longer accepts work for tenant {0}")]
    Closed(TenantId),
}

/// Told when a job was submitted (or failed to submit), and — as a [`FailureSink`] — when it
/// failed on the device later.
pub trait JobSink: FailureSink {
    /// `seq` is the job's command sequence number (0 for broker bookkeeping), `order` its
    /// [`Job::order`].
    fn submitted(&self, seq: u64, order: u64, op: &'static str, result: DResult<()>);
}

/// One unit of work of one tenant.
pub struct Job {
    /// Owner.
    pub tenant: TenantId,
    /// Command sequence number (0: broker bookkeeping such as joins and markers).
    pub seq: u64,
    /// The tenant's ordinal of the operation (every operation queued, from 1): what its
    /// waiters count, as operations of more urgent streams may be submitted before earlier
    /// ones.
    pub order: u64,
    /// The operation.
    pub op: Op,
    /// Where the outcome goes.
    pub sink: Arc<dyn JobSink>,
}

/// What [`Scheduler::next`] returned.
pub enum Next {
    /// Submit this job (its completion reported to the [`Timing`], if any), then call
    /// [`Scheduler::finish`].
    Job(Job, Option<Timing>),
    /// Nothing arrived within the timeout.
    Idle,
    /// Closed and empty: the dispatcher stops.
    Closed,
}

/// Orders tenants' jobs for submission.
pub trait Scheduler: Send + Sync {
    /// A tenant joins with its scheduling parameters.
    fn add_tenant(&self, tenant: TenantId, params: TenantParams);
    /// A tenant's parameters change (a policy reload); its queued work keeps its order.
    fn set_params(&self, tenant: TenantId, params: TenantParams);
    /// A tenant leaves: its queued jobs are dropped (returned), further `enqueue`s fail, and
    /// this returns only once no job of the tenant is being submitted.
    fn remove_tenant(&self, tenant: TenantId) -> Vec<Job>;
    /// Queues a job (blocks while the tenant has [`MAX_QUEUED`] jobs waiting).
    fn enqueue(&self, job: Job) -> Result<(), SchedError>;
    /// The next job to submit, waiting up to `timeout`.
    fn next(&self, timeout: Duration) -> Next;
    /// The dispatcher finished submitting a job of `tenant`.
    fn finish(&self, tenant: TenantId);
    /// Jobs of `tenant` waiting.
    fn queued(&self, tenant: TenantId) -> usize;
    /// Ends the hold that handing out an [`Op::Exclusive`] job of `tenant` began: its later
    /// jobs may go again.
    fn release(&self, tenant: TenantId);
    /// Stops accepting work; `next` returns `Closed` once the queue is empty.
    fn close(&self);
    /// The scheduling figures of `tenant` (`None`: unknown, or a scheduler that keeps none).
    fn report(&self, tenant: TenantId) -> Option<TenantReport> {
        let _ = tenant;
        None
    }
    /// What the cost model learned, as profile TOML (`None`: a scheduler without one).
    fn profile(&self) -> Option<String> {
        None
    }
    /// Applies a reloaded `[scheduler]` table: the quantum and the slicing switch (the policy
    /// and the profiles are read at start only).
    fn configure(&self, cfg: &SchedulerConfig) {
        let _ = cfg;
    }
}

/// The scheduler a `[scheduler]` table asks for, its cost model seeded from its profiles.
pub fn from_config(cfg: &SchedulerConfig) -> Result<Arc<dyn Scheduler>, cost::CostError> {
    Ok(match cfg.policy {
        SchedulingPolicy::Fifo => Arc::new(Fifo::new()),
        SchedulingPolicy::Fair => {
            let mut model = cost::CostModel::new();
            for path in &cfg.profiles {
                model.seed(&cost::CostModel::load(path)?);
            }
            Fair::new(queue_config(cfg), model)
        }
    })
}

/// The fair queue's configuration from a `[scheduler]` table.
pub fn queue_config(cfg: &SchedulerConfig) -> queue::QueueConfig {
    queue::QueueConfig {
        quantum: cfg.quantum.as_nanos().min(u128::from(u64::MAX)) as u64,
        slicing: cfg.slicing,
    }
}

/// Starts the dispatcher thread: takes jobs from `sched` and submits each to its stream's
/// worker until the scheduler is closed and empty.
pub fn spawn_dispatcher(sched: Arc<dyn Scheduler>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gpushare-dispatch".into())
        .spawn(move || loop {
            match sched.next(Duration::from_millis(200)) {
                Next::Job(job, _) if matches!(job.op, Op::Exclusive { .. }) => {
                    run_exclusive(&sched, job);
                }
                Next::Job(job, timing) => {
                    let name = job.op.name();
                    let origin = Origin {
                        sink: Arc::clone(&job.sink) as Arc<dyn FailureSink>,
                        seq: job.seq,
                        op: name,
                        timing,
                    };
                    let result = job.op.execute(&origin);
                    job.sink.submitted(job.seq, job.order, name, result);
                    sched.finish(job.tenant);
                }
                Next::Idle => {}
                Next::Closed => break,
            }
        })
}

/// Runs an [`Op::Exclusive`] job on a thread of its own (it may wait for the tenant's earlier
/// work, which the dispatcher must keep submitting for others), then releases the tenant.
fn run_exclusive(sched: &Arc<dyn Scheduler>, job: Job) {
    let tenant = job.tenant;
    sched.finish(tenant);
    let Op::Exclusive { run } = job.op else {
        return;
    };
    let (sink, seq, order) = (job.sink, job.seq, job.order);
    let on_error = Arc::clone(&sink);
    let after = Arc::clone(sched);
    // Submitted when handed out: the hold keeps the tenant's later work back, and calls that
    // wait for the submission of earlier work must not wait for this one's device waits (it
    // may wait for a host function whose completion the tenant sends after such a call).
    sink.submitted(seq, order, "exclusive", Ok(()));
    let spawned = std::thread::Builder::new()
        .name("gpushare-exclusive".into())
        .spawn(move || {
            run();
            after.release(tenant);
        });
    if let Err(e) = spawned {
        // The closure (and the work it would have done) is dropped with the error: the
        // tenant learns it failed and must not stay held.
        tracing::error!(tenant, "cannot start a thread for exclusive work: {e}");
        on_error.failed(seq, "exclusive", gpushare_client::code::ERROR_OUT_OF_MEMORY);
        sched.release(tenant);
    }
}
