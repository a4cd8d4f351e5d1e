//! Requests: the calls that return a value (the "reply lane").
//!
//! Handles (`ctx`, `module`, `function`, `stream`, `event`, `handle`) are opaque u64 values the
//! broker handed out; device pointers are the broker's real device addresses (kernel arguments
//! pass through untouched). Host bytes never travel in a request: they are named by a
//! [`HostSpan`] in shared memory.
//!
//! Every request is declared once, in the `requests!` table below ([`table`]), in its API
//! family, with its fields, the [`Reply`] variant of a success and whether the broker may run it
//! on its ring thread (`inline`) or on the tenant's executor (`executor`). The flat [`Request`]
//! (the wire format: postcard, variant index = declaration order, so new requests are only ever
//! appended), the per-family enums ([`MemoryRequest`], ...), [`Routed`] / [`Request::route`],
//! [`Request::family`], [`Request::runs_inline`] and [`REQUESTS`] are generated from it;
//! `docs/protocol.md` §3 holds [`request_table`]'s rendering (a unit test compares them).

pub mod table;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use super::Reply;
use table::requests;
pub use table::{request_table, RequestInfo};

/// Host region id of the tenant region's staging area.
pub const STAGING_REGION: u32 = 0;

/// Bytes in shared host memory: the staging area (`region` 0, offset from the start of the
/// staging area) or a registered host buffer (`region` as given in `HostRegister`, offset from
/// the start of the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpan {
    /// Region id ([`STAGING_REGION`] or a `HostRegister` id).
    pub region: u32,
    /// Offset inside the region.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// One entry of `cuMemSetAccess`'s descriptor list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDesc {
    /// `CUmemLocationType`.
    pub location_type: u32,
    /// Location id (device ordinal).
    pub location_id: i32,
    /// `CUmemAccess_flags`.
    pub flags: u32,
}

/// A request with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Unique per session, non-zero; the reply carries it back. (Field order is part of the
    /// protocol: `id` comes first so a broker can answer requests it cannot decode.)
    pub id: u64,
    /// Sequence number of the last ring command the tenant pushed before this request. On the
    /// socket lane the broker first consumes the ring up to here, so the request is ordered after
    /// earlier asynchronous work; on the ring lane (CALL records) ordering is implicit.
    pub fence: u64,
    /// The call.
    pub body: Request,
}

