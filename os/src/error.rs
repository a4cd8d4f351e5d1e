//! The crate's error type.
//!
//! A failed system call becomes [`OsError::Io`] with the call's name, so a log line says which
//! call failed (`mmap: Cannot allocate memory`); argument checks made before any call have their
//! own variants. [`OsError`] converts into [`std::io::Error`] (keeping the kind of a failed call)
//! for callers whose own API speaks `io::Result`.

use std::io;

use crate::socket::MAX_FDS;

/// Errors of the operating-system layer.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// The failing operation (system call name).
        op: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
    /// An access outside the mapping.
    #[error("access of {len} bytes at offset {offset:#x} is outside the {size:#x}-byte mapping")]
    OutOfBounds {
        /// Offset of the access.
        offset: usize,
        /// Length of the access.
        len: usize,
        /// Size of the mapping.
        size: usize,
    },
    /// An atomic word at an offset that is not aligned to its size.
    #[error("atomic word at offset {offset:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Offset of the word.
        offset: usize,
        /// Required alignment.
        align: usize,
    },
    /// More file descriptors than [`MAX_FDS`] to send.
    #[error("cannot pass {0} file descriptors in one message (at most {MAX_FDS})")]
    TooManyFds(usize),
    /// The peer sent more file descriptors than the receive buffer had room for; the kernel closed
    /// the excess ones.
    #[error("received file descriptors were truncated (more than the {0} expected)")]
    FdsTruncated(usize),
    /// A zero-length mapping or file was asked for.
    #[error("zero-length mapping")]
    ZeroLength,
    /// An address range that is empty, not page aligned where it must be, wraps around, or does
    /// not fit the host's address space.
    #[error("{addr:#x}+{len:#x} is not a valid range of the address space")]
    BadRange {
        /// First address of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: u64,
    },
    /// An alignment that is not a power of two of at least a page.
    #[error("alignment {0:#x} is not a power of two of at least a page")]
    BadAlignment(u64),
    /// A fixed-address mapping that must not replace anything found the range (partly) mapped
    /// already (`MAP_FIXED_NOREPLACE` gave `EEXIST`).
    #[error("{addr:#x}+{len:#x} is already mapped")]
    Occupied {
        /// First address of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: u64,
    },
}

impl OsError {
    /// An [`OsError::Io`] for `op` from the `errno` rustix returned.
    pub(crate) fn sys(op: &'static str, errno: rustix::io::Errno) -> OsError {
        OsError::Io {
            op,
            source: errno.into(),
        }
    }

    /// The `errno` of a failed system call, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            OsError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<OsError> for io::Error {
    /// A failed system call keeps its kind; argument errors are `InvalidInput`. The message is the
    /// [`OsError`]'s, which names the call.
    fn from(e: OsError) -> io::Error {
        let kind = match &e {
            OsError::Io { source, .. } => source.kind(),
            OsError::Occupied { .. } => io::ErrorKind::AlreadyExists,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
