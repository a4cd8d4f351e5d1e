//! Page-locked host memory: `cuMemHostAlloc`, `cuMemAllocHost`, `cuMemFreeHost`,
//! `cuMemHostGetDevicePointer`, `cuMemHostGetFlags`, `cuMemHostRegister`, `cuMemHostUnregister`;
//! and the shared buffers behind `cuMemAllocManaged` (see [`alloc_managed`]).
//!
//! Pinned memory is a sealed memfd ([`HostBuffer`]) mapped here and, after `HostRegister`, in the
//! broker's worker, which registers its mapping with the driver; copies from and to it are
//! zero-copy. The broker answers with the buffer's device address, which (with unified
//! addressing) is the worker's host address of its mapping. The shim maps the buffer a second
//! time at exactly that address when it is free here, and hands that mapping to the application:
//! then the host pointer *is* the device pointer, as CUDA's unified addressing promises (kernels
//! may use either). When the address is taken the application gets the first mapping and a
//! different device pointer. Either way the device address is a device range of the tenant.
//!
//! Managed memory is the same kind of buffer, except that the second mapping is required: a
//! managed allocation has one address for host and device, so when that address is taken here
//! the allocation is undone and fails (`OUT_OF_MEMORY`, logged).
//!
//! `cuMemHostRegister` with flags 0 or PORTABLE records the range (copies from and to it stay
//! staged, so data semantics are unchanged). With DEVICEMAP or READ_ONLY the range's whole
//! pages are *re-backed* ([`remap`]): their bytes are copied into a fresh memfd that is mapped
//! over them (`MAP_FIXED`, same address, same read-write protection), and the memfd is
//! registered with the worker like a pinned buffer; kernels use the device pointer
//! `cuMemHostGetDevicePointer` returns, which is not the host pointer (the worker's address of
//! its mapping). Only private anonymous read-write memory can be re-backed (the heap, `malloc`
//! and `mmap(MAP_PRIVATE | MAP_ANONYMOUS)` memory, other threads' stacks); anything else is
//! `NOT_SUPPORTED` with a log line naming the reason. IOMEMORY is `NOT_SUPPORTED`, as on the
//! CPU device. Unregistering leaves the memfd mapped: the application's memory stays valid with
//! its contents. The hazards of re-backing are in [`remap`]'s documentation.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::cuda_h::{
    CU_MEMHOSTALLOC_DEVICEMAP, CU_MEMHOSTALLOC_PORTABLE, CU_MEMHOSTREGISTER_DEVICEMAP,
    CU_MEMHOSTREGISTER_IOMEMORY, CU_MEMHOSTREGISTER_READ_ONLY,
};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::memory::PAGE;
use crate::runtime::objects::Registered;
use crate::runtime::{ctx_rt, current_ctx, HostAlloc, HostMemory, Runtime};
use crate::Shim;

mod remap;

/// `CU_MEMHOSTREGISTER_DEVICEMAP | _READ_ONLY`: need a device mapping (the range is re-backed).
const REGISTER_MAPPED: u32 = CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_READ_ONLY;
/// `CU_MEM_ATTACH_GLOBAL`
const ATTACH_GLOBAL: u32 = 0x1;
/// `CU_MEM_ATTACH_HOST`
const ATTACH_HOST: u32 = 0x2;
/// Host page size.
const PAGE_SIZE: usize = PAGE as usize;

fn log_debug(msg: std::fmt::Arguments<'_>) {
    crate::log(|| tracing::debug!(target: "gpushare::shim", "{msg}"));
}

