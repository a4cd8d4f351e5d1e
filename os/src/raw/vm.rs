//! The process's address space: reservations, fixed-address mappings, protections.
//!
//! Two users need address ranges at addresses they choose:
//!
//! - the CPU device keeps all device memory in one arena it reserved ([`reserve_aligned`]) and
//!   maps, re-protects and unmaps ranges inside it ([`map_anonymous_fixed`], [`map_fd_fixed`],
//!   [`protect`], [`unmap_to_reserved`]), backs large ranges with huge pages
//!   ([`advise_huge_pages`]) and makes page-locked ranges resident ([`populate`]);
//! - the shim reserves each of the tenant's device ranges `PROT_NONE` in the tenant's own address
//!   space ([`reserve_fixed`]) so that no host allocation lands there, and maps pinned buffers at
//!   their device address ([`map_shared_fixed`]).
//!
//! # Contract
//!
//! Functions that only **create** mappings — where the kernel chooses the address, or with
//! `MAP_FIXED_NOREPLACE`, which fails rather than replace anything — are safe: they cannot
//! disturb memory in use. Functions that **replace, re-protect or remove** mappings of a given
//! range are `unsafe fn`: the caller must own the range (it was created through this module and
//! is not used by anything that would break). Addresses and lengths are `u64` (device addresses
//! are host addresses in gpushare); a range must not wrap and must fit the host's address space,
//! else [`OsError::BadRange`]. Reservations are `MAP_NORESERVE`: no commit charge until pages are
//! touched, so a modelled device larger than the host's memory works.

use std::ffi::c_void;
use std::os::fd::BorrowedFd;

use rustix::io::Errno;
use rustix::mm::{self, MapFlags, MprotectFlags, MsyncFlags, ProtFlags};

use crate::OsError;

/// Host page size every range here is built on.
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
    fn map_flags(self) -> ProtFlags {
        match self {
            Prot::None => ProtFlags::empty(),
            Prot::Read => ProtFlags::READ,
            Prot::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        }
    }

    fn mprotect_flags(self) -> MprotectFlags {
        match self {
            Prot::None => MprotectFlags::empty(),
            Prot::Read => MprotectFlags::READ,
            Prot::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
        }
    }
}

/// Private anonymous memory without commit charge: reservations and device backing.
const PRIVATE: MapFlags = MapFlags::PRIVATE.union(MapFlags::NORESERVE);

/// `[addr, addr + len)` as a pointer and a length, if it is non-empty, does not wrap and fits the
/// address space.
fn span(addr: u64, len: u64) -> Result<(*mut c_void, usize), OsError> {
    let bad = || OsError::BadRange { addr, len };
    let end = addr.checked_add(len).filter(|_| len > 0).ok_or_else(bad)?;
    usize::try_from(end).map_err(|_| bad())?;
    let (a, l) = (usize::try_from(addr), usize::try_from(len));
    let (Ok(a), Ok(l)) = (a, l) else {
        return Err(bad());
    };
    Ok((std::ptr::with_exposed_provenance_mut(a), l))
}

/// A page-aligned, non-empty range that fits the address space, with `len` rounded up to pages.
fn page_span(addr: u64, len: u64) -> Result<(*mut c_void, usize), OsError> {
    let rounded = len.checked_next_multiple_of(PAGE);
    match rounded {
        Some(l) if addr != 0 && addr.is_multiple_of(PAGE) => span(addr, l),
        _ => Err(OsError::BadRange { addr, len }),
    }
}

