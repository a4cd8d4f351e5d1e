//! Page-locked host memory: `cuMemHostAlloc`, `cuMemAllocHost`, `cuMemFreeHost`,
//! `cuMemHostGetDevicePointer`, `cuMemHostGetFlags`, `cuMemHostRegister`, `cuMemHostUnregister`.
//!
//! Pinned memory is a sealed memfd ([`HostBuffer`]) mapped here and, after `HostRegister`, in the
//! broker, which registers its mapping with the driver; copies from and to it are zero-copy. The
//! broker answers with the buffer's device address, which (with unified addressing) is the
//! broker's host address of its mapping. The shim maps the buffer a second time at exactly that
//! address when it is free here, and hands that mapping to the application: then the host
//! pointer *is* the device pointer, as CUDA's unified addressing promises (kernels may use
//! either). When the address is taken the application gets the first mapping and a different
//! device pointer. Either way the device address is a device range of the tenant.
//!
//! `cuMemHostRegister` cannot share arbitrary application memory with the broker: ranges
//! registered with flags 0 or PORTABLE are recorded (copies from and to them stay staged, so data
//! semantics are unchanged), while DEVICEMAP, READ_ONLY and IOMEMORY, which need a device mapping,
//! are `NOT_SUPPORTED` with a log line.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::cuda_h::{
    CU_MEMHOSTREGISTER_DEVICEMAP, CU_MEMHOSTREGISTER_IOMEMORY, CU_MEMHOSTREGISTER_READ_ONLY,
};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::memory::PAGE;
use crate::runtime::{ctx_rt, current_ctx, HostAlloc, HostMemory, Runtime};
use crate::Shim;

/// `CU_MEMHOSTREGISTER_DEVICEMAP | _IOMEMORY | _READ_ONLY`: need a device mapping.
const REGISTER_MAPPED: u32 =
    CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_IOMEMORY | CU_MEMHOSTREGISTER_READ_ONLY;
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
fn register_buffer(
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

fn host_alloc(pp: Out<'_, *mut c_void>, size: u64, flags: u32) -> CuResult {
    let rt = ctx_rt()?;
    if size == 0 {
        log_debug(format_args!(
            "cuMemHostAlloc({size}, {flags:#x}): zero size"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    let buffer = HostBuffer::create(size, false).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "cuMemHostAlloc({size}): {e}"));
        CuError::OUT_OF_MEMORY
    })?;
    let (region, device_ptr) = register_buffer(rt, &buffer, size, flags)?;
    let ptr = if alias_at(&buffer, device_ptr) {
        device_ptr as usize
    } else {
        log_debug(format_args!(
            "pinned buffer {region}: device address {device_ptr:#x} is taken here; host and \
             device pointers differ"
        ));
        buffer.mapping().as_ptr() as usize
    };
    let alloc = Arc::new(HostAlloc {
        region,
        buffer,
        device_ptr,
        flags,
        ctx: current_ctx(),
    });
    if let Ok(mut m) = rt.host_allocs.write() {
        m.insert(ptr, alloc);
    }
    rt.add_device_range(device_ptr, size);
    pp.write(ptr as *mut c_void)
}

fn device_pointer(rt: &Runtime, p: *mut c_void) -> CuResult<u64> {
    match rt.host_memory(p as usize, 1) {
        HostMemory::Shared { alloc, offset } => Ok(alloc.device_ptr + offset),
        HostMemory::Pageable if rt.registration(p as usize).is_some() => {
            crate::log(|| {
                tracing::warn!(target: "gpushare::shim",
                    "cuMemHostGetDevicePointer({p:p}): memory registered with cuMemHostRegister \
                     has no device mapping under gpushare; use cuMemHostAlloc")
            });
            Err(CuError::NOT_SUPPORTED)
        }
        HostMemory::Pageable => {
            log_debug(format_args!(
                "cuMemHostGetDevicePointer({p:p}): not page-locked host memory"
            ));
            Err(CuError::INVALID_VALUE)
        }
    }
}

