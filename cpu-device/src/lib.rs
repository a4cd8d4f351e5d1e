//! gpushare CPU device: a CPU implementation of the CUDA driver API.
//!
//! The `extern "C"` entry points live in [`driver`], one module per API family, generated through
//! [`cuda_exports!`] so that every export catches panics and returns a `CUresult`. The cdylib crate
//! `gpushare-cpu` re-exports them under the SONAME `libcuda.so.1`.
//!
//! Layers, bottom up:
//! - [`error`]: `CUresult` as `Result<(), CuError>`.
//! - [`handles`]: opaque handles validated through per-kind tables (a stale or foreign handle is an error).
//! - [`profile`]: the modelled device (H200 by default, a small one for tests).
//! - [`state`]: the driver-global state created by `cuInit`, and contexts.
//! - [`driver`]: the C ABI.

pub mod error;
pub mod error_table;
#[macro_use]
pub mod export;
pub mod handles;
pub mod log;
pub mod profile;
pub mod state;
pub mod sys;

pub mod driver;
pub mod exec;
pub mod memory;
