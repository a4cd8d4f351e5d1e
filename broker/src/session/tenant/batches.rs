//! The tenant's side of completion tracking ([`crate::session::completion`]): tracking commands
//! in batches, submitting a batch's marker, and what the marker does when the stream reaches it.

use std::sync::Arc;

use gpushare_client::shm::StagingSpan;

use super::Tenant;
use crate::device::Stream;
use crate::session::completion::{AfterBatch, OpenBatch};
use crate::work::Op;

impl Tenant {
    /// Adds command `seq` on stream `key` to the stream's open batch (with a staging span to
    /// free once it completed). Returns the batch when `seq` filled it: the caller closes it
    /// ([`Tenant::close_full`]) once `seq`'s operations are queued, so that its marker comes
    /// after them (a marker queued before them reported `seq` complete before it ran).
    #[must_use = "a full batch must be closed after its last command's operations are queued"]
    pub fn track(
        &self,
        key: u64,
        stream: &Arc<Stream>,
        slot: u32,
        seq: u64,
        release: Option<StagingSpan>,
    ) -> Option<OpenBatch> {
        self.completion.track(key, stream, slot, seq, release)
    }

    /// Submits the marker of a batch [`Tenant::track`] returned full.
    pub fn close_full(&self, full: OpenBatch) {
        self.submit_marker(full);
    }

    /// Has `f` run once the open batch of stream `key` completed (see
    /// [`crate::session::completion::Completion::after`]); hands `f` back if there is none.
    pub fn after_batch(&self, key: u64, f: AfterBatch) -> Result<(), AfterBatch> {
        self.completion.after(key, f)
    }

    /// Submits a marker for every open batch.
    pub fn close_batches(&self) {
        for b in self.completion.take_open() {
            self.submit_marker(b);
        }
    }

    fn submit_marker(&self, b: OpenBatch) {
        let weak = self.me.clone();
        let stream = Arc::clone(&b.stream);
        let (first, last, ops, slot, releases) = (b.first, b.last, b.ops, b.slot, b.releases);
        let after = b.after;
        let marked = Arc::clone(&stream);
        let f = Box::new(move || {
            if let Some(t) = weak.upgrade() {
                // A marker that could not be enqueued runs inline: the stream failed (a device
                // fault). The tenant's sticky error is set before the slot says "complete", so a
                // tenant woken by the slot sees the error too.
                if let Some(code) = marked.failure() {
                    if code == gpushare_client::code::ERROR_ILLEGAL_ADDRESS {
                        t.read_only_fault(last);
                    }
                    t.async_error(last, code);
                }
                // Before the slot says "complete": a tenant that saw it may free and reuse what
                // these let go of (a streamed download's channel).
                for f in after {
                    f();
                }
                t.batch_done(first, last, ops, slot, &releases);
            } else {
                for f in after {
                    f();
                }
            }
        });
        if self
            .enqueue(
                0,
                vec![Op::HostFn {
                    stream,
                    f,
                    gate: false,
                }],
            )
            .is_err()
        {
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
        self.completion
            .batch_done(first, ops, &self.region.retired());
        // Last: a tenant waiting on the slot then sees `retired` and freed staging too.
        if let Ok(w) = self.region.stream_slot(slot) {
            w.publish_max(last);
        }
    }

    /// The ring thread finished record `seq`.
    pub fn set_processed(&self, seq: u64) {
        self.completion.set_processed(seq, &self.region.retired());
        self.progress.set_processed(seq);
    }

    /// The ring is empty (everything up to `seq` processed, batches closed).
    pub fn set_ring_idle(&self, seq: u64) {
        self.set_processed(seq);
    }
}
