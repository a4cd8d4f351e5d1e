//! Virtual memory management: address reservations, physical allocations and mappings.
//!
//! A physical allocation (`cuMemCreate`) is a memfd of its size — sparse, so it costs host
//! memory only once written — charged against the device's memory. `cuMemMap` maps it shared
//! (MAP_FIXED | MAP_SHARED) inside a reservation with no access; `cuMemSetAccess` changes the
//! host protection and the permission table together. Because the backing is a file, exporting
//! it is a `dup` of the descriptor and another process that maps the same file sees the same
//! bytes.
//!
//! Lifetime: a physical allocation lives while its handle has references (create/import = 1,
//! each `cuMemRetainAllocationHandle` + 1, each `cuMemRelease` − 1) or while it is mapped
//! anywhere. Reference and mapping counts change only under the state write lock.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::arena::aligned;
use super::{os, DeviceMemory, Region, RegionKind, State, GRANULARITY, GUARD};
use crate::error::{CuError, CuResult};

/// `CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR`
pub const HANDLE_TYPE_POSIX_FD: u32 = 0x1;

/// A physical allocation.
pub(crate) struct Physical {
    fd: OwnedFd,
    size: u64,
    /// `CUmemAllocationHandleType` bits requested at creation.
    pub(crate) handle_types: u32,
    /// Imported from another allocation's descriptor: not charged here.
    imported: bool,
    /// Process-unique id (`CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID`).
    pub(crate) block_id: u64,
    refs: AtomicU32,
    maps: AtomicU32,
}

/// A mapping of a physical allocation inside a reservation.
pub(crate) struct Mapping {
    pub(crate) base: u64,
    pub(crate) size: u64,
    pub(crate) handle: u64,
    pub(crate) phys: Arc<Physical>,
    /// Context current when it was mapped.
    pub(crate) ctx: u64,
}

/// The mapping holding `addr`.
pub(crate) fn mapping_at(mappings: &BTreeMap<u64, Mapping>, addr: u64) -> Option<&Mapping> {
    let (_, m) = mappings.range(..=addr).next_back()?;
    (addr - m.base < m.size).then_some(m)
}

/// True when mappings cover every byte of `[start, end)`.
fn covered(mappings: &BTreeMap<u64, Mapping>, start: u64, end: u64) -> bool {
    let mut cur = start;
    while cur < end {
        match mapping_at(mappings, cur) {
            Some(m) => cur = m.base + m.size,
            None => return false,
        }
    }
    true
}

/// The reservation holding `[ptr, ptr + size)` and its mappings, or `INVALID_VALUE`.
fn reservation(st: &mut State, ptr: u64, size: u64) -> CuResult<&mut BTreeMap<u64, Mapping>> {
    let r = st.region_at_mut(ptr).ok_or(CuError::INVALID_VALUE)?;
    let inside = ptr
        .checked_add(size)
        .is_some_and(|end| end <= r.base + r.size);
    match &mut r.kind {
        RegionKind::Reserved { mappings } if inside => Ok(mappings),
        _ => {
            tracing::debug!("{ptr:#x}+{size:#x} is not inside one cuMemAddressReserve range");
            Err(CuError::INVALID_VALUE)
        }
    }
}

fn granular(v: u64) -> bool {
    aligned(v, GRANULARITY)
}

impl DeviceMemory {
    /// A live handle's physical allocation (`INVALID_VALUE` for unknown or released handles).
    fn live(&self, handle: u64) -> CuResult<Arc<Physical>> {
        self.physical
            .get(handle)
            .filter(|p| p.refs.load(Ordering::Relaxed) > 0)
            .ok_or_else(|| {
                tracing::debug!("{handle:#x} is not a live memory allocation handle");
                CuError::INVALID_VALUE
            })
    }

    /// Frees a physical allocation once it has neither handle references nor mappings.
    fn maybe_drop_physical(&self, handle: u64, phys: &Physical) {
        if phys.refs.load(Ordering::Relaxed) == 0 && phys.maps.load(Ordering::Relaxed) == 0 {
            self.physical.remove(handle);
            if !phys.imported {
                self.refund(phys.size);
            }
        }
    }

