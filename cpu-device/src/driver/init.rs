//! Initialisation, driver version and error strings.

use std::ffi::c_char;

use crate::error::{description_of, name_of, CuError};
use crate::state;
use crate::sys::{write_out, DRIVER_VERSION};

/// NUL-terminated copies of the names and descriptions, built once (the table's strings are not).
fn c_strings() -> &'static [(u32, std::ffi::CString, std::ffi::CString)] {
    static TABLE: std::sync::OnceLock<Vec<(u32, std::ffi::CString, std::ffi::CString)>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        crate::error_table::ERROR_TABLE
            .iter()
            .filter_map(|(code, name, desc)| {
                Some((
                    *code,
                    std::ffi::CString::new(*name).ok()?,
                    std::ffi::CString::new(*desc).ok()?,
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
