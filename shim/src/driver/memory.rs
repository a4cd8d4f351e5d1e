//! Device memory: `cuMemAlloc*`, `cuMemFree`, `cuMemGetInfo`, `cuMemGetAddressRange`,
//! `cuMemAllocPitch`.
//!
//! Allocations are the broker's (`MemAlloc`, `MemAllocPitch`, `MemFree`); device addresses are
//! its real ones. The shim remembers each allocation (base, requested size, owning context) so
//! that address ranges, pointer attributes and the bounds of copies are answered without a round
//! trip, and reserves the same address range in this process (`PROT_NONE`, best effort) so that
//! no host memory of the tenant ever gets an address numerically equal to a device address:
//! pointers are classified by range (`cuMemcpy`, pointer attributes).
//!
//! Like the CPU device, every call needs a current context and reports the sticky error of a
//! poisoned one. The `v1` entry points (32-bit `CUdeviceptr`) work for sizes, but a device
//! pointer that does not fit in 32 bits fails with `NOT_SUPPORTED` (after freeing it).
//! `cuMemAllocManaged` is not implemented: the protocol has no memory the host and the device
//! share at one address (it is a generated `NOT_SUPPORTED` stub).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUdeviceptr};

use super::context::{current, require_current};
use crate::runtime::{HostMemory, Runtime};

/// Host page size used for the local address reservations.
const PAGE: u64 = 4096;

/// One `cuMemAlloc`/`cuMemAllocPitch` allocation as the shim remembers it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alloc {
    /// Bytes the application asked for (pitched: pitch × height).
    pub size: u64,
    /// Context current at allocation time.
    pub ctx: u64,
    /// Process-unique id (`CU_POINTER_ATTRIBUTE_BUFFER_ID`).
    pub id: u64,
    /// Whether `[base, base + size)` is reserved in this process (and must be unmapped on free).
    pub reserved: bool,
}

/// Live allocations by base address.
static ALLOCS: RwLock<BTreeMap<u64, Alloc>> = RwLock::new(BTreeMap::new());
/// Source of buffer ids (shared with the other families that need unique ids).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh process-unique id.
pub(crate) fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The runtime, if the calling thread has a current context that is not poisoned (the sticky
/// error otherwise), as the CPU device checks for memory and copy calls.
pub(crate) fn ctx_rt() -> CuResult<&'static Runtime> {
    let rt = require_current()?;
    rt.sticky()?;
    Ok(rt)
}

/// The handle of the calling thread's current context (0 if none).
pub(crate) fn current_ctx() -> u64 {
    current().map_or(0, |c| c.handle)
}

fn page_round(len: u64) -> Option<u64> {
    len.checked_next_multiple_of(PAGE)
}

/// Reserves `[addr, addr + len)` in this process with no access, so that no host allocation of
/// the tenant lands there. Best effort: false (and nothing reserved) when the range is taken or
/// the kernel places the mapping elsewhere.
pub(crate) fn reserve_local(addr: u64, len: u64) -> bool {
    let Some(len) = page_round(len) else {
        return false;
    };
    if addr == 0
        || !addr.is_multiple_of(PAGE)
        || len == 0
        || usize::try_from(addr.saturating_add(len)).is_err()
    {
        return false;
    }
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a fresh anonymous
    // PROT_NONE mapping touches no memory anyone uses.
    let got = unsafe {
        libc::mmap(
            addr as usize as *mut libc::c_void,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cannot reserve device range {addr:#x}+{len:#x} locally: {}",
                std::io::Error::last_os_error())
        });
        return false;
    }
    if got as usize as u64 != addr {
        // A kernel without MAP_FIXED_NOREPLACE took the address as a hint.
        // SAFETY: `got` is the mapping just created, of `len` bytes; nobody else knows it.
        unsafe { libc::munmap(got, len as usize) };
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "device range {addr:#x}+{len:#x} could not be reserved locally (placed at {got:p})")
        });
        return false;
    }
    true
}

/// Undoes [`reserve_local`] (only call it for a range it returned true for).
pub(crate) fn release_local(addr: u64, len: u64) {
    let Some(len) = page_round(len) else {
        return;
    };
    // SAFETY: the range is a PROT_NONE reservation this module created and still owns.
    let rc = unsafe { libc::munmap(addr as usize as *mut libc::c_void, len as usize) };
    if rc != 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cannot release the local reservation {addr:#x}+{len:#x}: {}",
                std::io::Error::last_os_error())
        });
    }
}

