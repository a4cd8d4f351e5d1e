//! Anonymous shared files: `memfd_create`, size, seals, duplication.
//!
//! A memory file is how gpushare shares memory between processes: the per-tenant region, pinned
//! host buffers and the CPU device's VMM physical memory are memfds, passed over a Unix socket
//! ([`crate::socket::send_fds`]) and mapped in each process ([`crate::Mapping`],
//! [`crate::map_fd_fixed`]). A process that maps a file another process can shrink risks
//! `SIGBUS` on access past the new end; sealing the size (`F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_SEAL`) removes that risk, and [`is_shrink_sealed`] lets the receiver check it.
//!
//! Everything here is safe rustix (`rustix::fs`, `rustix::io`); descriptors are `OwnedFd` /
//! `BorrowedFd` and are created close-on-exec.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::OsError;

/// Creates an anonymous memory file of `size` bytes (`memfd_create`, close-on-exec; sparse: no
/// memory is used until written). With `seal`, the size is sealed (`F_SEAL_SHRINK | F_SEAL_GROW
/// | F_SEAL_SEAL`), so no process holding the descriptor can change it afterwards. NUL bytes in
/// `name` (a debugging label, shown in `/proc/PID/fd`) are dropped.
pub fn memfd_create(name: &str, size: u64, seal: bool) -> Result<OwnedFd, OsError> {
    if size == 0 {
        return Err(OsError::ZeroLength);
    }
    let name: Vec<u8> = name.bytes().filter(|&b| b != 0).collect();
    let mut flags = MemfdFlags::CLOEXEC;
    if seal {
        flags |= MemfdFlags::ALLOW_SEALING;
    }
    let fd = rustix::fs::memfd_create(name.as_slice(), flags)
        .map_err(|e| OsError::sys("memfd_create", e))?;
    rustix::fs::ftruncate(&fd, size).map_err(|e| OsError::sys("ftruncate", e))?;
    if seal {
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&fd, seals)
            .map_err(|e| OsError::sys("fcntl(F_ADD_SEALS)", e))?;
    }
    Ok(fd)
}

/// The size of the file behind `fd` (`fstat`).
pub fn fd_size(fd: BorrowedFd<'_>) -> Result<u64, OsError> {
    let st = rustix::fs::fstat(fd).map_err(|e| OsError::sys("fstat", e))?;
    Ok(u64::try_from(st.st_size).unwrap_or(0))
}

/// The seals of a memory file (`F_GET_SEALS`), as the kernel's `F_SEAL_*` bits; an error for
/// descriptors that are not memfds.
pub fn fd_seals(fd: BorrowedFd<'_>) -> Result<u32, OsError> {
    let seals =
        rustix::fs::fcntl_get_seals(fd).map_err(|e| OsError::sys("fcntl(F_GET_SEALS)", e))?;
    Ok(seals.bits())
}

/// True when `fd`'s size can no longer shrink (`F_SEAL_SHRINK` is set): mapping it cannot fault.
pub fn is_shrink_sealed(fd: BorrowedFd<'_>) -> bool {
    fd_seals(fd).is_ok_and(|s| s & SealFlags::SHRINK.bits() != 0)
}

/// A close-on-exec duplicate of `fd` (`fcntl(F_DUPFD_CLOEXEC)`).
pub fn dup_fd(fd: BorrowedFd<'_>) -> Result<OwnedFd, OsError> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(|e| OsError::sys("fcntl(F_DUPFD_CLOEXEC)", e))
}
