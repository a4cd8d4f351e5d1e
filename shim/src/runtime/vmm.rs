//! The shim's mirror of the tenant's virtual memory objects (`cuMemAddressReserve` ranges,
//! `cuMemCreate` allocations and their mappings, device access by range), so that VMM arguments
//! are checked as the CPU device checks them and queries the protocol has no request for
//! (access, properties, pointer attributes, the bounds and access of copies) are answered
//! locally. The broker's calls are the VMM family's ([`crate::driver::vmm`]); this is the table.

use std::collections::{BTreeMap, HashMap};

use gpushare_driver_abi::error::{CuError, CuResult};

/// `CU_MEM_ACCESS_FLAGS_PROT_READ`
pub const PROT_READ: u8 = 1;
/// `CU_MEM_ACCESS_FLAGS_PROT_READWRITE`
pub const PROT_READWRITE: u8 = 3;

/// A physical allocation (`cuMemCreate`).
#[derive(Debug)]
pub struct Phys {
    /// Bytes.
    pub size: u64,
    /// Exportable handle types.
    pub types: u32,
    /// Device ordinal.
    pub device: i32,
    /// Handle references (create = 1, each retain + 1, each release − 1).
    pub refs: u32,
    /// Mappings of it.
    pub maps: u32,
    /// `CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID`.
    pub block_id: u64,
}

/// A mapping inside a reservation.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// Bytes.
    pub size: u64,
    /// The physical allocation mapped.
    pub handle: u64,
    /// Context current when it was mapped.
    pub ctx: u64,
}

/// A `cuMemAddressReserve` range.
#[derive(Debug)]
pub struct Reservation {
    /// Bytes.
    pub size: u64,
    /// Context current when it was reserved.
    pub ctx: u64,
    /// Process-unique id (`CU_POINTER_ATTRIBUTE_BUFFER_ID`).
    pub id: u64,
    /// Reserved in this process too.
    pub local: bool,
    /// Mappings by base address.
    pub mappings: BTreeMap<u64, Mapping>,
    /// Device access by range: start -> (end, `CUmemAccess_flags`).
    pub perms: BTreeMap<u64, (u64, u8)>,
}

/// What pointer attributes report for an address in a reservation.
#[derive(Clone, Copy, Debug)]
pub struct VmmInfo {
    /// Reservation (base, size).
    pub range: (u64, u64),
    /// Mapping (base, size), if mapped.
    pub mapping: Option<(u64, u64)>,
    /// Context current when it was mapped (reserved, if unmapped).
    pub ctx: u64,
    /// Reservation id.
    pub id: u64,
    /// Physical allocation's block id.
    pub block_id: u64,
    /// Exportable handle types of the physical allocation.
    pub handle_types: u32,
    /// Device access at the address.
    pub access: u8,
}

/// The tenant's VMM objects.
#[derive(Debug, Default)]
pub struct VmmTable {
    /// Physical allocations by handle.
    pub phys: HashMap<u64, Phys>,
    /// Reservations by base address.
    pub reservations: BTreeMap<u64, Reservation>,
}

fn log_debug(msg: std::fmt::Arguments<'_>) {
    crate::log(|| tracing::debug!(target: "gpushare::shim", "{msg}"));
}

impl Reservation {
    /// The mapping holding `ptr`: (base, mapping).
    pub fn mapping_at(&self, ptr: u64) -> Option<(u64, Mapping)> {
        let (&b, m) = self.mappings.range(..=ptr).next_back()?;
        (ptr - b < m.size).then_some((b, *m))
    }

    /// Whether `[start, end)` is fully mapped and (with `need`) has that access everywhere.
    pub fn covered(&self, start: u64, end: u64, need: Option<u8>) -> bool {
        let mut cur = start;
        while cur < end {
            let Some((b, m)) = self.mapping_at(cur) else {
                return false;
            };
            cur = b + m.size;
        }
        let Some(need) = need else {
            return true;
        };
        let mut cur = start;
        while cur < end {
            match self.perms.range(..=cur).next_back() {
                Some((_, &(e, p))) if e > cur && p & need == need => cur = e,
                _ => return false,
            }
        }
        true
    }

