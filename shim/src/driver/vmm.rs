//! Virtual memory management: `cuMemAddressReserve`/`Free`, `cuMemCreate`/`Release`,
//! `cuMemMap`/`Unmap`, `cuMemSetAccess`/`GetAccess`, `cuMemGetAllocationGranularity`,
//! `cuMemGetAllocationPropertiesFromHandle`, `cuMemRetainAllocationHandle`.
//!
//! Reservations, physical allocations and mappings are the broker's (the VMM requests); the shim
//! mirrors them in a table so that it can check arguments as the CPU device does, answer the
//! queries the protocol has no request for (access, properties, pointer attributes), keep
//! `cuMemRetainAllocationHandle`'s reference counts (the broker's handle is released once the
//! last reference is gone and nothing maps it any more, as the CPU device does), and check the
//! bounds and access of copies into mapped memory before they are queued. Reserved ranges are
//! device ranges of the tenant and are reserved in this process too (see [`super::memory`]).
//!
//! Like the CPU device: device 0 ... n-1 of the broker, pinned device memory only; VMM objects
//! are process-wide (no current context needed). Exporting and importing shareable handles is not
//! supported (generated `NOT_SUPPORTED` stubs): the memory lives in the broker.

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;
use std::sync::Mutex;

use gpushare_client::proto::{AccessDesc, Reply, Request};
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUdeviceptr};

use super::memory::{current_ctx, new_id, release_local, reserve_local};
use crate::runtime::{runtime, Runtime};
pub use gpushare_driver_abi::cuda_h::{
    CUmemAccessDesc, CUmemAllocFlags, CUmemAllocationProp, CUmemLocation,
};
use gpushare_driver_abi::cuda_h::{
    ALLOCATION_TYPE_PINNED, HANDLE_POSIX_FD, HANDLE_UNSUPPORTED, LOCATION_DEVICE,
    LOCATION_HOST_TYPES,
};

/// `CU_MEM_ACCESS_FLAGS_PROT_READ`
const PROT_READ: u8 = 1;
/// `CU_MEM_ACCESS_FLAGS_PROT_READWRITE`
const PROT_READWRITE: u8 = 3;

/// A physical allocation (`cuMemCreate`).
#[derive(Debug)]
struct Phys {
    size: u64,
    types: u32,
    device: i32,
    /// Handle references (create = 1, each retain + 1, each release − 1).
    refs: u32,
    /// Mappings of it.
    maps: u32,
    /// `CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID`.
    block_id: u64,
}

/// A mapping inside a reservation.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    size: u64,
    handle: u64,
    ctx: u64,
}

/// A `cuMemAddressReserve` range.
#[derive(Debug)]
struct Reservation {
    size: u64,
    ctx: u64,
    id: u64,
    /// Reserved in this process too.
    local: bool,
    mappings: BTreeMap<u64, Mapping>,
    /// Device access by range: start -> (end, `CUmemAccess_flags`).
    perms: BTreeMap<u64, (u64, u8)>,
}

#[derive(Debug, Default)]
struct Vmm {
    phys: HashMap<u64, Phys>,
    reservations: BTreeMap<u64, Reservation>,
}

static VMM: Mutex<Option<Vmm>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Vmm) -> T) -> T {
    let mut g = VMM.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Vmm::default))
}

impl Vmm {
    /// The reservation holding `ptr`.
    fn reservation_at(&self, ptr: u64) -> Option<(u64, &Reservation)> {
        let (&base, r) = self.reservations.range(..=ptr).next_back()?;
        (ptr - base < r.size).then_some((base, r))
    }

