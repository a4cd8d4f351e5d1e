//! PTX parser and fast SIMT interpreter: the core of the gpushare CPU device.
//!
//! [`Module::load`] parses PTX text (as emitted by NVRTC / nvcc, ISA 7.x–8.x)
//! and lowers every `.entry` kernel into a compact, register-indexed
//! instruction array (device functions are inlined at their call sites).
//! [`launch`] executes a kernel on the CPU one warp (32 lanes) at a time, with
//! per-lane PCs for divergence, block-wide barriers, warp shuffles/votes and
//! real atomics on global memory, which is reached through the caller's
//! [`GlobalMemory`].
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
//!
//! # Execution model
//!
//! * Every virtual register is 32 lanes of 64-bit storage (`[u64; 32]`);
//!   values narrower than 64 bits are stored zero-extended. Immediates, symbol
//!   addresses and special registers (`%tid`, `%ctaid`, `%laneid`,
//!   `%lanemask_*`, ...) are materialised as registers filled at warp start;
//!   address operands are a register plus a constant offset.
//! * Each instruction is dispatched once per warp through a function pointer
//!   and runs a lane loop (a mask-free loop when all lanes are active). On
//!   x86-64 with AVX2+FMA the interpreter loop and the hot handlers run in
//!   AVX2-compiled code paths selected at runtime (`GPUSHARE_PTX_NO_SIMD=1`
//!   disables them).
//! * Divergence: per-lane PCs with min-PC scheduling and a converged fast
//!   path; lanes reconverge when they reach the same PC. Exited lanes leave.
//! * Barriers (`bar.sync`/`barrier.sync`/`bar.arrive`/`bar.red`): warps of a
//!   block run round-robin in time slices until every live thread waits at a
//!   barrier; exited threads count as arrived (sm_70+); a barrier that can
//!   never complete is [`ExecError::Deadlock`].
//! * Blocks are distributed over [`ExecOptions::worker_threads`] host threads;
//!   a fault in one block stops the others promptly.
//!
//! # Address spaces
//!
//! Shared, local and kernel-parameter memory have their own address spaces
//! (offsets from 0). Generic addresses of those spaces live in the windows
//! [`GENERIC_SHARED_BASE`], [`GENERIC_LOCAL_BASE`] and [`GENERIC_PARAM_BASE`]
//! (`cvta` converts); every other generic address is global and goes through
//! [`GlobalMemory::translate`], normally once per warp-instruction for the
//! whole range touched by the active lanes. `.const` variables are module
//! globals backed by device memory.
//!
//! # Coverage
//!
//! Integer, bit-manipulation, f32/f64 (all rounding modes, `.ftz`, `.sat`),
//! f16/bf16 (scalar and x2), conversions, comparisons, `ld`/`st` in every
//! space with vectors and cache qualifiers, `atom`/`red` (global, shared,
//! generic), `cvta`, `isspacep`, `cp.async` (executed synchronously),
//! `shfl`/`vote`/`match`/`redux`/`elect`/`activemask`, `bra`, `brx.idx`,
//! `call` (inlined, with `.param` passing and return values), `ret`, `exit`,
//! `trap`, `nanosleep` (recorded, not slept), fences, `%clock*` /
//! `%globaltimer`, and device `printf` (`vprintf`, see [`ExecOptions::printf`]).
//!
//! Not supported (rejected by [`Module::load`] with [`PtxError::Unsupported`]
//! naming the instruction and line): textures and surfaces, tensor-core
//! instructions (`wmma`, `mma`, `wgmma`, `ldmatrix`), `mbarrier` and bulk /
//! tensor async copies, indirect calls and recursion, `alloca`-style dynamic
//! stack, calls to external functions other than `vprintf` /
//! `__assertfail`, fp8 / tf32 conversions. Arithmetic modifier combinations
//! the PTX ISA does not define (e.g. `add.sat.f64`, `fma.f32` without a
//! rounding mode, `add.rz.f16`) are rejected with [`PtxError::Invalid`] or
//! [`PtxError::Unsupported`].
//!
//! # Kernel slicing
//!
//! [`slice_module`] rewrites a module so that each kernel also has a variant that runs one
//! block range of a grid ([`plan_slices`]) with `%ctaid`/`%nctaid` as in the whole grid: see
//! [`slice`].
//!
//! # Hostile input
//!
//! [`Module::load`] never panics and never recurses, allocates or loops without bound on what
//! the text declares: nesting, call depth, registers, code size, shared/local memory and
//! parameters are bounded by [`limits`], and every declared size is computed with checked
//! arithmetic before anything is allocated. Module variables are not bounded here (their memory
//! is the caller's) and cost no host memory beyond their initialisers.
#![deny(unsafe_code)]

mod declared;
mod error;
mod exec;
pub mod limits;
pub mod link;
mod lower;
mod module;
mod parse;
pub mod slice;
mod types;
pub mod writes;

pub use declared::declared_global_bytes;
pub use error::{ExecError, MemFault, PtxError};
pub use exec::{
    launch, ExecOptions, GlobalMemory, LaunchConfig, LaunchStats, PrintfSink, TimeSource,
    GENERIC_LOCAL_BASE, GENERIC_LOCAL_SIZE, GENERIC_PARAM_BASE, GENERIC_PARAM_SIZE,
    GENERIC_SHARED_BASE, GENERIC_SHARED_SIZE, MAX_DYNAMIC_SHARED_BYTES, MAX_SHARED_BYTES_PER_BLOCK,
    MAX_THREADS_PER_BLOCK, WARP_SIZE,
};
pub use link::{check_unit, link_ptx, LinkError, LinkUnit, Linked};
pub use module::{GlobalSpace, GlobalVar, Kernel, Module, ParamInfo, Reloc};
pub use slice::{
    plan_slices, slice_module, Slice, SliceError, SlicedEntry, SlicedModule, Slicing,
    SLICE_PARAM_BYTES, SLICE_PARAM_COUNT, SLICE_SUFFIX,
};
pub use writes::{param_writes, ParamWrites};