/// Checks that `[start, end)` (whole pages) is ordinary mapped memory of this process that no
/// pinned buffer, device range or registration holds.
fn check_registrable(rt: &Runtime, p: *mut c_void, start: usize, end: usize) -> CuResult {
    let pinned = rt.host_allocs.read().ok().is_some_and(|m| {
        m.range(..end)
            .next_back()
            .is_some_and(|(&b, a)| b + a.buffer.len() as usize > start)
    });
    if pinned {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): already page-locked host memory"
        ));
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    if rt.overlaps_device_range(start as u64, end as u64) || rt.in_local_reservation(start as u64) {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): overlaps device memory"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: msync with MS_ASYNC neither reads nor changes memory; it only fails (ENOMEM) where
    // part of the range is not mapped, which is what is asked here.
    let mapped = unsafe { libc::msync(start as *mut c_void, end - start, libc::MS_ASYNC) } == 0;
    if !mapped {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}): range is not mapped memory"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
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
    if flags & REGISTER_MAPPED != 0 {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, {size}, {flags:#x}): DEVICEMAP, IOMEMORY and READ_ONLY \
                 registrations need a device mapping of application memory, which gpushare \
                 cannot provide; allocate with cuMemHostAlloc instead")
        });
        return Err(CuError::NOT_SUPPORTED);
    }
    let start = ptr & !(PAGE_SIZE - 1);
    let end = ptr
        .checked_add(size)
        .and_then(|e| e.checked_add(PAGE_SIZE - 1))
        .map(|e| e & !(PAGE_SIZE - 1))
        .ok_or(CuError::INVALID_VALUE)?;
    check_registrable(rt, p, start, end)?;
    let mut m = rt.host_registered.write().map_err(|_| CuError::UNKNOWN)?;
    let overlaps = m
        .range(..end)
        .next_back()
        .is_some_and(|(&s, &(len, _))| (s + len).next_multiple_of(PAGE_SIZE) > start);
    if overlaps {
        log_debug(format_args!(
            "cuMemHostRegister({p:p}, {size}): overlaps a registered range"
        ));
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    m.insert(ptr, (size, flags));
    Ok(())
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

        /// `cuMemFreeHost`: after the tenant's work drains (the broker waits).
        fn mem_free_host(p: *mut c_void) -> CuResult {
            let rt = ctx_rt()?;
            let base = p as usize;
            let Some(alloc) = rt.host_allocs.write().ok().and_then(|mut m| m.remove(&base)) else {
                log_debug(format_args!(
                    "cuMemFreeHost({p:p}): not a cuMemHostAlloc/cuMemAllocHost pointer"
                ));
                return Err(CuError::INVALID_VALUE);
            };
            rt.remove_device_range(alloc.device_ptr);
            rt.forget_attributes(base as u64);
            rt.forget_attributes(alloc.device_ptr);
            // The broker waits for the tenant's work before it unregisters.
            let result = rt.call_empty(Request::HostUnregister { region: alloc.region });
            if base != alloc.buffer.mapping().as_ptr() as usize {
                // SAFETY: the alias mapping host_alloc created at `base`, which the application
                // no longer uses (it freed it) and the broker no longer reads (unregistered).
                unsafe { libc::munmap(base as *mut c_void, alloc.buffer.len() as usize) };
            }
            result
        }

        /// `cuMemHostGetDevicePointer`: the device address of pinned memory the shim allocated.
        fn mem_host_get_device_pointer(pdptr: Out<'_, CUdeviceptr>, p: *mut c_void, flags: Flags<0>) -> CuResult {
            let _ = flags;
            pdptr.write(device_pointer(ctx_rt()?, p)?)
        }

        /// `cuMemHostGetFlags`: the flags of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
        fn mem_host_get_flags(pflags: Out<'_, u32>, p: *mut c_void) -> CuResult {
            let rt = ctx_rt()?;
            let HostMemory::Shared { alloc, .. } = rt.host_memory(p as usize, 1) else {
                log_debug(format_args!("cuMemHostGetFlags({p:p}): not in a host allocation"));
                return Err(CuError::INVALID_VALUE);
            };
            pflags.write(alloc.flags)
        }

        /// `cuMemHostRegister`: flags 0 or PORTABLE (recorded; copies stay staged); DEVICEMAP,
        /// IOMEMORY and READ_ONLY are not supported. The memory is never read here.
        unsafe fn mem_host_register(p: *mut c_void, bytesize: usize, flags: Flags<{ CU_MEMHOSTREGISTER_FLAGS }>) -> CuResult {
            register(p, bytesize, flags.bits())
        }

        /// `cuMemHostUnregister`: `p` must be the pointer given to `cuMemHostRegister`.
        fn mem_host_unregister(p: *mut c_void) -> CuResult {
            let rt = ctx_rt()?;
            let removed = rt.host_registered.write().ok().and_then(|mut m| m.remove(&(p as usize)));
            if removed.is_none() {
                log_debug(format_args!(
                    "cuMemHostUnregister({p:p}): not a registered base pointer"
                ));
                return Err(CuError::HOST_MEMORY_NOT_REGISTERED);
            }
            rt.forget_attributes(p as u64);
            Ok(())
        }
    }
}
