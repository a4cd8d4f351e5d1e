//! The `memory` family: device memory allocations.
//!
//! `MemAlloc` is VMM-backed (reserve + create + map + access; for a tenant in deduplication one
//! physical allocation per granule, see `session::dedup`), charged to the tenant's quota;
//! `MemFree` first waits for the tenant's own streams (its queued work may still use the
//! memory).

use gpushare_client::code;
use gpushare_client::proto::request::MemoryRequest;
use gpushare_client::proto::Reply;

use super::support::{sync_tenant, with_state};
use crate::memory::{Owner, Range};
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
        MemoryRequest::MemFree { ptr } => {
            if ptr == 0 {
                return Ok(Reply::Empty);
            }
            let (a, granular) =
                with_state(t, |st| match st.memory.range_at(ptr).map(|r| r.owner) {
                    Some(Owner::Alloc(a)) => {
                        st.memory.remove_range(ptr);
                        st.memory.uncharge(a.size);
                        Ok((a, granules::forget_alloc(t.info.id, st, a.ptr)))
                    }
                    _ => Err(ExecError::Code(code::ERROR_INVALID_VALUE)),
                })?;
            // The tenant's queued work may still use the memory.
            let synced = sync_tenant(t);
            match granular {
                Some(freed) => granules::free(dev, freed)?,
                None => dev.vmm_free(&a)?,
            }
            synced.map(|()| Reply::Empty)
        }
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

fn alloc(t: &Tenant, size: u64) -> Result<u64, ExecError> {
    if size == 0 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let dev = &t.dev;
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
