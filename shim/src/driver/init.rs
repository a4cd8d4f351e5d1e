//! Initialisation and the driver version. `cuInit` connects to the broker (`GPUSHARE_SOCKET`);
//! without one, `CUDA_ERROR_NO_DEVICE` and a log line naming the socket.

use gpushare_driver_abi::surface::prelude::*;
use gpushare_driver_abi::sys::DRIVER_VERSION;

use crate::runtime;
use crate::Shim;

gpushare_driver_abi::implement! {
    impl Init for Shim {
        /// `cuInit`: connects once; later calls return the first outcome.
        fn init(flags: Flags<0>) -> CuResult {
            let _ = flags;
            runtime::init().map(|_| ())
        }

        /// `cuDriverGetVersion`: the broker's driver version once connected; works before
        /// `cuInit`.
        fn driver_get_version(version: Out<'_, i32>) -> CuResult {
            version.write(runtime::runtime().map_or(DRIVER_VERSION, |rt| rt.driver_version))
        }
    }
}
