//! Initialisation, driver version and error strings. `cuInit` connects to the broker.

use std::ffi::c_char;

use gpushare_driver_abi::error::CuError;
use gpushare_driver_abi::sys::{write_out, DRIVER_VERSION};

use crate::runtime;

cuda_exports! {
    /// `cuInit`: flags must be 0. Connects to the broker (`GPUSHARE_SOCKET`); without one,
    /// `CUDA_ERROR_NO_DEVICE` and a log line naming the socket.
    fn cuInit(flags: u32) {
        if flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        runtime::init().map(|_| ())
    }

    /// `cuDriverGetVersion`: the broker's driver version once connected; works before `cuInit`.
    fn cuDriverGetVersion(version: *mut i32) {
        let v = runtime::runtime().map_or(DRIVER_VERSION, |rt| rt.driver_version);
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(version, v) }
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
