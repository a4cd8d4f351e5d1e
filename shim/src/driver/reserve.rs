//! Local address reservations: the shim reserves each device range the broker hands the tenant
//! (`cuMemAlloc`, `cuMemAddressReserve`) in this process too (`PROT_NONE`, best effort), so that
//! no host memory of the tenant ever gets an address numerically equal to a device address and
//! pointers can be classified by range (`cuMemcpy`, pointer attributes).

use crate::runtime::memory::PAGE;

fn page_round(len: u64) -> Option<u64> {
    len.checked_next_multiple_of(PAGE)
}

/// Reserves `[addr, addr + len)` in this process with no access, so that no host allocation of
/// the tenant lands there. Best effort: false (and nothing reserved) when the range is taken or
/// the kernel places the mapping elsewhere.
pub(crate) fn reserve_local(addr: u64, len: u64) -> bool {
    let Some(len) = page_round(len) else {
        return false;
    };
    if addr == 0
        || !addr.is_multiple_of(PAGE)
        || len == 0
        || usize::try_from(addr.saturating_add(len)).is_err()
    {
        return false;
    }
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory anyone uses
    // changes; the new mapping is anonymous and PROT_NONE.
    let got = unsafe {
        libc::mmap(
            addr as usize as *mut libc::c_void,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cannot reserve device range {addr:#x}+{len:#x} locally: {}",
                std::io::Error::last_os_error())
        });
        return false;
    }
    if got as usize as u64 != addr {
        // A kernel without MAP_FIXED_NOREPLACE took the address as a hint.
        // SAFETY: `got` is the mapping just created, of `len` bytes; nobody else knows it.
        unsafe { libc::munmap(got, len as usize) };
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "device range {addr:#x}+{len:#x} could not be reserved locally (placed at {got:p})")
        });
        return false;
    }
    true
}

/// Undoes [`reserve_local`] (only call it for a range it returned true for).
pub(crate) fn release_local(addr: u64, len: u64) {
    let Some(len) = page_round(len) else {
        return;
    };
    // SAFETY: per the contract, the range is a PROT_NONE reservation `reserve_local` created,
    // which holds nothing and which only its owner (the freed allocation) knew.
    let rc = unsafe { libc::munmap(addr as usize as *mut libc::c_void, len as usize) };
    if rc != 0 {
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cannot release the local reservation {addr:#x}+{len:#x}: {}",
                std::io::Error::last_os_error())
        });
    }
}
