//! Synchronous requests: device memory, VMM, host buffers and synchronous copies.
//!
//! `MemAlloc` is VMM-backed (reserve + create + map + access). Frees and unmaps first wait for
//! the tenant's own streams (the memory may be in use by its queued work). Synchronous copies and
//! memsets run on the tenant's legacy stream (with its join semantics) and return once the
//! stream has finished them. Every device range is checked against the tenant's own memory; a
//! host span outside shared memory, or a `HostRegister` descriptor that is not a size-sealed
//! memfd of the announced size, is a protocol violation.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::{AccessDesc, HostSpan, Reply, Request, STAGING_REGION};
use gpushare_client::shm::HostBuffer;

use super::exec::{sync_stream, sync_tenant, with_state, ExecError, ExecResult};
use super::ring::{host_mem, memset_extent};
use super::state::HostRegionEntry;
use super::{SessionError, Tenant};
use crate::device::{AccessFlags, HostMem, Stream};
use crate::memory::{Owner, PhysAlloc, Range};
use crate::work::Op;

/// Errors of this module are [`ExecError`]s.
pub type MemResult = ExecResult;

/// Pitch alignment of `MemAllocPitch`.
const PITCH_ALIGN: u64 = 512;
/// Largest module image read from shared memory.
const MAX_IMAGE: u64 = 1 << 30;

/// `CUpointer_attribute` values answered from the tenant's tables.
mod attr {
    pub const CONTEXT: u32 = 1;
    pub const MEMORY_TYPE: u32 = 2;
    pub const DEVICE_POINTER: u32 = 3;
    pub const SYNC_MEMOPS: u32 = 6;
    pub const BUFFER_ID: u32 = 7;
    pub const IS_MANAGED: u32 = 8;
    pub const DEVICE_ORDINAL: u32 = 9;
    pub const IS_LEGACY_CUDA_IPC_CAPABLE: u32 = 10;
    pub const RANGE_START_ADDR: u32 = 11;
    pub const RANGE_SIZE: u32 = 12;
    pub const MAPPED: u32 = 13;
    pub const ALLOWED_HANDLE_TYPES: u32 = 14;
    pub const IS_GPU_DIRECT_RDMA_CAPABLE: u32 = 15;
    pub const ACCESS_FLAGS: u32 = 16;
    pub const MEMPOOL_HANDLE: u32 = 17;
    pub const MAPPING_SIZE: u32 = 18;
    pub const MAPPING_BASE_ADDR: u32 = 19;
    pub const MEMORY_BLOCK_ID: u32 = 20;
}

/// Copies the bytes of a host span out of shared memory (module images). The span is checked
/// before anything is allocated.
pub fn read_host(t: &Tenant, span: HostSpan) -> Result<Vec<u8>, ExecError> {
    if span.len > MAX_IMAGE {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let outside = || {
        ExecError::Violation(format!(
            "module image {:#x}+{:#x} outside host region {}",
            span.offset, span.len, span.region
        ))
    };
    if span.region == STAGING_REGION {
        t.staging
            .check(span.offset, span.len)
            .map_err(|_| outside())?;
        let mut out = vec![0u8; span.len as usize];
        t.staging
            .read(span.offset, &mut out)
            .map_err(|_| outside())?;
        return Ok(out);
    }
    let map = with_state(t, |st| {
        let h = st.host_regions.get(&span.region).ok_or_else(outside)?;
        match span.offset.checked_add(span.len) {
            Some(end) if end <= h.size => Ok(Arc::clone(h.reg.mapping())),
            _ => Err(outside()),
        }
    })?;
    let mut out = vec![0u8; span.len as usize];
    map.read(span.offset as usize, &mut out)
        .map_err(|_| outside())?;
    Ok(out)
}

/// Runs `op` on the tenant's legacy stream and waits for it.
fn sync_op(t: &Tenant, build: impl FnOnce(Arc<Stream>) -> Op) -> Result<(), ExecError> {
    let (ops, stream) = with_state(t, |st| {
        let (stream, _, mut ops) = st.prepare(0)?;
        ops.push(build(Arc::clone(&stream)));
        Ok((ops, stream))
    })?;
    match t.submit_and_wait(ops) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(SessionError::Closed) => return Err(ExecError::Code(code::ERROR_DEINITIALIZED)),
        Err(e) => return Err(ExecError::Violation(e.to_string())),
    }
    sync_stream(t, &stream)
}

