//! The `vmm` family: virtual memory management — address reservations, physical allocations
//! (charged to the tenant's quota), mappings and access. Unmapping first waits for the tenant's
//! own streams.

use gpushare_client::code;
use gpushare_client::proto::request::VmmRequest;
use gpushare_client::proto::AccessDesc;
use gpushare_client::proto::Reply;

use super::support::{device0, sync_tenant, with_state};
use crate::device::AccessFlags;
use crate::memory::{Owner, PhysAlloc, Range};
use crate::session::error::{ExecError, ExecResult};
use crate::session::tenant::Tenant;

/// Executes a `vmm` request.
pub fn execute(t: &Tenant, req: VmmRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        VmmRequest::MemAddressReserve {
            size,
            alignment,
            addr,
            flags,
        } => {
            let ptr = dev.address_reserve(size, alignment, addr, flags)?;
            with_state(t, |st| {
                st.memory.add_reservation(ptr, size);
                Ok(Reply::DevicePtr { ptr })
            })
        }
        VmmRequest::MemAddressFree { ptr, size } => {
            with_state(t, |st| Ok(st.memory.remove_reservation(ptr, size)?))?;
            dev.address_free(ptr, size)?;
            Ok(Reply::Empty)
        }
        VmmRequest::MemCreate { size, device, .. } => mem_create(t, size, device),
        VmmRequest::MemRelease { handle } => with_state(t, |st| {
            let p = st.phys.remove(handle)?;
            st.memory.uncharge(p.size);
            dev.mem_release(p.raw)?;
            Ok(Reply::Empty)
        }),
        VmmRequest::MemMap {
            ptr,
            size,
            offset,
            handle,
            ..
        } => mem_map(t, ptr, size, offset, handle),
        VmmRequest::MemUnmap { ptr, size } => {
            with_state(t, |st| match st.memory.range_at(ptr) {
                Some(r) if matches!(r.owner, Owner::Mapped { .. }) && r.len == size => {
                    st.memory.remove_range(ptr);
                    Ok(())
                }
                _ => Err(ExecError::Code(code::ERROR_INVALID_VALUE)),
            })?;
            let synced = sync_tenant(t);
            dev.mem_unmap(ptr, size)?;
            synced.map(|()| Reply::Empty)
        }
        VmmRequest::MemSetAccess { ptr, size, access } => {
            let flags = access_flags(&access)?;
            with_state(t, |st| {
                st.memory.check(ptr, size)?;
                if !st.memory.in_reservation(ptr, size) {
                    return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
                }
                Ok(())
            })?;
            // The tenant's queued work first: a memset or kernel submitted before the call
            // must not meet the new protection (a synchronous memset of device memory returns
            // before it runs).
            let synced = sync_tenant(t);
            for f in flags {
                dev.mem_set_access(ptr, size, f)?;
            }
            synced.map(|()| Reply::Empty)
        }
        VmmRequest::MemGetAllocationGranularity { device, option } => {
            device0(device)?;
            if option > 1 {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            Ok(Reply::Value(dev.allocation_granularity(option)?))
        }
    }
}

/// `MemCreate`: a physical allocation on device 0, charged to the tenant.
fn mem_create(t: &Tenant, size: u64, device: i32) -> ExecResult {
    let dev = &t.dev;
    device0(device)?;
    if size == 0 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    with_state(t, |st| {
        st.memory.can_charge(size)?;
        let raw = dev.mem_create(size)?;
        match st.phys.insert(PhysAlloc { raw, size }) {
            Ok(handle) => {
                st.memory.charge(size);
                Ok(Reply::MemHandle { handle })
            }
            Err(e) => {
                let _ = dev.mem_release(raw);
                Err(e.into())
            }
        }
    })
}

/// `MemMap`: maps `size` bytes of allocation `handle` (from `offset`) at `ptr`, inside one of
/// the tenant's reservations; the range becomes the tenant's.
fn mem_map(t: &Tenant, ptr: u64, size: u64, offset: u64, handle: u64) -> ExecResult {
    let dev = &t.dev;
    with_state(t, |st| {
        let p = *st.phys.get(handle)?;
        let fits = offset.checked_add(size).is_some_and(|e| e <= p.size);
        if !fits || !st.memory.in_reservation(ptr, size) {
            return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
        }
        dev.mem_map(ptr, size, offset, p.raw)?;
        if let Err(e) = st.memory.add_range(Range {
            base: ptr,
            len: size,
            owner: Owner::Mapped { handle },
        }) {
            let _ = dev.mem_unmap(ptr, size);
            return Err(e.into());
        }
        Ok(Reply::Empty)
    })
}

fn access_flags(access: &[AccessDesc]) -> Result<Vec<AccessFlags>, ExecError> {
    if access.is_empty() {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    access
        .iter()
        .map(|d| {
            // CU_MEM_LOCATION_TYPE_DEVICE, device 0.
            if d.location_type != 1 {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            device0(d.location_id)?;
            match d.flags {
                0 => Ok(AccessFlags::None),
                1 => Ok(AccessFlags::Read),
                3 => Ok(AccessFlags::ReadWrite),
                _ => Err(ExecError::Code(code::ERROR_INVALID_VALUE)),
            }
        })
        .collect()
}
