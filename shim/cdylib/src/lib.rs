//! `libgpushare_shim.so`: the shim as a drop-in `libcuda.so.1`. Every exported symbol of libcuda
//! 12.9 is generated from the driver surface of `gpushare-driver-abi` over the shim's
//! implementation ([`gpushare_shim_core::Shim`]): argument conversion, panic guard, NOT_SUPPORTED
//! stubs, `cuGetProcAddress`, `cuGetExportTable` and the error strings.

gpushare_driver_abi::driver_exports!(gpushare_shim_core::Shim, "the shim");
