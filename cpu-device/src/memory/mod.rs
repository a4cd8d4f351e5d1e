//! Device memory of the one device: the address arena, allocations, VMM and host registrations.
//!
//! At `cuInit` the device reserves one contiguous range of host address space, the *arena*
//! (`arena::Arena`), eight times the modelled memory size. Every device allocation, every
//! mapped host allocation (`cuMemHostAlloc`) and every VMM reservation is carved out of it, so a
//! device pointer is a real host address: kernels and copies dereference it directly once the
//! page-permission table says the access is allowed. Memory outside the arena that the device may
//! touch is host memory registered with `cuMemHostRegister` (module `host`); those few ranges are
//! looked up on a slow path.
//!
//! - `cuMemAlloc` maps fresh anonymous pages at a page-aligned address (2 MiB-aligned from 2 MiB
//!   up), followed by an unmapped guard gap of [`GUARD`] bytes; freeing returns the pages to the
//!   OS and makes the range fault again. Allocations are charged against the profile's memory
//!   size (so `cuMemGetInfo` and out-of-memory behave like the modelled device) and belong to
//!   the context that made them.
//! - VMM (module `vmm`): physical allocations are memfds, mapped shared at reserved addresses, so
//!   exporting one as a file descriptor shares it with another process.
//!
//! Locks: the allocation maps sit behind an `RwLock` taken by API calls only; the kernel hot
//! path ([`DeviceMemory::translate`](gpushare_ptx::GlobalMemory::translate)) reads the
//! permission table without locking.

mod arena;
mod host;
mod vmm;

/// The operating-system layer (mappings, protections, memfds): `gpushare-os`.
use gpushare_os as os;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use gpushare_ptx::{GlobalMemory, MemFault};

use crate::error::{CuError, CuResult};
use crate::handles::{HandleKind, HandleTable};
use crate::profile::DeviceProfile;

use arena::{Arena, VaSpace};
pub use arena::{PERM_NONE, PERM_READ, PERM_RW};
pub use gpushare_os::PAGE;
use host::Registration;
use vmm::{Mapping, Physical};

/// VMM allocation granularity (minimum and recommended), as on Hopper.
pub const GRANULARITY: u64 = 2 << 20;
/// Unmapped gap after every allocation, so that overruns fault.
pub const GUARD: u64 = 64 << 10;

/// Which side of the unified address space a pointer is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Device memory (`cuMemAlloc`, managed, VMM) — and any other address inside the arena.
    Device,
    /// Page-locked host memory (`cuMemHostAlloc`, `cuMemAllocHost`, `cuMemHostRegister`).
    Host,
}

/// What the driver knows about a pointer (`cuPointerGetAttribute`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointerInfo {
    /// Device or host memory.
    pub kind: MemoryKind,
    /// Context that allocated, registered or mapped it.
    pub context: u64,
    /// Start of the allocation, registration or VMM reservation.
    pub range_start: u64,
    /// Size of the allocation, registration or VMM reservation.
    pub range_size: u64,
    /// Start of the mapping that backs the pointer (the allocation itself outside VMM).
    pub mapping_start: u64,
    /// Size of that mapping.
    pub mapping_size: u64,
    /// Process-unique id of the allocation (never reused).
    pub buffer_id: u64,
    /// Process-unique id of the physical memory behind the pointer.
    pub memory_block_id: u64,
    /// Allocated with `cuMemAllocManaged`.
    pub managed: bool,
    /// Backed by memory (false for a reserved but unmapped VMM address).
    pub mapped: bool,
    /// The host may dereference the pointer itself (host and managed memory).
    pub host_accessible: bool,
    /// Plain `cuMemAlloc` memory (what legacy CUDA IPC could share).
    pub legacy_ipc_capable: bool,
    /// `CU_POINTER_ATTRIBUTE_SYNC_MEMOPS` as last set.
    pub sync_memops: bool,
    /// Device access: [`PERM_NONE`], [`PERM_READ`] or [`PERM_RW`].
    pub access: u8,
    /// `CUmemAllocationHandleType` bits the backing allocation may be exported as.
    pub allowed_handle_types: u32,
}