/// Maps `buffer` a second time at `addr` (shared, read-write), if that range is free here.
fn alias_at(buffer: &HostBuffer, addr: u64) -> bool {
    let len = buffer.len() as usize;
    if addr == 0
        || !(addr as usize).is_multiple_of(PAGE_SIZE)
        || addr.checked_add(len as u64).is_none()
    {
        return false;
    }
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory anyone uses
    // changes; the new mapping shares the buffer's pages and is owned by the allocation until
    // cuMemFreeHost unmaps it.
    let got = unsafe {
        libc::mmap(
            addr as usize as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            buffer.fd().as_raw_fd(),
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return false;
    }
    if got as usize as u64 != addr {
        // SAFETY: the mapping just created (the kernel took the address as a hint), unknown to
        // anyone else.
        unsafe { libc::munmap(got, len) };
        return false;
    }
    true
}

/// Registers a fresh pinned buffer with the broker: its region id and device address.
pub(super) fn register_buffer(
    rt: &Runtime,
    buffer: &HostBuffer,
    size: u64,
    flags: u32,
) -> CuResult<(u32, u64)> {
    let region = u32::try_from(rt.next_region.fetch_add(1, Ordering::Relaxed))
        .map_err(|_| CuError::OUT_OF_MEMORY)?;
    let req = Request::HostRegister {
        region,
        size,
        flags,
    };
    let env = rt
        .client
        .call_socket(req, &[buffer.fd()])
        .map_err(|e| rt.transport_error(e))?;
    if let Some(e) = CuError::from_code(env.code) {
        return Err(e);
    }
    let Reply::HostRegion { device_ptr } = env.body else {
        let _ = rt.call_empty(Request::HostUnregister { region });
        return Err(CuError::UNKNOWN);
    };
    Ok((region, device_ptr))
}

/// A registered buffer's record, made in the current context.
pub(super) fn host_alloc_of(
    region: u32,
    buffer: HostBuffer,
    device_ptr: u64,
    flags: u32,
    managed: bool,
) -> Arc<HostAlloc> {
    Arc::new(HostAlloc {
        region,
        buffer,
        device_ptr,
        flags,
        ctx: current_ctx(),
        managed,
    })
}

/// Records a buffer the application knows at `ptr`, and its device range of `len` bytes.
fn remember(rt: &Runtime, ptr: usize, alloc: Arc<HostAlloc>, len: u64) {
    let device_ptr = alloc.device_ptr;
    if let Ok(mut m) = rt.host_allocs.write() {
        m.insert(ptr, alloc);
    }
    rt.add_device_range(device_ptr, len);
}

/// Creates a sealed buffer of `size` bytes and registers it with the broker: the buffer, its
/// region id and device address.
fn new_buffer(rt: &Runtime, what: &str, size: u64, flags: u32) -> CuResult<(HostBuffer, u32, u64)> {
    let buffer = HostBuffer::create(size, false).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "{what}({size}): {e}"));
        CuError::OUT_OF_MEMORY
    })?;
    let (region, device_ptr) = register_buffer(rt, &buffer, size, flags)?;
    Ok((buffer, region, device_ptr))
}

