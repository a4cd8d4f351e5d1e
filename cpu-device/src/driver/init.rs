//! `cuInit` and `cuDriverGetVersion`.

use gpushare_driver_abi::surface::{Flags, Out};

use crate::error::CuResult;
use crate::state;
use crate::sys::DRIVER_VERSION;
use crate::CpuDevice;

gpushare_driver_abi::implement! {
    impl Init for CpuDevice {
        /// Creates the driver state (device memory, executor) once.
        fn init(_flags: Flags<0>) -> CuResult {
            state::init().map(|_| ())
        }

        /// CUDA 12.9; works before `cuInit`.
        fn driver_get_version(version: Out<'_, i32>) -> CuResult {
            version.write(DRIVER_VERSION)
        }
    }
}