/// One range of the arena handed out by the VA allocator.
struct Region {
    base: u64,
    /// Usable size in bytes (as requested).
    size: u64,
    /// Bytes of backing mapped at `base` by the region itself (0 for VMM reservations).
    mapped_len: u64,
    /// Address space owned, guard gap included.
    span: u64,
    ctx: u64,
    id: u64,
    sync_memops: bool,
    kind: RegionKind,
}

enum RegionKind {
    /// `cuMemAlloc*` (charged against the device's memory).
    Device { managed: bool },
    /// `cuMemHostAlloc` / `cuMemAllocHost` with its flags.
    Host { flags: u32 },
    /// `cuMemAddressReserve`, with the mappings inside it by start address.
    Reserved { mappings: BTreeMap<u64, Mapping> },
}

struct State {
    va: VaSpace,
    regions: BTreeMap<u64, Region>,
}

impl State {
    /// The region whose address space (guard included) holds `addr`.
    fn region_at(&self, addr: u64) -> Option<&Region> {
        let (_, r) = self.regions.range(..=addr).next_back()?;
        (addr - r.base < r.span).then_some(r)
    }

    fn region_at_mut(&mut self, addr: u64) -> Option<&mut Region> {
        let (_, r) = self.regions.range_mut(..=addr).next_back()?;
        (addr - r.base < r.span).then_some(r)
    }
}

/// Device memory of the one device.
pub struct DeviceMemory {
    arena: Arena,
    total: u64,
    used: AtomicU64,
    next_id: AtomicU64,
    state: RwLock<State>,
    /// Registered host ranges outside the arena, sorted by start, never overlapping.
    registered: RwLock<Vec<Registration>>,
    physical: HandleTable<Physical>,
}

fn round_up(v: u64, to: u64) -> Option<u64> {
    Some(v.checked_add(to - 1)? & !(to - 1))
}

impl DeviceMemory {
    /// Reserves the arena for `profile`: eight times its memory size, room for VMM users that
    /// reserve more address space than they map (PyTorch's expandable segments reserve about
    /// 1.1x the device per stream); less if that much address space is refused (`ulimit -v`).
    /// 2 MiB-aligned.
    pub fn new(profile: &DeviceProfile) -> CuResult<Self> {
        let total = profile.total_memory;
        let mut last_err = None;
        for factor in [8, 4, 2, 1] {
            let len = round_up(total.saturating_mul(factor), GRANULARITY)
                .ok_or(CuError::OUT_OF_MEMORY)?;
            match Arena::new(len, GRANULARITY) {
                Ok(arena) => return Ok(Self::with_arena(arena, total)),
                Err(e) => last_err = Some(e),
            }
        }
        tracing::error!("cannot reserve the device address arena: {last_err:?}");
        Err(CuError::OUT_OF_MEMORY)
    }

