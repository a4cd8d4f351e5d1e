//! Error types: load-time errors ([`PtxError`]), launch/runtime errors
//! ([`ExecError`]) and the fault reported by a [`crate::GlobalMemory`].

use thiserror::Error;

/// Error returned by [`crate::Module::load`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PtxError {
    /// The text is not well-formed PTX.
    #[error("PTX parse error at line {line}, column {col}: {msg}")]
    Parse {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
        /// What went wrong.
        msg: String,
    },
    /// A well-formed instruction or directive that this interpreter does not implement.
    #[error("unsupported PTX at line {line}: `{instruction}`{}", if .reason.is_empty() { String::new() } else { format!(" ({})", .reason) })]
    Unsupported {
        /// 1-based line.
        line: u32,
        /// Opcode with its modifiers (e.g. `tex.2d.v4.f32.f32`), or the directive.
        instruction: String,
        /// Extra detail (may be empty).
        reason: String,
    },
    /// A semantic error (undefined symbol, bad operand type, ...).
    #[error("invalid PTX at line {line}: {msg}")]
    Invalid {
        /// 1-based line.
        line: u32,
        /// What went wrong.
        msg: String,
    },
}

/// Fault returned by [`crate::GlobalMemory::translate`] for an unmapped or
/// read-only range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("memory fault at {addr:#x} (len {len}, write {write})")]
pub struct MemFault {
    /// First address of the rejected access.
    pub addr: u64,
    /// Length of the access in bytes.
    pub len: u64,
    /// Whether the access was a write.
    pub write: bool,
}

/// Error returned by [`crate::launch`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExecError {
    /// Access to an address outside every mapped range (CUDA_ERROR_ILLEGAL_ADDRESS).
    #[error("illegal address {addr:#x} in kernel `{kernel}` at line {line}: `{instruction}`")]
    IllegalAddress {
        /// Faulting address (in the instruction's state space).
        addr: u64,
        /// Kernel name.
        kernel: String,
        /// Source text of the faulting instruction.
        instruction: String,
        /// PTX line of the faulting instruction.
        line: u32,
    },
    /// Access not aligned to its size (CUDA_ERROR_MISALIGNED_ADDRESS).
    #[error("misaligned address {addr:#x} in kernel `{kernel}` at line {line}: `{instruction}`")]
    MisalignedAddress {
        /// Faulting address.
        addr: u64,
        /// Kernel name.
        kernel: String,
        /// Source text of the faulting instruction.
        instruction: String,
        /// PTX line of the faulting instruction.
        line: u32,
    },
    /// `trap` executed, or a device-side assertion failed (CUDA_ERROR_ILLEGAL_INSTRUCTION / LAUNCH_FAILED).
    #[error("trap in kernel `{kernel}` at line {line}: `{instruction}`")]
    Trap {
        /// Kernel name.
        kernel: String,
        /// Source text of the trapping instruction.
        instruction: String,
        /// PTX line.
        line: u32,
    },
    /// An instruction that cannot execute in this context (CUDA_ERROR_ILLEGAL_INSTRUCTION).
    #[error("illegal instruction in kernel `{kernel}` at line {line}: `{instruction}`: {msg}")]
    IllegalInstruction {
        /// Kernel name.
        kernel: String,
        /// Source text.
        instruction: String,
        /// PTX line.
        line: u32,
        /// Detail.
        msg: String,
    },
    /// Bad launch configuration (CUDA_ERROR_INVALID_VALUE / LAUNCH_OUT_OF_RESOURCES).
    #[error("invalid launch configuration: {0}")]
    InvalidConfig(String),
    /// Barrier that can never be released.
    #[error("barrier deadlock in kernel `{kernel}` (block {block:?}): {msg}")]
    Deadlock {
        /// Kernel name.
        kernel: String,
        /// Block index (x, y, z).
        block: [u32; 3],
        /// Detail.
        msg: String,
    },
    /// The launch exceeded [`crate::ExecOptions::instruction_limit`] or was cancelled.
    #[error("kernel `{kernel}` aborted: {msg}")]
    Aborted {
        /// Kernel name.
        kernel: String,
        /// Detail.
        msg: String,
    },
}
