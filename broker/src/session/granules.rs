//! Allocations of a tenant in deduplication (docs/dedup.md): one physical allocation per
//! granule, tracked in the tenant's [`crate::dedup::TenantGranules`]; freeing one leaves the copies it maps
//! (releasing those whose last user it was). Below [`super::tenant`] in the session's layers
//! (its teardown frees through here); what commands mean for the granules is
//! [`super::dedup`].

use super::state::TenantState;
use crate::dedup::index::TenantId;
use crate::dedup::Granule;
use crate::device::{DResult, Device, VmmAlloc};

/// An allocation for a tenant in dedup (`None`: not in dedup, the caller allocates as usual).
pub fn alloc(dev: &Device, st: &mut TenantState, size: u64) -> Option<DResult<VmmAlloc>> {
    let granules = st.granules.as_mut()?;
    Some(dev.vmm_alloc_granules(size).map(|(ptr, handles)| {
        granules.add_alloc(ptr, size, &handles);
        VmmAlloc {
            ptr,
            size: handles.len() as u64 * granules.granule(),
            handle: 0,
        }
    }))
}

/// What freeing a granule-wise allocation takes on the worker.
pub struct Freed {
    ptr: u64,
    /// Per granule: the handle the tenant owns, 0 for shared copies.
    handles: Vec<u64>,
    /// The copies it maps, `(entry, address)`: left after the unmap (not before: the tenant's
    /// queued work may still read them, and a copy with one user left may be taken back).
    leave: Vec<(crate::dedup::EntryId, u64)>,
    tenant: TenantId,
}

/// Stops tracking the allocation at `base` (tables locked): `None` if it is not granule-wise.
/// The tenant leaves the copies it maps in [`free`].
pub fn forget_alloc(tenant: TenantId, st: &mut TenantState, base: u64) -> Option<Freed> {
    let granules = st.granules.as_mut()?;
    let g = granules.granule();
    let list = granules.remove_alloc(base)?;
    let mut freed = Freed {
        ptr: base,
        handles: Vec::with_capacity(list.len()),
        leave: Vec::new(),
        tenant,
    };
    for (i, granule) in list.into_iter().enumerate() {
        match granule {
            Granule::Private { handle, .. } => freed.handles.push(handle),
            Granule::Shared { entry } => {
                freed.handles.push(0);
                freed.leave.push((entry, base + i as u64 * g));
            }
        }
    }
    Some(freed)
}

/// Frees on the worker what [`forget_alloc`] returned (after the tenant's work on it is done).
pub fn free(dev: &Device, freed: Freed) -> DResult<()> {
    let _remap = dev.remap_lock();
    let unmapped = dev.vmm_free_granules(freed.ptr, freed.handles);
    let release: Vec<crate::dedup::Freed> = {
        let mut index = dev.dedup_index();
        freed
            .leave
            .iter()
            .filter_map(|&(entry, at)| index.leave(entry, freed.tenant, at))
            .collect()
    };
    for f in release {
        dev.release_copy(f);
    }
    unmapped
}

/// Every granule-wise allocation the tenant holds (teardown).
pub fn forget_all(tenant: TenantId, st: &mut TenantState) -> Vec<Freed> {
    let bases: Vec<u64> = st
        .granules
        .as_ref()
        .map(|g| g.allocs().map(|(b, _)| b).collect())
        .unwrap_or_default();
    bases
        .into_iter()
        .filter_map(|b| forget_alloc(tenant, st, b))
        .collect()
}
