//! Device memory: `cuMemAlloc*`, `cuMemAllocManaged`, `cuMemFree`, `cuMemGetInfo`,
//! `cuMemGetAddressRange`, `cuMemAllocPitch`.
//!
//! Allocations are the broker's (`MemAlloc`, `MemAllocPitch`, `MemFree`); device addresses are
//! its real ones. The shim remembers each allocation (base, requested size, owning context) in
//! the runtime's table so that address ranges, pointer attributes and the bounds of copies are
//! answered without a round trip, and reserves the same address range in this process (see
//! [`super::reserve`]).
//!
//! Like the CPU device, every call needs a current context and reports the sticky error of a
//! poisoned one. The `v1` entry points (32-bit `CUdeviceptr`) work for sizes, but a device
//! pointer that does not fit in 32 bits fails with `NOT_SUPPORTED` (after freeing it).
//!
//! `cuMemAllocManaged` is a shared buffer like pinned memory (`super::host_memory`), registered
//! with the worker and mapped here at its device address, so one pointer serves host and device;
//! it is freed with `cuMemFree` (or with the primary context). Like pinned memory it is host
//! memory of the tenant and is not charged to the device memory quota (`cuMemGetInfo` does not
//! change).

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::checks;
use gpushare_driver_abi::checks::managed::{self as hints, v1_location};
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::prelude::*;

use super::reserve::{release_local, reserve_local};
use crate::runtime::{ctx_rt, current_ctx, Alloc, HostMemory, Runtime};
use crate::Shim;

/// Records an allocation the broker returned.
fn remember(rt: &Runtime, ptr: u64, size: u64) {
    let reserved = reserve_local(ptr, size);
    let a = Alloc {
        size,
        ctx: current_ctx(),
        id: rt.new_id(),
        reserved,
    };
    if let Ok(mut m) = rt.allocs.write() {
        m.insert(ptr, a);
    }
    rt.add_device_range(ptr, size);
}

/// Forgets a freed allocation's range, attributes and local reservation.
fn forget(rt: &Runtime, ptr: u64, a: Alloc) {
    rt.remove_device_range(ptr);
    rt.forget_attributes(ptr);
    if a.reserved {
        release_local(ptr, a.size);
    }
}

fn alloc(size: u64) -> CuResult<u64> {
    let rt = ctx_rt()?;
    let ptr = match rt.call(Request::MemAlloc { size })? {
        Reply::DevicePtr { ptr } => ptr,
        _ => return Err(CuError::UNKNOWN),
    };
    remember(rt, ptr, size);
    Ok(ptr)
}

/// Frees every `cuMemAlloc`/`cuMemAllocPitch` allocation (a primary-context teardown).
pub(crate) fn free_all(rt: &Runtime) {
    let all: Vec<(u64, Alloc)> = rt
        .allocs
        .write()
        .map(|mut m| std::mem::take(&mut *m).into_iter().collect())
        .unwrap_or_default();
    for (ptr, a) in all {
        forget(rt, ptr, a);
        let _ = rt.call_empty(Request::MemFree { ptr });
    }
    super::host_memory::free_all_managed(rt);
}

/// `cuMemFree`: `ptr` must be the base of a live allocation (0 is a no-op). The broker waits for
/// the tenant's queued work before it frees.
fn free(ptr: u64) -> CuResult {
    let rt = ctx_rt()?;
    if ptr == 0 {
        return Ok(());
    }
    let a = rt.allocs.write().ok().and_then(|mut m| m.remove(&ptr));
    let Some(a) = a else {
        if let Some(freed) = super::host_memory::free_managed(rt, ptr) {
            return freed;
        }
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemFree({ptr:#x}): not the base of a device allocation")
        });
        return Err(CuError::INVALID_VALUE);
    };
    forget(rt, ptr, a);
    rt.call_empty(Request::MemFree { ptr })
}

/// Writes a fresh allocation's pointer; if the caller cannot hold it (v1 ABI), frees it.
fn write_or_free(dptr: Out<'_, CUdeviceptr>, ptr: u64) -> CuResult {
    dptr.write(ptr).inspect_err(|_| {
        let _ = free(ptr);
    })
}

/// `cuMemGetAddressRange`: answered locally for allocations, VMM mappings, module globals and
/// pinned host memory; the broker is asked about anything else (`NOT_FOUND` outside every
/// allocation).
fn address_range(ptr: u64) -> CuResult<(u64, u64)> {
    let rt = ctx_rt()?;
    if let HostMemory::Shared { alloc, offset } = rt.host_memory(ptr as usize, 1) {
        return Ok((ptr - offset, alloc.buffer.len()));
    }
    if let Some(found) = rt.vmm(|v| v.mapping_range(ptr)) {
        return found.ok_or(CuError::NOT_FOUND);
    }
    if let Some(range) = rt.device_range_of(ptr) {
        return Ok(range);
    }
    match rt.call(Request::MemGetAddressRange { ptr })? {
        Reply::AddressRange { base, size } => Ok((base, size)),
        _ => Err(CuError::UNKNOWN),
    }
}

