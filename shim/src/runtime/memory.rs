//! Where an address lives, as the shim knows from its tables: the tenant's device ranges and
//! allocations, pinned host memory and registered host ranges, and the pointer attributes set
//! on ranges. Answered locally, so copies and pointer queries need no round trip.

use std::collections::HashMap;
use std::sync::Arc;

use super::objects::{Alloc, HostAlloc, HostMemory, Registered};
use super::session::Runtime;

/// Host page size (local address reservations are whole pages).
pub const PAGE: u64 = 4096;

impl Runtime {
    /// Remembers a device range the tenant owns.
    pub fn add_device_range(&self, base: u64, size: u64) {
        if let Ok(mut m) = self.device_ranges.write() {
            m.insert(base, size.max(1));
        }
    }

    /// Forgets the device range starting at `base`.
    pub fn remove_device_range(&self, base: u64) {
        if let Ok(mut m) = self.device_ranges.write() {
            m.remove(&base);
        }
    }

    /// The tenant's device range containing `ptr`: (base, size).
    pub fn device_range_of(&self, ptr: u64) -> Option<(u64, u64)> {
        let m = self.device_ranges.read().ok()?;
        let (&base, &size) = m.range(..=ptr).next_back()?;
        (ptr < base.saturating_add(size)).then_some((base, size))
    }

    /// Whether `[ptr, ptr + len)` lies inside one device range of the tenant (for VMM
    /// reservations: fully mapped with the access needed).
    pub fn device_range_ok(&self, ptr: u64, len: u64, write: bool) -> bool {
        match self.vmm(|v| v.check_access(ptr, len, write)) {
            Some(ok) => ok,
            None => self
                .device_range_of(ptr)
                .is_some_and(|(b, s)| ptr.checked_add(len).is_some_and(|e| e <= b + s)),
        }
    }

    /// Whether any device range of the tenant overlaps `[start, end)`.
    pub fn overlaps_device_range(&self, start: u64, end: u64) -> bool {
        self.device_ranges.read().ok().is_some_and(|m| {
            m.range(..end)
                .next_back()
                .is_some_and(|(&b, &s)| b + s > start)
        })
    }

    /// How `[ptr, ptr + len)` in this process is backed.
    pub fn host_memory(&self, ptr: usize, len: usize) -> HostMemory {
        if let Ok(m) = self.host_allocs.read() {
            if let Some((&base, alloc)) = m.range(..=ptr).next_back() {
                let end = base + alloc.buffer.len() as usize;
                if ptr.checked_add(len).is_some_and(|e| e <= end) && ptr < end.max(base + 1) {
                    return HostMemory::Shared {
                        alloc: alloc.clone(),
                        offset: (ptr - base) as u64,
                    };
                }
            }
        }
        HostMemory::Pageable
    }

    /// The pinned allocation whose device range holds `ptr` (when it is not also its host
    /// address): (application base, allocation).
    pub fn host_alloc_by_device_ptr(&self, ptr: u64) -> Option<(usize, Arc<HostAlloc>)> {
        let m = self.host_allocs.read().ok()?;
        m.iter()
            .find(|(_, a)| ptr.wrapping_sub(a.device_ptr) < a.buffer.len())
            .map(|(&base, a)| (base, a.clone()))
    }

    /// Whether device address `ptr` is host memory (managed, pinned, or a DEVICEMAP
    /// registration): CUDA's copies and memsets are synchronous with respect to the host there.
    pub fn is_host_backed(&self, ptr: u64) -> bool {
        if self.alloc_of(ptr).is_some() {
            // `cuMemAlloc` memory, the common case: no scan of the host tables.
            return false;
        }
        matches!(self.host_memory(ptr as usize, 1), HostMemory::Shared { .. })
            || self.host_alloc_by_device_ptr(ptr).is_some()
            || self.registration_by_device_ptr(ptr).is_some()
    }

    /// The `cuMemHostRegister` registration holding host address `ptr`: (start, registration).
    pub fn registration(&self, ptr: usize) -> Option<(usize, Registered)> {
        let m = self.host_registered.read().ok()?;
        let (&start, r) = m.range(..=ptr).next_back()?;
        (ptr - start < r.len.max(1)).then(|| (start, r.clone()))
    }

    /// The device-mapped registration whose device range holds `ptr`: (start, registration).
    pub fn registration_by_device_ptr(&self, ptr: u64) -> Option<(usize, Registered)> {
        let m = self.host_registered.read().ok()?;
        m.iter()
            .find(|(_, r)| {
                r.mapped
                    .as_ref()
                    .is_some_and(|a| ptr.wrapping_sub(a.device_ptr) < a.buffer.len())
            })
            .map(|(&start, r)| (start, r.clone()))
    }

    /// The `cuMemAlloc` allocation holding `ptr`: (base, allocation).
    pub fn alloc_of(&self, ptr: u64) -> Option<(u64, Alloc)> {
        let m = self.allocs.read().ok()?;
        let (&base, a) = m.range(..=ptr).next_back()?;
        (ptr - base < a.size).then_some((base, *a))
    }

    /// True when `ptr` lies in the local reservation of an allocation (its size rounded up to a
    /// page): such an address must never be used as host memory.
    pub fn in_local_reservation(&self, ptr: u64) -> bool {
        let Ok(m) = self.allocs.read() else {
            return false;
        };
        m.range(..=ptr).next_back().is_some_and(|(&base, a)| {
            a.reserved
                && a.size
                    .checked_next_multiple_of(PAGE)
                    .is_some_and(|len| ptr - base < len)
        })
    }

    /// Runs `f` on the SYNC_MEMOPS settings.
    pub fn sync_memops<T>(&self, f: impl FnOnce(&mut HashMap<u64, bool>) -> T) -> T {
        f(&mut self.sync_memops.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets the attributes set on the range starting at `base` (it was freed).
    pub fn forget_attributes(&self, base: u64) {
        self.sync_memops(|m| m.remove(&base));
    }
}