requests! {
    /// The session itself.
    session: Session(SessionRequest) {
        /// Liveness / latency probe.
        Ping => Pong, inline;
    }
    /// Device queries.
    device: Device(DeviceRequest) {
        /// Fresh snapshot of a device.
        GetDeviceInfo {
            /// Device ordinal.
            device: i32,
        } => Device, inline;
    }
    /// Contexts (every tenant context aliases the broker's one shared context), limits.
    context: Context(ContextRequest) {
        /// `cuCtxCreate`.
        CtxCreate {
            /// Device ordinal.
            device: i32,
            /// Context flags.
            flags: u32,
        } => Context, inline;
        /// `cuCtxDestroy`.
        CtxDestroy {
            /// Context handle.
            ctx: u64,
        } => Empty, inline;
        /// `cuDevicePrimaryCtxRetain`.
        PrimaryCtxRetain {
            /// Device ordinal.
            device: i32,
        } => Context, inline;
        /// `cuDevicePrimaryCtxRelease`.
        PrimaryCtxRelease {
            /// Device ordinal.
            device: i32,
        } => Empty, inline;
        /// `cuCtxSynchronize`: waits for all of the tenant's work in the context.
        CtxSynchronize {
            /// Context handle.
            ctx: u64,
        } => Empty, executor;
        /// `cuCtxGetLimit`.
        CtxGetLimit {
            /// `CUlimit`.
            limit: u32,
        } => Value, inline;
        /// `cuCtxSetLimit`.
        CtxSetLimit {
            /// `CUlimit`.
            limit: u32,
            /// New value.
            value: u64,
        } => Empty, executor;
        /// `cuCtxGetStreamPriorityRange`.
        CtxGetStreamPriorityRange => PriorityRange, inline;
    }
    /// Device memory allocations.
    memory: Memory(MemoryRequest) {
        /// `cuMemAlloc`.
        MemAlloc {
            /// Bytes.
            size: u64,
        } => DevicePtr, inline;
        /// `cuMemAllocPitch`.
        MemAllocPitch {
            /// Row width in bytes.
            width: u64,
            /// Rows.
            height: u64,
            /// Element size (4, 8 or 16).
            element_size: u32,
        } => Pitched, inline;
        /// `cuMemFree`.
        MemFree {
            /// Device pointer.
            ptr: u64,
        } => Empty, executor;
        /// `cuMemGetInfo` (the tenant's view: its quota).
        MemGetInfo => MemInfo, inline;
        /// `cuMemGetAddressRange`.
        MemGetAddressRange {
            /// Any address inside an allocation.
            ptr: u64,
        } => AddressRange, inline;
    }
    /// Pointer attributes.
    pointer: Pointer(PointerRequest) {
        /// `cuPointerGetAttribute`.
        PointerGetAttribute {
            /// Device pointer.
            ptr: u64,
            /// `CUpointer_attribute`.
            attribute: u32,
        } => Value, inline;
    }
    /// Pinned host memory: buffers shared with the broker.
    host_memory: HostMemory(HostMemoryRequest) {
        /// Registers a host buffer (pinned host memory: `cuMemHostAlloc`, `cuMemAllocHost`,
        /// `cuMemHostRegister` of shared memory). Socket lane only: the buffer's sealed memfd
        /// rides with the frame.
        HostRegister {
            /// Tenant-chosen id, non-zero, unique in the session.
            region: u32,
            /// Size of the buffer in bytes.
            size: u64,
            /// `CU_MEMHOSTALLOC_*` flags.
            flags: u32,
        } => HostRegion, executor;
        /// Unregisters a host buffer.
        HostUnregister {
            /// Id from `HostRegister`.
            region: u32,
        } => Empty, executor;
    }
    /// Virtual memory management.
    vmm: Vmm(VmmRequest) {
        /// `cuMemAddressReserve`.
        MemAddressReserve {
            /// Bytes.
            size: u64,
            /// Alignment (0: default).
            alignment: u64,
            /// Requested address (0: any).
            addr: u64,
            /// Flags.
            flags: u64,
        } => DevicePtr, inline;
        /// `cuMemAddressFree`.
        MemAddressFree {
            /// Reserved address.
            ptr: u64,
            /// Bytes.
            size: u64,
        } => Empty, inline;
        /// `cuMemCreate` on a device.
        MemCreate {
            /// Bytes (multiple of the granularity).
            size: u64,
            /// Device ordinal.
            device: i32,
            /// `CUmemAllocationProp` flags / handle types, packed.
            flags: u64,
        } => MemHandle, inline;
        /// `cuMemRelease`.
        MemRelease {
            /// Allocation handle.
            handle: u64,
        } => Empty, inline;
        /// `cuMemMap`.
        MemMap {
            /// Reserved address.
            ptr: u64,
            /// Bytes.
            size: u64,
            /// Offset into the allocation.
            offset: u64,
            /// Allocation handle.
            handle: u64,
            /// Flags.
            flags: u64,
        } => Empty, inline;
        /// `cuMemUnmap`.
        MemUnmap {
            /// Mapped address.
            ptr: u64,
            /// Bytes.
            size: u64,
        } => Empty, executor;
        /// `cuMemSetAccess`.
        MemSetAccess {
            /// Mapped address.
            ptr: u64,
            /// Bytes.
            size: u64,
            /// Access descriptors.
            access: Vec<AccessDesc>,
        } => Empty, inline;
        /// `cuMemGetAllocationGranularity`.
        MemGetAllocationGranularity {
            /// Device ordinal.
            device: i32,
            /// `CUmemAllocationGranularity_flags`.
            option: u32,
        } => Value, inline;
    }
    /// Synchronous copies and memsets.
    copy: Copy(CopyRequest) {
        /// `cuMemcpyHtoD`: host bytes come from shared memory.
        MemcpyHtoD {
            /// Device destination.
            dst: u64,
            /// Host source.
            src: HostSpan,
        } => Empty, executor;
        /// `cuMemcpyDtoH`: the broker writes into shared memory.
        MemcpyDtoH {
            /// Host destination.
            dst: HostSpan,
            /// Device source.
            src: u64,
        } => Empty, executor;
        /// `cuMemcpyDtoD`.
        MemcpyDtoD {
            /// Device destination.
            dst: u64,
            /// Device source.
            src: u64,
            /// Bytes.
            len: u64,
        } => Empty, executor;
        /// `cuMemsetD8/16/32` and the 2D forms (1D: `height` 1).
        Memset {
            /// Device destination.
            dst: u64,
            /// Row pitch in bytes (ignored when `height` is 1).
            pitch: u64,
            /// Value (low `element_size` bytes used).
            value: u32,
            /// 1, 2 or 4.
            element_size: u8,
            /// Elements per row.
            width: u64,
            /// Rows.
            height: u64,
        } => Empty, executor;
    }
    /// Modules, their functions and globals.
    module: Module(ModuleRequest) {
        /// `cuModuleLoadData` / `cuLibraryLoadData`: the image (PTX, cubin or fatbin) is staged in
        /// shared memory.
        ModuleLoad {
            /// Where the image bytes are.
            image: HostSpan,
        } => Module, executor;
        /// `cuModuleUnload`.
        ModuleUnload {
            /// Module handle.
            module: u64,
        } => Empty, executor;
        /// `cuModuleGetFunction`. The reply carries the parameter layout.
        ModuleGetFunction {
            /// Module handle.
            module: u64,
            /// Kernel name (mangled).
            name: String,
        } => Function, inline;
        /// `cuModuleGetGlobal`.
        ModuleGetGlobal {
            /// Module handle.
            module: u64,
            /// Variable name.
            name: String,
        } => Global, inline;
        /// `cuFuncGetAttribute`.
        FuncGetAttribute {
            /// Function handle.
            function: u64,
            /// `CUfunction_attribute`.
            attribute: i32,
        } => Int, inline;
        /// `cuFuncSetAttribute`.
        FuncSetAttribute {
            /// Function handle.
            function: u64,
            /// `CUfunction_attribute`.
            attribute: i32,
            /// Value.
            value: i32,
        } => Empty, inline;
    }
    /// Streams.
    stream: Stream(StreamRequest) {
        /// `cuStreamCreate` / `cuStreamCreateWithPriority`.
        StreamCreate {
            /// Stream flags.
            flags: u32,
            /// Priority (lower is higher priority, CUDA convention).
            priority: i32,
        } => Stream, inline;
        /// `cuStreamDestroy`.
        StreamDestroy {
            /// Stream handle.
            stream: u64,
        } => Empty, inline;
        /// `cuStreamQuery`: code `SUCCESS` or `ERROR_NOT_READY`.
        StreamQuery {
            /// Stream handle.
            stream: u64,
        } => Empty, inline;
        /// `cuStreamSynchronize`.
        StreamSynchronize {
            /// Stream handle.
            stream: u64,
        } => Empty, executor;
    }
    /// Events.
    event: Event(EventRequest) {
        /// `cuEventCreate`.
        EventCreate {
            /// Event flags.
            flags: u32,
        } => Event, inline;
        /// `cuEventDestroy`.
        EventDestroy {
            /// Event handle.
            event: u64,
        } => Empty, inline;
        /// `cuEventQuery`: code `SUCCESS` or `ERROR_NOT_READY`.
        EventQuery {
            /// Event handle.
            event: u64,
        } => Empty, inline;
        /// `cuEventSynchronize`.
        EventSynchronize {
            /// Event handle.
            event: u64,
        } => Empty, executor;
        /// `cuEventElapsedTime`.
        EventElapsedTime {
            /// Start event.
            start: u64,
            /// End event.
            end: u64,
        } => ElapsedMs, inline;
    }
    /// Admin sessions.
    admin: Admin(AdminRequest) {
        /// Broker status (admin sessions).
        Status => Status, inline;
        /// Re-read the broker's policy file and apply it (admin sessions of the broker's user
        /// or root); the reply says whether it was applied.
        PolicyReload => PolicyReload, inline;
    }
}
