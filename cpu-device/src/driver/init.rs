//! Initialisation, driver version and error strings.

use std::ffi::c_char;

use crate::error::{description_of, name_of, CuError};
use crate::state;
use crate::sys::{write_out, DRIVER_VERSION};

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
fn c_strings() -> &'static [(u32, std::ffi::CString, std::ffi::CString)] {
    static TABLE: std::sync::OnceLock<Vec<(u32, std::ffi::CString, std::ffi::CString)>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        crate::error_table::ERROR_TABLE
            .iter()
            .filter_map(|(code, name, desc)| {
                let text = DRIVER_STRINGS
                    .iter()
                    .find(|(c, _)| c == code)
                    .map_or(*desc, |(_, s)| *s);
                Some((
                    *code,
                    std::ffi::CString::new(*name).ok()?,
                    std::ffi::CString::new(text).ok()?,
                ))
            })
            .collect()
    })
}

cuda_exports! {
    /// `cuInit`: flags must be 0.
    fn cuInit(flags: u32) {
        if flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        state::init().map(|_| ())
    }

    /// `cuDriverGetVersion`: works before `cuInit`.
    fn cuDriverGetVersion(version: *mut i32) {
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(version, DRIVER_VERSION) }
    }

    /// `cuGetErrorName`: unknown code gives `INVALID_VALUE` and a NULL string.
    fn cuGetErrorName(error: u32, out: *mut *const c_char) {
        let entry = c_strings().iter().find(|(c, _, _)| *c == error);
        debug_assert_eq!(entry.is_some(), name_of(error).is_some());
        let ptr = entry.map_or(std::ptr::null(), |(_, name, _)| name.as_ptr());
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, ptr) }?;
        entry.map(|_| ()).ok_or(CuError::INVALID_VALUE)
    }

    /// `cuGetErrorString`: unknown code gives `INVALID_VALUE` and a NULL string.
    fn cuGetErrorString(error: u32, out: *mut *const c_char) {
        let entry = c_strings().iter().find(|(c, _, _)| *c == error);
        debug_assert_eq!(entry.is_some(), description_of(error).is_some());
        let ptr = entry.map_or(std::ptr::null(), |(_, _, desc)| desc.as_ptr());
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, ptr) }?;
        entry.map(|_| ()).ok_or(CuError::INVALID_VALUE)
    }
}
