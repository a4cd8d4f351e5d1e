//! `libgpushare_cpu.so`: the CPU device as a drop-in `libcuda.so.1`. The C layer is generated from
//! the declared driver surface over [`gpushare_cpu_device::CpuDevice`] (wasmtime c-api style: a
//! thin cdylib over a safe Rust API).

gpushare_driver_abi::driver_exports!(gpushare_cpu_device::CpuDevice, "the CPU device");
