//! The driver API families of the CPU device, one module per family of the declared surface
//! ([`gpushare_driver_abi::surface`]), each implementing its trait for [`crate::CpuDevice`] with
//! `implement!`. Arguments arrive converted (out-pointers as `Out`, structures as `In`, names as
//! `&str`, flags checked); the C layer is generated in the cdylib.

pub mod context;
pub mod copy;
pub mod device;
pub mod event;

gpushare_driver_abi::implement_graphs!(crate::CpuDevice);

pub mod host_memory;
pub mod init;
pub mod launch;
pub mod link;
pub mod memory;
pub mod module;
pub mod occupancy;
pub mod pointer;
pub(crate) mod resolve;
pub mod stream;
pub mod vmm;