fn host_alloc(pp: Out<'_, *mut c_void>, size: u64, flags: u32) -> CuResult {
    let rt = ctx_rt()?;
    if size == 0 {
        log_debug(format_args!(
            "cuMemHostAlloc({size}, {flags:#x}): zero size"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    let (buffer, region, device_ptr) = new_buffer(rt, "cuMemHostAlloc", size, flags)?;
    let ptr = if alias_at(&buffer, device_ptr) {
        device_ptr as usize
    } else {
        log_debug(format_args!(
            "pinned buffer {region}: device address {device_ptr:#x} is taken here; host and \
             device pointers differ"
        ));
        buffer.mapping().as_ptr() as usize
    };
    let alloc = host_alloc_of(region, buffer, device_ptr, flags, false);
    remember(rt, ptr, alloc, size);
    if let Err(e) = make_resident(ptr, size) {
        let _ = free_host(ptr as *mut c_void);
        return Err(e);
    }
    pp.write(ptr as *mut c_void)
}

/// Makes a new pinned buffer resident, as page-locked memory is: the tenant's pages, allocated
/// now (after the broker has checked `max_pinned_bytes`), so that its first use takes no page
/// faults. `OUT_OF_MEMORY` when the host has no room for it, as when CUDA cannot pin; on a
/// kernel without `MADV_POPULATE_WRITE` the pages fault in at first use instead.
fn make_resident(ptr: usize, size: u64) -> CuResult {
    match gpushare_client::os::populate(ptr as u64, size) {
        Ok(true) => Ok(()),
        Ok(false) => {
            log_debug(format_args!("cuMemHostAlloc({size}): left to fault in"));
            Ok(())
        }
        Err(e) => {
            crate::log(|| tracing::warn!(target: "gpushare::shim", "cuMemHostAlloc({size}): {e}"));
            Err(CuError::OUT_OF_MEMORY)
        }
    }
}

/// `cuMemAllocManaged`: a shared buffer registered with the worker and mapped here at its device
/// address (one address for host and device). Flags GLOBAL or HOST, as on the CPU device; the
/// attachment changes nothing (the memory is always coherent after synchronisation).
pub(super) fn alloc_managed(size: u64, flags: u32) -> CuResult<u64> {
    if !matches!(flags, ATTACH_GLOBAL | ATTACH_HOST) {
        log_debug(format_args!(
            "cuMemAllocManaged: flags {flags:#x} not GLOBAL/HOST"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    let rt = ctx_rt()?;
    if size == 0 {
        log_debug(format_args!("cuMemAllocManaged: zero size"));
        return Err(CuError::INVALID_VALUE);
    }
    let mapped = CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP;
    let (buffer, region, device_ptr) = new_buffer(rt, "cuMemAllocManaged", size, mapped)?;
    if !alias_at(&buffer, device_ptr) {
        let _ = rt.call_empty(Request::HostUnregister { region });
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "cuMemAllocManaged({size}): its device address {device_ptr:#x} is taken in this \
                 process, and managed memory must have one address for host and device")
        });
        return Err(CuError::OUT_OF_MEMORY);
    }
    let alloc = host_alloc_of(region, buffer, device_ptr, flags, true);
    remember(rt, device_ptr as usize, alloc, size);
    Ok(device_ptr)
}

/// Frees a shim buffer the application knew at `base` (already removed from `host_allocs`):
/// forgets its ranges, unregisters it (the broker waits for the tenant's work first) and unmaps
/// the second mapping.
fn release(rt: &Runtime, base: usize, alloc: Arc<HostAlloc>) -> CuResult {
    rt.remove_device_range(alloc.device_ptr);
    rt.forget_attributes(base as u64);
    rt.forget_attributes(alloc.device_ptr);
    let result = rt.call_empty(Request::HostUnregister {
        region: alloc.region,
    });
    if base != alloc.buffer.mapping().as_ptr() as usize {
        // SAFETY: the alias mapping host_alloc or alloc_managed created at `base`, which the
        // application no longer uses (it freed it) and the worker no longer reads (unregistered).
        unsafe { libc::munmap(base as *mut c_void, alloc.buffer.len() as usize) };
    }
    result
}

/// `cuMemFree` of managed memory: `Some` when `ptr` is the base of a managed allocation.
pub(super) fn free_managed(rt: &Runtime, ptr: u64) -> Option<CuResult> {
    let alloc = {
        let mut m = rt.host_allocs.write().ok()?;
        if !m.get(&(ptr as usize))?.managed {
            return None;
        }
        m.remove(&(ptr as usize))?
    };
    Some(release(rt, ptr as usize, alloc))
}

/// Frees every managed allocation (a primary-context teardown).
pub(super) fn free_all_managed(rt: &Runtime) {
    let managed: Vec<usize> = rt
        .host_allocs
        .read()
        .map(|m| {
            m.iter()
                .filter(|(_, a)| a.managed)
                .map(|(&b, _)| b)
                .collect()
        })
        .unwrap_or_default();
    for base in managed {
        let _ = free_managed(rt, base as u64);
    }
}

/// `cuMemFreeHost`: `p` must be the base of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
fn free_host(p: *mut c_void) -> CuResult {
    let rt = ctx_rt()?;
    let base = p as usize;
    let alloc = rt.host_allocs.write().ok().and_then(|mut m| {
        let pinned = m.get(&base).is_some_and(|a| !a.managed);
        pinned.then(|| m.remove(&base)).flatten()
    });
    let Some(alloc) = alloc else {
        log_debug(format_args!(
            "cuMemFreeHost({p:p}): not a cuMemHostAlloc/cuMemAllocHost pointer"
        ));
        return Err(CuError::INVALID_VALUE);
    };
    release(rt, base, alloc)
}

fn device_pointer(rt: &Runtime, p: *mut c_void) -> CuResult<u64> {
    match rt.host_memory(p as usize, 1) {
        HostMemory::Shared { alloc, offset } if !alloc.managed => Ok(alloc.device_ptr + offset),
        HostMemory::Pageable if rt.registration(p as usize).is_some() => {
            let (start, r) = rt.registration(p as usize).ok_or(CuError::INVALID_VALUE)?;
            r.device_ptr(start, p as usize).ok_or_else(|| {
                crate::log(|| {
                    tracing::warn!(target: "gpushare::shim",
                        "cuMemHostGetDevicePointer({p:p}): registered without DEVICEMAP, which \
                         gpushare leaves unmapped; register with CU_MEMHOSTREGISTER_DEVICEMAP")
                });
                CuError::NOT_SUPPORTED
            })
        }
        _ => {
            log_debug(format_args!(
                "cuMemHostGetDevicePointer({p:p}): not page-locked host memory"
            ));
            Err(CuError::INVALID_VALUE)
        }
    }
}

/// Checks that `[start, end)` (whole pages) is ordinary mapped memory of this process that no
/// pinned buffer, managed allocation, device range or registration holds.
fn check_registrable(rt: &Runtime, p: *mut c_void, start: usize, end: usize) -> CuResult {
    let held = rt.host_allocs.read().ok().and_then(|m| {
        m.range(..end)
            .next_back()
            .filter(|(&b, a)| b + a.buffer.len() as usize > start)
            .map(|(_, a)| a.managed)
    });
    if held == Some(false) {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): already page-locked host memory"
        ));
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    if held == Some(true)
        || rt.overlaps_device_range(start as u64, end as u64)
        || rt.in_local_reservation(start as u64)
    {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): overlaps device memory"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    if !gpushare_client::os::range_is_mapped(start as u64, (end - start) as u64) {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): range is not mapped memory"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

/// The whole pages of `[ptr, ptr + size)`.
fn page_span(ptr: usize, size: usize) -> CuResult<(usize, usize)> {
    let start = ptr & !(PAGE_SIZE - 1);
    let end = ptr
        .checked_add(size)
        .and_then(|e| e.checked_add(PAGE_SIZE - 1))
        .map(|e| e & !(PAGE_SIZE - 1))
        .ok_or(CuError::INVALID_VALUE)?;
    Ok((start, end))
}

fn register(p: *mut c_void, size: usize, flags: u32) -> CuResult {
    let rt = ctx_rt()?;
    let ptr = p as usize;
    if ptr == 0 || size == 0 {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}, {size}, {flags:#x}): invalid arguments"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    if flags & CU_MEMHOSTREGISTER_IOMEMORY != 0 {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, {size}, {flags:#x}): CU_MEMHOSTREGISTER_IOMEMORY is not \
                 supported by gpushare")
        });
        return Err(CuError::NOT_SUPPORTED);
    }
    let (start, end) = page_span(ptr, size)?;
    check_registrable(rt, p, start, end)?;
    // Held across the re-backing, so that two registrations of one page cannot both map it.
    let mut m = rt.host_registered.write().map_err(|_| CuError::UNKNOWN)?;
    let overlaps = m
        .range(..end)
        .next_back()
        .is_some_and(|(&s, r)| (s + r.len).next_multiple_of(PAGE_SIZE) > start);
    if overlaps {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}, {size}): overlaps a registered range"
        ));
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    let mapped = if flags & REGISTER_MAPPED != 0 {
        let alloc = remap::reback(rt, p, start, end, flags)?;
        rt.add_device_range(alloc.device_ptr, alloc.buffer.len());
        Some(alloc)
    } else {
        None
    };
    m.insert(
        ptr,
        Registered {
            len: size,
            flags,
            mapped,
        },
    );
    Ok(())
}

