//! The CPU device's C layer, generated from the declared surface with Rust-mangled names: the
//! tests call the same entry points a C program calls, in-process.

#![allow(dead_code)]

gpushare_driver_abi::driver_exports!(gpushare_cpu_device::CpuDevice, "the CPU device", unexported);
