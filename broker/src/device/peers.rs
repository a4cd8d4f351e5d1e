//! The workers of one physical device, as deduplication across isolation groups sees them
//! (docs/dedup.md, "Across isolation groups"): a copy held by one worker can be exported once
//! (a POSIX file descriptor of its physical memory) and imported read-only by another.
//!
//! Every worker of the broker drives device 0, so one [`Peers`] holds them all. It also holds
//! the one remap lock of the device: a remap may change mappings in two workers at once (a
//! copy made read-only where its first user maps it, while another worker imports it), so
//! every deduplication remap of the device is serialised by it. Remaps are rare (model loads,
//! copy-on-write, frees of deduplicated memory), so one lock costs nothing measurable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::Device;
use crate::dedup::{summarize, Summary};

/// A worker's id among its peers (never reused).
pub type PeerId = u64;

/// The workers of the device.
#[derive(Default)]
pub struct Peers {
    remap: Mutex<()>,
    devices: Mutex<Vec<(PeerId, Weak<Device>)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("workers", &lock(&self.devices).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Peers {
    /// No worker yet.
    pub fn new() -> Arc<Peers> {
        Arc::new(Peers::default())
    }

    /// A new worker's id.
    pub(super) fn next_id(&self) -> PeerId {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Lists a started worker.
    pub(super) fn add(&self, dev: &Arc<Device>) {
        let mut devices = lock(&self.devices);
        devices.retain(|(_, d)| d.strong_count() > 0);
        devices.push((dev.peer_id(), Arc::downgrade(dev)));
    }

    /// The worker `id`, while the broker holds it.
    pub fn get(&self, id: PeerId) -> Option<Arc<Device>> {
        lock(&self.devices)
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, d)| d.upgrade())
    }

    /// Every worker but `id` that the broker holds.
    pub fn others(&self, id: PeerId) -> Vec<Arc<Device>> {
        lock(&self.devices)
            .iter()
            .filter(|(i, _)| *i != id)
            .filter_map(|(_, d)| d.upgrade())
            .collect()
    }

    /// Deduplication's figures over every live worker ([`crate::dedup::summarize`]); each
    /// index is locked in turn.
    pub fn dedup_summary(&self) -> Summary {
        let devices: Vec<Arc<Device>> = lock(&self.devices)
            .iter()
            .filter_map(|(_, d)| d.upgrade())
            .filter(|d| d.link().is_alive())
            .collect();
        summarize(
            devices
                .iter()
                .map(|d| (d.peer_id(), d.dedup_index().uses(d.peer_id())))
                .collect(),
        )
    }

    /// Held while deduplication changes or checks which addresses map a copy, in any worker
    /// of the device: taken after a tenant's tables, before any content index.
    pub fn remap_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.remap)
    }
}
