//! Page-locked host memory.
//!
//! - `cuMemHostAlloc` / `cuMemAllocHost` memory is allocated inside the arena, so its host
//!   pointer is also its device pointer and kernels reach it on the fast path. It is not charged
//!   against device memory.
//! - `cuMemHostRegister` records a caller-owned range (expanded to whole pages) in a small
//!   sorted list; the device pointer is the host pointer. Kernels reach it through the slow path
//!   of [`GlobalMemory::translate`](gpushare_ptx::GlobalMemory::translate). Nothing is actually
//!   locked in memory (`mlock` limits are small and a CPU device needs no DMA).

use std::sync::{RwLockReadGuard, RwLockWriteGuard};

use super::{os, DeviceMemory, MemoryKind, PointerInfo, Region, RegionKind, PERM_READ, PERM_RW};
use crate::error::{CuError, CuResult};

/// `CU_MEMHOSTALLOC_*` flags: PORTABLE, DEVICEMAP, WRITECOMBINED.
pub const HOST_ALLOC_FLAGS: u32 = 0x1 | 0x2 | 0x4;
/// `CU_MEMHOSTREGISTER_PORTABLE`
pub const REGISTER_PORTABLE: u32 = 0x1;
/// `CU_MEMHOSTREGISTER_DEVICEMAP`
pub const REGISTER_DEVICEMAP: u32 = 0x2;
/// `CU_MEMHOSTREGISTER_IOMEMORY`
pub const REGISTER_IOMEMORY: u32 = 0x4;
/// `CU_MEMHOSTREGISTER_READ_ONLY`
pub const REGISTER_READ_ONLY: u32 = 0x8;

/// A `cuMemHostRegister`ed range.
pub(super) struct Registration {
    /// Page-aligned start of the registered pages.
    start: u64,
    /// Page-aligned end.
    end: u64,
    /// The pointer and size the caller registered.
    user_ptr: u64,
    user_len: u64,
    flags: u32,
    ctx: u64,
    id: u64,
    sync_memops: bool,
}

impl Registration {
    pub(super) fn info(&self) -> PointerInfo {
        PointerInfo {
            kind: MemoryKind::Host,
            context: self.ctx,
            range_start: self.user_ptr,
            range_size: self.user_len,
            mapping_start: self.user_ptr,
            mapping_size: self.user_len,
            buffer_id: self.id,
            memory_block_id: self.id,
            managed: false,
            mapped: true,
            host_accessible: true,
            legacy_ipc_capable: false,
            sync_memops: self.sync_memops,
            access: if self.flags & REGISTER_READ_ONLY != 0 {
                PERM_READ
            } else {
                PERM_RW
            },
            allowed_handle_types: 0,
        }
    }
}

/// Index of the registration holding `addr` in the sorted list.
fn index_of(list: &[Registration], addr: u64) -> Option<usize> {
    let i = list.partition_point(|r| r.start <= addr).checked_sub(1)?;
    (addr < list[i].end).then_some(i)
}

