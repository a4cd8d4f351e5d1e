//! The worker's granule operations for deduplication, as the broker calls them, and the
//! worker's content index ([`crate::dedup::ContentIndex`]).

use std::sync::{Mutex, MutexGuard};

use super::calls::unexpected;
use super::{DResult, Device};
use crate::dedup::{ContentIndex, Key};
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

    /// The content key of the device's bytes of the granule at `addr` cut into `pieces`.
    pub fn granule_key(&self, addr: u64, pieces: Vec<(u64, u64)>) -> DResult<Key> {
        match self.call("cuMemcpyDtoH", Q::GranuleKey { addr, pieces })? {
            R::Key(k) => Ok(k),
            _ => Err(unexpected("cuMemcpyDtoH")),
        }
    }
}

impl Device {
    /// The content key of physical granule `handle` cut into `pieces`.
    pub fn handle_key(&self, handle: u64, pieces: Vec<(u64, u64)>) -> DResult<Key> {
        match self.call("cuMemcpyDtoH", Q::HandleKey { handle, pieces })? {
            R::Key(k) => Ok(k),
            _ => Err(unexpected("cuMemcpyDtoH")),
        }
    }

    /// Held while deduplication changes or checks which addresses map a copy (joins,
    /// copy-on-write, verification, freeing): taken after a tenant's tables, before the index.
    pub fn remap_lock(&self) -> MutexGuard<'_, ()> {
        self.remap.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(m: &Mutex<ContentIndex>) -> MutexGuard<'_, ContentIndex> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