    /// The reservation holding all of `[ptr, ptr + size)`.
    fn reservation_of(&mut self, ptr: u64, size: u64) -> CuResult<&mut Reservation> {
        let end = ptr.checked_add(size).ok_or(CuError::INVALID_VALUE)?;
        match self.reservations.range_mut(..=ptr).next_back() {
            Some((&base, r)) if end <= base + r.size => Ok(r),
            _ => {
                log_debug(format!(
                    "{ptr:#x}+{size:#x} is not inside one cuMemAddressReserve range"
                ));
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// A live handle (`INVALID_VALUE` for unknown or released ones).
    fn live(&mut self, handle: u64) -> CuResult<&mut Phys> {
        match self.phys.get_mut(&handle) {
            Some(p) if p.refs > 0 => Ok(p),
            _ => {
                log_debug(format!(
                    "{handle:#x} is not a live memory allocation handle"
                ));
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// Releases the broker's handle once it has neither references nor mappings.
    fn maybe_release(&mut self, rt: &Runtime, handle: u64) -> CuResult {
        let gone = self
            .phys
            .get(&handle)
            .is_some_and(|p| p.refs == 0 && p.maps == 0);
        if gone {
            self.phys.remove(&handle);
            return rt.call_empty(Request::MemRelease { handle });
        }
        Ok(())
    }
}

fn log_debug(msg: String) {
    crate::log(|| tracing::debug!(target: "gpushare::shim", "{msg}"));
}

fn mapping_at(r: &Reservation, ptr: u64) -> Option<(u64, Mapping)> {
    let (&b, m) = r.mappings.range(..=ptr).next_back()?;
    (ptr - b < m.size).then_some((b, *m))
}

fn covered(r: &Reservation, start: u64, end: u64, need: Option<u8>) -> bool {
    let mut cur = start;
    while cur < end {
        let Some((b, m)) = mapping_at(r, cur) else {
            return false;
        };
        cur = b + m.size;
    }
    let Some(need) = need else {
        return true;
    };
    let mut cur = start;
    while cur < end {
        match r.perms.range(..=cur).next_back() {
            Some((_, &(e, p))) if e > cur && p & need == need => cur = e,
            _ => return false,
        }
    }
    true
}

/// Sets `perm` on `[start, end)` (`None`: forgets the range).
fn set_perm(perms: &mut BTreeMap<u64, (u64, u8)>, start: u64, end: u64, perm: Option<u8>) {
    let overlapping: Vec<(u64, (u64, u8))> = perms
        .range(..end)
        .filter(|(_, &(e, _))| e > start)
        .map(|(&s, &v)| (s, v))
        .collect();
    for (s, (e, p)) in overlapping {
        perms.remove(&s);
        if s < start {
            perms.insert(s, (start, p));
        }
        if e > end {
            perms.insert(end, (e, p));
        }
    }
    if let Some(p) = perm {
        perms.insert(start, (end, p));
    }
}

/// For `cuMemGetAddressRange`: `None` if `ptr` is in no reservation, else the mapping holding it
/// (`Some(None)`: reserved but unmapped).
pub(crate) fn mapping_range(ptr: u64) -> Option<Option<(u64, u64)>> {
    with(|v| {
        let (_, r) = v.reservation_at(ptr)?;
        Some(mapping_at(r, ptr).map(|(b, m)| (b, m.size)))
    })
}

/// For copies: `None` if `ptr` is in no reservation; else whether `[ptr, ptr + len)` lies in one
/// reservation, fully mapped, with read (or read-write) access.
pub(crate) fn check_access(ptr: u64, len: u64, write: bool) -> Option<CuResult> {
    with(|v| {
        let (base, r) = v.reservation_at(ptr)?;
        let need = if write { PROT_READWRITE } else { PROT_READ };
        let ok = ptr
            .checked_add(len)
            .is_some_and(|end| end <= base + r.size && covered(r, ptr, end, Some(need)));
        Some(if ok {
            Ok(())
        } else {
            Err(CuError::INVALID_VALUE)
        })
    })
}

/// What pointer attributes report for an address in a reservation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VmmInfo {
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
    /// Device access at `ptr`.
    pub access: u8,
}

/// Pointer information for an address inside a reservation.
pub(crate) fn pointer_info(ptr: u64) -> Option<VmmInfo> {
    with(|v| {
        let (base, r) = v.reservation_at(ptr)?;
        let m = mapping_at(r, ptr);
        let phys = m.and_then(|(_, m)| v.phys.get(&m.handle));
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
    })
}

/// Checks a `CUmemAllocationProp` for a device allocation; returns (device, handle types).
///
/// # Safety
/// `prop` must be NULL or point to a `CUmemAllocationProp`.
unsafe fn check_prop(rt: &Runtime, prop: *const CUmemAllocationProp) -> CuResult<(i32, u32)> {
    if prop.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-null, and the caller passes a CUmemAllocationProp.
    let p = unsafe { prop.read_unaligned() };
    if p.type_ != ALLOCATION_TYPE_PINNED {
        log_debug(format!(
            "CUmemAllocationProp.type {} is not PINNED",
            p.type_
        ));
        return Err(CuError::INVALID_VALUE);
    }
    check_location(rt, &p.location)?;
    let types = p.requested_handle_types;
    if types & HANDLE_UNSUPPORTED != 0 {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "requestedHandleTypes {types:#x}: only POSIX file descriptors are supported")
        });
        return Err(CuError::NOT_SUPPORTED);
    }
    if types & !HANDLE_POSIX_FD != 0 {
        log_debug(format!("requestedHandleTypes {types:#x} has unknown bits"));
        return Err(CuError::INVALID_VALUE);
    }
    Ok((p.location.id, types as u32))
}

/// Accepts the broker's devices; host locations are `NOT_SUPPORTED`, anything else invalid.
fn check_location(rt: &Runtime, loc: &CUmemLocation) -> CuResult {
    match loc.type_ {
        LOCATION_DEVICE => rt.device(loc.id).map(|_| ()),
        t if LOCATION_HOST_TYPES.contains(&t) => {
            crate::log(|| {
                tracing::warn!(target: "gpushare::shim",
                    "host-located VMM allocations are not supported by the shim")
            });
            Err(CuError::NOT_SUPPORTED)
        }
        t => {
            log_debug(format!("CUmemLocation.type {t} is not valid"));
            Err(CuError::INVALID_VALUE)
        }
    }
}

fn reserve(size: u64, alignment: u64, addr: u64) -> CuResult<u64> {
    let rt = runtime()?;
    let ptr = match rt.call(Request::MemAddressReserve {
        size,
        alignment,
        addr,
        flags: 0,
    })? {
        Reply::DevicePtr { ptr } => ptr,
        _ => return Err(CuError::UNKNOWN),
    };
    let local = reserve_local(ptr, size);
    with(|v| {
        v.reservations.insert(
            ptr,
            Reservation {
                size,
                ctx: current_ctx(),
                id: new_id(),
                local,
                mappings: BTreeMap::new(),
                perms: BTreeMap::new(),
            },
        )
    });
    rt.add_device_range(ptr, size);
    Ok(ptr)
}

fn address_free(ptr: u64, size: u64) -> CuResult {
    let rt = runtime()?;
    with(|v| {
        match v.reservations.get(&ptr) {
            Some(r) if r.size == size && r.mappings.is_empty() => {}
            Some(r) if r.size == size => {
                log_debug(format!(
                    "cuMemAddressFree({ptr:#x}): still mapped; cuMemUnmap first"
                ));
                return Err(CuError::INVALID_VALUE);
            }
            _ => {
                log_debug(format!(
                    "cuMemAddressFree({ptr:#x}, {size:#x}): not a reservation of that size"
                ));
                return Err(CuError::INVALID_VALUE);
            }
        }
        rt.call_empty(Request::MemAddressFree { ptr, size })?;
        if let Some(r) = v.reservations.remove(&ptr) {
            if r.local {
                release_local(ptr, r.size);
            }
        }
        rt.remove_device_range(ptr);
        super::pointer::forget(ptr);
        Ok(())
    })
}

fn create(size: u64, device: i32, types: u32) -> CuResult<u64> {
    let rt = runtime()?;
    let handle = match rt.call(Request::MemCreate {
        size,
        device,
        flags: u64::from(types),
    })? {
        Reply::MemHandle { handle } => handle,
        _ => return Err(CuError::UNKNOWN),
    };
    with(|v| {
        v.phys.insert(
            handle,
            Phys {
                size,
                types,
                device,
                refs: 1,
                maps: 0,
                block_id: new_id(),
            },
        )
    });
    Ok(handle)
}

fn release(handle: u64) -> CuResult {
    let rt = runtime()?;
    with(|v| {
        let p = v.live(handle)?;
        p.refs -= 1;
        v.maybe_release(rt, handle)
    })
}

fn map(ptr: u64, size: u64, offset: u64, handle: u64) -> CuResult {
    let rt = runtime()?;
    with(|v| {
        let phys = v.live(handle)?.size;
        if offset.checked_add(size).is_none_or(|e| e > phys) {
            log_debug(format!(
                "cuMemMap: {size:#x} bytes at offset {offset:#x} of a {phys:#x}-byte allocation"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        let r = v.reservation_of(ptr, size)?;
        let end = ptr + size;
        let clash = r
            .mappings
            .range(..end)
            .next_back()
            .is_some_and(|(&b, m)| b + m.size > ptr);
        if clash {
            log_debug(format!(
                "cuMemMap({ptr:#x}, {size:#x}): range already mapped"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        rt.call_empty(Request::MemMap {
            ptr,
            size,
            offset,
            handle,
            flags: 0,
        })?;
        let ctx = current_ctx();
        r.mappings.insert(ptr, Mapping { size, handle, ctx });
        set_perm(&mut r.perms, ptr, end, None);
        if let Some(p) = v.phys.get_mut(&handle) {
            p.maps += 1;
        }
        Ok(())
    })
}

/// `cuMemUnmap`: `[ptr, ptr + size)` must be exactly one or more whole mappings (the broker
/// unmaps them one by one).
fn unmap(ptr: u64, size: u64) -> CuResult {
    let rt = runtime()?;
    with(|v| {
        let r = v.reservation_of(ptr, size)?;
        let end = ptr + size;
        let mut cur = ptr;
        let mut keys = Vec::new();
        for (&b, m) in r.mappings.range(ptr..end) {
            if b != cur || b + m.size > end {
                break;
            }
            keys.push(b);
            cur = b + m.size;
        }
        if keys.is_empty() || cur != end {
            log_debug(format!(
                "cuMemUnmap({ptr:#x}, {size:#x}): not exactly a set of whole mappings"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        let mut result = Ok(());
        let mut handles = Vec::new();
        for b in keys {
            let Some(m) = r.mappings.get(&b).copied() else {
                continue;
            };
            if let Err(e) = rt.call_empty(Request::MemUnmap {
                ptr: b,
                size: m.size,
            }) {
                result = result.and(Err(e));
                continue;
            }
            r.mappings.remove(&b);
            set_perm(&mut r.perms, b, b + m.size, None);
            handles.push(m.handle);
        }
        for h in handles {
            if let Some(p) = v.phys.get_mut(&h) {
                p.maps = p.maps.saturating_sub(1);
            }
            if let Err(e) = v.maybe_release(rt, h) {
                log_debug(format!(
                    "releasing memory handle {h:#x} after its last unmap: {e}"
                ));
            }
        }
        result
    })
}

fn set_access(ptr: u64, size: u64, desc: *const CUmemAccessDesc, count: usize) -> CuResult {
    let rt = runtime()?;
    if desc.is_null() || count == 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let mut perm = None;
    let mut access = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: the caller passes `count` descriptors.
        let a = unsafe { desc.add(i).read_unaligned() };
        match a.location.type_ {
            LOCATION_DEVICE if rt.device(a.location.id).is_err() => {
                return Err(CuError::INVALID_DEVICE)
            }
            LOCATION_DEVICE if matches!(a.flags, 0 | 1 | 3) => perm = Some(a.flags as u8),
            _ => {
                log_debug(format!(
                    "cuMemSetAccess: location type {} / flags {} not supported for device memory",
                    a.location.type_, a.flags
                ));
                return Err(CuError::INVALID_VALUE);
            }
        }
        access.push(AccessDesc {
            location_type: a.location.type_ as u32,
            location_id: a.location.id,
            flags: a.flags as u32,
        });
    }
    let perm = perm.ok_or(CuError::INVALID_VALUE)?;
    with(|v| {
        let r = v.reservation_of(ptr, size)?;
        let end = ptr + size;
        if size == 0 || !covered(r, ptr, end, None) {
            log_debug(format!(
                "cuMemSetAccess({ptr:#x}, {size:#x}): range is not fully mapped"
            ));
            return Err(CuError::INVALID_VALUE);
        }
        rt.call_empty(Request::MemSetAccess { ptr, size, access })?;
        set_perm(&mut r.perms, ptr, end, Some(perm));
        Ok(())
    })
}

pub mod exports;
pub(crate) use exports::EXPORTS;
