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

use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gpushare_client::proto::{Reply, Request};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUdeviceptr};

use super::memory::{ctx_rt, current_ctx, narrow};
use crate::runtime::{HostAlloc, HostMemory, Runtime};

/// `CU_MEMHOSTALLOC_*` flags: PORTABLE, DEVICEMAP, WRITECOMBINED.
const HOST_ALLOC_FLAGS: u32 = 0x1 | 0x2 | 0x4;
/// `CU_MEMHOSTREGISTER_PORTABLE`
const REGISTER_PORTABLE: u32 = 0x1;
/// `CU_MEMHOSTREGISTER_DEVICEMAP | _IOMEMORY | _READ_ONLY`: need a device mapping.
const REGISTER_MAPPED: u32 = 0x2 | 0x4 | 0x8;
/// Host page size.
const PAGE: usize = 4096;

/// Context each pinned allocation was made in, by application pointer (pointer attributes).
static CONTEXTS: Mutex<Option<HashMap<usize, u64>>> = Mutex::new(None);

fn contexts<T>(f: impl FnOnce(&mut HashMap<usize, u64>) -> T) -> T {
    let mut g = CONTEXTS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Context a pinned allocation starting at `base` was made in.
pub(crate) fn alloc_context(base: usize) -> Option<u64> {
    contexts(|m| m.get(&base).copied())
}

/// The pinned allocation whose device range holds `ptr` (when it is not also its host address):
/// (application base, allocation).
pub(crate) fn alloc_by_device_ptr(rt: &Runtime, ptr: u64) -> Option<(usize, Arc<HostAlloc>)> {
    let m = rt.host_allocs.read().ok()?;
    m.iter()
        .find(|(_, a)| ptr.wrapping_sub(a.device_ptr) < a.buffer.len())
        .map(|(&base, a)| (base, a.clone()))
}

/// The registration holding `ptr`: (start, len, flags).
pub(crate) fn registration(rt: &Runtime, ptr: usize) -> Option<(usize, usize, u32)> {
    let m = rt.host_registered.read().ok()?;
    let (&start, &(len, flags)) = m.range(..=ptr).next_back()?;
    (ptr - start < len.max(1)).then_some((start, len, flags))
}

/// Maps `buffer` a second time at `addr` (shared, read-write), if that range is free here.
fn alias_at(buffer: &HostBuffer, addr: u64) -> bool {
    let len = buffer.len() as usize;
    if addr == 0 || !(addr as usize).is_multiple_of(PAGE) || addr.checked_add(len as u64).is_none()
    {
        return false;
    }
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the new mapping shares the
    // buffer's pages and is owned by the allocation until cuMemFreeHost.
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
        // SAFETY: the mapping just created, unknown to anyone else.
        unsafe { libc::munmap(got, len) };
        return false;
    }
    true
}

fn host_alloc(pp: *mut *mut c_void, size: u64, flags: u32) -> CuResult {
    if pp.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let rt = ctx_rt()?;
    if flags & !HOST_ALLOC_FLAGS != 0 || size == 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostAlloc({size}, {flags:#x}): zero size or unknown flags")
        });
        return Err(CuError::INVALID_VALUE);
    }
    let buffer = HostBuffer::create(size, false).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "cuMemHostAlloc({size}): {e}"));
        CuError::OUT_OF_MEMORY
    })?;
    let region = u32::try_from(rt.next_region.fetch_add(1, Ordering::Relaxed))
        .map_err(|_| CuError::OUT_OF_MEMORY)?;
    let env = rt
        .client
        .call_socket(
            Request::HostRegister {
                region,
                size,
                flags,
            },
            &[buffer.fd()],
        )
        .map_err(|e| rt.transport_error(e))?;
    if let Some(e) = CuError::from_code(env.code) {
        return Err(e);
    }
    let Reply::HostRegion { device_ptr } = env.body else {
        let _ = rt.call_empty(Request::HostUnregister { region });
        return Err(CuError::UNKNOWN);
    };
    let ptr = if alias_at(&buffer, device_ptr) {
        device_ptr as usize
    } else {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "pinned buffer {region}: device address {device_ptr:#x} is taken here; host and \
                 device pointers differ")
        });
        buffer.mapping().as_ptr() as usize
    };
    let alloc = Arc::new(HostAlloc {
        region,
        buffer,
        device_ptr,
        flags,
    });
    if let Ok(mut m) = rt.host_allocs.write() {
        m.insert(ptr, alloc);
    }
    contexts(|m| m.insert(ptr, current_ctx()));
    rt.add_device_range(device_ptr, size);
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(pp, ptr as *mut c_void) }
}

