//! The `memory` family: device memory allocations.
//!
//! `MemAlloc` is VMM-backed (reserve + create + map + access; for a tenant in deduplication one
//! physical allocation per granule, see `session::dedup`), charged to the tenant's quota; an
//! allocation of at most an eighth of a granule is a piece of a slab instead
//! ([`crate::memory::slabs`]: one granule serves many small allocations, charged once);
//! `MemFree` first waits for the tenant's own streams (its queued work may still use the
//! memory).

use gpushare_client::code;
use gpushare_client::proto::request::MemoryRequest;
use gpushare_client::proto::Reply;

use super::support::{sync_tenant, with_state};
use crate::device::VmmAlloc;
use crate::memory::{slabs, Owner, Range};
use crate::session::error::{ExecError, ExecResult};
use crate::session::granules;
use crate::session::tenant::Tenant;

/// Executes a `memory` request.
pub fn execute(t: &Tenant, req: MemoryRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        MemoryRequest::MemAlloc { size } => Ok(Reply::DevicePtr {
            ptr: alloc(t, size)?,
        }),
        MemoryRequest::MemAllocPitch {
            width,
            height,
            element_size,
        } => {
            if !matches!(element_size, 4 | 8 | 16) || width == 0 || height == 0 {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            let pitch = width
                .checked_next_multiple_of(PITCH_ALIGN)
                .ok_or(code::ERROR_INVALID_VALUE)?;
            let size = pitch.checked_mul(height).ok_or(code::ERROR_OUT_OF_MEMORY)?;
            Ok(Reply::Pitched {
                ptr: alloc(t, size)?,
                pitch,
            })
        }
        MemoryRequest::MemFree { ptr } => free(t, ptr),
        MemoryRequest::MemGetInfo => {
            let (charged, quota) =
                with_state(t, |st| Ok((st.memory.charged(), st.memory.quota())))?;
            if quota != 0 {
                return Ok(Reply::MemInfo {
                    free: quota.saturating_sub(charged),
                    total: quota,
                });
            }
            let (free, total) = dev.mem_get_info()?;
            Ok(Reply::MemInfo { free, total })
        }
        MemoryRequest::MemGetAddressRange { ptr } => with_state(t, |st| {
            let r = st
                .memory
                .range_containing(ptr)
                .ok_or(ExecError::Code(code::ERROR_NOT_FOUND))?;
            Ok(Reply::AddressRange {
                base: r.base,
                size: r.len,
            })
        }),
    }
}

/// Pitch alignment of `MemAllocPitch`.
const PITCH_ALIGN: u64 = 512;

/// `cuMemFree`: after the tenant's queued work (it may still use the memory).
fn free(t: &Tenant, ptr: u64) -> ExecResult {
    let dev = &t.dev;
    if ptr == 0 {
        return Ok(Reply::Empty);
    }
    let freed = with_state(t, |st| match st.memory.range_at(ptr).copied() {
        Some(Range {
            owner: Owner::Alloc(a),
            ..
        }) => {
            st.memory.remove_range(ptr);
            st.memory.uncharge(a.size);
            Ok(Freed::Alloc(
                a,
                granules::forget_alloc(t.info.id, st, a.ptr),
            ))
        }
        Some(Range {
            owner: Owner::Piece { slab },
            len,
            ..
        }) => {
            st.memory.remove_range(ptr);
            Ok(Freed::Piece { slab, len })
        }
        _ => Err(ExecError::Code(code::ERROR_INVALID_VALUE)),
    })?;
    // The tenant's queued work may still use the memory.
    let synced = sync_tenant(t);
    match freed {
        Freed::Alloc(_, Some(freed)) => granules::free(dev, freed)?,
        Freed::Alloc(a, None) => dev.vmm_free(&a)?,
        Freed::Piece { slab, len } => free_piece(t, slab, ptr, len)?,
    }
    synced.map(|()| Reply::Empty)
}

/// What a `MemFree` gives back.
enum Freed {
    /// An allocation of its own (granule-wise for a tenant in dedup).
    Alloc(VmmAlloc, Option<granules::Freed>),
    /// A piece of a slab, of `len` bytes.
    Piece { slab: u64, len: u64 },
}

fn alloc(t: &Tenant, size: u64) -> Result<u64, ExecError> {
    if size == 0 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let dev = &t.dev;
    if size <= dev.granularity() / slabs::SMALL_DIVISOR {
        return alloc_piece(t, size);
    }
    let rounded = dev.round_up(size).ok_or(code::ERROR_OUT_OF_MEMORY)?;
    with_state(t, |st| {
        st.memory.can_charge(rounded)?;
        let a = match granules::alloc(dev, st, size) {
            Some(a) => a?,
            None => dev.vmm_alloc(size)?,
        };
        if let Err(e) = st.memory.add_range(Range {
            base: a.ptr,
            len: a.size,
            owner: Owner::Alloc(a),
        }) {
            match granules::forget_alloc(t.info.id, st, a.ptr) {
                Some(freed) => drop(granules::free(dev, freed)),
                None => drop(dev.vmm_free(&a)),
            }
            return Err(e.into());
        }
        st.memory.charge(a.size);
        Ok(a.ptr)
    })
}

/// A small allocation: a piece of one of the tenant's slabs, a new slab (one granule, charged)
/// when none has room.
fn alloc_piece(t: &Tenant, size: u64) -> Result<u64, ExecError> {
    let dev = &t.dev;
    let piece = slabs::piece_size(size).ok_or(code::ERROR_OUT_OF_MEMORY)?;
    with_state(t, |st| {
        let g = dev.granularity();
        let taken = match st.memory.slabs.take(piece) {
            Some(found) => found,
            None => {
                st.memory.can_charge(g)?;
                let a = dev.vmm_alloc(g)?;
                st.memory.charge(a.size);
                st.memory.slabs.add(a);
                st.memory
                    .slabs
                    .take(piece)
                    .ok_or(ExecError::Code(code::ERROR_OUT_OF_MEMORY))?
            }
        };
        let (ptr, slab) = (taken.ptr, taken.slab);
        if taken.from_idle {
            // The kept empty slab is charged again while it holds a piece.
            if let Err(e) = st.memory.can_charge(g) {
                drop(give_back(dev, st, slab, ptr, size));
                return Err(e.into());
            }
            st.memory.charge(g);
        }
        let range = Range {
            base: ptr,
            len: size,
            owner: Owner::Piece { slab },
        };
        if let Err(e) = st.memory.add_range(range) {
            drop(give_back(dev, st, slab, ptr, size));
            return Err(e.into());
        }
        Ok(ptr)
    })
}

/// Gives a freed piece back to its slab (after the tenant's queued work).
fn free_piece(t: &Tenant, slab: u64, ptr: u64, len: u64) -> Result<(), ExecError> {
    with_state(t, |st| {
        give_back(&t.dev, st, slab, ptr, len).map_err(Into::into)
    })
}

/// The piece goes back to its slab; the slab is freed (and uncharged) with its last piece.
fn give_back(
    dev: &crate::device::Device,
    st: &mut crate::session::state::TenantState,
    slab: u64,
    ptr: u64,
    len: u64,
) -> crate::device::DResult<()> {
    let piece = slabs::piece_size(len).unwrap_or(len);
    match st.memory.slabs.give_back(slab, ptr, piece) {
        slabs::Returned::Freed(a) => {
            st.memory.uncharge(a.size);
            dev.vmm_free(&a)
        }
        slabs::Returned::Kept(bytes) => {
            st.memory.uncharge(bytes);
            Ok(())
        }
        slabs::Returned::InUse => Ok(()),
    }
}
