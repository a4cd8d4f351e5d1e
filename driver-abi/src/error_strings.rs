//! `cuGetErrorName` / `cuGetErrorString`, shared by every driver library: NUL-terminated names and
//! driver-style descriptions for every `CUresult` in cuda.h.

use std::ffi::{c_char, CString};

use crate::error::{CuError, CuResult};
use crate::sys::write_out;

/// The short strings NVIDIA's driver returns from `cuGetErrorString` for the common codes (what
/// frameworks print, e.g. "an illegal memory access was encountered"); other codes fall back to the
/// first sentence of cuda.h's description.
const DRIVER_STRINGS: &[(u32, &str)] = &[
    (0, "no error"),
    (1, "invalid argument"),
    (2, "out of memory"),
    (3, "initialization error"),
    (4, "driver shutting down"),
    (100, "no CUDA-capable device is detected"),
    (101, "invalid device ordinal"),
    (200, "device kernel image is invalid"),
    (201, "invalid device context"),
    (
        209,
        "no kernel image is available for execution on the device",
    ),
    (218, "a PTX JIT compilation failed"),
    (300, "invalid source"),
    (301, "file not found"),
    (400, "invalid resource handle"),
    (500, "named symbol not found"),
    (600, "device not ready"),
    (700, "an illegal memory access was encountered"),
    (701, "too many resources requested for launch"),
    (702, "the launch timed out and was terminated"),
    (709, "context is destroyed"),
    (710, "device-side assert triggered"),
    (715, "an illegal instruction was encountered"),
    (716, "misaligned address"),
    (719, "unspecified launch failure"),
    (801, "operation not supported"),
    (999, "unknown error"),
];

/// NUL-terminated copies of the names and descriptions, built once (the table's strings are not).
fn c_strings() -> &'static [(u32, CString, CString)] {
    static TABLE: std::sync::OnceLock<Vec<(u32, CString, CString)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        crate::error_table::ERROR_TABLE
            .iter()
            .filter_map(|(code, name, desc)| {
                let text = DRIVER_STRINGS
                    .iter()
                    .find(|(c, _)| c == code)
                    .map_or(*desc, |(_, s)| *s);
                Some((*code, CString::new(*name).ok()?, CString::new(text).ok()?))
            })
            .collect()
    })
}

/// The body of `cuGetErrorName`: unknown code gives `INVALID_VALUE` and a NULL string.
///
/// # Safety
/// `out` must be NULL or valid for a write.
pub unsafe fn get_error_name(error: u32, out: *mut *const c_char) -> CuResult {
    let entry = c_strings().iter().find(|(c, _, _)| *c == error);
    let ptr = entry.map_or(std::ptr::null(), |(_, name, _)| name.as_ptr());
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, ptr) }?;
    entry.map(|_| ()).ok_or(CuError::INVALID_VALUE)
}

/// The body of `cuGetErrorString`: unknown code gives `INVALID_VALUE` and a NULL string.
///
/// # Safety
/// `out` must be NULL or valid for a write.
pub unsafe fn get_error_string(error: u32, out: *mut *const c_char) -> CuResult {
    let entry = c_strings().iter().find(|(c, _, _)| *c == error);
    let ptr = entry.map_or(std::ptr::null(), |(_, _, desc)| desc.as_ptr());
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, ptr) }?;
    entry.map(|_| ()).ok_or(CuError::INVALID_VALUE)
}
