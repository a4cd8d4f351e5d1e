//! Per-tenant device memory bookkeeping: what a tenant owns, what it is charged, and the bounds
//! checks that keep its copies inside its own memory.
//!
//! A tenant owns *ranges* of device addresses: its `MemAlloc` allocations (VMM-backed, see
//! [`crate::device::Device::vmm_alloc`]), the parts of its own VMM reservations it has mapped,
//! its modules' globals and its registered host buffers' device addresses. Copies and memsets
//! must lie inside owned ranges (contiguous neighbours count as one), otherwise they fail with
//! `CUDA_ERROR_INVALID_VALUE` — whether the memory is another tenant's or nobody's, the tenant
//! cannot tell. Kernel arguments are not checked (they are opaque bytes); isolation of what
//! kernels touch is the device's (one shared context today: see `docs/architecture.md`).
//!
//! Charged bytes: `MemAlloc` sizes (rounded to the granularity; small ones are packed into
//! slabs, [`slabs`], which are charged a granule each), `MemCreate` sizes and the bytes modules'
//! variables declare (`.global`/`.const`, charged at load, see `session::exec::module`).

pub mod slabs;

use std::collections::BTreeMap;

use gpushare_client::code::{self, CuCode};

use crate::device::VmmAlloc;

/// Errors of memory bookkeeping (a `CUresult` in replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The range is not (entirely) the tenant's.
    #[error("device range {ptr:#x}+{len:#x} is not owned by this tenant")]
    NotOwned {
        /// Start.
        ptr: u64,
        /// Length.
        len: u64,
    },
    /// The tenant's memory quota would be exceeded.
    #[error("memory quota of {quota} bytes exceeded")]
    Quota {
        /// The quota.
        quota: u64,
    },
    /// Overlapping or otherwise inconsistent ranges.
    #[error("device range {0:#x} overlaps an existing one")]
    Overlap(u64),
}

impl MemoryError {
    /// The `CUresult` to report.
    pub fn code(&self) -> CuCode {
        match self {
            MemoryError::NotOwned { .. } | MemoryError::Overlap(_) => code::ERROR_INVALID_VALUE,
            MemoryError::Quota { .. } => code::ERROR_OUT_OF_MEMORY,
        }
    }
}

/// Why a tenant owns a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A `MemAlloc` allocation.
    Alloc(VmmAlloc),
    /// A small `MemAlloc` allocation packed into the slab at `slab` ([`slabs`]).
    Piece {
        /// The slab's base address.
        slab: u64,
    },
    /// A mapping of a `MemCreate` handle into one of the tenant's reservations.
    Mapped {
        /// Tenant handle of the physical allocation.
        handle: u64,
    },
    /// A module global.
    Global {
        /// Tenant handle of the module.
        module: u64,
    },
    /// A registered host buffer.
    Host {
        /// Host region id.
        region: u32,
    },
}

/// An owned range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Start address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// Why it is owned.
    pub owner: Owner,
}

/// A `MemCreate` physical allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysAlloc {
    /// Driver handle.
    pub raw: u64,
    /// Bytes.
    pub size: u64,
}

/// One tenant's device memory.
#[derive(Debug, Default)]
pub struct TenantMemory {
    /// Slabs of small allocations.
    pub slabs: slabs::Slabs,
    ranges: BTreeMap<u64, Range>,
    reservations: BTreeMap<u64, u64>,
    charged: u64,
    quota: u64,
}

impl TenantMemory {
    /// Bookkeeping with a quota (0: none).
    pub fn new(quota: u64) -> TenantMemory {
        TenantMemory {
            quota,
            ..Default::default()
        }
    }

    /// Bytes charged.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// The quota (0: none).
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// Changes the quota (a policy reload): later charges are checked against it; what is
    /// charged stays, even beyond it.
    pub fn set_quota(&mut self, quota: u64) {
        self.quota = quota;
    }

    /// Bytes left under the quota (`u64::MAX` without one).
    pub fn room(&self) -> u64 {
        if self.quota == 0 {
            u64::MAX
        } else {
            self.quota.saturating_sub(self.charged)
        }
    }

    /// Checks that `bytes` more fit in the quota.
    pub fn can_charge(&self, bytes: u64) -> Result<(), MemoryError> {
        if self.quota != 0 && self.charged.saturating_add(bytes) > self.quota {
            return Err(MemoryError::Quota { quota: self.quota });
        }
        Ok(())
    }

    /// Charges `bytes` (after [`TenantMemory::can_charge`]).
    pub fn charge(&mut self, bytes: u64) {
        self.charged = self.charged.saturating_add(bytes);
    }

    /// Releases `bytes`.
    pub fn uncharge(&mut self, bytes: u64) {
        self.charged = self.charged.saturating_sub(bytes);
    }

    /// Adds an owned range; it must not overlap another.
    pub fn add_range(&mut self, range: Range) -> Result<(), MemoryError> {
        if range.len == 0 {
            return Err(MemoryError::Overlap(range.base));
        }
        let end = range
            .base
            .checked_add(range.len)
            .ok_or(MemoryError::Overlap(range.base))?;
        if let Some((_, prev)) = self.ranges.range(..end).next_back() {
            if prev.base + prev.len > range.base {
                return Err(MemoryError::Overlap(range.base));
            }
        }
        self.ranges.insert(range.base, range);
        Ok(())
    }

