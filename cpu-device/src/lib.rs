//! gpushare CPU device: a CPU implementation of the CUDA driver API.
//!
//! The `extern "C"` entry points live in [`driver`], one module per API family, generated through
//! [`cuda_exports!`] so that every export catches panics and returns a `CUresult`. The cdylib crate
//! `gpushare-cpu` re-exports them under the SONAME `libcuda.so.1`.
//!
//! Layers, bottom up:
//! - [`error`], [`export`], [`sys`], [`log`]: shared with the shim, from `gpushare-driver-abi`:
//!   `CUresult` as `Result<(), CuError>`, the export macro, C types, logging.
//! - [`handles`]: opaque handles validated through per-kind tables (a stale or foreign handle is an error).
//! - [`profile`]: the modelled device (H200 by default, a small one for tests).
//! - [`state`]: the driver-global state created by `cuInit`, and contexts.
//! - [`driver`]: the C ABI.

#[macro_use]
extern crate gpushare_driver_abi;

pub use gpushare_driver_abi::{error, error_table, export, log, sys};
pub mod handles;
pub mod profile;
pub mod state;

pub mod driver;
pub mod exec;
pub mod memory;