fn address(ptr: *mut c_void) -> u64 {
    ptr.expose_provenance() as u64
}

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least a page),
/// wherever the kernel finds room: no access, no backing store, no commit charge. Returns the
/// start; the reservation lasts until [`release`]d.
pub fn reserve_aligned(len: u64, align: u64) -> Result<u64, OsError> {
    if !align.is_power_of_two() || align < PAGE {
        return Err(OsError::BadAlignment(align));
    }
    let total = len.checked_add(align).filter(|_| len > 0);
    let total = total.ok_or(OsError::BadRange { addr: 0, len })?;
    let total_len = usize::try_from(total).map_err(|_| OsError::BadRange { addr: 0, len })?;
    let null = std::ptr::null_mut();
    // SAFETY: a null address lets the kernel place the new mapping in unused address space: it
    // replaces nothing in use.
    let raw = unsafe { mm::mmap_anonymous(null, total_len, ProtFlags::empty(), PRIVATE) }
        .map_err(|e| OsError::sys("mmap", e))?;
    let raw_addr = address(raw);
    let start = raw_addr.next_multiple_of(align);
    let head = start - raw_addr;
    let tail = total - head - len;
    // Trim the unaligned head and the tail past `start + len`. Both lie inside the mapping just
    // created, which nothing else knows about; a failure would only leave address space reserved.
    if head > 0 {
        // SAFETY: as above: `[raw, start)` is part of the fresh PROT_NONE mapping.
        let _ = unsafe { mm::munmap(raw, head as usize) };
    }
    if tail > 0 {
        let end = raw.wrapping_byte_add((head + len) as usize);
        // SAFETY: as above: `[start + len, raw + total)` is part of the fresh PROT_NONE mapping.
        let _ = unsafe { mm::munmap(end, tail as usize) };
    }
    Ok(start)
}

/// A zero-filled read-write private anonymous mapping of `len` bytes wherever the kernel finds
/// room (`MAP_NORESERVE`: pages cost nothing until touched). Returns its start; it lasts until
/// [`release`]d.
pub fn map_anonymous(len: u64) -> Result<u64, OsError> {
    let (_, len) = span(0, len)?;
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: a null address lets the kernel place the new mapping in unused address space.
    let ptr = unsafe { mm::mmap_anonymous(std::ptr::null_mut(), len, prot, PRIVATE) }
        .map_err(|e| OsError::sys("mmap", e))?;
    Ok(address(ptr))
}

/// Reserves exactly `[addr, addr + len)` (`len` rounded up to pages) with no access
/// (`PROT_NONE`, `MAP_FIXED_NOREPLACE | MAP_NORESERVE`), without touching anything mapped.
///
/// - `Ok(true)`: the range is reserved; undo with [`release`].
/// - `Ok(false)`: the kernel placed the mapping elsewhere (a kernel before 4.17 takes
///   `MAP_FIXED_NOREPLACE` as a mere hint); that mapping has been removed again.
/// - `Err(OsError::Occupied)`: part of the range is mapped already.
/// - `Err(OsError::BadRange)`: `addr` is 0 or not page aligned, `len` is 0, or the range wraps.
pub fn reserve_fixed(addr: u64, len: u64) -> Result<bool, OsError> {
    let (ptr, l) = page_span(addr, len)?;
    let flags = PRIVATE | MapFlags::FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: the call creates a fresh
    // PROT_NONE mapping over unmapped address space or fails with EEXIST; either way no memory
    // anyone uses is touched. (An old kernel that ignores the flag places it elsewhere: below.)
    let got = unsafe { mm::mmap_anonymous(ptr, l, ProtFlags::empty(), flags) };
    placed(got, ptr, l, addr, len)
}

/// Maps the first `len` bytes of `fd` (rounded up to pages) shared and read-write at exactly
/// `addr` (`MAP_SHARED | MAP_FIXED_NOREPLACE`), without touching anything mapped: a second view of
/// a shared buffer at an address of the caller's choosing. Outcomes as for [`reserve_fixed`];
/// undo with [`release`]. The file must not shrink while mapped (see [`crate::Mapping`]).
pub fn map_shared_fixed(fd: BorrowedFd<'_>, addr: u64, len: u64) -> Result<bool, OsError> {
    let (ptr, l) = page_span(addr, len)?;
    let prot = ProtFlags::READ | ProtFlags::WRITE;
    let flags = MapFlags::SHARED | MapFlags::FIXED_NOREPLACE;
    // SAFETY: as in `reserve_fixed`: MAP_FIXED_NOREPLACE creates a mapping only over unmapped
    // address space and never replaces one; the file's pages are shared by design.
    let got = unsafe { mm::mmap(ptr, l, prot, flags, fd, 0) };
    placed(got, ptr, l, addr, len)
}

