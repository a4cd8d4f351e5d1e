//! Initialisation, driver version and error strings.

use std::ffi::c_char;

use crate::error::CuError;
use crate::state;
use crate::sys::{write_out, DRIVER_VERSION};

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
        // SAFETY: out-pointer from the caller, under the same contract.
        unsafe { gpushare_driver_abi::error_strings::get_error_name(error, out) }
    }

    /// `cuGetErrorString`: unknown code gives `INVALID_VALUE` and a NULL string.
    fn cuGetErrorString(error: u32, out: *mut *const c_char) {
        // SAFETY: out-pointer from the caller, under the same contract.
        unsafe { gpushare_driver_abi::error_strings::get_error_string(error, out) }
    }
}
