//! Requests: the calls that return a value (the "reply lane").
//!
//! Handles (`ctx`, `module`, `function`, `stream`, `event`, `handle`) are opaque u64 values the
//! broker handed out; device pointers are the broker's real device addresses (kernel arguments
//! pass through untouched). Host bytes never travel in a request: they are named by a
//! [`HostSpan`] in shared memory.

use serde::{Deserialize, Serialize};

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

/// Every synchronous call. New variants are only ever appended (see `docs/protocol.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness / latency probe. Reply: `Pong`.
    Ping,
    /// Fresh snapshot of a device. Reply: `Device`.
    GetDeviceInfo {
        /// Device ordinal.
        device: i32,
    },

    // ----- context -----
    /// `cuCtxCreate`. Reply: `Context`.
    CtxCreate {
        /// Device ordinal.
        device: i32,
        /// Context flags.
        flags: u32,
    },
    /// `cuCtxDestroy`. Reply: `Empty`.
    CtxDestroy {
        /// Context handle.
        ctx: u64,
    },
    /// `cuDevicePrimaryCtxRetain`. Reply: `Context`.
    PrimaryCtxRetain {
        /// Device ordinal.
        device: i32,
    },
    /// `cuDevicePrimaryCtxRelease`. Reply: `Empty`.
    PrimaryCtxRelease {
        /// Device ordinal.
        device: i32,
    },
    /// `cuCtxSynchronize`: waits for all of the tenant's work in the context. Reply: `Empty`.
    CtxSynchronize {
        /// Context handle.
        ctx: u64,
    },
    /// `cuCtxGetLimit`. Reply: `Value`.
    CtxGetLimit {
        /// `CUlimit`.
        limit: u32,
    },
    /// `cuCtxSetLimit`. Reply: `Empty`.
    CtxSetLimit {
        /// `CUlimit`.
        limit: u32,
        /// New value.
        value: u64,
    },
    /// `cuCtxGetStreamPriorityRange`. Reply: `PriorityRange`.
    CtxGetStreamPriorityRange,

    // ----- memory -----
    /// `cuMemAlloc`. Reply: `DevicePtr`.
    MemAlloc {
        /// Bytes.
        size: u64,
    },
    /// `cuMemAllocPitch`. Reply: `Pitched`.
    MemAllocPitch {
        /// Row width in bytes.
        width: u64,
        /// Rows.
        height: u64,
        /// Element size (4, 8 or 16).
        element_size: u32,
    },
    /// `cuMemFree`. Reply: `Empty`.
    MemFree {
        /// Device pointer.
        ptr: u64,
    },
    /// `cuMemGetInfo` (the tenant's view: its quota). Reply: `MemInfo`.
    MemGetInfo,
    /// `cuMemGetAddressRange`. Reply: `AddressRange`.
    MemGetAddressRange {
        /// Any address inside an allocation.
        ptr: u64,
    },
    /// `cuPointerGetAttribute`. Reply: `Value`.
    PointerGetAttribute {
        /// Device pointer.
        ptr: u64,
        /// `CUpointer_attribute`.
        attribute: u32,
    },
    /// Registers a host buffer (pinned host memory, `cuMemHostAlloc`/`cuMemAllocHost`/
    /// `cuMemHostRegister` of shared memory). Socket lane only: the buffer's sealed memfd rides
    /// with the frame. Reply: `HostRegion`.
    HostRegister {
        /// Tenant-chosen id, non-zero, unique in the session.
        region: u32,
        /// Size of the buffer in bytes.
        size: u64,
        /// `CU_MEMHOSTALLOC_*` flags.
        flags: u32,
    },
    /// Unregisters a host buffer. Reply: `Empty`.
    HostUnregister {
        /// Id from `HostRegister`.
        region: u32,
    },

    // ----- virtual memory management -----
    /// `cuMemAddressReserve`. Reply: `DevicePtr`.
    MemAddressReserve {
        /// Bytes.
        size: u64,
        /// Alignment (0: default).
        alignment: u64,
        /// Requested address (0: any).
        addr: u64,
        /// Flags.
        flags: u64,
    },
    /// `cuMemAddressFree`. Reply: `Empty`.
    MemAddressFree {
        /// Reserved address.
        ptr: u64,
        /// Bytes.
        size: u64,
    },
    /// `cuMemCreate` on a device. Reply: `MemHandle`.
    MemCreate {
        /// Bytes (multiple of the granularity).
        size: u64,
        /// Device ordinal.
        device: i32,
        /// `CUmemAllocationProp` flags / handle types, packed.
        flags: u64,
    },
    /// `cuMemRelease`. Reply: `Empty`.
    MemRelease {
        /// Allocation handle.
        handle: u64,
    },
    /// `cuMemMap`. Reply: `Empty`.
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
    },
    /// `cuMemUnmap`. Reply: `Empty`.
    MemUnmap {
        /// Mapped address.
        ptr: u64,
        /// Bytes.
        size: u64,
    },
    /// `cuMemSetAccess`. Reply: `Empty`.
    MemSetAccess {
        /// Mapped address.
        ptr: u64,
        /// Bytes.
        size: u64,
        /// Access descriptors.
        access: Vec<AccessDesc>,
    },
    /// `cuMemGetAllocationGranularity`. Reply: `Value`.
    MemGetAllocationGranularity {
        /// Device ordinal.
        device: i32,
        /// `CUmemAllocationGranularity_flags`.
        option: u32,
    },

    // ----- synchronous copies and memset -----
    /// `cuMemcpyHtoD`: host bytes come from shared memory. Reply: `Empty`.
    MemcpyHtoD {
        /// Device destination.
        dst: u64,
        /// Host source.
        src: HostSpan,
    },
    /// `cuMemcpyDtoH`: the broker writes into shared memory. Reply: `Empty`.
    MemcpyDtoH {
        /// Host destination.
        dst: HostSpan,
        /// Device source.
        src: u64,
    },
    /// `cuMemcpyDtoD`. Reply: `Empty`.
    MemcpyDtoD {
        /// Device destination.
        dst: u64,
        /// Device source.
        src: u64,
        /// Bytes.
        len: u64,
    },
    /// `cuMemsetD8/16/32` and the 2D forms (1D: `height` 1). Reply: `Empty`.
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
    },

    // ----- modules -----
    /// `cuModuleLoadData` / `cuLibraryLoadData`: the image (PTX, cubin or fatbin) is staged in
    /// shared memory. Reply: `Module`.
    ModuleLoad {
        /// Where the image bytes are.
        image: HostSpan,
    },
    /// `cuModuleUnload`. Reply: `Empty`.
    ModuleUnload {
        /// Module handle.
        module: u64,
    },
    /// `cuModuleGetFunction`. Reply: `Function` (with the parameter layout).
    ModuleGetFunction {
        /// Module handle.
        module: u64,
        /// Kernel name (mangled).
        name: String,
    },
    /// `cuModuleGetGlobal`. Reply: `Global`.
    ModuleGetGlobal {
        /// Module handle.
        module: u64,
        /// Variable name.
        name: String,
    },
    /// `cuFuncGetAttribute`. Reply: `Int`.
    FuncGetAttribute {
        /// Function handle.
        function: u64,
        /// `CUfunction_attribute`.
        attribute: i32,
    },
    /// `cuFuncSetAttribute`. Reply: `Empty`.
    FuncSetAttribute {
        /// Function handle.
        function: u64,
        /// `CUfunction_attribute`.
        attribute: i32,
        /// Value.
        value: i32,
    },

    // ----- streams -----
    /// `cuStreamCreate` / `cuStreamCreateWithPriority`. Reply: `Stream`.
    StreamCreate {
        /// Stream flags.
        flags: u32,
        /// Priority (lower is higher priority, CUDA convention).
        priority: i32,
    },
    /// `cuStreamDestroy`. Reply: `Empty`.
    StreamDestroy {
        /// Stream handle.
        stream: u64,
    },
    /// `cuStreamQuery`: code `SUCCESS` or `ERROR_NOT_READY`. Reply: `Empty`.
    StreamQuery {
        /// Stream handle.
        stream: u64,
    },
    /// `cuStreamSynchronize`. Reply: `Empty`.
    StreamSynchronize {
        /// Stream handle.
        stream: u64,
    },

    // ----- events -----
    /// `cuEventCreate`. Reply: `Event`.
    EventCreate {
        /// Event flags.
        flags: u32,
    },
    /// `cuEventDestroy`. Reply: `Empty`.
    EventDestroy {
        /// Event handle.
        event: u64,
    },
    /// `cuEventQuery`: code `SUCCESS` or `ERROR_NOT_READY`. Reply: `Empty`.
    EventQuery {
        /// Event handle.
        event: u64,
    },
    /// `cuEventSynchronize`. Reply: `Empty`.
    EventSynchronize {
        /// Event handle.
        event: u64,
    },
    /// `cuEventElapsedTime`. Reply: `ElapsedMs`.
    EventElapsedTime {
        /// Start event.
        start: u64,
        /// End event.
        end: u64,
    },

    // ----- admin -----
    /// Broker status (admin sessions). Reply: `Status`.
    Status,
}
