//! The scheduler: every submission to the device passes through here.
//!
//! Tenants' sessions [`Scheduler::enqueue`] [`Job`]s (resolved [`Op`]s, in each tenant's command
//! order); one dispatcher thread ([`spawn_dispatcher`]) takes them with [`Scheduler::next`] and
//! submits them to the device. A scheduler decides only the *order* across tenants; within a
//! tenant, jobs keep their order (the tenant's stream semantics depend on it).
//!
//! [`Fifo`] is today's policy: one queue, first come first served. Weighted fair scheduling by
//! measured cost replaces it behind the same trait (weights arrive through
//! [`Scheduler::add_tenant`]).
//!
//! Back-pressure: a tenant with [`MAX_QUEUED`] jobs waiting blocks in `enqueue` (its session's
//! ring thread stops reading its ring) until the dispatcher catches up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::device::{DResult, FailureSink, Origin};
use crate::policy::Priority;
use crate::work::Op;

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
    /// `seq` is the job's command sequence number (0 for broker bookkeeping).
    fn submitted(&self, seq: u64, op: &'static str, result: DResult<()>);
}

/// One unit of work of one tenant.
pub struct Job {
    /// Owner.
    pub tenant: TenantId,
    /// Command sequence number (0: broker bookkeeping such as joins and markers).
    pub seq: u64,
    /// The operation.
    pub op: Op,
    /// Where the outcome goes.
    pub sink: Arc<dyn JobSink>,
}

/// What [`Scheduler::next`] returned.
pub enum Next {
    /// Submit this job, then call [`Scheduler::finish`].
    Job(Job),
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
    /// Stops accepting work; `next` returns `Closed` once the queue is empty.
    fn close(&self);
}

#[derive(Default)]
struct FifoState {
    queue: VecDeque<Job>,
    tenants: HashMap<TenantId, usize>,
    executing: Option<TenantId>,
    closed: bool,
}

/// First come, first served across all tenants.
#[derive(Default)]
pub struct Fifo {
    state: Mutex<FifoState>,
    /// Signalled when a job is queued or the scheduler closes.
    work: Condvar,
    /// Signalled when a job leaves the queue or finishes.
    space: Condvar,
}

impl Fifo {
    /// An empty FIFO scheduler.
    pub fn new() -> Fifo {
        Fifo::default()
    }

    fn lock(&self) -> MutexGuard<'_, FifoState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Scheduler for Fifo {
    fn add_tenant(&self, tenant: TenantId, _params: TenantParams) {
        self.lock().tenants.insert(tenant, 0);
    }

    fn set_params(&self, _tenant: TenantId, _params: TenantParams) {}

    fn remove_tenant(&self, tenant: TenantId) -> Vec<Job> {
        let mut st = self.lock();
        st.tenants.remove(&tenant);
        let (dropped, kept): (VecDeque<Job>, VecDeque<Job>) = std::mem::take(&mut st.queue)
            .into_iter()
            .partition(|j| j.tenant == tenant);
        st.queue = kept;
        while st.executing == Some(tenant) {
            st = self.space.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        self.space.notify_all();
        dropped.into_iter().collect()
    }

    fn enqueue(&self, job: Job) -> Result<(), SchedError> {
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(SchedError::Closed(job.tenant));
            }
            match st.tenants.get(&job.tenant) {
                None => return Err(SchedError::Closed(job.tenant)),
                Some(&n) if n < MAX_QUEUED => break,
                Some(_) => st = self.space.wait(st).unwrap_or_else(|p| p.into_inner()),
            }
        }
        if let Some(n) = st.tenants.get_mut(&job.tenant) {
            *n += 1;
        }
        st.queue.push_back(job);
        self.work.notify_one();
        Ok(())
    }

    fn next(&self, timeout: Duration) -> Next {
        let mut st = self.lock();
        if st.queue.is_empty() && !st.closed {
            st = self
                .work
                .wait_timeout(st, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        match st.queue.pop_front() {
            Some(job) => {
                if let Some(n) = st.tenants.get_mut(&job.tenant) {
                    *n = n.saturating_sub(1);
                }
                st.executing = Some(job.tenant);
                self.space.notify_all();
                Next::Job(job)
            }
            None if st.closed => Next::Closed,
            None => Next::Idle,
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
        self.lock().tenants.get(&tenant).copied().unwrap_or(0)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.space.notify_all();
    }
}

/// Starts the dispatcher thread: takes jobs from `sched` and submits each to its stream's
/// worker until the scheduler is closed and empty.
pub fn spawn_dispatcher(sched: Arc<dyn Scheduler>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gpushare-dispatch".into())
        .spawn(move || loop {
            match sched.next(Duration::from_millis(200)) {
                Next::Job(job) => {
                    let name = job.op.name();
                    let origin = Origin {
                        sink: Arc::clone(&job.sink) as Arc<dyn FailureSink>,
                        seq: job.seq,
                        op: name,
                        timing: None,
                    };
                    let result = job.op.execute(&origin);
                    job.sink.submitted(job.seq, name, result);
                    sched.finish(job.tenant);
                }
                Next::Idle => {}
                Next::Closed => break,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nop;
    impl JobSink for Nop {
        fn submitted(&self, _: u64, _: &'static str, _: DResult<()>) {}
    }
    impl FailureSink for Nop {
        fn failed(&self, _: u64, _: &'static str, _: u32) {}
        fn owner(&self) -> String {
            String::new()
        }
    }

    fn job(tenant: TenantId, seq: u64) -> Job {
        // Jobs are never executed in these tests.
        Job {
            tenant,
            seq,
            op: Op::Nop,
            sink: Arc::new(Nop),
        }
    }

    #[test]
    fn fifo_order_removal_and_close() {
        let s = Fifo::new();
        s.add_tenant(1, TenantParams::default());
        s.add_tenant(2, TenantParams::default());
        s.enqueue(job(1, 1)).unwrap();
        s.enqueue(job(2, 1)).unwrap();
        s.enqueue(job(1, 2)).unwrap();
        assert_eq!(s.queued(1), 2);
        let Next::Job(j) = s.next(Duration::ZERO) else {
            panic!("expected a job")
        };
        assert_eq!((j.tenant, j.seq), (1, 1));
        s.finish(1);
        let dropped = s.remove_tenant(1);
        assert_eq!(dropped.len(), 1);
        assert!(s.enqueue(job(1, 3)).is_err(), "removed tenant");
        let Next::Job(j) = s.next(Duration::ZERO) else {
            panic!("expected a job")
        };
        assert_eq!((j.tenant, j.seq), (2, 1));
        s.finish(2);
        assert!(matches!(s.next(Duration::from_millis(1)), Next::Idle));
        s.close();
        assert!(matches!(s.next(Duration::ZERO), Next::Closed));
        assert!(s.enqueue(job(2, 2)).is_err());
    }
}