impl DeviceMemory {
    fn reg_read(&self) -> RwLockReadGuard<'_, Vec<Registration>> {
        self.registered.read().unwrap_or_else(|e| e.into_inner())
    }

    fn reg_write(&self) -> RwLockWriteGuard<'_, Vec<Registration>> {
        self.registered.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The registration holding `addr`, as pointer information.
    pub(super) fn registration(&self, addr: u64) -> Option<PointerInfo> {
        let list = self.reg_read();
        index_of(&list, addr).map(|i| list[i].info())
    }

    /// True when `[addr, addr + len)` lies in one registered range allowing the access.
    pub(super) fn registered_allows(&self, addr: u64, len: u64, write: bool) -> bool {
        let list = self.reg_read();
        index_of(&list, addr).is_some_and(|i| {
            let r = &list[i];
            addr.checked_add(len).is_some_and(|end| end <= r.end)
                && !(write && r.flags & REGISTER_READ_ONLY != 0)
        })
    }

    pub(super) fn set_registration_sync_memops(&self, addr: u64, on: bool) -> bool {
        let mut list = self.reg_write();
        match index_of(&list, addr) {
            Some(i) => {
                list[i].sync_memops = on;
                true
            }
            None => false,
        }
    }

    pub(super) fn unregister_context(&self, ctx: u64) {
        self.reg_write().retain(|r| r.ctx != ctx);
    }

    /// `cuMemHostAlloc`: `size` bytes of zeroed page-locked host memory, also a device pointer.
    pub fn host_alloc(&self, ctx: u64, size: u64, flags: u32) -> CuResult<u64> {
        if flags & !HOST_ALLOC_FLAGS != 0 {
            tracing::debug!("cuMemHostAlloc: unknown flags {flags:#x}");
            return Err(CuError::INVALID_VALUE);
        }
        self.alloc_region(ctx, size, RegionKind::Host { flags })
    }

    /// `cuMemFreeHost`: `ptr` must be the start of a host allocation.
    pub fn host_free(&self, ptr: u64) -> CuResult {
        let mut st = self.write();
        match st.regions.get(&ptr) {
            Some(Region {
                kind: RegionKind::Host { .. },
                ..
            }) => {
                self.remove_region(&mut st, ptr);
                Ok(())
            }
            _ => {
                tracing::debug!(
                    "cuMemFreeHost({ptr:#x}): not a cuMemHostAlloc/cuMemAllocHost pointer"
                );
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// `cuMemHostGetFlags`: the flags a host allocation holding `ptr` was made with.
    pub fn host_flags(&self, ptr: u64) -> CuResult<u32> {
        let st = self.read();
        match st.region_at(ptr) {
            Some(r) if ptr < r.base + r.size => match r.kind {
                RegionKind::Host { flags } => Ok(flags),
                _ => Err(CuError::INVALID_VALUE),
            },
            _ => {
                tracing::debug!("cuMemHostGetFlags({ptr:#x}): not in a host allocation");
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// `cuMemHostGetDevicePointer`: the device pointer of page-locked host memory (the host
    /// pointer itself).
    pub fn host_device_pointer(&self, ptr: u64) -> CuResult<u64> {
        let known = if self.arena.contains(ptr) {
            let st = self.read();
            st.region_at(ptr)
                .is_some_and(|r| matches!(r.kind, RegionKind::Host { .. }) && ptr < r.base + r.size)
        } else {
            self.registration(ptr).is_some()
        };
        if known {
            Ok(ptr)
        } else {
            tracing::debug!("cuMemHostGetDevicePointer({ptr:#x}): not page-locked host memory");
            Err(CuError::INVALID_VALUE)
        }
    }

    /// `cuMemHostRegister`: page-locks `[ptr, ptr + size)` (whole pages) for context `ctx`.
    pub fn register(&self, ctx: u64, ptr: u64, size: u64, flags: u32) -> CuResult {
        let all = REGISTER_PORTABLE | REGISTER_DEVICEMAP | REGISTER_IOMEMORY | REGISTER_READ_ONLY;
        if ptr == 0 || size == 0 || flags & !all != 0 {
            tracing::debug!("cuMemHostRegister({ptr:#x}, {size}, {flags:#x}): invalid arguments");
            return Err(CuError::INVALID_VALUE);
        }
        if flags & REGISTER_IOMEMORY != 0 {
            tracing::warn!(
                "cuMemHostRegister: CU_MEMHOSTREGISTER_IOMEMORY is not supported by the CPU device"
            );
            return Err(CuError::NOT_SUPPORTED);
        }
        let start = ptr & !(os::PAGE - 1);
        let end = ptr
            .checked_add(size)
            .and_then(|e| e.checked_add(os::PAGE - 1))
            .map(|e| e & !(os::PAGE - 1))
            .ok_or(CuError::INVALID_VALUE)?;
        let (base, len) = self.arena_range();
        if start < base + len && end > base {
            return Err(if self.classify(ptr) == Some(MemoryKind::Host) {
                tracing::debug!("cuMemHostRegister({ptr:#x}): already page-locked host memory");
                CuError::HOST_MEMORY_ALREADY_REGISTERED
            } else {
                tracing::debug!("cuMemHostRegister({ptr:#x}): overlaps device memory");
                CuError::INVALID_VALUE
            });
        }
        if !os::range_is_mapped(ptr, size) {
            tracing::debug!("cuMemHostRegister({ptr:#x}, {size}): range is not mapped memory");
            return Err(CuError::INVALID_VALUE);
        }
        let mut list = self.reg_write();
        let at = list.partition_point(|r| r.start < start);
        let overlaps_prev = at > 0 && list[at - 1].end > start;
        let overlaps_next = at < list.len() && list[at].start < end;
        if overlaps_prev || overlaps_next {
            tracing::debug!("cuMemHostRegister({ptr:#x}, {size}): overlaps a registered range");
            return Err(CuError::HOST_MEMORY_ALREADY_REGISTERED);
        }
        let id = self.new_id();
        list.insert(
            at,
            Registration {
                start,
                end,
                user_ptr: ptr,
                user_len: size,
                flags,
                ctx,
                id,
                sync_memops: false,
            },
        );
        Ok(())
    }

    /// `cuMemHostUnregister`: `ptr` must be the pointer given to `cuMemHostRegister`.
    pub fn unregister(&self, ptr: u64) -> CuResult {
        let mut list = self.reg_write();
        match list.iter().position(|r| r.user_ptr == ptr) {
            Some(i) => {
                list.remove(i);
                Ok(())
            }
            None => {
                tracing::debug!("cuMemHostUnregister({ptr:#x}): not a registered base pointer");
                Err(CuError::HOST_MEMORY_NOT_REGISTERED)
            }
        }
    }
}
