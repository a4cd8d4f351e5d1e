//! gpushare shim: the CUDA driver API of an unmodified process, forwarded to the broker.
//!
//! Preloaded (`LD_PRELOAD`, or found as `libcuda.so.1` on `LD_LIBRARY_PATH`), the cdylib
//! `libgpushare_shim.so` (crate `gpushare-shim`, a thin re-export of this one) answers every
//! driver call of the process: device queries from the snapshot the broker sent at connect time,
//! asynchronous work (launches, async copies, memsets, event records) as records on the command
//! ring with no round trip, and everything that returns a value as a synchronous call. Bytes
//! travel through shared memory, never through the socket. See `docs/architecture.md`.
//!
//! - [`runtime`]: the broker session and the shim's tables (streams, events, kernels, memory).
//! - [`driver`]: the C ABI, one module per driver API family, declared with
//!   [`gpushare_driver_abi::cuda_exports!`] so that no panic crosses into the caller.
//!
//! Nothing is printed unless `GPUSHARE_LOG` is set (then to stderr).

#[macro_use]
extern crate gpushare_driver_abi;

pub use gpushare_driver_abi::{error, export, sys};

pub mod driver;
pub mod runtime;

/// Runs a logging statement: installs the subscriber if `GPUSHARE_LOG` asks for one, and never
/// lets a logging failure unwind into the application.
#[inline]
pub(crate) fn log(f: impl FnOnce()) {
    gpushare_driver_abi::export::log_quietly(gpushare_driver_abi::log::init);
    gpushare_driver_abi::export::log_quietly(f);
}
