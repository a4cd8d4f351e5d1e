//! [`Device`]'s synchronous operations: calls on the link, answered in a reply slot (the
//! asynchronous ones are [`super::ops`]).

use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use gpushare_client::proto::{DeviceInfo, ParamInfo};

use super::spawn::WorkerReady;
use super::{
    AccessFlags, Attachment, DResult, Device, DeviceError, Event, FunctionRaw, HostRegistration,
    Link, ModuleRaw, Peers, Stream, VmmAlloc,
};
use crate::worker::proto::{WorkerReply as R, WorkerRequest as Q};

/// A kernel found by name: its handle, its parameter layout (`None`: the driver cannot tell),
/// per parameter whether it may store through it (`None`: unknown).
pub type FoundFunction = (FunctionRaw, Option<Vec<ParamInfo>>, Option<Vec<bool>>);

pub(super) fn unexpected(call: &'static str) -> DeviceError {
    tracing::error!("{call}: unexpected worker reply");
    DeviceError::Invalid("unexpected worker reply")
}

impl Device {
    /// A device over a started worker's link.
    pub(super) fn new(link: Arc<Link>, ready: WorkerReady, peers: Arc<Peers>) -> Device {
        let peer_id = peers.next_id();
        Device {
            link,
            info: ready.info,
            driver_version: ready.driver_version,
            granularity: ready.granularity,
            backend: ready.backend,
            priorities: ready.priorities,
            streamed_copies: ready.streamed_copies,
            dedup: Default::default(),
            peers,
            peer_id,
        }
    }

    /// The link (state, group, watchdog).
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Whether the worker's driver can run streamed copies (`STREAMED_COPY`).
    pub fn streamed_copies(&self) -> bool {
        self.streamed_copies
    }

    /// The library the worker uses.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// `cuDriverGetVersion` of the worker's driver.
    pub fn driver_version(&self) -> i32 {
        self.driver_version
    }

    /// Device 0's snapshot (name, memory, attributes).
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// VMM allocation granularity in bytes (minimum).
    pub fn granularity(&self) -> u64 {
        self.granularity
    }

    /// Rounds `size` up to the allocation granularity.
    pub fn round_up(&self, size: u64) -> Option<u64> {
        let g = self.granularity.max(1);
        size.checked_add(g - 1).map(|s| s / g * g)
    }

    /// `cuCtxGetStreamPriorityRange`: (least, greatest), as the worker reported at start.
    pub fn stream_priority_range(&self) -> DResult<(i32, i32)> {
        Ok(self.priorities)
    }

    pub(super) fn call(&self, call: &'static str, req: Q) -> DResult<R> {
        self.link.call(call, &req)
    }

    fn done(&self, call: &'static str, req: Q) -> DResult<()> {
        self.call(call, req).map(|_| ())
    }

    fn value(&self, call: &'static str, req: Q) -> DResult<u64> {
        match self.call(call, req)? {
            R::Value(v) => Ok(v),
            _ => Err(unexpected(call)),
        }
    }

    fn pair(&self, call: &'static str, req: Q) -> DResult<(u64, u64)> {
        match self.call(call, req)? {
            R::Pair(a, b) => Ok((a, b)),
            _ => Err(unexpected(call)),
        }
    }

    fn flag(&self, call: &'static str, req: Q) -> DResult<bool> {
        match self.call(call, req)? {
            R::Flag(b) => Ok(b),
            _ => Err(unexpected(call)),
        }
    }

    /// Attaches a tenant's region (its memfd) to the worker, registered with the worker's driver
    /// so copies through its staging area are asynchronous DMA; if the driver refuses the
    /// registration, attached unregistered (copies are then pageable).
    pub fn attach(
        &self,
        fd: BorrowedFd<'_>,
        map: Arc<gpushare_client::os::Mapping>,
    ) -> DResult<Arc<Attachment>> {
        let len = map.len() as u64;
        let (id, registered) = match self.link.attach(fd, len, true) {
            Ok((id, _)) => (id, true),
            Err(e) if self.link.is_alive() => {
                tracing::warn!(
                    group = self.link.group(),
                    "region not registered with the driver ({e}); copies will be pageable"
                );
                (self.link.attach(fd, len, false)?.0, false)
            }
            Err(e) => return Err(e),
        };
        Ok(Arc::new(Attachment {
            id,
            map,
            link: Arc::clone(&self.link),
            registered,
        }))
    }

    /// Registers a host buffer (its sealed memfd) with the worker's driver (page-locked,
    /// device-mapped).
    pub fn host_register(
        &self,
        fd: BorrowedFd<'_>,
        map: Arc<gpushare_client::os::Mapping>,
    ) -> DResult<HostRegistration> {
        let (id, ptr) = self.link.attach(fd, map.len() as u64, true)?;
        let att = Arc::new(Attachment {
            id,
            map,
            link: Arc::clone(&self.link),
            registered: true,
        });
        let device_ptr = ptr.ok_or(DeviceError::Invalid("registration without an address"))?;
        Ok(HostRegistration { att, device_ptr })
    }

