//! The C ABI: one module per driver API family. Every module declares its entry points with
//! [`crate::cuda_exports!`], which also lists them in the module's `EXPORTS`; [`all_exports`] is the
//! union, the single source `cuGetProcAddress` resolves from.

pub mod context;
pub mod device;
pub mod init;

use crate::export::Export;

/// Every entry point the CPU device implements.
pub fn all_exports() -> impl Iterator<Item = &'static Export> {
    [init::EXPORTS, device::EXPORTS, context::EXPORTS]
        .into_iter()
        .flatten()
}