/// `cuMemHostUnregister`: `p` must be the pointer given to `cuMemHostRegister`. A re-backed
/// range is unregistered in the worker (after the tenant's work) and stays mapped here.
fn unregister(p: *mut c_void) -> CuResult {
    let rt = ctx_rt()?;
    let removed = rt
        .host_registered
        .write()
        .ok()
        .and_then(|mut m| m.remove(&(p as usize)));
    let Some(r) = removed else {
        log_debug(format_args!(
            "cuMemHostUnregister({p:p}): not a registered base pointer"
        ));
        return Err(CuError::HOST_MEMORY_NOT_REGISTERED);
    };
    rt.forget_attributes(p as u64);
    let Some(alloc) = r.mapped else {
        return Ok(());
    };
    rt.remove_device_range(alloc.device_ptr);
    rt.forget_attributes(alloc.device_ptr);
    rt.call_empty(Request::HostUnregister {
        region: alloc.region,
    })
}

gpushare_driver_abi::implement! {
    impl HostMemory for Shim {
        /// `cuMemAllocHost`
        fn mem_alloc_host(pp: Out<'_, *mut c_void>, bytesize: usize) -> CuResult {
            host_alloc(pp, bytesize as u64, 0)
        }

        /// `cuMemHostAlloc`: flags PORTABLE (1), DEVICEMAP (2), WRITECOMBINED (4).
        fn mem_host_alloc(pp: Out<'_, *mut c_void>, bytesize: usize, flags: Flags<{ CU_MEMHOSTALLOC_FLAGS }>) -> CuResult {
            host_alloc(pp, bytesize as u64, flags.bits())
        }

        /// `cuMemFreeHost`: after the tenant's work drains (the broker waits). Managed memory is
        /// `INVALID_VALUE` (it is freed with `cuMemFree`).
        fn mem_free_host(p: *mut c_void) -> CuResult {
            free_host(p)
        }

        /// `cuMemHostGetDevicePointer`: the device address of pinned memory the shim allocated or
        /// of a range registered with DEVICEMAP.
        fn mem_host_get_device_pointer(pdptr: Out<'_, CUdeviceptr>, p: *mut c_void, flags: Flags<0>) -> CuResult {
            let _ = flags;
            pdptr.write(device_pointer(ctx_rt()?, p)?)
        }

        /// `cuMemHostGetFlags`: the flags of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
        fn mem_host_get_flags(pflags: Out<'_, u32>, p: *mut c_void) -> CuResult {
            let rt = ctx_rt()?;
            match rt.host_memory(p as usize, 1) {
                HostMemory::Shared { alloc, .. } if !alloc.managed => pflags.write(alloc.flags),
                _ => {
                    log_debug(format_args!("cuMemHostGetFlags({p:p}): not in a host allocation"));
                    Err(CuError::INVALID_VALUE)
                }
            }
        }

        /// `cuMemHostRegister`: flags 0 or PORTABLE are recorded (copies stay staged); DEVICEMAP
        /// and READ_ONLY re-back the range's pages with a registered memfd; IOMEMORY is not
        /// supported.
        unsafe fn mem_host_register(p: *mut c_void, bytesize: usize, flags: Flags<{ CU_MEMHOSTREGISTER_FLAGS }>) -> CuResult {
            register(p, bytesize, flags.bits())
        }

        /// `cuMemHostUnregister`: `p` must be the pointer given to `cuMemHostRegister`.
        fn mem_host_unregister(p: *mut c_void) -> CuResult {
            unregister(p)
        }
    }
}
