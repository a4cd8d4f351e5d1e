//! The driver surface: declared once ([`decl`]), implemented per library, exported by a
//! generated layer.
//!
//! ```text
//!  decl.rs  driver_surface!  ── one entry per call: method, converted arguments, C symbols
//!     │
//!     ├─► traits.rs   a trait per family (Init, Device, Context, Stream, Event, Memory, HostMemory,
//!     │               Pointer, Vmm, Copies, Module, Link, Launch, Occupancy, Graph); every method defaults to
//!     │               NOT_SUPPORTED; `IMPLEMENTED` lists what a library overrides
//!     │
//!     └─► exports.rs  driver_exports!(Library, "name"): in the library's thin cdylib, every
//!                     `#[no_mangle] extern "C"` symbol of libcuda 12.9 — declared ones convert
//!                     their arguments (args.rs) and call the method under a panic guard;
//!                     undeclared ones are NOT_SUPPORTED stubs; cuGetProcAddress, cuGetExportTable
//!                     and the error strings are built in
//! ```
//!
//! A library implements a family with [`implement!`](crate::implement):
//!
//! ```ignore
//! gpushare_driver_abi::implement! {
//!     impl Memory for CpuDevice {
//!         fn mem_alloc(dptr: Out<'_, CUdeviceptr>, bytesize: usize) -> CuResult {
//!             dptr.write(alloc(bytesize)?)
//!         }
//!     }
//! }
//! ```
//!
//! which also records the method names in the family's `IMPLEMENTED` list: that list, computed by
//! the compiler, is what `cuGetProcAddress` reports as supported and what
//! `docs/driver-entry-points.md` is generated from.

pub mod args;
pub mod decl;
pub mod decl_graph;
pub mod exports;
pub mod implement;
pub mod probe;
pub mod traits;
pub mod undeclared;

pub use args::{CudaArg, DefaultStream, Flags, FromCuda, In, OptOut, Out};
pub use traits::*;

use crate::error::CuError;

/// The names the declaration uses, for the code it expands to.
pub mod prelude {
    pub use super::args::{CudaArg, DefaultStream, Flags, FromCuda, In, OptOut, Out};
    pub use crate::cuda_h::{
        CUhostFn, CUjitOption, CUmemAccessDesc, CUmemAllocationProp, CUmemGenericAllocationHandle,
        CUmemLocation, CUoccupancyB2DSize, CUstreamCallback, CUuuid, CuLaunchConfig, CudaMemcpy2D,
        CU_EVENT_FLAGS, CU_EVENT_RECORD_EXTERNAL, CU_EVENT_WAIT_EXTERNAL, CU_MEMHOSTALLOC_FLAGS,
        CU_MEMHOSTREGISTER_FLAGS, CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE, CU_STREAM_NON_BLOCKING,
        CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER,
    };
    pub use crate::error::{CUresult, CuError, CuResult};
    pub use crate::graph::cuda::{
        CUgraph, CUgraphExec, CUgraphNode, CUuserObject, EdgeData, ExecUpdateResultInfo,
        HostNodeParams, InstantiateParams, KernelNodeParams, KernelNodeParamsV1, Memcpy3D,
        MemsetNodeParams, NodeParams,
    };
    pub use crate::link::CUlinkState;
    pub use crate::sys::{
        CUcontext, CUdevice, CUdeviceptr, CUevent, CUfunction, CUkernel, CUlibrary, CUmodule,
        CUstream,
    };
    pub use std::ffi::{c_char, c_void};
}

/// Whether `name` is in `list` (usable in constants: the generated exports decide at compile
/// time whether a library implements a method).
pub const fn implements(list: &[&str], name: &str) -> bool {
    let mut i = 0;
    while i < list.len() {
        if str_eq(list[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Logs an argument the conversion rejected (cold path of every generated export) and hands the
/// error on.
#[cold]
pub fn rejected(symbol: &'static str, arg: &'static str, e: CuError) -> CuError {
    crate::export::log_quietly(
        || tracing::debug!(target: "gpushare::api", "{symbol}: argument `{arg}` rejected ({e})"),
    );
    e
}

/// One entry of the surface as the generated layer sees it (for tests and generated docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The family trait, e.g. `Memory`.
    pub family: &'static str,
    /// The method, e.g. `mem_alloc`.
    pub method: &'static str,
    /// The exported symbol, e.g. `cuMemAlloc_v2`.
    pub symbol: &'static str,
}

#[cfg(test)]
mod procaddress_tests;
#[cfg(test)]
mod tests;
