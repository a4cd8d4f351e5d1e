//! gpushare CPU device: a CPU implementation of the CUDA driver API.
//!
//! [`CpuDevice`] implements the families of the driver surface declared in
//! `gpushare-driver-abi` ([`gpushare_driver_abi::surface`]), one module per family in [`driver`].
//! The C layer is generated from the declaration in the thin cdylib `gpushare-cpu`
//! (`driver_exports!`): it converts arguments, catches panics and exports every symbol of
//! libcuda 12.9 under the SONAME `libcuda.so.1`.
//!
//! Layers, bottom up:
//! - [`error`], [`export`], [`sys`], [`log`]: shared with the shim, from `gpushare-driver-abi`:
//!   `CUresult` as `Result<(), CuError>`, the export macro, C types, logging.
//! - [`handles`]: opaque handles validated through per-kind tables (a stale or foreign handle is an error).
//! - [`profile`]: the modelled device (H200 by default, a small one for tests).
//! - [`state`]: the driver-global state created by `cuInit`, and contexts.
//! - [`driver`]: the driver API families, implemented for [`CpuDevice`].

pub use gpushare_driver_abi::{error, error_table, export, log, sys};
pub mod handles;
pub mod profile;
pub mod state;

pub mod driver;

/// The CPU device as an implementation of the driver surface.
#[derive(Debug)]
pub struct CpuDevice;
pub mod exec;
pub mod memory;

/// The generated C layer over [`CpuDevice`] with Rust-mangled names, for the crate's own tests.
#[cfg(test)]
pub(crate) mod cuda {
    gpushare_driver_abi::driver_exports!(crate::CpuDevice, "the CPU device", unexported);
}
