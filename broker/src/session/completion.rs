//! Completion tracking: batches, markers' bookkeeping and the `retired` word.
//!
//! Commands on a stream are grouped in *batches*. When the ring goes idle, before a CALL, or
//! every [`BATCH_MAX`] commands, each open batch gets a marker — a host function after its last
//! command (submitted by the tenant, `tenant/batches.rs`). The marker (on a driver thread, so it
//! makes no driver calls) frees the staging chunks the batch's copies released, reports here,
//! which recomputes `retired` (every command up to the oldest incomplete batch, or up to the
//! last processed record), and raises the stream's completion slot to the batch's last sequence
//! number.
//!
//! [`Completion`]'s mutex is locked only inside its methods, which take no other lock (they
//! publish `retired`, a lock-free word): a leaf of the tenant's lock order by construction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use gpushare_client::shm::StagingSpan;
use gpushare_client::SeqWord;

use crate::device::Stream;

/// Commands per batch before a marker is forced.
pub const BATCH_MAX: u64 = 256;

/// A function run once a batch completed, on the driver thread that runs its marker (so no
/// driver calls): e.g. an upload's keying.
pub type AfterBatch = Box<dyn FnOnce() + Send>;

/// A batch of commands on one stream waiting for its marker.
pub struct OpenBatch {
    /// The stream.
    pub stream: Arc<Stream>,
    /// Its completion slot.
    pub slot: u32,
    /// Sequence number of the first command.
    pub first: u64,
    /// Sequence number of the last command.
    pub last: u64,
    /// Commands in the batch.
    pub ops: u64,
    /// Staging spans to free once the batch completed.
    pub releases: Vec<StagingSpan>,
    /// Functions to run once the batch completed.
    pub after: Vec<AfterBatch>,
}

#[derive(Default)]
struct Batches {
    open: HashMap<u64, OpenBatch>,
    incomplete: BTreeMap<u64, u32>,
    processed: u64,
    completed_ops: u64,
}

impl Batches {
    fn publish_retired(&self, retired: &SeqWord) {
        let oldest = self.incomplete.keys().next().map_or(u64::MAX, |f| f - 1);
        retired.publish_max(self.processed.min(oldest));
    }
}

/// The tenant's batches (see the module documentation).
#[derive(Default)]
pub struct Completion {
    batches: Mutex<Batches>,
}

impl Completion {
    fn lock(&self) -> MutexGuard<'_, Batches> {
        self.batches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds command `seq` on stream `key` to the stream's open batch (with a staging span to
    /// free once it completed). Returns the batch when it is full: the caller submits its
    /// marker.
    pub fn track(
        &self,
        key: u64,
        stream: &Arc<Stream>,
        slot: u32,
        seq: u64,
        release: Option<StagingSpan>,
    ) -> Option<OpenBatch> {
        let mut guard = self.lock();
        let c = &mut *guard;
        let b = c.open.entry(key).or_insert_with(|| OpenBatch {
            stream: Arc::clone(stream),
            slot,
            first: seq,
            last: seq,
            ops: 0,
            releases: Vec::new(),
            after: Vec::new(),
        });
        if b.ops == 0 {
            *c.incomplete.entry(b.first).or_insert(0) += 1;
        }
        b.last = seq;
        b.ops += 1;
        b.releases.extend(release);
        if b.ops >= BATCH_MAX {
            c.open.remove(&key)
        } else {
            None
        }
    }

    /// Has `f` run once the open batch of stream `key` completed, i.e. after every command
    /// tracked in it so far (before the stream's slot says so); hands `f` back when the stream has no open batch (a full one
    /// was just closed, or another thread closed it).
    pub fn after(&self, key: u64, f: AfterBatch) -> Result<(), AfterBatch> {
        match self.lock().open.get_mut(&key) {
            Some(b) => {
                b.after.push(f);
                Ok(())
            }
            None => Err(f),
        }
    }

    /// Closes every open batch: the caller submits their markers.
    pub fn take_open(&self) -> Vec<OpenBatch> {
        self.lock().open.drain().map(|(_, b)| b).collect()
    }

    /// Drops the open batches (teardown: their markers will never be needed).
    pub fn clear_open(&self) {
        self.lock().open.clear();
    }

    /// The batch starting at `first` with `ops` commands completed; publishes `retired`.
    pub fn batch_done(&self, first: u64, ops: u64, retired: &SeqWord) {
        let mut c = self.lock();
        if let Some(n) = c.incomplete.get_mut(&first) {
            *n -= 1;
            if *n == 0 {
                c.incomplete.remove(&first);
            }
        }
        c.completed_ops += ops;
        c.publish_retired(retired);
    }

    /// The ring thread processed every record up to `seq`; publishes `retired`.
    pub fn set_processed(&self, seq: u64, retired: &SeqWord) {
        let mut c = self.lock();
        c.processed = seq;
        c.publish_retired(retired);
    }

    /// True when no batch is incomplete.
    pub fn all_complete(&self) -> bool {
        self.lock().incomplete.is_empty()
    }

    /// Commands completed so far.
    pub fn completed_ops(&self) -> u64 {
        self.lock().completed_ops
    }
}
