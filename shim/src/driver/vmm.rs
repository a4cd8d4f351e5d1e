//! Virtual memory management: `cuMemAddressReserve`/`Free`, `cuMemCreate`/`Release`,
//! `cuMemMap`/`Unmap`, `cuMemSetAccess`/`GetAccess`, `cuMemGetAllocationGranularity`,
//! `cuMemGetAllocationPropertiesFromHandle`, `cuMemRetainAllocationHandle`.
//!
//! Reservations, physical allocations and mappings are the broker's (the VMM requests); the shim
//! mirrors them in the runtime's VMM table ([`crate::runtime::vmm`]) so that it can check
//! arguments as the CPU device does (with the shared checks of
//! [`gpushare_driver_abi::checks`]), answer the queries the protocol has no request for, and keep
//! `cuMemRetainAllocationHandle`'s reference counts (the broker's handle is released once the
//! last reference is gone and nothing maps it any more, as the CPU device does). Reserved ranges
//! are device ranges of the tenant and are reserved in this process too ([`super::reserve`]).
//!
//! Like the CPU device: devices 0 ... n-1 of the broker, pinned device memory only; VMM objects
//! are process-wide (no current context needed). Exporting and importing shareable handles is not
//! supported (the surface's `NOT_SUPPORTED` default): the memory lives in the broker.

use std::collections::BTreeMap;

use gpushare_client::proto::{AccessDesc, Reply, Request};
use gpushare_driver_abi::checks;
use gpushare_driver_abi::cuda_h::{CUmemAllocFlags, ALLOCATION_TYPE_PINNED, LOCATION_DEVICE};
use gpushare_driver_abi::surface::prelude::*;

use super::reserve::{release_local, reserve_local};
use crate::runtime::vmm::{Mapping, Phys, Reservation, VmmTable};
use crate::runtime::{current_ctx, runtime, Runtime};
use crate::Shim;

fn log_debug(msg: std::fmt::Arguments<'_>) {
    crate::log(|| tracing::debug!(target: "gpushare::shim", "{msg}"));
}

/// Releases the broker's handle once it has neither references nor mappings.
fn release_if_unused(rt: &Runtime, v: &mut VmmTable, handle: u64) -> CuResult {
    if v.forget_if_unused(handle) {
        return rt.call_empty(Request::MemRelease { handle });
    }
    Ok(())
}

fn address_free(rt: &Runtime, ptr: u64, size: u64) -> CuResult {
    rt.vmm(|v| {
        match v.reservations.get(&ptr) {
            Some(r) if r.size == size && r.mappings.is_empty() => {}
            Some(r) if r.size == size => {
                log_debug(format_args!(
                    "cuMemAddressFree({ptr:#x}): still mapped; cuMemUnmap first"
                ));
                return Err(CuError::INVALID_VALUE);
            }
            _ => {
                log_debug(format_args!(
                    "cuMemAddressFree({ptr:#x}, {size:#x}): not a reservation of that size"
                ));
                return Err(CuError::INVALID_VALUE);
            }
        }
        rt.call_empty(Request::MemAddressFree { ptr, size })?;
        if let Some(r) = v.reservations.remove(&ptr) {
            if r.local {
                release_local(ptr, r.size);
            }
        }
        rt.remove_device_range(ptr);
        rt.forget_attributes(ptr);
        Ok(())
    })
}

