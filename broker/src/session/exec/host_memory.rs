//! The `host_memory` family: pinned host buffers the tenant shares with the broker (a sealed memfd
//! sent with `HostRegister` on the socket lane), passed on to the tenant's worker, which maps
//! the same memfd and registers it with its driver, so copies from and to them are zero-copy. A
//! descriptor that is not a size-sealed memfd of the announced size is a protocol violation.
//! The buffers a tenant holds registered are bounded by `max_pinned_bytes`
//! ([`crate::session::limits`]): past it `CUDA_ERROR_OUT_OF_MEMORY`, as when CUDA cannot pin.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::request::HostMemoryRequest;
use gpushare_client::proto::Reply;
use gpushare_client::proto::STAGING_REGION;
use gpushare_client::shm::HostBuffer;

use super::support::{sync_tenant, with_state};
use crate::memory::{Owner, Range};
use crate::session::error::{ExecError, ExecResult};
use crate::session::limits::Limit;
use crate::session::state::{HostRegionEntry, TenantState};
use crate::session::tenant::Tenant;

/// Executes a `host_memory` request.
pub fn execute(t: &Tenant, req: HostMemoryRequest, fds: Vec<OwnedFd>) -> ExecResult {
    let dev = &t.dev;
    match req {
        HostMemoryRequest::HostRegister {
            region,
            size,
            flags: _,
        } => host_register(t, region, size, fds),
        HostMemoryRequest::HostUnregister { region } => {
            let entry = with_state(t, |st| {
                let e = st
                    .host_regions
                    .remove(&region)
                    .ok_or(ExecError::Code(code::ERROR_HOST_MEMORY_NOT_REGISTERED))?;
                st.memory
                    .remove_ranges(|r| r.owner == Owner::Host { region });
                Ok(e)
            })?;
            let synced = sync_tenant(t);
            dev.host_unregister(entry.reg)?;
            synced.map(|()| Reply::Empty)
        }
    }
}

/// Checks that a new host buffer `region` of `size` bytes may be registered: its id is free and
/// it fits `max_pinned_bytes` beside the buffers the tenant has registered.
fn may_register(t: &Tenant, st: &TenantState, region: u32, size: u64) -> Result<(), ExecError> {
    if st.host_regions.contains_key(&region) {
        return Err(ExecError::Code(code::ERROR_HOST_MEMORY_ALREADY_REGISTERED));
    }
    if t.limits.max(Limit::PinnedBytes) == 0 {
        return Ok(());
    }
    let pinned = st.host_regions.values().map(|e| e.size).sum();
    t.limits
        .check(Limit::PinnedBytes, pinned, size)
        .map_err(|e| ExecError::Code(e.code()))
}

/// `HostRegister`: checked before the worker registers the buffer, and again once it has
/// (another request may have taken the room meanwhile: the registration, dropped, is undone).
fn host_register(t: &Tenant, region: u32, size: u64, mut fds: Vec<OwnedFd>) -> ExecResult {
    if region == STAGING_REGION || fds.len() != 1 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let Some(fd) = fds.pop() else {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    };
    with_state(t, |st| may_register(t, st, region, size))?;
    let buf = HostBuffer::open(fd, size)
        .map_err(|e| ExecError::Violation(format!("HostRegister {region}: {e}")))?;
    let reg = t.dev.host_register(buf.fd(), Arc::clone(buf.mapping()))?;
    let device_ptr = reg.device_ptr();
    with_state(t, |st| {
        may_register(t, st, region, size)?;
        st.memory.add_range(Range {
            base: device_ptr,
            len: size,
            owner: Owner::Host { region },
        })?;
        st.host_regions
            .insert(region, HostRegionEntry { reg, size });
        Ok(Reply::HostRegion { device_ptr })
    })
}
