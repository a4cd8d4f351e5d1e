//! The C ABI: one module per driver API family. Every module declares its entry points with
//! [`crate::cuda_exports!`], which also lists them in the module's `EXPORTS`; [`all_exports`] is the
//! union, the single source `cuGetProcAddress` resolves from.

pub mod context;
pub mod copy;
pub mod device;
pub mod event;
pub use gpushare_driver_abi::export_table;
pub mod host_memory;
pub mod init;
pub mod launch;
pub mod memory;
pub mod module;
pub mod pointer;
pub use gpushare_driver_abi::proc_table;
pub mod procaddress;
pub mod stream;
/// Generated NOT_SUPPORTED stubs for every other driver symbol; not part of [`all_exports`].
pub mod unsupported;
pub mod vmm;

use crate::export::Export;

/// Every entry point the CPU device implements.
pub fn all_exports() -> impl Iterator<Item = &'static Export> {
    [
        init::EXPORTS,
        device::EXPORTS,
        context::EXPORTS,
        procaddress::EXPORTS,
        stream::EXPORTS,
        event::EXPORTS,
        copy::exports::EXPORTS,
        module::exports::EXPORTS,
        launch::EXPORTS,
        memory::EXPORTS,
        host_memory::EXPORTS,
        pointer::EXPORTS,
        vmm::EXPORTS,
    ]
    .into_iter()
    .flatten()
}