    /// The range starting exactly at `base`.
    pub fn range_at(&self, base: u64) -> Option<&Range> {
        self.ranges.get(&base)
    }

    /// The range containing `ptr`.
    pub fn range_containing(&self, ptr: u64) -> Option<&Range> {
        self.ranges
            .range(..=ptr)
            .next_back()
            .map(|(_, r)| r)
            .filter(|r| ptr - r.base < r.len)
    }

    /// Removes the range starting at `base`.
    pub fn remove_range(&mut self, base: u64) -> Option<Range> {
        self.ranges.remove(&base)
    }

    /// Removes every range matching `pred`.
    pub fn remove_ranges(&mut self, mut pred: impl FnMut(&Range) -> bool) -> Vec<Range> {
        let keys: Vec<u64> = self
            .ranges
            .values()
            .filter(|r| pred(r))
            .map(|r| r.base)
            .collect();
        keys.iter().filter_map(|k| self.ranges.remove(k)).collect()
    }

    /// Every owned range.
    pub fn ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges.values()
    }

    /// Checks that `[ptr, ptr + len)` lies inside owned ranges (contiguous neighbours count as
    /// one). Zero-length ranges are always fine.
    pub fn check(&self, ptr: u64, len: u64) -> Result<(), MemoryError> {
        if len == 0 {
            return Ok(());
        }
        let bad = MemoryError::NotOwned { ptr, len };
        let end = ptr.checked_add(len).ok_or(bad)?;
        let mut at = ptr;
        while at < end {
            let r = self.range_containing(at).ok_or(bad)?;
            at = r.base + r.len;
        }
        Ok(())
    }

    /// Records a VMM reservation of the tenant.
    pub fn add_reservation(&mut self, base: u64, size: u64) {
        self.reservations.insert(base, size);
    }

    /// True when `[ptr, ptr + size)` lies inside one of the tenant's reservations.
    pub fn in_reservation(&self, ptr: u64, size: u64) -> bool {
        let Some(end) = ptr.checked_add(size) else {
            return false;
        };
        self.reservations
            .range(..=ptr)
            .next_back()
            .is_some_and(|(b, s)| end <= b + s)
    }

    /// Removes the reservation `(base, size)` if it is exactly one of the tenant's and nothing is
    /// mapped in it.
    pub fn remove_reservation(&mut self, base: u64, size: u64) -> Result<(), MemoryError> {
        let bad = MemoryError::NotOwned {
            ptr: base,
            len: size,
        };
        if self.reservations.get(&base) != Some(&size) {
            return Err(bad);
        }
        let end = base.saturating_add(size);
        if self.ranges.range(base..end).next().is_some() {
            return Err(bad);
        }
        self.reservations.remove(&base);
        Ok(())
    }

    /// Removes and returns every reservation.
    pub fn take_reservations(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.reservations).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(base: u64, len: u64) -> Range {
        Range {
            base,
            len,
            owner: Owner::Alloc(VmmAlloc {
                ptr: base,
                size: len,
                handle: 0,
            }),
        }
    }

    #[test]
    fn bounds_checks() {
        let mut m = TenantMemory::new(0);
        m.add_range(alloc(0x1000, 0x1000)).unwrap();
        m.add_range(alloc(0x2000, 0x1000)).unwrap();
        m.add_range(alloc(0x8000, 0x100)).unwrap();
        assert!(m.check(0x1000, 0x1000).is_ok());
        assert!(m.check(0x1800, 0x1000).is_ok(), "contiguous neighbours");
        assert!(m.check(0x2800, 0x1000).is_err(), "runs past the end");
        assert!(m.check(0x0fff, 2).is_err(), "starts before");
        assert!(m.check(0x8000, 0x101).is_err());
        assert!(m.check(u64::MAX, 2).is_err(), "overflow");
        assert!(m.check(0x5000, 0).is_ok());
        assert!(m.add_range(alloc(0x1800, 0x10)).is_err(), "overlap");
        assert!(
            m.add_range(alloc(0x0800, 0x900)).is_err(),
            "overlap from below"
        );
    }

    #[test]
    fn quota_and_reservations() {
        let mut m = TenantMemory::new(100);
        assert!(m.can_charge(100).is_ok());
        m.charge(60);
        assert_eq!(
            m.can_charge(41).unwrap_err().code(),
            code::ERROR_OUT_OF_MEMORY
        );
        m.set_quota(50);
        assert_eq!(m.quota(), 50);
        assert!(
            m.can_charge(1).is_err(),
            "a smaller quota: nothing more fits"
        );
        assert_eq!(m.charged(), 60, "what is charged stays");
        m.set_quota(0);
        assert!(m.can_charge(1 << 40).is_ok(), "0: no quota");
        m.set_quota(100);
        m.uncharge(60);
        assert_eq!(m.charged(), 0);
        m.add_reservation(0x10000, 0x4000);
        assert!(m.in_reservation(0x11000, 0x1000));
        assert!(!m.in_reservation(0x13000, 0x2000));
        m.add_range(Range {
            base: 0x10000,
            len: 0x1000,
            owner: Owner::Mapped { handle: 1 },
        })
        .unwrap();
        assert!(
            m.remove_reservation(0x10000, 0x4000).is_err(),
            "still mapped"
        );
        m.remove_range(0x10000);
        assert!(m.remove_reservation(0x10000, 0x4000).is_ok());
    }
}