    /// Unregisters a host buffer (the worker's driver waits for work that uses it).
    pub fn host_unregister(&self, reg: HostRegistration) -> DResult<()> {
        drop(reg);
        Ok(())
    }

    /// `cuMemGetInfo`: (free, total) bytes.
    pub fn mem_get_info(&self) -> DResult<(u64, u64)> {
        self.pair("cuMemGetInfo", Q::MemGetInfo)
    }

    /// `cuMemGetAllocationGranularity` for device 0 (`option` 0 minimum, 1 recommended).
    pub fn allocation_granularity(&self, option: u32) -> DResult<u64> {
        self.value("cuMemGetAllocationGranularity", Q::Granularity { option })
    }

    /// `cuMemAddressReserve`.
    pub fn address_reserve(&self, size: u64, align: u64, addr: u64, flags: u64) -> DResult<u64> {
        self.value(
            "cuMemAddressReserve",
            Q::AddressReserve {
                size,
                align,
                addr,
                flags,
            },
        )
    }

    /// `cuMemAddressFree`.
    pub fn address_free(&self, ptr: u64, size: u64) -> DResult<()> {
        self.done("cuMemAddressFree", Q::AddressFree { ptr, size })
    }

    /// `cuMemCreate` (pinned, device 0).
    pub fn mem_create(&self, size: u64) -> DResult<u64> {
        self.value("cuMemCreate", Q::MemCreate { size })
    }

    /// `cuMemRelease`.
    pub fn mem_release(&self, handle: u64) -> DResult<()> {
        self.done("cuMemRelease", Q::MemRelease { handle })
    }

    /// `cuMemMap`.
    pub fn mem_map(&self, ptr: u64, size: u64, offset: u64, handle: u64) -> DResult<()> {
        self.done(
            "cuMemMap",
            Q::MemMap {
                ptr,
                size,
                offset,
                handle,
            },
        )
    }

    /// `cuMemUnmap`.
    pub fn mem_unmap(&self, ptr: u64, size: u64) -> DResult<()> {
        self.done("cuMemUnmap", Q::MemUnmap { ptr, size })
    }

    /// `cuMemSetAccess` for device 0.
    pub fn mem_set_access(&self, ptr: u64, size: u64, flags: AccessFlags) -> DResult<()> {
        let access = match flags {
            AccessFlags::None => 0,
            AccessFlags::Read => 1,
            AccessFlags::ReadWrite => 3,
        };
        self.done("cuMemSetAccess", Q::MemSetAccess { ptr, size, access })
    }

    /// A VMM-backed allocation of at least `size` bytes (reserve, create, map, read-write).
    pub fn vmm_alloc(&self, size: u64) -> DResult<VmmAlloc> {
        match self.call("cuMemCreate", Q::VmmAlloc { size })? {
            R::Alloc { ptr, size, handle } => Ok(VmmAlloc { ptr, size, handle }),
            _ => Err(unexpected("cuMemCreate")),
        }
    }

    /// Frees a [`Device::vmm_alloc`] allocation.
    pub fn vmm_free(&self, a: &VmmAlloc) -> DResult<()> {
        self.done(
            "cuMemUnmap",
            Q::VmmFree {
                ptr: a.ptr,
                size: a.size,
                handle: a.handle,
            },
        )
    }

    /// `cuModuleLoadData` of the image at `[offset, offset + len)` of an attachment, whose
    /// module variables may take at most `max_globals` bytes (more: `CUDA_ERROR_OUT_OF_MEMORY`
    /// before anything is allocated). Returns the module and the bytes its variables declare.
    pub fn module_load(
        &self,
        att: &Attachment,
        (offset, len): (u64, u64),
        max_globals: u64,
    ) -> DResult<(ModuleRaw, u64)> {
        let req = Q::ModuleLoad {
            region: att.id,
            offset,
            len,
            max_globals,
        };
        self.pair("cuModuleLoadData", req)
            .map(|(m, globals)| (ModuleRaw(m), globals))
    }

    /// `cuModuleUnload`.
    pub fn module_unload(&self, m: ModuleRaw) -> DResult<()> {
        self.done("cuModuleUnload", Q::ModuleUnload { module: m.0 })
    }

