//! `libgpushare_shim.so`: the shim as a drop-in `libcuda.so.1`. A thin re-export: every entry
//! point is defined in `gpushare-shim-core` (wasmtime c-api style).

pub use gpushare_shim_core::*;