    /// Sets `perm` on `[start, end)` (`None`: forgets the range).
    pub fn set_perm(&mut self, start: u64, end: u64, perm: Option<u8>) {
        let overlapping: Vec<(u64, (u64, u8))> = self
            .perms
            .range(..end)
            .filter(|(_, &(e, _))| e > start)
            .map(|(&s, &v)| (s, v))
            .collect();
        for (s, (e, p)) in overlapping {
            self.perms.remove(&s);
            if s < start {
                self.perms.insert(s, (start, p));
            }
            if e > end {
                self.perms.insert(end, (e, p));
            }
        }
        if let Some(p) = perm {
            self.perms.insert(start, (end, p));
        }
    }
}

impl VmmTable {
    /// The reservation holding `ptr`.
    pub fn reservation_at(&self, ptr: u64) -> Option<(u64, &Reservation)> {
        let (&base, r) = self.reservations.range(..=ptr).next_back()?;
        (ptr - base < r.size).then_some((base, r))
    }

    /// The reservation holding all of `[ptr, ptr + size)`.
    pub fn reservation_of(&mut self, ptr: u64, size: u64) -> CuResult<&mut Reservation> {
        let end = ptr.checked_add(size).ok_or(CuError::INVALID_VALUE)?;
        match self.reservations.range_mut(..=ptr).next_back() {
            Some((&base, r)) if end <= base + r.size => Ok(r),
            _ => {
                log_debug(format_args!(
                    "{ptr:#x}+{size:#x} is not inside one cuMemAddressReserve range"
                ));
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// A live handle (`INVALID_VALUE` for unknown or released ones).
    pub fn live(&mut self, handle: u64) -> CuResult<&mut Phys> {
        match self.phys.get_mut(&handle) {
            Some(p) if p.refs > 0 => Ok(p),
            _ => {
                log_debug(format_args!(
                    "{handle:#x} is not a live memory allocation handle"
                ));
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// Forgets `handle` once it has neither references nor mappings: true when it was, and the
    /// broker's handle must be released.
    pub fn forget_if_unused(&mut self, handle: u64) -> bool {
        let gone = self
            .phys
            .get(&handle)
            .is_some_and(|p| p.refs == 0 && p.maps == 0);
        if gone {
            self.phys.remove(&handle);
        }
        gone
    }

    /// For `cuMemGetAddressRange`: `None` if `ptr` is in no reservation, else the mapping holding
    /// it (`Some(None)`: reserved but unmapped).
    pub fn mapping_range(&self, ptr: u64) -> Option<Option<(u64, u64)>> {
        let (_, r) = self.reservation_at(ptr)?;
        Some(r.mapping_at(ptr).map(|(b, m)| (b, m.size)))
    }

    /// For copies: `None` if `ptr` is in no reservation; else whether `[ptr, ptr + len)` lies in
    /// one reservation, fully mapped, with read (or read-write) access.
    pub fn check_access(&self, ptr: u64, len: u64, write: bool) -> Option<bool> {
        let (base, r) = self.reservation_at(ptr)?;
        let need = if write { PROT_READWRITE } else { PROT_READ };
        Some(
            ptr.checked_add(len)
                .is_some_and(|end| end <= base + r.size && r.covered(ptr, end, Some(need))),
        )
    }

    /// Pointer information for an address inside a reservation.
    pub fn pointer_info(&self, ptr: u64) -> Option<VmmInfo> {
        let (base, r) = self.reservation_at(ptr)?;
        let m = r.mapping_at(ptr);
        let phys = m.and_then(|(_, m)| self.phys.get(&m.handle));
        let access = match r.perms.range(..=ptr).next_back() {
            Some((_, &(e, p))) if e > ptr && m.is_some() => p,
            _ => 0,
        };
        Some(VmmInfo {
            range: (base, r.size),
            mapping: m.map(|(b, m)| (b, m.size)),
            ctx: m.map_or(r.ctx, |(_, m)| m.ctx),
            id: r.id,
            block_id: phys.map_or(0, |p| p.block_id),
            handle_types: phys.map_or(0, |p| p.types),
            access,
        })
    }
}