fn device0(device: i32) -> Result<(), ExecError> {
    if device == 0 {
        Ok(())
    } else {
        Err(ExecError::Code(code::ERROR_INVALID_DEVICE))
    }
}

fn alloc(t: &Tenant, size: u64) -> Result<u64, ExecError> {
    if size == 0 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let dev = &t.env.dev;
    let rounded = dev.round_up(size).ok_or(code::ERROR_OUT_OF_MEMORY)?;
    with_state(t, |st| {
        st.memory.can_charge(rounded)?;
        let a = dev.vmm_alloc(size)?;
        if let Err(e) = st.memory.add_range(Range {
            base: a.ptr,
            len: a.size,
            owner: Owner::Alloc(a),
        }) {
            let _ = dev.vmm_free(&a);
            return Err(e.into());
        }
        st.memory.charge(a.size);
        Ok(a.ptr)
    })
}

/// Executes a memory request.
pub fn execute(t: &Arc<Tenant>, req: Request, fds: Vec<OwnedFd>) -> MemResult {
    let dev = &t.env.dev;
    match req {
        Request::MemAlloc { size } => Ok(Reply::DevicePtr {
            ptr: alloc(t, size)?,
        }),
        Request::MemAllocPitch {
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
        Request::MemFree { ptr } => {
            if ptr == 0 {
                return Ok(Reply::Empty);
            }
            let a = with_state(t, |st| match st.memory.range_at(ptr).map(|r| r.owner) {
                Some(Owner::Alloc(a)) => {
                    st.memory.remove_range(ptr);
                    st.memory.uncharge(a.size);
                    Ok(a)
                }
                _ => Err(ExecError::Code(code::ERROR_INVALID_VALUE)),
            })?;
            // The tenant's queued work may still use the memory.
            let synced = sync_tenant(t);
            dev.vmm_free(&a)?;
            synced.map(|()| Reply::Empty)
        }
        Request::MemGetInfo => {
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
        Request::MemGetAddressRange { ptr } => with_state(t, |st| {
            let r = st
                .memory
                .range_containing(ptr)
                .ok_or(ExecError::Code(code::ERROR_NOT_FOUND))?;
            Ok(Reply::AddressRange {
                base: r.base,
                size: r.len,
            })
        }),
        Request::PointerGetAttribute { ptr, attribute } => pointer_attribute(t, ptr, attribute),
        Request::HostRegister {
            region,
            size,
            flags: _,
        } => host_register(t, region, size, fds),
        Request::HostUnregister { region } => {
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
        Request::MemAddressReserve {
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
        Request::MemAddressFree { ptr, size } => {
            with_state(t, |st| Ok(st.memory.remove_reservation(ptr, size)?))?;
            dev.address_free(ptr, size)?;
            Ok(Reply::Empty)
        }
        Request::MemCreate { size, device, .. } => {
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
        Request::MemRelease { handle } => with_state(t, |st| {
            let p = st.phys.remove(handle)?;
            st.memory.uncharge(p.size);
            dev.mem_release(p.raw)?;
            Ok(Reply::Empty)
        }),
        Request::MemMap {
            ptr,
            size,
            offset,
            handle,
            ..
        } => with_state(t, |st| {
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
        }),
        Request::MemUnmap { ptr, size } => {
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
        Request::MemSetAccess { ptr, size, access } => {
            let flags = access_flags(&access)?;
            with_state(t, |st| {
                st.memory.check(ptr, size)?;
                if !st.memory.in_reservation(ptr, size) {
                    return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
                }
                Ok(())
            })?;
            for f in flags {
                dev.mem_set_access(ptr, size, f)?;
            }
            Ok(Reply::Empty)
        }
        Request::MemGetAllocationGranularity { device, option } => {
            device0(device)?;
            if option > 1 {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            Ok(Reply::Value(dev.allocation_granularity(option)?))
        }
        Request::MemcpyHtoD { dst, src } => {
            let host = resolve_host(t, src)?;
            with_state(t, |st| Ok(st.memory.check(dst, src.len)?))?;
            sync_op(t, |stream| Op::CopyHtoD {
                dst,
                src: host,
                stream,
            })?;
            Ok(Reply::Empty)
        }
        Request::MemcpyDtoH { dst, src } => {
            let host = resolve_host(t, dst)?;
            with_state(t, |st| Ok(st.memory.check(src, dst.len)?))?;
            sync_op(t, |stream| Op::CopyDtoH {
                dst: host,
                src,
                stream,
            })?;
            Ok(Reply::Empty)
        }
        Request::MemcpyDtoD { dst, src, len } => {
            with_state(t, |st| {
                st.memory.check(dst, len)?;
                Ok(st.memory.check(src, len)?)
            })?;
            sync_op(t, |stream| Op::CopyDtoD {
                dst,
                src,
                len,
                stream,
            })?;
            Ok(Reply::Empty)
        }
        Request::Memset {
            dst,
            pitch,
            value,
            element_size,
            width,
            height,
        } => {
            let es = u32::from(element_size);
            if !matches!(es, 1 | 2 | 4) {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            let len = memset_extent(pitch, width, height, u64::from(es))
                .ok_or(code::ERROR_INVALID_VALUE)?;
            with_state(t, |st| Ok(st.memory.check(dst, len)?))?;
            sync_op(t, |stream| Op::Memset {
                dst,
                pitch,
                value,
                element_size: es,
                width,
                height,
                stream,
            })?;
            Ok(Reply::Empty)
        }
        _ => Err(ExecError::Code(code::ERROR_NOT_SUPPORTED)),
    }
}

fn resolve_host(t: &Tenant, span: HostSpan) -> Result<HostMem, ExecError> {
    with_state(t, |st| {
        Ok(host_mem(t, st, span.region, span.offset, span.len)?)
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

fn host_register(t: &Arc<Tenant>, region: u32, size: u64, mut fds: Vec<OwnedFd>) -> MemResult {
    if region == STAGING_REGION || fds.len() != 1 {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let Some(fd) = fds.pop() else {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    };
    if with_state(t, |st| Ok(st.host_regions.contains_key(&region)))? {
        return Err(ExecError::Code(code::ERROR_HOST_MEMORY_ALREADY_REGISTERED));
    }
    let buf = HostBuffer::open(fd, size)
        .map_err(|e| ExecError::Violation(format!("HostRegister {region}: {e}")))?;
    let map = Arc::clone(buf.mapping());
    drop(buf);
    let len = usize::try_from(size).map_err(|_| code::ERROR_INVALID_VALUE)?;
    let reg = t.env.dev.host_register(map, 0, len)?;
    let device_ptr = reg.device_ptr();
    with_state(t, |st| {
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

fn pointer_attribute(t: &Tenant, ptr: u64, attribute: u32) -> MemResult {
    with_state(t, |st| {
        let r = *st
            .memory
            .range_containing(ptr)
            .ok_or(ExecError::Code(code::ERROR_INVALID_VALUE))?;
        let host = matches!(r.owner, Owner::Host { .. });
        let v = match attribute {
            attr::CONTEXT => match st.primary {
                Some((h, _)) => h,
                None => {
                    let h = st
                        .contexts
                        .insert(super::state::ContextEntry { primary: true })?;
                    st.primary = Some((h, 0));
                    h
                }
            },
            // CU_MEMORYTYPE_HOST 1, CU_MEMORYTYPE_DEVICE 2.
            attr::MEMORY_TYPE => {
                if host {
                    1
                } else {
                    2
                }
            }
            attr::DEVICE_POINTER => ptr,
            attr::SYNC_MEMOPS | attr::MAPPED => 1,
            attr::BUFFER_ID | attr::MEMORY_BLOCK_ID | attr::RANGE_START_ADDR => r.base,
            attr::MAPPING_BASE_ADDR => r.base,
            attr::RANGE_SIZE | attr::MAPPING_SIZE => r.len,
            attr::IS_MANAGED
            | attr::DEVICE_ORDINAL
            | attr::IS_LEGACY_CUDA_IPC_CAPABLE
            | attr::ALLOWED_HANDLE_TYPES
            | attr::IS_GPU_DIRECT_RDMA_CAPABLE
            | attr::MEMPOOL_HANDLE => 0,
            // CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
            attr::ACCESS_FLAGS => 3,
            _ => return Err(ExecError::Code(code::ERROR_NOT_SUPPORTED)),
        };
        Ok(Reply::Value(v))
    })
}
