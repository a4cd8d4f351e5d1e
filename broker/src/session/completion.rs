//! Completion tracking: batches, markers, stream slots and the `retired` word.
//!
//! Commands on a stream are grouped in *batches*. When the ring goes idle, before a CALL, or
//! every [`super::BATCH_MAX`] commands, each open batch gets a marker — a host function after its
//! last command. The marker (on a driver thread, so it makes no driver calls) frees the staging
//! chunks the batch's copies released, recomputes `retired` (every command up to the oldest
//! incomplete batch, or up to the last processed record), and raises the stream's completion
//! slot to the batch's last sequence number.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gpushare_client::shm::StagingSpan;

use super::{lock, Tenant, BATCH_MAX};
use crate::device::Stream;
use crate::work::Op;

pub(super) struct OpenBatch {
    stream: Arc<Stream>,
    slot: u32,
    first: u64,
    last: u64,
    ops: u64,
    releases: Vec<StagingSpan>,
}

#[derive(Default)]
pub(super) struct Completion {
    open: HashMap<u64, OpenBatch>,
    incomplete: BTreeMap<u64, u32>,
    processed: u64,
    completed_ops: u64,
}

impl Tenant {
    /// Adds command `seq` on stream `key` to the stream's open batch (with a staging span to
    /// free once it completed).
    pub fn track(
        &self,
        key: u64,
        stream: &Arc<Stream>,
        slot: u32,
        seq: u64,
        release: Option<StagingSpan>,
    ) {
        let mut guard = lock(&self.completion);
        let c = &mut *guard;
        let b = c.open.entry(key).or_insert_with(|| OpenBatch {
            stream: Arc::clone(stream),
            slot,
            first: seq,
            last: seq,
            ops: 0,
            releases: Vec::new(),
        });
        if b.ops == 0 {
            *c.incomplete.entry(b.first).or_insert(0) += 1;
        }
        b.last = seq;
        b.ops += 1;
        b.releases.extend(release);
        if b.ops >= BATCH_MAX {
            if let Some(b) = c.open.remove(&key) {
                drop(guard);
                self.submit_marker(b);
            }
        }
    }

    /// Submits a marker for every open batch.
    pub fn close_batches(&self) {
        let batches: Vec<OpenBatch> = lock(&self.completion)
            .open
            .drain()
            .map(|(_, b)| b)
            .collect();
        for b in batches {
            self.submit_marker(b);
        }
    }

    fn submit_marker(&self, b: OpenBatch) {
        let weak = self.me.clone();
        let stream = Arc::clone(&b.stream);
        let (first, last, ops, slot, releases) = (b.first, b.last, b.ops, b.slot, b.releases);
        let marked = Arc::clone(&stream);
        let f = Box::new(move || {
            if let Some(t) = weak.upgrade() {
                // A marker that could not be enqueued runs inline: the stream failed (a device
                // fault). The tenant's sticky error is set before the slot says "complete", so a
                // tenant woken by the slot sees the error too.
                if let Some(code) = marked.failure() {
                    t.async_error(last, code);
                }
                t.batch_done(first, last, ops, slot, &releases);
            }
        });
        if self.enqueue(0, vec![Op::HostFn { stream, f }]).is_err() {
            tracing::debug!(session = self.info.id, "marker dropped: session closing");
        }
    }

    /// A batch completed (runs on a driver thread: no driver calls here).
    fn batch_done(&self, first: u64, last: u64, ops: u64, slot: u32, releases: &[StagingSpan]) {
        for span in releases {
            if let Err(e) = self.staging.free(*span) {
                tracing::warn!(session = self.info.id, "freeing staging {span:?}: {e}");
            }
        }
        {
            let mut c = lock(&self.completion);
            if let Some(n) = c.incomplete.get_mut(&first) {
                *n -= 1;
                if *n == 0 {
                    c.incomplete.remove(&first);
                }
            }
            c.completed_ops += ops;
            self.publish_retired(&c);
        }
        // Last: a tenant waiting on the slot then sees `retired` and freed staging too.
        if let Ok(w) = self.region.stream_slot(slot) {
            w.publish_max(last);
        }
    }

    fn publish_retired(&self, c: &Completion) {
        let oldest = c.incomplete.keys().next().map_or(u64::MAX, |f| f - 1);
        self.region.retired().publish_max(c.processed.min(oldest));
    }

    /// The ring thread finished record `seq`.
    pub fn set_processed(&self, seq: u64) {
        {
            let mut c = lock(&self.completion);
            c.processed = seq;
            self.publish_retired(&c);
        }
        let mut p = lock(&self.progress);
        p.processed = seq;
        self.progress_cv.notify_all();
    }

    /// The ring is empty (everything up to `seq` processed, batches closed).
    pub fn set_ring_idle(&self, seq: u64) {
        {
            let mut c = lock(&self.completion);
            c.processed = seq;
            self.publish_retired(&c);
        }
        let mut p = lock(&self.progress);
        p.processed = seq;
        self.progress_cv.notify_all();
    }

    /// Drops the open batches (teardown: their markers will never be needed).
    pub(super) fn drop_open_batches(&self) {
        lock(&self.completion).open.clear();
    }

    /// True when no batch is incomplete.
    pub(super) fn all_complete(&self) -> bool {
        lock(&self.completion).incomplete.is_empty()
    }

    /// Commands completed so far.
    pub(super) fn completed_ops(&self) -> u64 {
        lock(&self.completion).completed_ops
    }
}