/// The outcome of a `MAP_FIXED_NOREPLACE` mapping of `l` bytes at `want`.
fn placed(
    got: rustix::io::Result<*mut c_void>,
    want: *mut c_void,
    l: usize,
    addr: u64,
    len: u64,
) -> Result<bool, OsError> {
    match got {
        Ok(p) if p == want => Ok(true),
        Ok(p) => {
            // SAFETY: `p` is the mapping just created, of `l` bytes, at an address the kernel
            // chose among unused ones; nobody else knows it.
            let _ = unsafe { mm::munmap(p, l) };
            Ok(false)
        }
        Err(Errno::EXIST) => Err(OsError::Occupied { addr, len }),
        Err(e) => Err(OsError::sys("mmap", e)),
    }
}

/// Removes every mapping in `[addr, addr + len)` (`munmap`; `len` is rounded up to pages by the
/// kernel). The range becomes free address space that anyone may map.
///
/// # Safety
/// The caller owns the range — it was created by this module ([`reserve_aligned`],
/// [`map_anonymous`], [`reserve_fixed`], [`map_shared_fixed`], …) — and nothing uses it any more:
/// no Rust reference points into it and no code will access it.
pub unsafe fn release(addr: u64, len: u64) -> Result<(), OsError> {
    let (ptr, l) = span(addr, len)?;
    // SAFETY: per the caller's contract, nothing uses the range.
    unsafe { mm::munmap(ptr, l) }.map_err(|e| OsError::sys("munmap", e))
}

/// Maps fresh zero-filled private memory over `[addr, addr + len)` with protection `prot`
/// (`MAP_FIXED | MAP_NORESERVE`), replacing whatever was there.
///
/// # Safety
/// The range lies inside an address reservation the caller owns, and nobody needs its previous
/// contents: no Rust reference points into it and no code still reads or writes it.
pub unsafe fn map_anonymous_fixed(addr: u64, len: u64, prot: Prot) -> Result<(), OsError> {
    let (ptr, l) = span(addr, len)?;
    let flags = PRIVATE | MapFlags::FIXED;
    // SAFETY: MAP_FIXED replaces only the caller-owned range (contract above).
    unsafe { mm::mmap_anonymous(ptr, l, prot.map_flags(), flags) }
        .map(drop)
        .map_err(|e| OsError::sys("mmap", e))
}

/// Turns `[addr, addr + len)` back into reserved address space: its pages are released and any
/// access faults (a fresh `PROT_NONE` `MAP_NORESERVE` mapping replaces the range).
///
/// # Safety
/// As for [`map_anonymous_fixed`].
pub unsafe fn unmap_to_reserved(addr: u64, len: u64) -> Result<(), OsError> {
    // SAFETY: the caller's contract is the same as `map_anonymous_fixed`'s.
    unsafe { map_anonymous_fixed(addr, len, Prot::None) }
}

/// Maps `len` bytes of the file `fd` from `offset` over `[addr, addr + len)`, shared (writes are
/// seen by every mapping of the file, in any process), replacing whatever was there.
///
/// # Safety
/// As for [`map_anonymous_fixed`]; in addition the file must not shrink below `offset + len`
/// while mapped (an access past its end is `SIGBUS`).
pub unsafe fn map_fd_fixed(
    addr: u64,
    len: u64,
    fd: BorrowedFd<'_>,
    offset: u64,
    prot: Prot,
) -> Result<(), OsError> {
    let (ptr, l) = span(addr, len)?;
    let flags = MapFlags::SHARED | MapFlags::FIXED;
    // SAFETY: MAP_FIXED replaces only the caller-owned range (contract above).
    unsafe { mm::mmap(ptr, l, prot.map_flags(), flags, fd, offset) }
        .map(drop)
        .map_err(|e| OsError::sys("mmap", e))
}

/// Changes the protection of `[addr, addr + len)` (`mprotect`).
///
/// # Safety
/// The caller owns the range; removing access from memory that Rust code still reads or writes
/// is undefined behaviour (and a fault).
pub unsafe fn protect(addr: u64, len: u64, prot: Prot) -> Result<(), OsError> {
    let (ptr, l) = span(addr, len)?;
    // SAFETY: per the caller's contract.
    unsafe { mm::mprotect(ptr, l, prot.mprotect_flags()) }.map_err(|e| OsError::sys("mprotect", e))
}