    /// `cuMemAddressReserve`: `size` (a granularity multiple) bytes of address space aligned to
    /// `align` (0 or a power of two; at least the granularity); a free, aligned `hint` is honoured.
    pub fn reserve(&self, ctx: u64, size: u64, align: u64, hint: u64) -> CuResult<u64> {
        if size == 0 || !granular(size) || (align != 0 && !align.is_power_of_two()) {
            tracing::debug!("cuMemAddressReserve(size {size:#x}, alignment {align:#x}): size must be a non-zero multiple of {GRANULARITY:#x}, alignment 0 or a power of two");
            return Err(CuError::INVALID_VALUE);
        }
        let align = align.max(GRANULARITY);
        let span_with_guard = size.checked_add(GUARD).ok_or(CuError::OUT_OF_MEMORY)?;
        let mut st = self.write();
        let mut placed = None;
        if hint != 0 && aligned(hint, align) && self.arena.contains_range(hint, size) {
            // A hint right after an earlier reservation (growing it contiguously): give that
            // reservation's guard gap back first.
            if let Some(prev) = st.region_at_mut(hint) {
                if matches!(prev.kind, RegionKind::Reserved { .. }) && prev.base + prev.size == hint
                {
                    let gap = prev.span - prev.size;
                    prev.span = prev.size;
                    st.va.free(hint, gap);
                }
            }
            if st.va.alloc_at(hint, span_with_guard) {
                placed = Some((hint, span_with_guard));
            } else if st.va.alloc_at(hint, size) {
                placed = Some((hint, size));
            }
        }
        let (base, span) = match placed {
            Some(p) => p,
            None => {
                let base = st.va.alloc(span_with_guard, align).ok_or_else(|| {
                    tracing::warn!("device address arena exhausted (reserving {size:#x} bytes)");
                    CuError::OUT_OF_MEMORY
                })?;
                (base, span_with_guard)
            }
        };
        let id = self.new_id();
        st.regions.insert(
            base,
            Region {
                base,
                size,
                mapped_len: 0,
                span,
                ctx,
                id,
                sync_memops: false,
                kind: RegionKind::Reserved {
                    mappings: BTreeMap::new(),
                },
            },
        );
        Ok(base)
    }

    /// `cuMemAddressFree`: `ptr` and `size` must be exactly a reservation with nothing mapped.
    pub fn address_free(&self, ptr: u64, size: u64) -> CuResult {
        let mut st = self.write();
        let span = match st.regions.get(&ptr) {
            Some(Region {
                size: s,
                span,
                kind: RegionKind::Reserved { mappings },
                ..
            }) if *s == size => {
                if !mappings.is_empty() {
                    tracing::debug!("cuMemAddressFree({ptr:#x}): still mapped; cuMemUnmap first");
                    return Err(CuError::INVALID_VALUE);
                }
                *span
            }
            _ => {
                tracing::debug!(
                    "cuMemAddressFree({ptr:#x}, {size:#x}): not a reservation of that size"
                );
                return Err(CuError::INVALID_VALUE);
            }
        };
        st.regions.remove(&ptr);
        st.va.free(ptr, span);
        Ok(())
    }

    /// `cuMemCreate`: a physical allocation of `size` bytes (a granularity multiple) that may be
    /// exported as `handle_types`.
    pub fn create(&self, size: u64, handle_types: u32) -> CuResult<u64> {
        if size == 0 || !granular(size) {
            tracing::debug!(
                "cuMemCreate: size {size:#x} is not a non-zero multiple of {GRANULARITY:#x}"
            );
            return Err(CuError::INVALID_VALUE);
        }
        self.charge(size)?;
        let fd = os::memfd_create("gpushare-device-memory", size, false).map_err(|e| {
            self.refund(size);
            tracing::warn!("cuMemCreate: memfd of {size:#x} bytes: {e}");
            CuError::OUT_OF_MEMORY
        })?;
        Ok(self.insert_physical(fd, size, handle_types, false))
    }

    fn insert_physical(&self, fd: OwnedFd, size: u64, handle_types: u32, imported: bool) -> u64 {
        self.physical.insert(Arc::new(Physical {
            fd,
            size,
            handle_types,
            imported,
            block_id: self.new_id(),
            refs: AtomicU32::new(1),
            maps: AtomicU32::new(0),
        }))
    }