/// The allocation holding `ptr`: (base, allocation).
pub(crate) fn alloc_of(ptr: u64) -> Option<(u64, Alloc)> {
    let m = ALLOCS.read().ok()?;
    let (&base, a) = m.range(..=ptr).next_back()?;
    (ptr - base < a.size).then_some((base, *a))
}

/// True when `ptr` lies in the local reservation of an allocation (its size rounded up to a
/// page): such an address must never be used as host memory.
pub(crate) fn in_local_reservation(ptr: u64) -> bool {
    let Ok(m) = ALLOCS.read() else {
        return false;
    };
    m.range(..=ptr).next_back().is_some_and(|(&base, a)| {
        a.reserved && page_round(a.size).is_some_and(|len| ptr - base < len)
    })
}

/// Records an allocation the broker returned.
fn remember(rt: &Runtime, ptr: u64, size: u64) {
    let reserved = reserve_local(ptr, size);
    let a = Alloc {
        size,
        ctx: current_ctx(),
        id: new_id(),
        reserved,
    };
    if let Ok(mut m) = ALLOCS.write() {
        m.insert(ptr, a);
    }
    rt.add_device_range(ptr, size);
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
    let all: Vec<(u64, Alloc)> = ALLOCS
        .write()
        .map(|mut m| std::mem::take(&mut *m).into_iter().collect())
        .unwrap_or_default();
    for (ptr, a) in all {
        rt.remove_device_range(ptr);
        super::pointer::forget(ptr);
        if a.reserved {
            release_local(ptr, a.size);
        }
        let _ = rt.call_empty(Request::MemFree { ptr });
    }
}

/// `cuMemFree`: `ptr` must be the base of a live allocation (0 is a no-op). The broker waits for
/// the tenant's queued work before it frees.
pub(crate) fn free(ptr: u64) -> CuResult {
    let rt = ctx_rt()?;
    if ptr == 0 {
        return Ok(());
    }
    let a = ALLOCS.write().ok().and_then(|mut m| m.remove(&ptr));
    let Some(a) = a else {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemFree({ptr:#x}): not the base of a device allocation")
        });
        return Err(CuError::INVALID_VALUE);
    };
    rt.remove_device_range(ptr);
    super::pointer::forget(ptr);
    if a.reserved {
        release_local(ptr, a.size);
    }
    rt.call_empty(Request::MemFree { ptr })
}

fn get_info() -> CuResult<(u64, u64)> {
    let rt = ctx_rt()?;
    match rt.call(Request::MemGetInfo)? {
        Reply::MemInfo { free, total } => Ok((free, total)),
        _ => Err(CuError::UNKNOWN),
    }
}

/// `cuMemGetAddressRange`: answered locally for allocations, VMM mappings, module globals and
/// pinned host memory; the broker is asked about anything else (`NOT_FOUND` outside every
/// allocation).
fn address_range(ptr: u64) -> CuResult<(u64, u64)> {
    let rt = ctx_rt()?;
    if let HostMemory::Shared { alloc, offset } = rt.host_memory(ptr as usize, 1) {
        return Ok((ptr - offset, alloc.buffer.len()));
    }
    if let Some(found) = super::vmm::mapping_range(ptr) {
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

/// Pitch and allocation for a `width` × `height` 2D array of `element_size`-byte elements.
fn alloc_pitch(width: u64, height: u64, element_size: u32) -> CuResult<(u64, u64)> {
    if !matches!(element_size, 4 | 8 | 16) || width == 0 || height == 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuMemAllocPitch({width}, {height}, {element_size}): zero extent or element size not 4, 8 or 16")
        });
        return Err(CuError::INVALID_VALUE);
    }
    let rt = ctx_rt()?;
    let (ptr, pitch) = match rt.call(Request::MemAllocPitch {
        width,
        height,
        element_size,
    })? {
        Reply::Pitched { ptr, pitch } => (ptr, pitch),
        _ => return Err(CuError::UNKNOWN),
    };
    remember(rt, ptr, pitch.saturating_mul(height));
    Ok((ptr, pitch))
}

