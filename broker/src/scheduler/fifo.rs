//! [`Fifo`]: one queue across all tenants, first come first served — the scheduler before fair
//! sharing, kept as the baseline the benchmarks compare against (`[scheduler] policy = "fifo"`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{Job, Next, SchedError, Scheduler, TenantId, TenantParams, MAX_QUEUED};
use crate::work::Op;

#[derive(Default)]
struct FifoState {
    queue: VecDeque<Job>,
    tenants: HashMap<TenantId, usize>,
    /// Tenants whose latest job was `Op::Exclusive`, until released.
    held: HashSet<TenantId>,
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

impl FifoState {
    /// The first queued job whose tenant is not held.
    fn first_free(&self) -> Option<usize> {
        if self.held.is_empty() {
            return (!self.queue.is_empty()).then_some(0);
        }
        self.queue
            .iter()
            .position(|j| !self.held.contains(&j.tenant))
    }
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
        st.held.remove(&tenant);
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
                // A held tenant may exceed the bound (see `Fair::enqueue`).
                Some(&n) if n < MAX_QUEUED || st.held.contains(&job.tenant) => break,
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
        if st.first_free().is_none() && !st.closed {
            st = self
                .work
                .wait_timeout(st, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        match st.first_free().and_then(|i| st.queue.remove(i)) {
            Some(job) => {
                if let Some(n) = st.tenants.get_mut(&job.tenant) {
                    *n = n.saturating_sub(1);
                }
                if matches!(job.op, Op::Exclusive { .. }) {
                    st.held.insert(job.tenant);
                }
                st.executing = Some(job.tenant);
                self.space.notify_all();
                Next::Job(job, None)
            }
            None if st.closed && st.queue.is_empty() => Next::Closed,
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

    fn release(&self, tenant: TenantId) {
        self.lock().held.remove(&tenant);
        self.work.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.space.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DResult, FailureSink};
    use crate::scheduler::JobSink;
    use crate::work::Op;
    use std::sync::Arc;

    struct Nop;
    impl JobSink for Nop {
        fn submitted(&self, _: u64, _: u64, _: &'static str, _: DResult<()>) {}
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
            order: seq,
            op: Op::Nop,
            sink: Arc::new(Nop),
        }
    }

    fn next_job(s: &dyn Scheduler) -> Option<(TenantId, u64)> {
        match s.next(Duration::from_millis(1)) {
            Next::Job(j, _) => {
                s.finish(j.tenant);
                Some((j.tenant, j.seq))
            }
            _ => None,
        }
    }

    /// Handing out an exclusive job holds its tenant's later jobs, not other tenants', until
    /// released — in both schedulers.
    #[test]
    fn exclusive_jobs_hold_their_tenant_until_released() {
        let fair = crate::scheduler::Fair::new(
            crate::scheduler::queue::QueueConfig::default(),
            crate::scheduler::cost::CostModel::new(),
        );
        let schedulers: [Arc<dyn Scheduler>; 2] = [Arc::new(Fifo::new()), fair];
        for s in schedulers {
            s.add_tenant(1, TenantParams::default());
            s.add_tenant(2, TenantParams::default());
            let mut exclusive = job(1, 1);
            exclusive.op = Op::Exclusive {
                run: Box::new(|| {}),
            };
            s.enqueue(exclusive).unwrap();
            s.enqueue(job(1, 2)).unwrap();
            s.enqueue(job(2, 1)).unwrap();
            assert_eq!(next_job(&*s), Some((1, 1)));
            assert_eq!(next_job(&*s), Some((2, 1)), "another tenant goes on");
            assert_eq!(next_job(&*s), None, "the held tenant waits");
            s.release(1);
            assert_eq!(next_job(&*s), Some((1, 2)));
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
        let Next::Job(j, _) = s.next(Duration::ZERO) else {
            panic!("expected a job")
        };
        assert_eq!((j.tenant, j.seq), (1, 1));
        s.finish(1);
        let dropped = s.remove_tenant(1);
        assert_eq!(dropped.len(), 1);
        assert!(s.enqueue(job(1, 3)).is_err(), "removed tenant");
        let Next::Job(j, _) = s.next(Duration::ZERO) else {
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
