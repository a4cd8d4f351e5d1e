//! The shim's implementation of the driver surface: one module per API family, each an
//! `implement! { impl Family for Shim { ... } }` of the methods the shim supports (the others keep
//! the surface's NOT_SUPPORTED default). Methods receive converted arguments — out-pointers as
//! `Out`/`OptOut`, structures by copy, names as `&str`, checked flags, and for per-thread twins
//! the default stream the symbol implies — so what is left here is the shim's own work: state
//! checks, then tables and broker calls through [`crate::runtime`].
//!
//! Families share no code with each other except downward: [`context`] tears a primary context
//! down through [`memory`] and [`module`], [`launch`] enqueues host functions through [`stream`],
//! and [`memory`] and [`vmm`] reserve device ranges locally through [`reserve`].

pub mod context;
pub mod copy;
pub mod device;
pub mod event;

gpushare_driver_abi::implement_graphs!(crate::Shim);

pub mod host_memory;
pub mod init;
pub mod launch;
pub mod link;
pub mod memory;
pub mod module;
pub mod occupancy;
pub mod pointer;
pub mod reserve;
pub mod stream;
pub mod vmm;

#[cfg(test)]
mod tests;