/// A 32-bit device pointer, or `NOT_SUPPORTED` when it does not fit.
pub(crate) fn narrow(ptr: u64, name: &str) -> CuResult<u32> {
    u32::try_from(ptr).map_err(|_| {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "{name}: the v1 ABI's 32-bit CUdeviceptr cannot hold {ptr:#x}; use the _v2 entry point")
        });
        CuError::NOT_SUPPORTED
    })
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

cuda_exports! {
    /// `cuMemGetInfo_v2`: free and total memory of the tenant's view of the device.
    fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) {
        let (f, t) = get_info()?;
        // SAFETY: out-pointers from the caller.
        unsafe {
            write_out(free, f as usize)?;
            write_out(total, t as usize)
        }
    }

    /// `cuMemGetInfo` (v1 ABI: 32-bit sizes, clamped).
    fn cuMemGetInfo(free: *mut u32, total: *mut u32) {
        let (f, t) = get_info()?;
        // SAFETY: out-pointers from the caller.
        unsafe {
            write_out(free, clamp32(f))?;
            write_out(total, clamp32(t))
        }
    }

    /// `cuMemAlloc_v2`
    fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytesize: usize) {
        if dptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let p = alloc(bytesize as u64)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dptr, p) }
    }

    /// `cuMemAlloc` (v1 ABI: 32-bit pointer and size).
    fn cuMemAlloc(dptr: *mut u32, bytesize: u32) {
        if dptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let p = alloc(u64::from(bytesize))?;
        let narrow = narrow(p, "cuMemAlloc").inspect_err(|_| {
            let _ = free(p);
        })?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dptr, narrow) }
    }

    /// `cuMemAllocPitch_v2`: rows padded to a multiple of 512 bytes (by the broker).
    fn cuMemAllocPitch_v2(dptr: *mut CUdeviceptr, pitch: *mut usize, width: usize, height: usize, element_size: u32) {
        if dptr.is_null() || pitch.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let (p, row) = alloc_pitch(width as u64, height as u64, element_size)?;
        // SAFETY: out-pointers from the caller, checked non-null.
        unsafe {
            write_out(dptr, p)?;
            write_out(pitch, row as usize)
        }
    }

    /// `cuMemAllocPitch` (v1 ABI).
    fn cuMemAllocPitch(dptr: *mut u32, pitch: *mut u32, width: u32, height: u32, element_size: u32) {
        if dptr.is_null() || pitch.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let (p, row) = alloc_pitch(u64::from(width), u64::from(height), element_size)?;
        let narrow = narrow(p, "cuMemAllocPitch").inspect_err(|_| {
            let _ = free(p);
        })?;
        // SAFETY: out-pointers from the caller, checked non-null.
        unsafe {
            write_out(dptr, narrow)?;
            write_out(pitch, clamp32(row))
        }
    }

    /// `cuMemFree_v2`: `dptr` must be the base of a live allocation (0 is a no-op).
    fn cuMemFree_v2(dptr: CUdeviceptr) {
        free(dptr)
    }

    /// `cuMemFree` (v1 ABI).
    fn cuMemFree(dptr: u32) {
        free(u64::from(dptr))
    }

    /// `cuMemGetAddressRange_v2`: base and size of the allocation holding `dptr` (either
    /// out-pointer may be NULL); `NOT_FOUND` for addresses in no allocation.
    fn cuMemGetAddressRange_v2(pbase: *mut CUdeviceptr, psize: *mut usize, dptr: CUdeviceptr) {
        let (base, size) = address_range(dptr)?;
        if !pbase.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pbase, base) }?;
        }
        if !psize.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(psize, size as usize) }?;
        }
        Ok(())
    }

    /// `cuMemGetAddressRange` (v1 ABI).
    fn cuMemGetAddressRange(pbase: *mut u32, psize: *mut u32, dptr: u32) {
        let (base, size) = address_range(u64::from(dptr))?;
        if !pbase.is_null() {
            let b = narrow(base, "cuMemGetAddressRange")?;
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pbase, b) }?;
        }
        if !psize.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(psize, clamp32(size)) }?;
        }
        Ok(())
    }
}