    fn with_arena(arena: Arena, total: u64) -> Self {
        let va = VaSpace::new(arena.base(), arena.len());
        DeviceMemory {
            arena,
            total,
            used: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            state: RwLock::new(State {
                va,
                regions: BTreeMap::new(),
            }),
            registered: RwLock::new(Vec::new()),
            physical: HandleTable::new(HandleKind::MemHandle),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Modelled device memory, bytes (`cuMemGetInfo` total).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes charged by live allocations (device allocations and VMM physical memory).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Free device memory, bytes (`cuMemGetInfo` free).
    pub fn free_bytes(&self) -> u64 {
        self.total.saturating_sub(self.used_bytes())
    }

    /// The arena's address range `(base, len)`: every device pointer lies inside it.
    pub fn arena_range(&self) -> (u64, u64) {
        (self.arena.base(), self.arena.len())
    }

    /// Charges `bytes` against the device's memory, or fails with `OUT_OF_MEMORY`.
    fn charge(&self, bytes: u64) -> CuResult {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|&n| n <= self.total)
            })
            .map(|_| ())
            .map_err(|used| {
                tracing::debug!(
                    "out of device memory: {bytes} bytes requested, {} of {} free",
                    self.total.saturating_sub(used),
                    self.total
                );
                CuError::OUT_OF_MEMORY
            })
    }

    fn refund(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Carves a region of `size` bytes out of the arena and backs it with zeroed read-write pages.
    fn alloc_region(&self, ctx: u64, size: u64, kind: RegionKind) -> CuResult<u64> {
        if size == 0 {
            tracing::debug!("allocation of 0 bytes");
            return Err(CuError::INVALID_VALUE);
        }
        let charged = matches!(kind, RegionKind::Device { .. });
        let mapped = round_up(size, PAGE).ok_or(CuError::OUT_OF_MEMORY)?;
        let span = mapped.checked_add(GUARD).ok_or(CuError::OUT_OF_MEMORY)?;
        if charged {
            self.charge(mapped)?;
        }
        let align = if mapped >= GRANULARITY {
            GRANULARITY
        } else {
            PAGE
        };
        let mut st = self.write();
        let Some(base) = st.va.alloc(span, align) else {
            drop(st);
            if charged {
                self.refund(mapped);
            }
            tracing::warn!("device address arena exhausted ({size} bytes requested)");
            return Err(CuError::OUT_OF_MEMORY);
        };
        if let Err(e) = self.arena.map_anonymous(base, mapped, PERM_RW) {
            st.va.free(base, span);
            drop(st);
            if charged {
                self.refund(mapped);
            }
            tracing::warn!("cannot back a {size}-byte allocation: {e}");
            return Err(CuError::OUT_OF_MEMORY);
        }
        prefer_huge_pages(base, mapped);
        let id = self.new_id();
        let page_locked = matches!(kind, RegionKind::Host { .. });
        st.regions.insert(
            base,
            Region {
                base,
                size,
                mapped_len: mapped,
                span,
                ctx,
                id,
                sync_memops: false,
                kind,
            },
        );
        drop(st);
        if page_locked {
            self.make_resident(base, mapped)?;
        }
        Ok(base)
    }

    /// Makes the new page-locked allocation at `base` resident, as CUDA's is: its first use (a
    /// copy, a kernel) takes no page faults. Outside the lock: nobody has the pointer yet. When
    /// the host has no room for it the allocation is undone, `OUT_OF_MEMORY` (as when CUDA
    /// cannot pin); on a kernel without `MADV_POPULATE_WRITE` the pages fault in at first use.
    fn make_resident(&self, base: u64, len: u64) -> CuResult {
        match os::populate(base, len) {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::debug!("page-locked allocation {base:#x} left to fault in");
                Ok(())
            }
            Err(e) => {
                tracing::warn!("cannot make a {len}-byte page-locked allocation resident: {e}");
                self.remove_region(&mut self.write(), base);
                Err(CuError::OUT_OF_MEMORY)
            }
        }
    }

    /// Removes a region (not a VMM reservation) and gives back its pages and address space.
    fn remove_region(&self, st: &mut State, base: u64) {
        let Some(r) = st.regions.remove(&base) else {
            return;
        };
        if r.mapped_len > 0 {
            if let Err(e) = self.arena.unmap(r.base, r.mapped_len) {
                tracing::error!("cannot unmap {:#x}+{:#x}: {e}", r.base, r.mapped_len);
            }
        }
        st.va.free(r.base, r.span);
        if matches!(r.kind, RegionKind::Device { .. }) {
            self.refund(r.mapped_len);
        }
    }

    /// `cuMemAlloc`: `size` bytes of zeroed device memory owned by context `ctx`.
    pub fn alloc(&self, ctx: u64, size: u64) -> CuResult<u64> {
        self.alloc_region(ctx, size, RegionKind::Device { managed: false })
    }

    /// `cuMemAllocManaged`: device memory the host can also use at the same address.
    pub fn alloc_managed(&self, ctx: u64, size: u64) -> CuResult<u64> {
        self.alloc_region(ctx, size, RegionKind::Device { managed: true })
    }

    /// `cuMemFree`: `ptr` must be the base of a live device allocation.
    pub fn free(&self, ptr: u64) -> CuResult {
        let mut st = self.write();
        match st.regions.get(&ptr) {
            Some(Region {
                kind: RegionKind::Device { .. },
                ..
            }) => {
                self.remove_region(&mut st, ptr);
                Ok(())
            }
            _ => {
                tracing::debug!("cuMemFree({ptr:#x}): not the base of a device allocation");
                Err(CuError::INVALID_VALUE)
            }
        }
    }

    /// `cuMemGetAddressRange`: base and size of the allocation (or VMM mapping) holding `ptr`;
    /// `NOT_FOUND` elsewhere.
    pub fn address_range(&self, ptr: u64) -> CuResult<(u64, u64)> {
        let st = self.read();
        let found = st.region_at(ptr).and_then(|r| match &r.kind {
            RegionKind::Device { .. } | RegionKind::Host { .. } => {
                (ptr < r.base + r.size).then_some((r.base, r.size))
            }
            RegionKind::Reserved { mappings } => {
                vmm::mapping_at(mappings, ptr).map(|m| (m.base, m.size))
            }
        });
        found.ok_or_else(|| {
            tracing::debug!("cuMemGetAddressRange({ptr:#x}): not in any allocation");
            CuError::NOT_FOUND
        })
    }

    /// Host pointer for the device range `[ptr, ptr + len)`, which must lie inside one
    /// allocation (or one VMM reservation, fully mapped) with the access needed, or inside
    /// registered host memory. `INVALID_VALUE` otherwise — including a write to read-only memory.
    pub fn device_range(&self, ptr: u64, len: u64, write: bool) -> CuResult<*mut u8> {
        let need = if write { PERM_RW } else { PERM_READ };
        let end = ptr.checked_add(len);
        let ok = if self.arena.contains(ptr) {
            let st = self.read();
            st.region_at(ptr).is_some_and(|r| {
                let inside = end.is_some_and(|e| e <= r.base + r.size);
                match r.kind {
                    RegionKind::Device { .. } | RegionKind::Host { .. } => inside,
                    RegionKind::Reserved { .. } => inside && self.arena.allows(ptr, len, need),
                }
            })
        } else {
            self.registered_allows(ptr, len, write)
        };
        if ok {
            Ok(ptr as *mut u8)
        } else {
            tracing::debug!(
                "device range {ptr:#x}+{len} is not inside one allocation with {} access",
                if write { "write" } else { "read" }
            );
            Err(CuError::INVALID_VALUE)
        }
    }

    /// True when the host range lies in page-locked memory (`cuMemHostAlloc`/`cuMemAllocHost`
    /// or a `cuMemHostRegister`ed range): the timing model charges pinned bandwidth for it.
    pub fn host_is_pinned(&self, ptr: *const u8, len: usize) -> bool {
        let p = ptr as u64;
        let Some(end) = p.checked_add(len as u64) else {
            return false;
        };
        if self.arena.contains(p) {
            let st = self.read();
            st.region_at(p).is_some_and(|r| {
                matches!(r.kind, RegionKind::Host { .. }) && end <= r.base + r.size
            })
        } else {
            self.registered_allows(p, len as u64, false)
        }
    }

    /// Which side a pointer is on, for unified-addressing copies: `Host` for page-locked host
    /// memory, `Device` for every other address inside the arena (also unmapped ones, so that a
    /// copy through them fails the [`device_range`](Self::device_range) check instead of touching
    /// the host), `None` for memory CUDA does not know (pageable host memory).
    pub fn classify(&self, ptr: u64) -> Option<MemoryKind> {
        if self.arena.contains(ptr) {
            let st = self.read();
            match st.region_at(ptr) {
                Some(r) if matches!(r.kind, RegionKind::Host { .. }) && ptr < r.base + r.size => {
                    Some(MemoryKind::Host)
                }
                _ => Some(MemoryKind::Device),
            }
        } else if self.registration(ptr).is_some() {
            Some(MemoryKind::Host)
        } else {
            None
        }
    }

    /// Everything known about `ptr`, or `None` for memory CUDA does not know.
    pub fn pointer_info(&self, ptr: u64) -> Option<PointerInfo> {
        if !self.arena.contains(ptr) {
            return self.registration(ptr);
        }
        let st = self.read();
        let r = st.region_at(ptr)?;
        if ptr >= r.base + r.size {
            return None;
        }
        let mut info = PointerInfo {
            kind: MemoryKind::Device,
            context: r.ctx,
            range_start: r.base,
            range_size: r.size,
            mapping_start: r.base,
            mapping_size: r.size,
            buffer_id: r.id,
            memory_block_id: r.id,
            managed: false,
            mapped: true,
            host_accessible: false,
            legacy_ipc_capable: false,
            sync_memops: r.sync_memops,
            access: self.arena.perm_at(ptr),
            allowed_handle_types: 0,
        };
        match &r.kind {
            RegionKind::Device { managed } => {
                info.managed = *managed;
                info.host_accessible = *managed;
                info.legacy_ipc_capable = !*managed;
            }
            RegionKind::Host { .. } => {
                info.kind = MemoryKind::Host;
                info.host_accessible = true;
            }
            RegionKind::Reserved { mappings } => match vmm::mapping_at(mappings, ptr) {
                Some(m) => {
                    info.context = m.ctx;
                    info.mapping_start = m.base;
                    info.mapping_size = m.size;
                    info.memory_block_id = m.phys.block_id;
                    info.allowed_handle_types = m.phys.handle_types;
                }
                None => info.mapped = false,
            },
        }
        Some(info)
    }

    /// `cuPointerSetAttribute(SYNC_MEMOPS)`: recorded (every synchronous operation already
    /// synchronises on this device). `INVALID_VALUE` for memory CUDA does not know.
    pub fn set_sync_memops(&self, ptr: u64, on: bool) -> CuResult {
        if self.arena.contains(ptr) {
            let mut st = self.write();
            if let Some(r) = st.region_at_mut(ptr).filter(|r| ptr < r.base + r.size) {
                r.sync_memops = on;
                return Ok(());
            }
        } else if self.set_registration_sync_memops(ptr, on) {
            return Ok(());
        }
        tracing::debug!("cuPointerSetAttribute({ptr:#x}): not CUDA memory");
        Err(CuError::INVALID_VALUE)
    }

    /// Frees every allocation, host allocation and host registration owned by context `ctx`
    /// (VMM reservations and physical allocations are process-wide and stay).
    pub fn release_context(&self, ctx: u64) {
        let mut st = self.write();
        let victims: Vec<u64> = st
            .regions
            .values()
            .filter(|r| r.ctx == ctx && !matches!(r.kind, RegionKind::Reserved { .. }))
            .map(|r| r.base)
            .collect();
        for base in victims {
            self.remove_region(&mut st, base);
        }
        drop(st);
        self.unregister_context(ctx);
    }

    #[cold]
    #[inline(never)]
    fn translate_slow(&self, addr: u64, len: u64, write: bool) -> Result<*mut u8, MemFault> {
        if !self.arena.contains(addr) && self.registered_allows(addr, len.max(1), write) {
            return Ok(addr as *mut u8);
        }
        Err(MemFault { addr, len, write })
    }
}