/// Whether `[ptr, ptr + count)` lies in one managed buffer of the tenant.
fn managed(rt: &Runtime, ptr: u64, count: usize) -> bool {
    matches!(rt.host_memory(ptr as usize, count.max(1)), HostMemory::Shared { alloc, .. } if alloc.managed)
}

/// `cuMemPrefetchAsync`: managed memory is one buffer host and device share, so a valid
/// prefetch is stream-ordered nothing (a node under capture).
fn prefetch(
    ptr: u64,
    count: usize,
    loc: CUmemLocation,
    stream: CUstream,
    ds: DefaultStream,
) -> CuResult {
    let rt = ctx_rt()?;
    rt.stream(stream, ds)?;
    hints::prefetch(count, loc, rt.devices.len() as i32, managed(rt, ptr, count))?;
    capture::record(stream, ds, || Ok(NodeKind::Empty)).unwrap_or(Ok(()))
}

gpushare_driver_abi::implement! {
    impl Memory for Shim {
        /// `cuMemAlloc`
        fn mem_alloc(dptr: Out<'_, CUdeviceptr>, bytesize: usize) -> CuResult {
            write_or_free(dptr, alloc(bytesize as u64)?)
        }

        /// `cuMemAllocPitch`: rows padded to a multiple of 512 bytes (by the broker).
        fn mem_alloc_pitch(dptr: Out<'_, CUdeviceptr>, pitch: Out<'_, usize>, width: usize, height: usize, element_size: u32) -> CuResult {
            let (width, height) = (width as u64, height as u64);
            checks::alloc_pitch(width, height, element_size)?;
            let rt = ctx_rt()?;
            let Reply::Pitched { ptr, pitch: row } =
                rt.call(Request::MemAllocPitch { width, height, element_size })?
            else {
                return Err(CuError::UNKNOWN);
            };
            remember(rt, ptr, row.saturating_mul(height));
            write_or_free(dptr, ptr)?;
            pitch.write(row as usize)
        }

        /// `cuMemFree`: `dptr` must be the base of a live allocation (0 is a no-op).
        fn mem_free(dptr: CUdeviceptr) -> CuResult {
            free(dptr)
        }

        /// `cuMemAllocManaged`: flags `CU_MEM_ATTACH_GLOBAL` or `CU_MEM_ATTACH_HOST`; one address
        /// for host and device.
        fn mem_alloc_managed(dptr: Out<'_, CUdeviceptr>, bytesize: usize, flags: u32) -> CuResult {
            write_or_free(dptr, super::host_memory::alloc_managed(bytesize as u64, flags)?)
        }

        /// `cuMemAdvise_v2`: checked, then nothing to do (one buffer host and device share).
        fn mem_advise(ptr: CUdeviceptr, count: usize, advice: i32, location: CUmemLocation) -> CuResult {
            let rt = ctx_rt()?;
            hints::advise(count, advice, location, rt.devices.len() as i32, managed(rt, ptr, count))
        }

        /// `cuMemAdvise`
        fn mem_advise_v1(ptr: CUdeviceptr, count: usize, advice: i32, device: CUdevice) -> CuResult {
            let rt = ctx_rt()?;
            let devices = rt.devices.len() as i32;
            hints::advise(count, advice, v1_location(device), devices, managed(rt, ptr, count))
        }

        /// `cuMemPrefetchAsync_v2`
        fn mem_prefetch_async(ptr: CUdeviceptr, count: usize, location: CUmemLocation, _flags: Flags<0>, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            prefetch(ptr, count, location, stream, default_stream)
        }

        /// `cuMemPrefetchAsync`
        fn mem_prefetch_async_v1(ptr: CUdeviceptr, count: usize, device: CUdevice, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            prefetch(ptr, count, v1_location(device), stream, default_stream)
        }

        /// `cuMemGetInfo`: free and total memory of the tenant's view of the device.
        fn mem_get_info(free: Out<'_, usize>, total: Out<'_, usize>) -> CuResult {
            let rt = ctx_rt()?;
            let Reply::MemInfo { free: f, total: t } = rt.call(Request::MemGetInfo)? else {
                return Err(CuError::UNKNOWN);
            };
            free.write(f as usize)?;
            total.write(t as usize)
        }

        /// `cuMemGetAddressRange`: base and size of the allocation holding `dptr`;
        /// `NOT_FOUND` for addresses in no allocation.
        fn mem_get_address_range(pbase: OptOut<'_, CUdeviceptr>, psize: OptOut<'_, usize>, dptr: CUdeviceptr) -> CuResult {
            let (base, size) = address_range(dptr)?;
            pbase.write(base)?;
            psize.write(size as usize)
        }
    }
}
