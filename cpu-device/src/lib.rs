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
//! - [`clock`], [`context`]: the driver clock, and contexts (flags, limits, sticky error).
//! - [`memory`]: device memory (address arena, allocations, VMM, host registrations).
//! - [`exec`]: streams, events, modules and the executor; given memory and the clock at creation.
//! - [`state`]: the driver-global state created by `cuInit` (owns memory and the executor), and
//!   each thread's current-context stack.
//! - [`driver`]: the driver API families, implemented for [`CpuDevice`].

pub use gpushare_driver_abi::{error, error_table, export, log, sys};
pub mod clock;
pub mod context;
pub mod handles;
pub mod memory;
pub mod profile;

pub mod exec;
pub mod state;

pub mod driver;

/// The CPU device as an implementation of the driver surface.
#[derive(Debug)]
pub struct CpuDevice;

/// The generated C layer over [`CpuDevice`] with Rust-mangled names, for the crate's own tests.
#[cfg(test)]
pub(crate) mod cuda {
    gpushare_driver_abi::driver_exports!(crate::CpuDevice, "the CPU device", unexported);
}
