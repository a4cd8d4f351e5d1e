//! Device memory management: `cuMemAlloc*`, `cuMemFree`, `cuMemGetInfo`, `cuMemGetAddressRange`,
//! `cuMemAllocPitch`, `cuMemAllocManaged`.
//!
//! The work is done by [`crate::memory::DeviceMemory`]; this module checks arguments, resolves
//! the current context (allocations belong to it) and writes results. The `v1` entry points use
//! the pre-3.2 ABI with 32-bit device pointers and sizes: sizes work, but a device pointer never
//! fits in 32 bits here (the arena lies high in the address space), so the calls that return one
//! fail with `NOT_SUPPORTED` and a log line.

use crate::error::{CuError, CuResult};
use crate::state;
use crate::sys::{write_out, CUdeviceptr};

/// `CU_MEM_ATTACH_GLOBAL`
const ATTACH_GLOBAL: u32 = 0x1;
/// `CU_MEM_ATTACH_HOST`
const ATTACH_HOST: u32 = 0x2;
/// Pitch alignment of `cuMemAllocPitch` (`CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT`-sized).
const PITCH_ALIGN: u64 = 512;

fn alloc(size: u64) -> CuResult<u64> {
    let (d, ctx) = state::current()?;
    d.memory.alloc(ctx.id(), size)
}

/// Frees a device allocation after the current context's work drains (as `cuMemFree` does on
/// hardware), so no queued copy or kernel still uses the pages.
pub(crate) fn free(ptr: u64) -> CuResult {
    let (d, ctx) = state::current()?;
    if ptr == 0 {
        return Ok(());
    }
    let _ = d.exec.synchronize_context(&ctx);
    d.memory.free(ptr)
}

fn get_info() -> CuResult<(u64, u64)> {
    let (d, _) = state::current()?;
    Ok((d.memory.free_bytes(), d.memory.total_bytes()))
}

fn address_range(ptr: u64) -> CuResult<(u64, u64)> {
    let (d, _) = state::current()?;
    d.memory.address_range(ptr)
}

/// Pitch and allocation for a `width` × `height` 2D array of `element_size`-byte elements.
fn alloc_pitch(width: u64, height: u64, element_size: u32) -> CuResult<(u64, u64)> {
    if !matches!(element_size, 4 | 8 | 16) || width == 0 || height == 0 {
        tracing::debug!(
            "cuMemAllocPitch({width}, {height}, {element_size}): zero extent or element size not 4, 8 or 16"
        );
        return Err(CuError::INVALID_VALUE);
    }
    let pitch = width
        .checked_add(PITCH_ALIGN - 1)
        .map(|w| w & !(PITCH_ALIGN - 1))
        .ok_or(CuError::INVALID_VALUE)?;
    let size = pitch.checked_mul(height).ok_or(CuError::OUT_OF_MEMORY)?;
    Ok((alloc(size)?, pitch))
}

/// A 32-bit device pointer, or `NOT_SUPPORTED` (after freeing `ptr`) when it does not fit.
fn narrow(ptr: u64, name: &str) -> CuResult<u32> {
    u32::try_from(ptr).map_err(|_| {
        tracing::warn!(
            "{name}: the v1 ABI's 32-bit CUdeviceptr cannot hold {ptr:#x}; use the _v2 entry point"
        );
        CuError::NOT_SUPPORTED
    })
}

fn clamp32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

cuda_exports! {
    /// `cuMemGetInfo_v2`: free and total device memory of the modelled device.
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
        let p = alloc(bytesize as u64)?;
        let narrow = narrow(p, "cuMemAlloc").inspect_err(|_| {
            let _ = free(p);
        })?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dptr, narrow) }
    }

    /// `cuMemAllocPitch_v2`: rows padded to a multiple of 512 bytes.
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
        let (p, row) = alloc_pitch(width as u64, height as u64, element_size)?;
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
        free(dptr as u64)
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
        let (base, size) = address_range(dptr as u64)?;
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

    /// `cuMemAllocManaged`: device memory the host can use at the same address (device pointers
    /// are host addresses here, so there is nothing to migrate). Flags: `CU_MEM_ATTACH_GLOBAL`
    /// or `CU_MEM_ATTACH_HOST`.
    fn cuMemAllocManaged(dptr: *mut CUdeviceptr, bytesize: usize, flags: u32) {
        if dptr.is_null() || !matches!(flags, ATTACH_GLOBAL | ATTACH_HOST) {
            tracing::debug!("cuMemAllocManaged: NULL pointer or flags {flags:#x} not GLOBAL/HOST");
            return Err(CuError::INVALID_VALUE);
        }
        let (d, ctx) = state::current()?;
        let p = d.memory.alloc_managed(ctx.id(), bytesize as u64)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dptr, p) }
    }
}
