//! Load-time limits: bounds on what a PTX module may declare or expand to, so that hostile or
//! absurd input fails [`crate::Module::load`] with an error instead of exhausting the stack, the
//! host's memory or its time.
//!
//! Every size a module declares (array dimensions, element counts, alignments, parameter lists)
//! is computed with checked arithmetic; a size that overflows 64 bits is [`PtxError::Invalid`].
//! The limits below are [`PtxError::Unsupported`] (naming the limit), except the nesting depth,
//! which the parser reports as [`PtxError::Parse`]. Each is far above what NVRTC/nvcc emit for
//! real kernels. Module `.global`/`.const` variables have no size limit here: they live in the
//! caller's device memory, which decides how much it can allocate (the CPU device answers
//! `CUDA_ERROR_OUT_OF_MEMORY`); loading one costs no host memory beyond its initializer.
//!
//! [`PtxError::Invalid`]: crate::PtxError::Invalid
//! [`PtxError::Unsupported`]: crate::PtxError::Unsupported
//! [`PtxError::Parse`]: crate::PtxError::Parse

/// Deepest nesting of parenthesised / braced / bracketed operands, of brace initializers and
/// of `{ }` blocks in a function body. Real PTX nests operands two deep (`[tex, {a, b}]`),
/// initializers once per array dimension and blocks a few levels; 64 levels of recursive
/// descent use a few tens of KiB of stack.
pub const MAX_NESTING: u32 = 64;

/// Deepest chain of device-function calls inlined into a kernel (recursion is rejected anyway).
/// Bounds the lowering's own recursion.
pub const MAX_CALL_DEPTH: usize = 64;

/// Most virtual registers (and, separately, predicates) in one kernel, inlined callees and
/// materialised immediates included. Every register costs 256 bytes per warp at launch
/// (32 lanes × 8 bytes), so this bounds a block's register file at 512 MiB.
pub const MAX_REGISTERS: u32 = 1 << 16;

/// Most lowered instructions in one kernel (after inlining). Inlining can grow code
/// exponentially in the call depth; each lowered instruction costs about 100 bytes of host
/// memory.
pub const MAX_KERNEL_INSTRUCTIONS: usize = 1 << 20;

/// Most lowered instructions in one module, all kernels together.
pub const MAX_MODULE_INSTRUCTIONS: usize = 1 << 22;

/// Largest kernel parameter list, bytes: the CUDA limit (32 764 bytes since CUDA 12.1 on
/// Volta and later). The launch copies the parameters into a buffer of this size.
pub const MAX_PARAM_BYTES: usize = 32_764;

/// Largest local memory per thread, bytes (as on CUDA devices): `.local` arrays, `.param`
/// variables and the frames of inlined calls.
pub const MAX_LOCAL_BYTES: u32 = 512 * 1024;

/// Largest static shared memory per block, bytes.
pub const MAX_SHARED_BYTES: u32 = crate::exec::MAX_SHARED_BYTES_PER_BLOCK;

/// Module variables up to this size carry their whole contents in [`crate::GlobalVar::init`];
/// larger ones only up to their last initialised element (the rest is zero), so that declaring
/// a huge array costs no host memory at load.
pub const FULL_INIT_BYTES: usize = 64 * 1024;
