//! The device arena: one contiguous reservation of host address space that every device
//! allocation, mapped host allocation and VMM reservation lives in, plus its page-permission
//! table and a first-fit allocator of address ranges.
//!
//! Device pointers are real host addresses inside the arena. Whether the device may touch a byte
//! is decided by the permission table — one byte per 4 KiB page (0 none, 1 read, 3 read/write) —
//! which kernels read lock-free: a bounds check, an index and a compare. The table lives in an
//! anonymous mapping, so pages of it that describe untouched address space cost nothing.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use gpushare_os::{OsError, Prot, PAGE};

use super::os;

/// Permission table value: no access.
pub const PERM_NONE: u8 = 0;
/// Permission table value: device reads allowed.
pub const PERM_READ: u8 = 1;
/// Permission table value: device reads and writes allowed.
pub const PERM_RW: u8 = 3;

const PAGE_SHIFT: u32 = 12;

/// The reservation and its permission table.
pub struct Arena {
    base: u64,
    len: u64,
    perms: NonNull<AtomicU8>,
    pages: usize,
}

// SAFETY: the table is only accessed through atomics, and the arena's address range is plain data.
unsafe impl Send for Arena {}
// SAFETY: as above: shared access is through `AtomicU8` only.
unsafe impl Sync for Arena {}

