//! Kernel execution: public launch API, configuration, statistics.
// Lane loops index several per-lane arrays in lockstep; iterator chains obscure that.
#![allow(clippy::needless_range_loop)]

pub(crate) mod atomic;
pub(crate) mod cvt;
pub(crate) mod float;
pub(crate) mod fround;
pub(crate) mod half;
pub(crate) mod int;
mod launch;
pub(crate) mod mem;
pub(crate) mod misc;
pub(crate) mod printf;
pub(crate) mod program;
mod raw;
pub(crate) mod softfloat;
mod warp;
pub(crate) mod warpops;

use crate::error::{ExecError, MemFault};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use launch::launch;

/// Threads per warp.
pub const WARP_SIZE: u32 = 32;
/// Maximum threads per block.
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
/// Maximum shared memory per block (static + dynamic), like sm_90 (227 KiB).
pub const MAX_SHARED_BYTES_PER_BLOCK: u32 = 227 * 1024;
/// Maximum dynamic shared memory per block.
pub const MAX_DYNAMIC_SHARED_BYTES: u32 = MAX_SHARED_BYTES_PER_BLOCK;
/// Base of the generic-address window that maps to the block's shared memory.
/// Device allocations must not overlap `[GENERIC_SHARED_BASE, +GENERIC_SHARED_SIZE)`.
pub const GENERIC_SHARED_BASE: u64 = 0xFFFF_FE00_0000_0000;
/// Size of the generic shared window.
pub const GENERIC_SHARED_SIZE: u64 = 1 << 32;
/// Base of the generic-address window that maps to the thread's local memory.
/// Device allocations must not overlap `[GENERIC_LOCAL_BASE, +GENERIC_LOCAL_SIZE)`.
pub const GENERIC_LOCAL_BASE: u64 = 0xFFFF_FD00_0000_0000;
/// Size of the generic local window.
pub const GENERIC_LOCAL_SIZE: u64 = 1 << 32;
/// Base of the generic-address window that maps to the kernel parameter buffer
/// (`cvta.param`, read-only). Device allocations must not overlap it either.
pub const GENERIC_PARAM_BASE: u64 = 0xFFFF_FC00_0000_0000;
/// Size of the generic param window.
pub const GENERIC_PARAM_SIZE: u64 = 1 << 32;

/// Access to device global memory, provided by the caller of [`launch`].
///
/// Contract: when `translate` returns `Ok(p)`, `p` must be valid for reads
/// (and writes if `write`) of `len` contiguous bytes for the whole duration of
/// the launch, and must correspond to device addresses `[addr, addr+len)`.
/// Several host threads may access the same memory concurrently (the
/// interpreter uses atomic operations for every global access).
pub trait GlobalMemory: Sync {
    /// Host pointer for [addr, addr+len) if the whole range is mapped with the needed access; else a fault.
    fn translate(&self, addr: u64, len: u64, write: bool) -> Result<*mut u8, MemFault>;
}

/// Grid and block shape of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Bytes of dynamic (`extern .shared`) shared memory per block.
    pub dynamic_shared_bytes: u32,
}

/// Source of `%globaltimer` (nanoseconds).
#[derive(Clone, Default)]
pub enum TimeSource {
    /// Host wall clock (nanoseconds since the UNIX epoch).
    #[default]
    Host,
    /// A fixed value plus the nanoseconds elapsed since the launch started.
    Offset(u64),
    /// Caller-provided clock.
    Custom(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl std::fmt::Debug for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeSource::Host => write!(f, "Host"),
            TimeSource::Offset(v) => write!(f, "Offset({v})"),
            TimeSource::Custom(_) => write!(f, "Custom(..)"),
        }
    }
}

/// Receiver of device `printf` output (one call per `printf` instruction executed by a
/// warp, with the text of every active thread in lane order).
#[derive(Clone)]
pub struct PrintfSink(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for PrintfSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrintfSink(..)")
    }
}

/// Execution options.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Host threads that run blocks (1 = run everything on the calling thread).
    pub worker_threads: usize,
    /// Source of `%globaltimer`.
    pub time_source: TimeSource,
    /// Abort the launch with [`ExecError::Aborted`] after this many warp-instructions
    /// (guards against kernels that never terminate). `None` = unlimited.
    pub instruction_limit: Option<u64>,
    /// Set to `true` from another thread to abort the launch ([`ExecError::Aborted`]).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Where device `printf` output goes (`None`: the process's stdout, as CUDA does).
    pub printf: Option<PrintfSink>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            worker_threads: 1,
            time_source: TimeSource::Host,
            instruction_limit: None,
            cancel: None,
            printf: None,
        }
    }
}

/// Execution statistics of one launch (for a timing model).
///
/// Instruction counts are thread-instructions: an instruction executed by a
/// warp counts once per lane that was at that instruction (predicated-off
/// lanes included, as on hardware issue slots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchStats {
    /// Total thread-instructions.
    pub thread_instructions: u64,
    /// Total warp-instructions (dispatches).
    pub warp_instructions: u64,
    /// Integer ALU, logic, moves, conversions, predicates.
    pub int_alu: u64,
    /// Single-precision (and half-precision) arithmetic.
    pub fp32: u64,
    /// Double-precision arithmetic.
    pub fp64: u64,
    /// Special-function unit: ex2, lg2, sin, cos, rsqrt, rcp, sqrt, div, tanh.
    pub sfu: u64,
    /// Global/const/generic load thread-instructions.
    pub global_loads: u64,
    /// Global/generic store thread-instructions.
    pub global_stores: u64,
    /// Bytes loaded from global memory.
    pub global_load_bytes: u64,
    /// Bytes stored to global memory.
    pub global_store_bytes: u64,
    /// Shared-memory access thread-instructions.
    pub shared_accesses: u64,
    /// Local / param memory access thread-instructions.
    pub local_accesses: u64,
    /// Atomic / reduction thread-instructions.
    pub atomics: u64,
    /// Branches, barriers, calls, exits, warp votes/shuffles.
    pub control: u64,
    /// Anything else (nanosleep, fences, prefetch, ...).
    pub other: u64,
    /// Blocks executed.
    pub blocks: u64,
    /// Threads executed.
    pub threads: u64,
    /// Max over all threads of that thread's total `nanosleep` time.
    pub sleep_ns_max: u64,
    /// Sum over blocks of the per-block max thread sleep time.
    pub sleep_ns_block_max_sum: u64,
}

impl LaunchStats {
    /// Add another launch's statistics (sums; maxima for `sleep_ns_max`).
    pub fn accumulate(&mut self, o: &LaunchStats) {
        self.thread_instructions += o.thread_instructions;
        self.warp_instructions += o.warp_instructions;
        self.int_alu += o.int_alu;
        self.fp32 += o.fp32;
        self.fp64 += o.fp64;
        self.sfu += o.sfu;
        self.global_loads += o.global_loads;
        self.global_stores += o.global_stores;
        self.global_load_bytes += o.global_load_bytes;
        self.global_store_bytes += o.global_store_bytes;
        self.shared_accesses += o.shared_accesses;
        self.local_accesses += o.local_accesses;
        self.atomics += o.atomics;
        self.control += o.control;
        self.other += o.other;
        self.blocks += o.blocks;
        self.threads += o.threads;
        self.sleep_ns_max = self.sleep_ns_max.max(o.sleep_ns_max);
        self.sleep_ns_block_max_sum += o.sleep_ns_block_max_sum;
    }
}

#[allow(dead_code)]
fn _assert_error_send(e: ExecError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}
