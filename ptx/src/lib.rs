//! PTX parser and fast SIMT interpreter: the core of the gpushare CPU device.
//!
//! [`Module::load`] parses PTX text (as emitted by NVRTC / nvcc, ISA 7.x–8.x)
//! and lowers every `.entry` kernel into a compact register-indexed
//! instruction array (device functions are inlined).  [`launch`] executes a
//! kernel on the CPU one warp (32 lanes) at a time, with per-lane PCs for
//! divergence, block-wide barriers, warp shuffles/votes and real atomics on
//! global memory, which is reached through the caller's [`GlobalMemory`].
//!
//! ```no_run
//! use gpushare_ptx::{launch, ExecOptions, LaunchConfig, Module};
//! # fn demo<M: gpushare_ptx::GlobalMemory>(mem: &M, ptx: &str, params: &[u8]) {
//! let module = Module::load(ptx).unwrap();
//! let k = module.kernel("vec_add").unwrap();
//! let cfg = LaunchConfig { grid: [4, 1, 1], block: [256, 1, 1], dynamic_shared_bytes: 0 };
//! let stats = launch(&module, k, &cfg, params, &[], mem, &ExecOptions::default()).unwrap();
//! println!("{} thread-instructions", stats.thread_instructions);
//! # }
//! ```
#![deny(unsafe_code)]

mod error;
mod exec;
mod lower;
mod module;
mod parse;
mod types;

pub use error::{ExecError, MemFault, PtxError};
pub use exec::{
    launch, ExecOptions, GlobalMemory, LaunchConfig, LaunchStats, TimeSource, GENERIC_LOCAL_BASE,
    GENERIC_LOCAL_SIZE, GENERIC_SHARED_BASE, GENERIC_SHARED_SIZE, MAX_DYNAMIC_SHARED_BYTES,
    MAX_SHARED_BYTES_PER_BLOCK, MAX_THREADS_PER_BLOCK, WARP_SIZE,
};
pub use module::{GlobalSpace, GlobalVar, Kernel, Module, ParamInfo, Reloc};
