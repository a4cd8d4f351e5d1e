//! The worker's granule operations for deduplication, as the broker calls them, and the
//! worker's content index ([`crate::dedup::ContentIndex`]).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::calls::unexpected;
use super::{DResult, Device, PeerId, Peers};
use crate::dedup::{ContentIndex, Freed, Hash, Key};
use crate::worker::proto::{WorkerReply as R, WorkerRequest as Q};

impl Device {
    /// The worker's content index (a leaf lock).
    pub fn dedup_index(&self) -> MutexGuard<'_, ContentIndex> {
        lock(&self.dedup)
    }

    /// An allocation of at least `size` bytes with one physical allocation per granule:
    /// `(address, handles)`.
    pub fn vmm_alloc_granules(&self, size: u64) -> DResult<(u64, Vec<u64>)> {
        match self.call("cuMemCreate", Q::VmmAllocGranules { size })? {
            R::Granules { ptr, handles } => Ok((ptr, handles)),
            _ => Err(unexpected("cuMemCreate")),
        }
    }

    /// Frees a [`Device::vmm_alloc_granules`] allocation; `handles` has one entry per granule,
    /// 0 for granules the tenant does not own (shared copies: only unmapped).
    pub fn vmm_free_granules(&self, ptr: u64, handles: Vec<u64>) -> DResult<()> {
        self.call("cuMemUnmap", Q::VmmFreeGranules { ptr, handles })
            .map(|_| ())
    }

    /// Maps the shared copy `shared` read-only at granule `addr`, releasing `old`.
    pub fn granule_join(&self, addr: u64, old: u64, shared: u64) -> DResult<()> {
        self.call("cuMemMap", Q::GranuleJoin { addr, old, shared })
            .map(|_| ())
    }

    /// Copy-on-write of the granule at `addr`: the new private handle.
    pub fn granule_privatize(&self, addr: u64) -> DResult<u64> {
        match self.call("cuMemCreate", Q::GranulePrivatize { addr })? {
            R::Value(h) => Ok(h),
            _ => Err(unexpected("cuMemCreate")),
        }
    }
}

impl Device {
    /// The content key of physical granule `handle` cut into `pieces`, and its prefix key
    /// ([`crate::dedup::prefix_key`]) when the pieces are one, the whole granule.
    pub fn handle_key(&self, handle: u64, pieces: Vec<(u64, u64)>) -> DResult<(Key, Option<Hash>)> {
        match self.call("cuMemcpyDtoH", Q::HandleKey { handle, pieces })? {
            R::Key(k, prefix) => Ok((k, prefix)),
            _ => Err(unexpected("cuMemcpyDtoH")),
        }
    }

    /// Held while deduplication changes or checks which addresses map a copy (joins,
    /// copy-on-write, verification, freeing), in this worker or another of the device
    /// ([`Peers::remap_lock`]): taken after a tenant's tables, before any index.
    pub fn remap_lock(&self) -> MutexGuard<'_, ()> {
        self.peers.remap_lock()
    }

    /// The device's workers.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// This worker's id among its peers.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A POSIX file descriptor of physical granule `handle`, for another worker to import.
    pub fn granule_export(&self, handle: u64) -> DResult<OwnedFd> {
        self.link().export_granule(handle)
    }

    /// Releases what an entry of this worker's index left ([`Freed`]): its handle here and,
    /// for an import, the exporting worker's entry's share of the memory (and so on, should
    /// that entry be an import too). Best effort: a failure is logged (a leaked handle, never
    /// a wrong mapping); a worker gone has nothing left to release.
    pub fn release_copy(&self, freed: Freed) {
        if let Err(e) = self.mem_release(freed.handle) {
            tracing::warn!(group = %self.link().group(), "releasing a deduplicated copy: {e}");
        }
        let mut origin = freed.origin;
        while let Some((peer, entry)) = origin.take() {
            let Some(dev) = self.peers.get(peer) else {
                return;
            };
            let unused = dev.dedup_index().unexport(entry);
            if let Some(f) = unused {
                if let Err(e) = dev.mem_release(f.handle) {
                    tracing::warn!(group = %dev.link().group(), "releasing an exported copy: {e}");
                }
                origin = f.origin;
            }
        }
    }

    /// This worker's handle for the memory behind `fd` (another worker's export).
    pub fn granule_import(&self, fd: BorrowedFd<'_>) -> DResult<u64> {
        self.link().import_granule(fd)
    }
}

fn lock(m: &Mutex<ContentIndex>) -> MutexGuard<'_, ContentIndex> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