/// Makes every page of the writable mapping `[addr, addr + len)` resident now, as page-locked
/// memory is, instead of at its first touch (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14).
/// The bytes read are unchanged: the kernel takes the write faults a store would, without
/// storing (fresh pages stay zero; a private copy-on-write page becomes a private copy of the
/// same bytes, so later writes to a privately mapped file no longer show through it).
///
/// `Ok(true)`: resident. `Ok(false)`: the kernel cannot populate the range (`EINVAL`: a kernel
/// before 5.14, or a part of the range not mapped writable), so its pages fault in at first
/// touch as before. An error (`ENOMEM`, `EFAULT`): the host has no room for the pages, or a
/// part of the range is not mapped at all.
pub fn populate(addr: u64, len: u64) -> Result<bool, OsError> {
    advise_keeping_bytes(addr, len, KeepsBytes::PopulateWrite)
}

/// Asks the kernel to back `[addr, addr + len)` with transparent huge pages where it can
/// (`madvise(MADV_HUGEPAGE)`): each aligned 2 MiB of the range then faults in at once, one fault
/// and one zeroing instead of 512, and kernels reading it take fewer TLB misses. It commits
/// nothing by itself: pages are still committed as they are touched, 2 MiB at a time.
///
/// `Ok(true)`: advised. `Ok(false)`: the kernel has no transparent huge pages (`EINVAL`); the
/// range keeps its small pages, which is only slower. An error: the range is not mapped.
pub fn advise_huge_pages(addr: u64, len: u64) -> Result<bool, OsError> {
    advise_keeping_bytes(addr, len, KeepsBytes::HugePages)
}

/// The `madvise` advice that changes no byte of any mapping, which is what makes
/// [`advise_keeping_bytes`] safe.
#[derive(Clone, Copy)]
enum KeepsBytes {
    /// `MADV_POPULATE_WRITE`: takes the write faults a store would, without storing; on a range
    /// it cannot populate it fails, having populated at most the pages before, bytes unchanged.
    PopulateWrite,
    /// `MADV_HUGEPAGE`: only how the kernel backs the range's future faults (and lets khugepaged
    /// merge its resident pages, preserving their bytes).
    HugePages,
}

/// `madvise(advice)` over `[addr, addr + len)`: `Ok(true)` done, `Ok(false)` the kernel cannot
/// (`EINVAL`), an error otherwise.
fn advise_keeping_bytes(addr: u64, len: u64, advice: KeepsBytes) -> Result<bool, OsError> {
    let (ptr, l) = span(addr, len)?;
    let (advice, name) = match advice {
        KeepsBytes::PopulateWrite => (
            mm::Advice::LinuxPopulateWrite,
            "madvise(MADV_POPULATE_WRITE)",
        ),
        KeepsBytes::HugePages => (mm::Advice::LinuxHugepage, "madvise(MADV_HUGEPAGE)"),
    };
    // SAFETY: every `KeepsBytes` advice changes no byte of any mapping (see each variant).
    match unsafe { mm::madvise(ptr, l, advice) } {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) => Ok(false),
        Err(e) => Err(OsError::sys(name, e)),
    }
}

/// True when every page of `[addr, addr + len)` is mapped in this process. `msync(MS_ASYNC)`
/// reports `ENOMEM` for unmapped pages and has no other effect. An empty range is mapped.
pub fn range_is_mapped(addr: u64, len: u64) -> bool {
    let start = addr & !(PAGE - 1);
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let (Ok(start), Ok(l)) = (usize::try_from(start), usize::try_from(end - start)) else {
        return false;
    };
    let ptr = std::ptr::with_exposed_provenance_mut::<c_void>(start);
    // SAFETY: msync with MS_ASYNC neither reads nor writes memory (since Linux 2.6.19 it only
    // validates the range); it cannot affect any mapping, whoever owns it.
    unsafe { mm::msync(ptr, l, MsyncFlags::ASYNC) }.is_ok()
}
