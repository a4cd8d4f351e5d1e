//! The operating-system layer of device memory: the only code that calls `mmap`, `mprotect`,
//! `munmap`, `memfd_create` and friends.
//!
//! Functions that change the mappings of an address range are `unsafe`: MAP_FIXED over memory
//! that Rust (or the C caller) still uses would be undefined behaviour. Their callers
//! ([`super::arena::Arena`]) only pass ranges inside the device arena, which this crate reserved
//! for itself and which nothing else maps.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Host page size the permission table and all mappings are built on.
pub const PAGE: u64 = 4096;

/// Host protection of a mapped range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// No access.
    None,
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

impl Prot {
    fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

fn check_map(ret: *mut libc::c_void) -> io::Result<u64> {
    if ret == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u64)
    }
}

fn check_rc(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least a page):
/// no access, no backing store, no commit charge.
pub fn reserve(len: u64, align: u64) -> io::Result<u64> {
    let total = len
        .checked_add(align)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a new anonymous mapping at an address the kernel chooses touches no existing memory.
    let raw = check_map(unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    })?;
    let start = (raw + align - 1) & !(align - 1);
    let head = start - raw;
    let tail = total - head - len;
    if head > 0 {
        // SAFETY: [raw, start) is the unaligned head of the mapping just created; nothing uses it.
        unsafe { libc::munmap(raw as *mut libc::c_void, head as usize) };
    }
    if tail > 0 {
        // SAFETY: the tail past start + len belongs to the same fresh mapping and is unused.
        unsafe { libc::munmap((start + len) as *mut libc::c_void, tail as usize) };
    }
    Ok(start)
}

/// A zero-filled read-write anonymous mapping anywhere (pages cost nothing until touched).
pub fn map_table(len: u64) -> io::Result<u64> {
    // SAFETY: a new anonymous mapping at an address the kernel chooses touches no existing memory.
    check_map(unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    })
}

/// Removes the mapping of `[addr, addr + len)` entirely.
///
/// # Safety
/// The range must be a mapping this crate created and nothing may use it any more.
pub unsafe fn release(addr: u64, len: u64) {
    // SAFETY: per the caller's contract.
    unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) };
}

/// Maps fresh zero-filled anonymous memory over `[addr, addr + len)`. No commit charge is
/// taken (MAP_NORESERVE), so a modelled device larger than the host's memory works until its
/// pages are actually touched.
///
/// # Safety
/// The range must lie inside an address reservation owned by the caller whose previous contents
/// nobody needs.
pub unsafe fn map_anonymous(addr: u64, len: u64, prot: Prot) -> io::Result<()> {
    // SAFETY: MAP_FIXED replaces only the caller-owned range (contract above).
    check_map(unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            prot.bits(),
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    })
    .map(|_| ())
}

/// Turns `[addr, addr + len)` back into reserved address space: its pages are released and any
/// access faults.
///
/// # Safety
/// As for [`map_anonymous`].
pub unsafe fn unmap_to_reserved(addr: u64, len: u64) -> io::Result<()> {
    // SAFETY: MAP_FIXED replaces only the caller-owned range (contract above).
    check_map(unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    })
    .map(|_| ())
}

/// Maps `len` bytes of the file `fd` from `offset` over `[addr, addr + len)`, shared (writes are
/// seen by every mapping of the file, in any process).
///
/// # Safety
/// As for [`map_anonymous`].
pub unsafe fn map_fd(addr: u64, len: u64, fd: RawFd, offset: u64, prot: Prot) -> io::Result<()> {
    // SAFETY: MAP_FIXED replaces only the caller-owned range (contract above).
    check_map(unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            prot.bits(),
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            offset as libc::off_t,
        )
    })
    .map(|_| ())
}

/// Changes the protection of `[addr, addr + len)`.
///
/// # Safety
/// The range must be caller-owned; removing access from memory Rust code still reads is
/// undefined behaviour.
pub unsafe fn protect(addr: u64, len: u64, prot: Prot) -> io::Result<()> {
    // SAFETY: per the caller's contract.
    check_rc(unsafe { libc::mprotect(addr as *mut libc::c_void, len as usize, prot.bits()) })
}

/// A new anonymous memory file of `size` bytes (sparse: no memory is used until written).
pub fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: cname is a valid NUL-terminated string; the call only creates a descriptor.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on a descriptor we own.
    check_rc(unsafe { libc::ftruncate(owned.as_raw_fd(), size as libc::off_t) })?;
    Ok(owned)
}

/// A close-on-exec duplicate of `fd`.
pub fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor table; an invalid fd is EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Size in bytes of the file behind `fd`.
pub fn fd_size(fd: RawFd) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is valid for a write of a stat structure; an invalid fd is EBADF.
    check_rc(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised st.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size as u64)
}

/// True when every page of `[addr, addr + len)` is mapped in this process (msync reports ENOMEM
/// for unmapped pages and has no other effect with MS_ASYNC).
pub fn range_is_mapped(addr: u64, len: u64) -> bool {
    let start = addr & !(PAGE - 1);
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    // SAFETY: msync with MS_ASYNC does not access or change memory; it only inspects mappings.
    let rc = unsafe {
        libc::msync(
            start as *mut libc::c_void,
            (end - start) as usize,
            libc::MS_ASYNC,
        )
    };
    rc == 0
}