impl Arena {
    /// Reserves `len` bytes (a multiple of `align`) aligned to `align`.
    pub fn new(len: u64, align: u64) -> Result<Arena, OsError> {
        let base = os::reserve_aligned(len, align)?;
        let pages = (len / PAGE) as usize;
        let table = match os::map_anonymous(pages as u64) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: the reservation was just made and is not used by anything.
                let _ = unsafe { os::release(base, len) };
                return Err(e);
            }
        };
        let table = std::ptr::with_exposed_provenance_mut::<AtomicU8>(table as usize);
        let perms = NonNull::new(table).ok_or(OsError::ZeroLength)?;
        Ok(Arena {
            base,
            len,
            perms,
            pages,
        })
    }

    /// First address of the arena.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size of the arena in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when `addr` lies inside the arena.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// True when `[addr, addr + len)` lies inside the arena.
    pub fn contains_range(&self, addr: u64, len: u64) -> bool {
        let off = addr.wrapping_sub(self.base);
        off < self.len && len <= self.len - off
    }

    #[inline(always)]
    fn perm_of_page(&self, page: usize) -> u8 {
        debug_assert!(page < self.pages);
        // SAFETY: page < self.pages (callers check the arena bounds), and the table holds
        // `pages` initialised (zero-filled) bytes for the arena's lifetime.
        unsafe { &*self.perms.as_ptr().add(page) }.load(Ordering::Relaxed)
    }

    /// The hot-path check: may the device access `[addr, addr + len)` with permission `need`
    /// ([`PERM_READ`] or [`PERM_RW`])? A zero length is checked as one byte.
    #[inline(always)]
    pub fn allows(&self, addr: u64, len: u64, need: u8) -> bool {
        let off = addr.wrapping_sub(self.base);
        let last = off.wrapping_add(len.max(1) - 1);
        if off >= self.len || last >= self.len || last < off {
            return false;
        }
        let first = (off >> PAGE_SHIFT) as usize;
        let end = (last >> PAGE_SHIFT) as usize;
        if self.perm_of_page(first) & need != need {
            return false;
        }
        (first + 1..=end).all(|p| self.perm_of_page(p) & need == need)
    }

    /// Permission of the page holding `addr` (which must be inside the arena).
    pub fn perm_at(&self, addr: u64) -> u8 {
        if !self.contains(addr) {
            return PERM_NONE;
        }
        self.perm_of_page(((addr - self.base) >> PAGE_SHIFT) as usize)
    }

    /// Sets the permission of every page of `[addr, addr + len)` (page-aligned, inside the arena).
    pub fn set_perm(&self, addr: u64, len: u64, perm: u8) {
        assert!(self.contains_range(addr, len) && aligned(addr, PAGE) && aligned(len, PAGE));
        let first = ((addr - self.base) >> PAGE_SHIFT) as usize;
        let count = (len >> PAGE_SHIFT) as usize;
        for page in first..first + count {
            // SAFETY: page < self.pages because the range is inside the arena (asserted above).
            unsafe { &*self.perms.as_ptr().add(page) }.store(perm, Ordering::Relaxed);
        }
    }

    fn check_owned(&self, addr: u64, len: u64) {
        assert!(
            self.contains_range(addr, len) && aligned(addr, PAGE) && aligned(len, PAGE) && len > 0,
            "range {addr:#x}+{len:#x} outside the arena or not page-aligned"
        );
    }

    /// Backs `[addr, addr + len)` with fresh zero-filled memory and sets its permission.
    pub fn map_anonymous(&self, addr: u64, len: u64, perm: u8) -> Result<(), OsError> {
        self.check_owned(addr, len);
        // SAFETY: the range is inside the arena (checked), which this crate reserved and which
        // holds nothing anyone still uses: callers pass ranges the VA allocator handed to them.
        unsafe { os::map_anonymous_fixed(addr, len, prot_of(perm)) }?;
        self.set_perm(addr, len, perm);
        Ok(())
    }

    /// Maps `len` bytes of `fd` (from offset 0) shared at `addr`, with no access.
    pub fn map_fd(&self, addr: u64, len: u64, fd: BorrowedFd<'_>) -> Result<(), OsError> {
        self.check_owned(addr, len);
        // SAFETY: as in `map_anonymous`: an arena range owned by the caller. The file is a VMM
        // physical allocation of at least `len` bytes (checked by the caller), never truncated.
        unsafe { os::map_fd_fixed(addr, len, fd, 0, Prot::None) }?;
        self.set_perm(addr, len, PERM_NONE);
        Ok(())
    }

    /// Changes the host protection and the device permission of a mapped range. Narrowing
    /// updates the table first, widening the protection first, so a concurrent kernel never
    /// passes the table check for a page the host would fault on.
    pub fn protect(&self, addr: u64, len: u64, perm: u8) -> Result<(), OsError> {
        self.check_owned(addr, len);
        let widen = perm > self.perm_at(addr);
        if !widen {
            self.set_perm(addr, len, perm);
        }
        // SAFETY: an arena range owned by the caller; kernels reach it only through the table.
        unsafe { os::protect(addr, len, prot_of(perm)) }?;
        if widen {
            self.set_perm(addr, len, perm);
        }
        Ok(())
    }

    /// Returns `[addr, addr + len)` to reserved address space: no access, pages released.
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), OsError> {
        self.check_owned(addr, len);
        self.set_perm(addr, len, PERM_NONE);
        // SAFETY: an arena range owned by the caller, which has stopped using it.
        unsafe { os::unmap_to_reserved(addr, len) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let table = self.perms.as_ptr().expose_provenance() as u64;
        // SAFETY: both mappings were created by `Arena::new` and die with it. A failure (not
        // possible for these ranges) would only leak address space.
        unsafe {
            let _ = os::release(self.base, self.len);
            let _ = os::release(table, self.pages as u64);
        }
    }
}

/// True when `v` is a multiple of `align` (a power of two).
pub fn aligned(v: u64, align: u64) -> bool {
    v & (align - 1) == 0
}

/// Host protection that gives the host at least the device's access.
pub fn prot_of(perm: u8) -> Prot {
    match perm {
        PERM_RW => Prot::ReadWrite,
        PERM_READ => Prot::Read,
        _ => Prot::None,
    }
}

/// Free address ranges of the arena (start → length), first fit.
pub struct VaSpace {
    free: BTreeMap<u64, u64>,
}

impl VaSpace {
    /// All of `[base, base + len)` free.
    pub fn new(base: u64, len: u64) -> Self {
        let mut free = BTreeMap::new();
        free.insert(base, len);
        VaSpace { free }
    }

