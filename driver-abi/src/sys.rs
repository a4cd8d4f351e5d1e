//! C ABI types of the driver API used across families (values from cuda.h 12.9). Family-specific
//! enums and structs live in the family's module.

use std::ffi::c_void;

/// `CUdevice`
pub type CUdevice = i32;
/// `CUdeviceptr` (v2: 64-bit)
pub type CUdeviceptr = u64;
/// `CUcontext`
pub type CUcontext = *mut c_void;
/// `CUmodule`
pub type CUmodule = *mut c_void;
/// `CUfunction`
pub type CUfunction = *mut c_void;
/// `CUstream`
pub type CUstream = *mut c_void;
/// `CUevent`
pub type CUevent = *mut c_void;
/// `CUlibrary`
pub type CUlibrary = *mut c_void;
/// `CUkernel`
pub type CUkernel = *mut c_void;

/// `CU_STREAM_LEGACY`
pub const CU_STREAM_LEGACY: u64 = 0x1;
/// `CU_STREAM_PER_THREAD`
pub const CU_STREAM_PER_THREAD: u64 = 0x2;

/// The driver API version gpushare reports (`cuDriverGetVersion` of the CPU device, and of the shim
/// before it reaches a broker): CUDA 13.0 (driver 580). libcudart 13.x refuses a driver older than
/// 13000 (`cudaErrorInsufficientDriver`); 12.x runtimes accept a newer driver. The surface is
/// libcuda 12.9's plus the 13.x entry points (`surface::decl`).
pub const DRIVER_VERSION: i32 = 13000;

/// Writes `value` through an out-pointer, failing with `INVALID_VALUE` on NULL.
///
/// # Safety
/// `ptr` must be NULL or valid for a write of `T`.
pub unsafe fn write_out<T>(ptr: *mut T, value: T) -> crate::error::CuResult {
    if ptr.is_null() {
        return Err(crate::error::CuError::INVALID_VALUE);
    }
    // SAFETY: non-null, and the caller guarantees validity for a write of T. Unaligned writes are
    // tolerated because C callers sometimes pass packed structures.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Copies `text` into a caller buffer of `len` bytes, truncating, always NUL-terminated
/// (`cuDeviceGetName`, `cuDeviceGetPCIBusId`); NULL or `len <= 0` gives `INVALID_VALUE`.
///
/// # Safety
/// `buf` must be NULL or valid for `len` bytes of writes.
pub unsafe fn write_c_string(
    buf: *mut std::ffi::c_char,
    len: i32,
    text: &str,
) -> crate::error::CuResult {
    if buf.is_null() || len <= 0 {
        return Err(crate::error::CuError::INVALID_VALUE);
    }
    let n = text.len().min(len as usize - 1);
    // SAFETY: `buf` holds `len` bytes per the caller; n + 1 <= len bytes are written.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    Ok(())
}
