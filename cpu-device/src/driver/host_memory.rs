//! Page-locked host memory: `cuMemHostAlloc`, `cuMemAllocHost`, `cuMemFreeHost`,
//! `cuMemHostGetDevicePointer`, `cuMemHostGetFlags`, `cuMemHostRegister`, `cuMemHostUnregister`.
//!
//! With unified addressing the device pointer of page-locked memory is its host pointer, for
//! every flag combination (including WRITECOMBINED, which changes nothing on a CPU). Allocations
//! and registrations belong to the current context and go away with it.

use std::ffi::c_void;

use crate::error::{CuError, CuResult};
use crate::state;
use crate::sys::{write_out, CUdeviceptr};

fn host_alloc(pp: *mut *mut c_void, size: u64, flags: u32) -> CuResult {
    if pp.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let (d, ctx) = state::current()?;
    let p = d.memory.host_alloc(ctx.id(), size, flags)?;
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(pp, p as *mut c_void) }
}

fn device_pointer(p: *mut c_void, flags: u32) -> CuResult<u64> {
    let (d, _) = state::current()?;
    if flags != 0 {
        tracing::debug!("cuMemHostGetDevicePointer: flags must be 0, not {flags:#x}");
        return Err(CuError::INVALID_VALUE);
    }
    d.memory.host_device_pointer(p as u64)
}

fn register(p: *mut c_void, size: usize, flags: u32) -> CuResult {
    let (d, ctx) = state::current()?;
    d.memory.register(ctx.id(), p as u64, size as u64, flags)
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
        host_alloc(pp, bytesize as u64, 0)
    }

    /// `cuMemFreeHost`: after the current context's work drains.
    fn cuMemFreeHost(p: *mut c_void) {
        let (d, ctx) = state::current()?;
        let _ = d.exec.synchronize_context(&ctx);
        d.memory.host_free(p as u64)
    }

    /// `cuMemHostGetDevicePointer_v2`: the host pointer itself (unified addressing).
    fn cuMemHostGetDevicePointer_v2(pdptr: *mut CUdeviceptr, p: *mut c_void, flags: u32) {
        if pdptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let dptr = device_pointer(p, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pdptr, dptr) }
    }

    /// `cuMemHostGetDevicePointer` (v1 ABI: 32-bit device pointer, which never fits here).
    fn cuMemHostGetDevicePointer(pdptr: *mut u32, p: *mut c_void, flags: u32) {
        if pdptr.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let dptr = device_pointer(p, flags)?;
        let narrow = u32::try_from(dptr).map_err(|_| {
            tracing::warn!("cuMemHostGetDevicePointer: the v1 ABI's 32-bit CUdeviceptr cannot hold {dptr:#x}; use the _v2 entry point");
            CuError::NOT_SUPPORTED
        })?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pdptr, narrow) }
    }

    /// `cuMemHostGetFlags`: the flags of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
    fn cuMemHostGetFlags(pflags: *mut u32, p: *mut c_void) {
        if pflags.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let (d, _) = state::current()?;
        let flags = d.memory.host_flags(p as u64)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pflags, flags) }
    }

    /// `cuMemHostRegister_v2`: flags PORTABLE (1), DEVICEMAP (2), READ_ONLY (8); IOMEMORY (4) is
    /// not supported.
    fn cuMemHostRegister_v2(p: *mut c_void, bytesize: usize, flags: u32) {
        register(p, bytesize, flags)
    }

    /// `cuMemHostRegister` (same ABI as `_v2`).
    fn cuMemHostRegister(p: *mut c_void, bytesize: usize, flags: u32) {
        register(p, bytesize, flags)
    }

    /// `cuMemHostUnregister`: `p` must be the pointer given to `cuMemHostRegister`; waits for the
    /// current context's work first.
    fn cuMemHostUnregister(p: *mut c_void) {
        let (d, ctx) = state::current()?;
        let _ = d.exec.synchronize_context(&ctx);
        d.memory.unregister(p as u64)
    }
}
