//! Queueing a tenant's operations in the scheduler, and learning their outcome: the tenant is
//! the [`JobSink`] of its ring commands (failures become its asynchronous errors); the
//! executor's synchronous operations report to a [`CallSink`] it waits on (its mutex is a leaf:
//! locked only in `submit_and_wait` and `CallSink::submitted`, with no other lock held).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::{lock, Tenant};
use crate::device::{DResult, FailureSink};
use crate::scheduler::{Job, JobSink, SchedError};
use crate::session::error::SessionError;
use crate::work::Op;

impl Tenant {
    /// Queues `ops` (in order) for command `seq`; outcomes go to the tenant's async error.
    pub fn enqueue(&self, seq: u64, ops: Vec<Op>) -> Result<(), SchedError> {
        let Some(me) = self.arc() else {
            return Err(SchedError::Closed(self.info.id));
        };
        let sink: Arc<dyn JobSink> = me;
        self.enqueue_with(seq, ops, &sink)
    }

    fn enqueue_with(
        &self,
        seq: u64,
        ops: Vec<Op>,
        sink: &Arc<dyn JobSink>,
    ) -> Result<(), SchedError> {
        for op in ops {
            let is_tenant_op = op.is_tenant_op();
            let order = self.progress.add_enqueued();
            let job = Job {
                tenant: self.info.id,
                seq: if is_tenant_op { seq } else { 0 },
                order,
                op,
                sink: Arc::clone(sink),
            };
            if let Err(e) = self.env.sched.enqueue(job) {
                // Never queued: nothing to wait for.
                self.progress.add_submitted(order);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Queues `ops` and waits until all are submitted; returns the first submission error.
    pub fn submit_and_wait(&self, ops: Vec<Op>) -> Result<DResult<()>, SessionError> {
        let Some(me) = self.arc() else {
            return Err(SessionError::Closed);
        };
        let n = ops.len();
        let sink = Arc::new(CallSink {
            tenant: Arc::downgrade(&me),
            state: Mutex::new((n, Ok(()))),
            cv: Condvar::new(),
        });
        let dyn_sink: Arc<dyn JobSink> = sink.clone();
        self.enqueue_with(0, ops, &dyn_sink)
            .map_err(|_| SessionError::Closed)?;
        let mut st = lock(&sink.state);
        while st.0 > 0 {
            if self.is_closing() {
                return Err(SessionError::Closed);
            }
            st = sink
                .cv
                .wait_timeout(st, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Ok(std::mem::replace(&mut st.1, Ok(())))
    }
}

impl JobSink for Tenant {
    fn submitted(&self, seq: u64, order: u64, op: &'static str, result: DResult<()>) {
        self.progress.add_submitted(order);
        if seq != 0 {
            self.submitted_ops.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = result {
            if seq != 0 {
                self.async_error(seq, e.code());
            } else {
                tracing::warn!(session = self.info.id, "{op}: {e}");
            }
        }
    }
}

/// Collects the outcome of a group of operations the executor waits for.
struct CallSink {
    tenant: Weak<Tenant>,
    state: Mutex<(usize, DResult<()>)>,
    cv: Condvar,
}

impl FailureSink for Tenant {
    fn failed(&self, seq: u64, op: &'static str, code: u32) {
        if code == gpushare_client::code::ERROR_ILLEGAL_ADDRESS && op == "launch" {
            self.read_only_fault(seq);
        }
        self.async_error(seq, code);
    }

    fn owner(&self) -> String {
        format!("tenant {:?} (session {})", self.info.name, self.info.id)
    }
}

impl FailureSink for CallSink {
    fn failed(&self, _seq: u64, _op: &'static str, code: u32) {
        if let Some(t) = self.tenant.upgrade() {
            t.async_error(0, code);
        }
    }

    fn owner(&self) -> String {
        match self.tenant.upgrade() {
            Some(t) => t.owner(),
            None => "a finished session".into(),
        }
    }
}

impl JobSink for CallSink {
    fn submitted(&self, _seq: u64, order: u64, _op: &'static str, result: DResult<()>) {
        if let Some(t) = self.tenant.upgrade() {
            t.progress.add_submitted(order);
        }
        let mut st = lock(&self.state);
        st.0 = st.0.saturating_sub(1);
        if st.1.is_ok() {
            st.1 = result;
        }
        self.cv.notify_all();
    }
}

impl Tenant {
    /// Device work of this tenant faulted with an illegal address: if it maps deduplicated copies
    /// read-only, a store into one of them is the likely cause (docs/dedup.md). Logged and
    /// counted once per tenant.
    pub(crate) fn read_only_fault(&self, seq: u64) {
        let mut index = self.dev.dedup_index();
        let at = index.read_only_mappings(self.info.id);
        if at.is_empty() || self.read_only_faulted.swap(true, Ordering::AcqRel) {
            return;
        }
        index.note_fault();
        drop(index);
        let shown: Vec<String> = at.iter().take(8).map(|a| format!("{a:#x}")).collect();
        tracing::warn!(
            session = self.info.id,
            tenant = %self.info.name,
            seq,
            granules = %shown.join(","),
            read_only_granules = at.len(),
            "the tenant's device work faulted (illegal address) while it maps deduplicated \
             memory read-only: a store the broker could not see (through a pointer kept in device \
             memory, or a kernel without PTX) into shared weights faults; set `dedup = false` \
             for this tenant if it writes its uploaded weights that way"
        );
    }
}
