//! A tenant's tables: contexts, modules, functions, streams, events, VMM handles, host buffers
//! and memory — and the per-tenant legacy default stream semantics.
//!
//! # Legacy default stream, per tenant
//!
//! Every broker stream is non-blocking at the driver, so tenants never synchronise with each
//! other. Each tenant has its own "legacy" stream (handle 0) and CUDA's rules are rebuilt with
//! events among the tenant's own streams: before work goes to the legacy stream, it waits for the
//! work already submitted to each of the tenant's *blocking* streams (those created without
//! `CU_STREAM_NON_BLOCKING`); before work goes to a blocking stream, it waits for the work already
//! submitted to the legacy stream. Each stream has a join event, recorded on it and waited for
//! by the other side ([`crate::work::Op::Join`]); work counters skip joins that would add no
//! ordering.

use std::collections::HashMap;
use std::sync::Arc;

use gpushare_client::code::{self, CuCode};
use gpushare_client::proto::ParamInfo;

use crate::device::{Event, FunctionRaw, HostRegistration, ModuleRaw, Stream};
use crate::handles::{HandleError, Kind, Table};
use crate::memory::{PhysAlloc, TenantMemory};
use crate::work::Op;

/// `CU_STREAM_NON_BLOCKING`
pub const STREAM_NON_BLOCKING: u32 =
    cudarc::driver::sys::CUstream_flags_enum::CU_STREAM_NON_BLOCKING as u32;
/// `CU_STREAM_LEGACY` as a handle value: the legacy default stream, like 0.
pub const STREAM_LEGACY_HANDLE: u64 = 0x1;
/// Join events: `CU_EVENT_DISABLE_TIMING`.
pub const JOIN_EVENT_FLAGS: u32 = 0x2;

/// Errors of the tenant tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A bad handle.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// Every stream completion slot is in use.
    #[error("no free stream completion slot")]
    NoSlot,
}

impl StateError {
    /// The `CUresult` to report.
    pub fn code(&self) -> CuCode {
        match self {
            StateError::Handle(h) => h.code(),
            StateError::NoSlot => code::ERROR_OUT_OF_MEMORY,
        }
    }
}

/// One of the tenant's streams (or its legacy stream).
#[derive(Debug)]
pub struct TenantStream {
    /// The driver stream.
    pub dev: Arc<Stream>,
    /// Its completion slot in the region.
    pub slot: u32,
    /// Synchronises with the legacy stream (created without `CU_STREAM_NON_BLOCKING`).
    pub blocking: bool,
    /// Recorded on this stream when another stream must wait for it.
    pub join_event: Arc<Event>,
    /// Operations submitted to this stream.
    pub work: u64,
    /// The legacy stream's `work` when this stream last waited for it.
    pub joined_legacy_at: u64,
    /// This stream's `work` when the legacy stream last waited for it.
    pub legacy_joined_at: u64,
}

impl TenantStream {
    /// A stream with no work yet.
    pub fn new(dev: Arc<Stream>, slot: u32, blocking: bool, join_event: Arc<Event>) -> Self {
        TenantStream {
            dev,
            slot,
            blocking,
            join_event,
            work: 0,
            joined_legacy_at: 0,
            legacy_joined_at: 0,
        }
    }
}

/// A loaded module.
#[derive(Debug)]
pub struct ModuleEntry {
    /// Driver handle.
    pub raw: ModuleRaw,
    /// Bytes of its image (counted in [`TenantState::module_bytes`]).
    pub image_bytes: u64,
    /// Bytes its variables declare (charged to the tenant's memory).
    pub globals: u64,
}

/// A kernel.
#[derive(Debug)]
pub struct FunctionEntry {
    /// Driver handle.
    pub raw: FunctionRaw,
    /// Tenant handle of its module.
    pub module: u64,
    /// Name (also the scheduler's cost-model key).
    pub name: Arc<str>,
    /// Parameter layout (empty when unknown).
    pub layout: Arc<[ParamInfo]>,
    /// The kernel's block-range variant, when its module has one (kernel slicing).
    pub sliced: Option<Arc<crate::work::SlicedFunction>>,
    /// Per parameter, whether the kernel may store through it (from its PTX; `None`:
    /// unknown, every pointer parameter may be written). Deduplication's copy-on-write.
    pub may_write: Option<Arc<[bool]>>,
}

/// A context handle (an alias of the broker's shared context).
#[derive(Debug)]
pub struct ContextEntry {
    /// True for the tenant's primary context handle.
    pub primary: bool,
}

/// A registered host buffer.
#[derive(Debug)]
pub struct HostRegionEntry {
    /// The registration (keeps the mapping).
    pub reg: HostRegistration,
    /// Size in bytes.
    pub size: u64,
}