fn free_host(p: *mut c_void) -> CuResult {
    let rt = ctx_rt()?;
    let base = p as usize;
    let alloc = rt
        .host_allocs
        .write()
        .ok()
        .and_then(|mut m| m.remove(&base));
    let Some(alloc) = alloc else {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemFreeHost({p:p}): not a cuMemHostAlloc/cuMemAllocHost pointer")
        });
        return Err(CuError::INVALID_VALUE);
    };
    contexts(|m| m.remove(&base));
    rt.remove_device_range(alloc.device_ptr);
    super::pointer::forget(base as u64);
    super::pointer::forget(alloc.device_ptr);
    // The broker waits for the tenant's work before it unregisters.
    let result = rt.call_empty(Request::HostUnregister {
        region: alloc.region,
    });
    if base != alloc.buffer.mapping().as_ptr() as usize {
        // SAFETY: the alias mapping host_alloc created at `base`, which the application no
        // longer uses (it freed it) and the broker no longer reads.
        unsafe { libc::munmap(p, alloc.buffer.len() as usize) };
    }
    drop(alloc);
    result
}

fn device_pointer(p: *mut c_void, flags: u32) -> CuResult<u64> {
    let rt = ctx_rt()?;
    if flags != 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostGetDevicePointer: flags must be 0, not {flags:#x}")
        });
        return Err(CuError::INVALID_VALUE);
    }
    match rt.host_memory(p as usize, 1) {
        HostMemory::Shared { alloc, offset } => Ok(alloc.device_ptr + offset),
        HostMemory::Pageable if registration(rt, p as usize).is_some() => {
            crate::log(|| {
                tracing::warn!(target: "gpushare::shim",
                    "cuMemHostGetDevicePointer({p:p}): memory registered with cuMemHostRegister \
                     has no device mapping under gpushare; use cuMemHostAlloc")
            });
            Err(CuError::NOT_SUPPORTED)
        }
        HostMemory::Pageable => {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuMemHostGetDevicePointer({p:p}): not page-locked host memory")
            });
            Err(CuError::INVALID_VALUE)
        }
    }
}

fn register(p: *mut c_void, size: usize, flags: u32) -> CuResult {
    let rt = ctx_rt()?;
    let ptr = p as usize;
    let all = REGISTER_PORTABLE | REGISTER_MAPPED;
    if ptr == 0 || size == 0 || flags & !all != 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, {size}, {flags:#x}): invalid arguments")
        });
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
    let start = ptr & !(PAGE - 1);
    let end = ptr
        .checked_add(size)
        .and_then(|e| e.checked_add(PAGE - 1))
        .map(|e| e & !(PAGE - 1))
        .ok_or(CuError::INVALID_VALUE)?;
    let pinned = rt.host_allocs.read().ok().is_some_and(|m| {
        m.range(..end)
            .next_back()
            .is_some_and(|(&b, a)| b + a.buffer.len() as usize > start)
    });
    if pinned {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}): already page-locked host memory")
        });
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    let device = rt.device_ranges.read().ok().is_some_and(|m| {
        m.range(..end as u64)
            .next_back()
            .is_some_and(|(&b, &s)| b + s > start as u64)
    });
    if device || super::memory::in_local_reservation(start as u64) {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}): overlaps device memory")
        });
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: msync with MS_ASYNC does not access or change memory; it only inspects mappings.
    let mapped = unsafe { libc::msync(start as *mut c_void, end - start, libc::MS_ASYNC) } == 0;
    if !mapped {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, {size}): range is not mapped memory")
        });
        return Err(CuError::INVALID_VALUE);
    }
    let mut m = rt.host_registered.write().map_err(|_| CuError::UNKNOWN)?;
    let overlaps = m.range(..end).next_back().is_some_and(|(&s, &(len, _))| {
        let reg_end = (s + len).next_multiple_of(PAGE);
        reg_end > start
    });
    if overlaps {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostRegister({p:p}, {size}): overlaps a registered range")
        });
        return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
    }
    m.insert(ptr, (size, flags));
    Ok(())
}