fn map(rt: &Runtime, ptr: u64, size: u64, offset: u64, handle: u64) -> CuResult {
    rt.vmm(|v| {
        let phys = v.live(handle)?.size;
        if offset.checked_add(size).is_none_or(|e| e > phys) {
            log_debug(format_args!(
                "cuMemMap: {size:#x} bytes at offset {offset:#x} of a {phys:#x}-byte allocation"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        let r = v.reservation_of(ptr, size)?;
        let end = ptr + size;
        let clash = r
            .mappings
            .range(..end)
            .next_back()
            .is_some_and(|(&b, m)| b + m.size > ptr);
        if clash {
            log_debug(format_args!(
                "cuMemMap({ptr:#x}, {size:#x}): range already mapped"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        rt.call_empty(Request::MemMap {
            ptr,
            size,
            offset,
            handle,
            flags: 0,
        })?;
        let ctx = current_ctx();
        r.mappings.insert(ptr, Mapping { size, handle, ctx });
        r.set_perm(ptr, end, None);
        if let Some(p) = v.phys.get_mut(&handle) {
            p.maps += 1;
        }
        Ok(())
    })
}

/// The bases of the whole mappings that make up exactly `[ptr, ptr + size)` of `r`.
fn whole_mappings(r: &Reservation, ptr: u64, size: u64) -> CuResult<Vec<u64>> {
    let end = ptr + size;
    let mut cur = ptr;
    let mut keys = Vec::new();
    for (&b, m) in r.mappings.range(ptr..end) {
        if b != cur || b + m.size > end {
            break;
        }
        keys.push(b);
        cur = b + m.size;
    }
    if keys.is_empty() || cur != end {
        log_debug(format_args!(
            "cuMemUnmap({ptr:#x}, {size:#x}): not exactly a set of whole mappings"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(keys)
}

/// `cuMemUnmap`: `[ptr, ptr + size)` must be exactly one or more whole mappings (the broker
/// unmaps them one by one).
fn unmap(rt: &Runtime, ptr: u64, size: u64) -> CuResult {
    rt.vmm(|v| {
        let r = v.reservation_of(ptr, size)?;
        let keys = whole_mappings(r, ptr, size)?;
        let mut result = Ok(());
        let mut handles = Vec::new();
        for b in keys {
            let Some(m) = r.mappings.get(&b).copied() else {
                continue;
            };
            if let Err(e) = rt.call_empty(Request::MemUnmap {
                ptr: b,
                size: m.size,
            }) {
                result = result.and(Err(e));
                continue;
            }
            r.mappings.remove(&b);
            r.set_perm(b, b + m.size, None);
            handles.push(m.handle);
        }
        for h in handles {
            if let Some(p) = v.phys.get_mut(&h) {
                p.maps = p.maps.saturating_sub(1);
            }
            if let Err(e) = release_if_unused(rt, v, h) {
                log_debug(format_args!(
                    "releasing memory handle {h:#x} after its last unmap: {e}"
                ));
            }
        }
        result
    })
}

/// `cuMemSetAccess` with descriptors already read: `perm` on `[ptr, ptr + size)`, which must be
/// fully mapped.
fn set_access(rt: &Runtime, ptr: u64, size: u64, perm: u8, descs: &[CUmemAccessDesc]) -> CuResult {
    let access = descs
        .iter()
        .map(|a| AccessDesc {
            location_type: a.location.type_ as u32,
            location_id: a.location.id,
            flags: a.flags as u32,
        })
        .collect();
    rt.vmm(|v| {
        let r = v.reservation_of(ptr, size)?;
        let end = ptr + size;
        if size == 0 || !r.covered(ptr, end, None) {
            log_debug(format_args!(
                "cuMemSetAccess({ptr:#x}, {size:#x}): range is not fully mapped"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        rt.call_empty(Request::MemSetAccess { ptr, size, access })?;
        r.set_perm(ptr, end, Some(perm));
        Ok(())
    })
}

/// `cuMemRetainAllocationHandle`: the handle mapped at `addr`, with one more reference.
fn retain(v: &mut VmmTable, addr: u64) -> CuResult<u64> {
    let h = v
        .reservation_at(addr)
        .and_then(|(_, r)| r.mapping_at(addr))
        .map(|(_, m)| m.handle);
    match h.and_then(|h| Some((h, v.phys.get_mut(&h)?))) {
        Some((h, p)) => {
            p.refs += 1;
            Ok(h)
        }
        None => {
            log_debug(format_args!(
                "cuMemRetainAllocationHandle({addr:#x}): not a mapped VMM address"
            ));
            Err(CuError::INVALID_VALUE)
        }
    }
}

gpushare_driver_abi::implement! {
    impl Vmm for Shim {
        /// `cuMemAddressReserve`: `addr` is a hint; flags must be 0.
        fn mem_address_reserve(ptr: Out<'_, CUdeviceptr>, size: usize, alignment: usize, addr: CUdeviceptr, flags: u64) -> CuResult {
            let rt = runtime()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            let (size, alignment) = (size as u64, alignment as u64);
            let req = Request::MemAddressReserve { size, alignment, addr, flags: 0 };
            let Reply::DevicePtr { ptr: va } = rt.call(req)? else {
                return Err(CuError::UNKNOWN);
            };
            let r = Reservation {
                size,
                ctx: current_ctx(),
                id: rt.new_id(),
                local: reserve_local(va, size),
                mappings: BTreeMap::new(),
                perms: BTreeMap::new(),
            };
            rt.vmm(|v| v.reservations.insert(va, r));
            rt.add_device_range(va, size);
            ptr.write(va)
        }

        /// `cuMemAddressFree`: exactly a reservation, with nothing mapped in it.
        fn mem_address_free(ptr: CUdeviceptr, size: usize) -> CuResult {
            address_free(runtime()?, ptr, size as u64)
        }

        /// `cuMemCreate`: flags must be 0.
        fn mem_create(handle: Out<'_, CUmemGenericAllocationHandle>, size: usize, prop: In<CUmemAllocationProp>, flags: u64) -> CuResult {
            let rt = runtime()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            let types = checks::allocation_prop(&prop, |d| rt.has_device(d))?;
            let (size, device) = (size as u64, prop.location.id);
            let req = Request::MemCreate { size, device, flags: u64::from(types) };
            let Reply::MemHandle { handle: h } = rt.call(req)? else {
                return Err(CuError::UNKNOWN);
            };
            let phys = Phys { size, types, device, refs: 1, maps: 0, block_id: rt.new_id() };
            rt.vmm(|v| v.phys.insert(h, phys));
            handle.write(h)
        }

        /// `cuMemRelease`: drops one reference; the memory goes when it is unmapped too.
        fn mem_release(handle: CUmemGenericAllocationHandle) -> CuResult {
            let rt = runtime()?;
            rt.vmm(|v| {
                v.live(handle)?.refs -= 1;
                release_if_unused(rt, v, handle)
            })
        }

        /// `cuMemMap`: flags must be 0; no access until `cuMemSetAccess`.
        fn mem_map(ptr: CUdeviceptr, size: usize, offset: usize, handle: CUmemGenericAllocationHandle, flags: u64) -> CuResult {
            let rt = runtime()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            map(rt, ptr, size as u64, offset as u64, handle)
        }

        /// `cuMemUnmap`: whole mappings only (the broker waits for the tenant's work first).
        fn mem_unmap(ptr: CUdeviceptr, size: usize) -> CuResult {
            unmap(runtime()?, ptr, size as u64)
        }

        /// `cuMemSetAccess`: device locations with PROT_NONE (0), PROT_READ (1) or
        /// PROT_READWRITE (3).
        unsafe fn mem_set_access(ptr: CUdeviceptr, size: usize, desc: *const CUmemAccessDesc, count: usize) -> CuResult {
            let rt = runtime()?;
            // SAFETY: the caller passes NULL or `count` descriptors.
            let (perm, descs) = unsafe { checks::access_descs(desc, count, |d| rt.has_device(d)) }?;
            set_access(rt, ptr, size as u64, perm, &descs)
        }

        /// `cuMemGetAccess`: the device's access (as last set); host locations report none.
        fn mem_get_access(flags: Out<'_, u64>, location: In<CUmemLocation>, ptr: CUdeviceptr) -> CuResult {
            let rt = runtime()?;
            let perm = match rt.vmm(|v| v.pointer_info(ptr)) {
                Some(info) if info.mapping.is_some() => info.access,
                _ => {
                    log_debug(format_args!("cuMemGetAccess({ptr:#x}): not a mapped VMM address"));
                    return Err(CuError::INVALID_VALUE);
                }
            };
            flags.write(checks::location_access(&location, |d| rt.has_device(d), perm)?)
        }

        /// `cuMemGetAllocationGranularity`: the broker's device's granularity.
        fn mem_get_allocation_granularity(granularity: Out<'_, usize>, prop: In<CUmemAllocationProp>, option: i32) -> CuResult {
            let rt = runtime()?;
            checks::granularity_option(option)?;
            checks::allocation_prop(&prop, |d| rt.has_device(d))?;
            let req = Request::MemGetAllocationGranularity { device: prop.location.id, option: option as u32 };
            match rt.call(req)? {
                Reply::Value(g) => granularity.write(g as usize),
                _ => Err(CuError::UNKNOWN),
            }
        }

        /// `cuMemGetAllocationPropertiesFromHandle`
        fn mem_get_allocation_properties_from_handle(prop: Out<'_, CUmemAllocationProp>, handle: CUmemGenericAllocationHandle) -> CuResult {
            let rt = runtime()?;
            let (types, device) = rt.vmm(|v| v.live(handle).map(|p| (p.types, p.device)))?;
            prop.write(CUmemAllocationProp {
                type_: ALLOCATION_TYPE_PINNED,
                requested_handle_types: types as i32,
                location: CUmemLocation { type_: LOCATION_DEVICE, id: device },
                win32_handle_meta_data: std::ptr::null_mut(),
                alloc_flags: CUmemAllocFlags::default(),
            })
        }

        /// `cuMemRetainAllocationHandle`: the handle mapped at `addr`, with a reference to
        /// release.
        fn mem_retain_allocation_handle(handle: Out<'_, CUmemGenericAllocationHandle>, addr: *mut c_void) -> CuResult {
            let rt = runtime()?;
            handle.write(rt.vmm(|v| retain(v, addr as u64))?)
        }
    }
}