/// Everything a tenant has created.
pub struct TenantState {
    /// Contexts.
    pub contexts: Table<ContextEntry>,
    /// The primary context handle and its retain count.
    pub primary: Option<(u64, u32)>,
    /// Modules.
    pub modules: Table<ModuleEntry>,
    /// Bytes of the images of `modules`, together (`max_module_bytes`).
    pub module_bytes: u64,
    /// Kernels.
    pub functions: Table<FunctionEntry>,
    /// Streams (not the legacy one).
    pub streams: Table<TenantStream>,
    /// The legacy default stream (handle 0).
    pub legacy: TenantStream,
    /// Events.
    pub events: Table<Arc<Event>>,
    /// `MemCreate` allocations.
    pub phys: Table<PhysAlloc>,
    /// Owned device memory.
    pub memory: TenantMemory,
    /// Its deduplicable allocations (`None`: the policy took the tenant out of dedup).
    pub granules: Option<crate::dedup::TenantGranules>,
    /// Registered host buffers by id.
    pub host_regions: HashMap<u32, HostRegionEntry>,
    /// The staging area's registration with the driver (`None`: the driver refused it, copies
    free_slots: Vec<u32>,
}

impl TenantState {
    /// Empty tables for session `session`, with its legacy stream, `slots` completion slots and
    /// the staging area's registration.
    pub fn new(session: u64, legacy: TenantStream, slots: u32, quota: u64) -> TenantState {
        TenantState {
            contexts: Table::new(Kind::Context, session),
            primary: None,
            modules: Table::new(Kind::Module, session),
            module_bytes: 0,
            functions: Table::new(Kind::Function, session),
            streams: Table::new(Kind::Stream, session),
            legacy,
            events: Table::new(Kind::Event, session),
            phys: Table::new(Kind::MemHandle, session),
            memory: TenantMemory::new(quota),
            granules: None,
            host_regions: HashMap::new(),
            free_slots: (1..slots).rev().collect(),
        }
    }

    /// True when `h` names the legacy default stream.
    pub fn is_legacy(h: u64) -> bool {
        h == 0 || h == STREAM_LEGACY_HANDLE
    }

    /// The stream `h` names.
    pub fn stream(&self, h: u64) -> Result<&TenantStream, StateError> {
        if Self::is_legacy(h) {
            Ok(&self.legacy)
        } else {
            Ok(self.streams.get(h)?)
        }
    }

    /// A free completion slot.
    pub fn take_slot(&mut self) -> Result<u32, StateError> {
        self.free_slots.pop().ok_or(StateError::NoSlot)
    }

    /// Returns a completion slot (the slot's value only grows, so reuse is safe: every later
    /// command has a larger sequence number).
    pub fn put_slot(&mut self, slot: u32) {
        self.free_slots.push(slot);
    }

    /// Prepares submitting one operation to stream `h`: returns the driver stream, its slot,
    /// and the joins that must be submitted first (legacy-stream semantics), and counts the
    /// work.
    pub fn prepare(&mut self, h: u64) -> Result<(Arc<Stream>, u32, Vec<Op>), StateError> {
        let mut joins = Vec::new();
        if Self::is_legacy(h) {
            for (_, s) in self.streams.iter_mut() {
                if s.blocking && s.work > s.legacy_joined_at {
                    joins.push(Op::Join {
                        waiter: Arc::clone(&self.legacy.dev),
                        from: Arc::clone(&s.dev),
                        event: Arc::clone(&s.join_event),
                    });
                    s.legacy_joined_at = s.work;
                }
            }
            self.legacy.work += 1;
            Ok((Arc::clone(&self.legacy.dev), self.legacy.slot, joins))
        } else {
            let legacy_work = self.legacy.work;
            let s = self.streams.get_mut(h)?;
            if s.blocking && legacy_work > s.joined_legacy_at {
                joins.push(Op::Join {
                    waiter: Arc::clone(&s.dev),
                    from: Arc::clone(&self.legacy.dev),
                    event: Arc::clone(&self.legacy.join_event),
                });
                s.joined_legacy_at = legacy_work;
            }
            s.work += 1;
            Ok((Arc::clone(&s.dev), s.slot, joins))
        }
    }

    /// Adds a loaded module: its image's bytes counted, its variables' bytes charged (which
    /// the caller checked fit). Returns its handle.
    pub fn add_module(&mut self, entry: ModuleEntry) -> Result<u64, StateError> {
        let (image, globals) = (entry.image_bytes, entry.globals);
        let h = self.modules.insert(entry)?;
        self.module_bytes = self.module_bytes.saturating_add(image);
        self.memory.charge(globals);
        Ok(h)
    }

    /// Removes module `h` with its kernels and its globals' ranges, uncounting its image and
    /// uncharging its variables.
    pub fn remove_module(&mut self, h: u64) -> Result<ModuleEntry, StateError> {
        let m = self.modules.remove(h)?;
        self.functions.extract(|f| f.module == h);
        self.memory
            .remove_ranges(|r| r.owner == crate::memory::Owner::Global { module: h });
        self.module_bytes = self.module_bytes.saturating_sub(m.image_bytes);
        self.memory.uncharge(m.globals);
        Ok(m)
    }

    /// Every driver stream of the tenant (legacy first).
    pub fn all_streams(&self) -> Vec<Arc<Stream>> {
        std::iter::once(Arc::clone(&self.legacy.dev))
            .chain(self.streams.iter().map(|(_, s)| Arc::clone(&s.dev)))
            .collect()
    }
}