/// Asks for huge pages behind a new allocation of at least [`GRANULARITY`] (which the arena
/// aligns to 2 MiB): its first touch then costs a fault per 2 MiB instead of one per page — on a
/// 2-vCPU virtual machine, 94–110 ms instead of 268–293 for 512 MiB of fresh device memory —
/// and kernels take fewer TLB misses. A GPU's device memory has no first touch at all; this is
/// the nearest the CPU device gets without committing memory up front. Pages are still
/// committed as they are touched, so a modelled device larger than the host keeps working. VMM
/// memory (memfds) is not advised: measured, and not kept (docs/cpu-device.md, "Memory").
fn prefer_huge_pages(base: u64, len: u64) {
    if len < GRANULARITY {
        return;
    }
    if let Err(e) = os::advise_huge_pages(base, len) {
        tracing::debug!("no huge pages for {base:#x}+{len:#x}: {e}");
    }
}

impl GlobalMemory for DeviceMemory {
    /// Kernel accesses: inside the arena, a bounds check and one table lookup per page touched;
    /// outside it, a search of the registered host ranges.
    #[inline]
    fn translate(&self, addr: u64, len: u64, write: bool) -> Result<*mut u8, MemFault> {
        let need = if write { PERM_RW } else { PERM_READ };
        if self.arena.allows(addr, len, need) {
            return Ok(addr as *mut u8);
        }
        self.translate_slow(addr, len, write)
    }
}