    /// Takes `len` bytes aligned to `align` (a power of two), or `None` when no hole fits.
    pub fn alloc(&mut self, len: u64, align: u64) -> Option<u64> {
        let (start, hole_len, at) = self.free.iter().find_map(|(&start, &hole)| {
            let at = start.checked_add(align - 1)? & !(align - 1);
            let need = (at - start).checked_add(len)?;
            (need <= hole).then_some((start, hole, at))
        })?;
        self.carve(start, hole_len, at, len);
        Some(at)
    }

    /// Takes exactly `[addr, addr + len)` if all of it is free.
    pub fn alloc_at(&mut self, addr: u64, len: u64) -> bool {
        let Some((&start, &hole)) = self.free.range(..=addr).next_back() else {
            return false;
        };
        let fits = addr.checked_add(len).is_some_and(|end| end <= start + hole);
        if fits {
            self.carve(start, hole, addr, len);
        }
        fits
    }

    fn carve(&mut self, start: u64, hole: u64, at: u64, len: u64) {
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let end = at + len;
        if end < start + hole {
            self.free.insert(end, start + hole - end);
        }
    }

    /// Returns `[addr, addr + len)`, merging it with free neighbours.
    pub fn free(&mut self, addr: u64, len: u64) {
        let mut start = addr;
        let mut end = addr + len;
        if let Some((&s, &l)) = self.free.range(..addr).next_back() {
            debug_assert!(s + l <= addr, "double free of VA {addr:#x}");
            if s + l == addr {
                self.free.remove(&s);
                start = s;
            }
        }
        if let Some(&l) = self.free.get(&end) {
            self.free.remove(&end);
            end += l;
        }
        self.free.insert(start, end - start);
    }

    /// Total free bytes (for tests).
    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn va_space_first_fit_alignment_and_merge() {
        let mut va = VaSpace::new(0x10_0000, 0x100_0000);
        let a = va.alloc(0x1000, 0x1000).unwrap();
        assert_eq!(a, 0x10_0000);
        let b = va.alloc(0x1000, 0x20_0000).unwrap();
        assert_eq!(b % 0x20_0000, 0);
        assert!(!va.alloc_at(a, 0x1000), "taken");
        assert!(va.alloc_at(a + 0x1000, 0x1000));
        va.free(a, 0x1000);
        va.free(a + 0x1000, 0x1000);
        va.free(b, 0x1000);
        assert_eq!(va.free_bytes(), 0x100_0000);
        assert_eq!(va.free.len(), 1, "fully merged");
        assert!(va.alloc(0x200_0000, 0x1000).is_none());
    }

    #[test]
    fn perms_gate_access_per_page() {
        let arena = Arena::new(64 * PAGE, 2 << 20).unwrap();
        let b = arena.base();
        assert_eq!(b % (2 << 20), 0);
        assert!(!arena.allows(b, 4, PERM_READ));
        arena.map_anonymous(b, 2 * PAGE, PERM_RW).unwrap();
        assert!(arena.allows(b, 4, PERM_RW));
        assert!(
            arena.allows(b + PAGE - 2, 4, PERM_RW),
            "straddles two RW pages"
        );
        assert!(
            !arena.allows(b + 2 * PAGE - 2, 4, PERM_READ),
            "runs into an unmapped page"
        );
        assert!(arena.allows(b, 2 * PAGE, PERM_READ), "multi-page range");
        arena.protect(b + PAGE, PAGE, PERM_READ).unwrap();
        assert!(arena.allows(b + PAGE, 8, PERM_READ));
        assert!(!arena.allows(b + PAGE, 8, PERM_RW));
        assert!(!arena.allows(b - 8, 4, PERM_READ), "below the arena");
        assert!(
            !arena.allows(b + arena.len() - 2, 4, PERM_READ),
            "past the end"
        );
        assert!(!arena.allows(u64::MAX - 1, 4, PERM_READ));
        // SAFETY: the page was just mapped read-write.
        unsafe { *(b as *mut u32) = 7 };
        arena.unmap(b, 2 * PAGE).unwrap();
        assert!(!arena.allows(b, 4, PERM_READ));
        arena.map_anonymous(b, PAGE, PERM_RW).unwrap();
        // SAFETY: mapped again just above.
        assert_eq!(unsafe { *(b as *const u32) }, 0, "fresh pages are zero");
    }
}