    /// `cuModuleGetFunction`, with the kernel's parameter layout (`None`: the driver cannot
    /// tell) and which parameters it may store through (`None`: unknown).
    pub fn module_get_function(&self, m: ModuleRaw, name: &CStr) -> DResult<FoundFunction> {
        let name = name.to_string_lossy().into_owned();
        match self.call(
            "cuModuleGetFunction",
            Q::ModuleGetFunction { module: m.0, name },
        )? {
            R::Function {
                function,
                params,
                may_write,
            } => Ok((FunctionRaw(function), params, may_write)),
            _ => Err(unexpected("cuModuleGetFunction")),
        }
    }

    /// `cuModuleGetGlobal`: (address, size).
    pub fn module_get_global(&self, m: ModuleRaw, name: &CStr) -> DResult<(u64, u64)> {
        let name = name.to_string_lossy().into_owned();
        self.pair(
            "cuModuleGetGlobal",
            Q::ModuleGetGlobal { module: m.0, name },
        )
    }

    /// `cuFuncGetAttribute`.
    pub fn func_get_attribute(&self, f: FunctionRaw, attribute: i32) -> DResult<i32> {
        match self.call(
            "cuFuncGetAttribute",
            Q::FuncGetAttribute {
                function: f.0,
                attribute,
            },
        )? {
            R::Int(v) => Ok(v),
            _ => Err(unexpected("cuFuncGetAttribute")),
        }
    }

    /// `cuFuncSetAttribute`.
    pub fn func_set_attribute(&self, f: FunctionRaw, attribute: i32, value: i32) -> DResult<()> {
        self.done(
            "cuFuncSetAttribute",
            Q::FuncSetAttribute {
                function: f.0,
                attribute,
                value,
            },
        )
    }

    /// A non-blocking stream (`cuStreamCreateWithPriority`); the priority is clamped to the device's range, as CUDA
    /// does.
    pub fn stream_create(self: &Arc<Self>, flags: u32, priority: i32) -> DResult<Arc<Stream>> {
        let (least, greatest) = self.priorities;
        let priority = priority.clamp(greatest.min(least), least.max(greatest));
        let id = self.value(
            "cuStreamCreateWithPriority",
            Q::StreamCreate { flags, priority },
        )?;
        Ok(Arc::new(Stream {
            dev: Arc::clone(self),
            id,
            priority,
            keep: Mutex::new(Vec::new()),
            failed: Arc::new(AtomicU32::new(0)),
        }))
    }

    /// `cuStreamQuery`: `Ok(true)` when idle.
    pub fn stream_query(&self, s: &Stream) -> DResult<bool> {
        self.flag("cuStreamQuery", Q::StreamQuery { stream: s.id })
    }

    /// `cuStreamSynchronize`; afterwards the host memory of earlier copies is released.
    pub fn stream_synchronize(&self, s: &Stream) -> DResult<()> {
        let kept = s.take_kept();
        let horizon = self.link.marker_horizon();
        let r = self.done("cuStreamSynchronize", Q::StreamSynchronize { stream: s.id });
        // The worker's stream is done; the completion markers it passed may still be on their
        // way to the events thread: a tenant told "synchronised" must find its slots raised.
        if r.is_ok() {
            self.link.wait_markers(s.id, horizon);
        }
        if r.is_err() {
            for m in kept {
                s.keep(m);
            }
        }
        r
    }

    /// `cuEventCreate`.
    pub fn event_create(self: &Arc<Self>, flags: u32) -> DResult<Arc<Event>> {
        let id = self.value("cuEventCreate", Q::EventCreate { flags })?;
        Ok(Arc::new(Event {
            dev: Arc::clone(self),
            id,
        }))
    }

    /// `cuEventQuery`: `Ok(true)` when complete.
    pub fn event_query(&self, e: &Event) -> DResult<bool> {
        self.flag("cuEventQuery", Q::EventQuery { event: e.id })
    }

    /// `cuEventSynchronize`.
    pub fn event_synchronize(&self, e: &Event) -> DResult<()> {
        self.done("cuEventSynchronize", Q::EventSynchronize { event: e.id })
    }

    /// `cuEventElapsedTime` in milliseconds.
    pub fn event_elapsed(&self, start: &Event, end: &Event) -> DResult<f32> {
        match self.call(
            "cuEventElapsedTime",
            Q::EventElapsed {
                start: start.id,
                end: end.id,
            },
        )? {
            R::Millis(ms) => Ok(ms),
            _ => Err(unexpected("cuEventElapsedTime")),
        }
    }

    /// `cuCtxGetLimit` (of the group's context).
    pub fn ctx_get_limit(&self, limit: u32) -> DResult<u64> {
        self.value("cuCtxGetLimit", Q::CtxGetLimit { limit })
    }

    /// `cuCtxSetLimit` (on the group's context: it applies to the group's tenants).
    pub fn ctx_set_limit(&self, limit: u32, value: u64) -> DResult<()> {
        self.done("cuCtxSetLimit", Q::CtxSetLimit { limit, value })
    }
}
