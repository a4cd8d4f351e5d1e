//! gpushare shim: the CUDA driver API of an unmodified process, forwarded to the broker.
//!
//! Preloaded (`LD_PRELOAD`, or found as `libcuda.so.1` on `LD_LIBRARY_PATH`), the cdylib
//! `libgpushare_shim.so` (crate `gpushare-shim`) answers every driver call of the process: device
//! queries from the snapshot the broker sent at connect time, asynchronous work (launches, async
//! copies, memsets, event records) as records on the command ring with no round trip, and
//! everything that returns a value as a synchronous call. Bytes travel through shared memory,
//! never through the socket. See `docs/architecture.md`.
//!
//! - [`Shim`]: the library as the driver surface of `gpushare-driver-abi` sees it. [`driver`]
//!   implements one family trait per module with [`gpushare_driver_abi::implement!`]; the cdylib
//!   is one line, `driver_exports!(Shim, "the shim")`, which generates every exported symbol
//!   (argument conversion, panic guard, NOT_SUPPORTED stubs, `cuGetProcAddress`,
//!   `cuGetExportTable`, error strings).
//! - [`runtime`]: the broker session and the shim's tables (contexts, streams, events, kernels,
//!   memory).
//!
//! Nothing is printed unless `GPUSHARE_LOG` is set (then to stderr).

pub use gpushare_driver_abi::{error, export, sys};

pub mod driver;
pub mod runtime;

/// The shim as a driver library: implements the surface's family traits (see [`driver`]).
#[derive(Clone, Copy, Debug)]
pub struct Shim;

/// Runs a logging statement: installs the subscriber if `GPUSHARE_LOG` asks for one, and never
/// lets a logging failure unwind into the application.
#[inline]
pub(crate) fn log(f: impl FnOnce()) {
    gpushare_driver_abi::export::log_quietly(gpushare_driver_abi::log::init);
    gpushare_driver_abi::export::log_quietly(f);
}
