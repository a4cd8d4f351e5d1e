//! `libgpushare_cpu.so`: the CPU device as a drop-in `libcuda.so.1`. A thin re-export: every entry
//! point is defined in `gpushare-cpu-device` (wasmtime c-api style).

pub use gpushare_cpu_device::*;