fn unregister(p: *mut c_void) -> CuResult {
    let rt = ctx_rt()?;
    let removed = rt
        .host_registered
        .write()
        .ok()
        .and_then(|mut m| m.remove(&(p as usize)));
    if removed.is_none() {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemHostUnregister({p:p}): not a registered base pointer")
        });
        return Err(CuError::HOST_MEMORY_NOT_REGISTERED);
    }
    super::pointer::forget(p as u64);
    Ok(())
}

cuda_exports! {
    /// `cuMemHostAlloc`: flags PORTABLE (1), DEVICEMAP (2), WRITECOMBINED (4).
    fn cuMemHostAlloc(pp: *mut *mut c_void, bytesize: usize, flags: u32) {
        host_alloc(pp, bytesize as u64, flags)
    }

    /// `cuMemAllocHost_v2`
    fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytesize: usize) {
        host_alloc(pp, bytesize as u64, 0)
    }

    /// `cuMemAllocHost` (v1 ABI: 32-bit size).
    fn cuMemAllocHost(pp: *mut *mut c_void, bytesize: u32) {
        host_alloc(pp, u64::from(bytesize), 0)
    }

    /// `cuMemFreeHost`: after the tenant's work drains (the broker waits).
    fn cuMemFreeHost(p: *mut c_void) {
        free_host(p)
    }

    /// `cuMemHostGetDevicePointer_v2`
    fn cuMemHostGetDevicePointer_v2(pdptr: *mut CUdeviceptr, p: *mut c_void, flags: u32) {
        if pdptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let dptr = device_pointer(p, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pdptr, dptr) }
    }

    /// `cuMemHostGetDevicePointer` (v1 ABI: 32-bit device pointer).
    fn cuMemHostGetDevicePointer(pdptr: *mut u32, p: *mut c_void, flags: u32) {
        if pdptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let dptr = device_pointer(p, flags)?;
        let narrow = narrow(dptr, "cuMemHostGetDevicePointer")?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pdptr, narrow) }
    }

    /// `cuMemHostGetFlags`: the flags of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
    fn cuMemHostGetFlags(pflags: *mut u32, p: *mut c_void) {
        if pflags.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let rt = ctx_rt()?;
        let HostMemory::Shared { alloc, .. } = rt.host_memory(p as usize, 1) else {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuMemHostGetFlags({p:p}): not in a host allocation")
            });
            return Err(CuError::INVALID_VALUE);
        };
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pflags, alloc.flags) }
    }

    /// `cuMemHostRegister_v2`: flags 0 or PORTABLE (recorded; copies stay staged); DEVICEMAP,
    /// IOMEMORY and READ_ONLY are not supported.
    fn cuMemHostRegister_v2(p: *mut c_void, bytesize: usize, flags: u32) {
        register(p, bytesize, flags)
    }

    /// `cuMemHostRegister` (same ABI as `_v2`).
    fn cuMemHostRegister(p: *mut c_void, bytesize: usize, flags: u32) {
        register(p, bytesize, flags)
    }

    /// `cuMemHostUnregister`: `p` must be the pointer given to `cuMemHostRegister`.
    fn cuMemHostUnregister(p: *mut c_void) {
        unregister(p)
    }
}