    /// `cuMemRelease`: drops one reference to the handle; the memory goes when it is unmapped too.
    pub fn release(&self, handle: u64) -> CuResult {
        let _st = self.write();
        let phys = self.live(handle)?;
        phys.refs.fetch_sub(1, Ordering::Relaxed);
        self.maybe_drop_physical(handle, &phys);
        Ok(())
    }

    /// `cuMemMap`: maps `size` bytes of `handle` (from `offset`, which must be 0) at `ptr` inside
    /// a reservation, with no access until [`set_access`](Self::set_access).
    pub fn map(&self, ctx: u64, ptr: u64, size: u64, offset: u64, handle: u64) -> CuResult {
        if size == 0 || !granular(size) || !granular(ptr) || offset != 0 {
            tracing::debug!("cuMemMap({ptr:#x}, {size:#x}, offset {offset:#x}): address and size must be multiples of {GRANULARITY:#x}, offset 0");
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.write();
        let phys = self.live(handle)?;
        if size > phys.size {
            tracing::debug!(
                "cuMemMap: {size:#x} bytes of a {:#x}-byte allocation",
                phys.size
            );
            return Err(CuError::INVALID_VALUE);
        }
        let mappings = reservation(&mut st, ptr, size)?;
        let end = ptr + size;
        let clash = mappings
            .range(..end)
            .next_back()
            .is_some_and(|(_, m)| m.base + m.size > ptr);
        if clash {
            tracing::debug!("cuMemMap({ptr:#x}, {size:#x}): range already mapped");
            return Err(CuError::INVALID_VALUE);
        }
        self.arena.map_fd(ptr, size, phys.fd.as_fd()).map_err(|e| {
            tracing::warn!("cuMemMap({ptr:#x}, {size:#x}): {e}");
            CuError::OUT_OF_MEMORY
        })?;
        phys.maps.fetch_add(1, Ordering::Relaxed);
        mappings.insert(
            ptr,
            Mapping {
                base: ptr,
                size,
                handle,
                phys,
                ctx,
            },
        );
        Ok(())
    }

    /// `cuMemUnmap`: `[ptr, ptr + size)` must be exactly one or more whole mappings.
    pub fn unmap(&self, ptr: u64, size: u64) -> CuResult {
        let mut st = self.write();
        let mappings = reservation(&mut st, ptr, size)?;
        let end = ptr + size;
        let keys: Vec<u64> = mappings.range(ptr..end).map(|(&k, _)| k).collect();
        let mut cur = ptr;
        for k in &keys {
            let m = &mappings[k];
            if m.base != cur || m.base + m.size > end {
                break;
            }
            cur = m.base + m.size;
        }
        if keys.is_empty() || cur != end {
            tracing::debug!("cuMemUnmap({ptr:#x}, {size:#x}): not exactly a set of whole mappings");
            return Err(CuError::INVALID_VALUE);
        }
        let gone: Vec<Mapping> = keys.iter().filter_map(|k| mappings.remove(k)).collect();
        for m in gone {
            if let Err(e) = self.arena.unmap(m.base, m.size) {
                tracing::error!("cuMemUnmap({:#x}): {e}", m.base);
            }
            m.phys.maps.fetch_sub(1, Ordering::Relaxed);
            self.maybe_drop_physical(m.handle, &m.phys);
        }
        Ok(())
    }

    /// `cuMemSetAccess` for the device: `perm` ([`super::PERM_NONE`], [`super::PERM_READ`] or
    /// [`super::PERM_RW`]) on a page-aligned, fully mapped range of one reservation.
    pub fn set_access(&self, ptr: u64, size: u64, perm: u8) -> CuResult {
        if size == 0 || !aligned(ptr, os::PAGE) || !aligned(size, os::PAGE) {
            tracing::debug!("cuMemSetAccess({ptr:#x}, {size:#x}): not a page-aligned range");
            return Err(CuError::INVALID_VALUE);
        }
        let mut st = self.write();
        let mappings = reservation(&mut st, ptr, size)?;
        if !covered(mappings, ptr, ptr + size) {
            tracing::debug!("cuMemSetAccess({ptr:#x}, {size:#x}): range is not fully mapped");
            return Err(CuError::INVALID_VALUE);
        }
        self.arena.protect(ptr, size, perm).map_err(|e| {
            tracing::error!("cuMemSetAccess({ptr:#x}, {size:#x}): {e}");
            CuError::UNKNOWN
        })
    }

    /// `cuMemGetAccess` for the device: the permission of the mapped page holding `ptr`.
    pub fn access(&self, ptr: u64) -> CuResult<u8> {
        let st = self.read();
        match st.region_at(ptr).map(|r| &r.kind) {
            Some(RegionKind::Reserved { mappings }) if mapping_at(mappings, ptr).is_some() => {
                Ok(self.arena.perm_at(ptr))
            }
            _ => {
                tracing::debug!("cuMemGetAccess({ptr:#x}): not a mapped VMM address");
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// `cuMemExportToShareableHandle(POSIX_FILE_DESCRIPTOR)`: a new descriptor of the memory,
    /// owned by the caller. The handle must have been created with that handle type.
    pub fn export_fd(&self, handle: u64) -> CuResult<OwnedFd> {
        let phys = self.live(handle)?;
        if phys.handle_types & HANDLE_TYPE_POSIX_FD == 0 {
            tracing::debug!("export of {handle:#x}: created without CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR in requestedHandleTypes");
            return Err(CuError::INVALID_VALUE);
        }
        os::dup_fd(phys.fd.as_fd()).map_err(|e| {
            tracing::warn!("export of {handle:#x}: dup: {e}");
            CuError::OPERATING_SYSTEM
        })
    }

    /// `cuMemImportFromShareableHandle(POSIX_FILE_DESCRIPTOR)`: a new handle for the memory
    /// behind `fd` (duplicated; the caller keeps its descriptor). Not charged: the exporter was.
    pub fn import_fd(&self, fd: RawFd) -> CuResult<u64> {
        if fd < 0 {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the application passes a descriptor it keeps open for the duration of
        // cuMemImportFromShareableHandle (the API's contract), and it is only used during this
        // call (fstat, dup). -1, BorrowedFd's niche, is excluded above; a number that is not open
        // makes the kernel answer EBADF, reported as an invalid value.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let size = os::fd_size(borrowed).map_err(|e| {
            tracing::debug!("import of fd {fd}: {e}");
            CuError::INVALID_VALUE
        })?;
        if size == 0 || !aligned(size, os::PAGE) {
            tracing::debug!("import of fd {fd}: size {size:#x} is not a whole number of pages");
            return Err(CuError::INVALID_VALUE);
        }
        let dup = os::dup_fd(borrowed).map_err(|e| {
            tracing::debug!("import of fd {fd}: {e}");
            CuError::INVALID_VALUE
        })?;
        Ok(self.insert_physical(dup, size, HANDLE_TYPE_POSIX_FD, true))
    }

    /// Size and exportable handle types of a live handle (`cuMemGetAllocationPropertiesFromHandle`).
    pub fn handle_properties(&self, handle: u64) -> CuResult<(u64, u32)> {
        let phys = self.live(handle)?;
        Ok((phys.size, phys.handle_types))
    }

    /// `cuMemRetainAllocationHandle`: the handle mapped at `addr`, with one more reference.
    pub fn retain_handle(&self, addr: u64) -> CuResult<u64> {
        let st = self.write();
        let m = match st.region_at(addr).map(|r| &r.kind) {
            Some(RegionKind::Reserved { mappings }) => mapping_at(mappings, addr),
            _ => None,
        };
        let m = m.ok_or_else(|| {
            tracing::debug!("cuMemRetainAllocationHandle({addr:#x}): not a mapped VMM address");
            CuError::INVALID_VALUE
        })?;
        m.phys.refs.fetch_add(1, Ordering::Relaxed);
        Ok(m.handle)
    }

    /// Number of live physical allocations (for tests and diagnostics).
    pub fn physical_count(&self) -> usize {
        self.physical.len()
    }
}
