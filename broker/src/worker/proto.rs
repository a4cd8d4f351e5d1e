//! What the broker and a worker say to each other.
//!
//! A worker link is a tenant-style shared-memory region ([`gpushare_client::shm::Region`]) plus a
//! Unix socket pair:
//!
//! - **command ring** (broker → worker): the asynchronous device operations as the tenant
//!   protocol's fixed-layout records, with worker-side ids in place of tenant handles — `LAUNCH`
//!   (function id, stream id), `MEMCPY_*` (`host_region` = an attached region id),
//!   `STREAMED_COPY` (a run of a streamed copy's pieces), `MEMSET`,
//!   `WRITE_VALUE`, `EVENT_RECORD`, `STREAM_WAIT_EVENT`, `HOST_FN` (a completion marker: `token`
//!   names the broker-side callback) — and `CALL` records carrying a postcard [`WorkerRequest`],
//!   answered in a reply slot with a postcard [`WorkerReply`].
//! - **notify ring** (worker → broker): `HOST_FN_READY{stream, token, seq}` when a marker ran
//!   (`seq` = 0, or the driver error that made the marker run early after a synchronisation) and
//!   `ASYNC_ERROR{seq, code}` when the asynchronous operation with command-ring sequence number
//!   `seq` failed; `OP_DONE{seq, device_ns}` when the *timed* operation `seq` ([`is_timed`]:
//!   launches, copies, streamed copies' runs, memsets) completed — exactly one per timed record,
//!   with its device time from events recorded around it, or [`NO_DEVICE_TIME`] when it has
//!   none (it failed at submission, an event call failed, the context faulted).
//! - **socket** (frames of [`ToWorker`] / [`FromWorker`]): the hello and the device snapshot,
//!   and everything that carries a file descriptor — attaching a tenant's region or host buffer,
//!   exporting and importing a deduplicated granule (SCM_RIGHTS) — answered in order. Its end is the worker's end: a worker exits when the
//!   broker's side closes, and the broker sees a dead worker as the socket's end of stream.

use gpushare_client::proto::{DeviceInfo, ParamInfo};
use gpushare_client::ring::Command;
use gpushare_client::shm::ShmLayout;
use serde::{Deserialize, Serialize};

/// Version of this protocol (the worker is the broker's own executable, so both always match;
/// checked anyway). 3: `OP_DONE` for every timed operation; 4: granule export and import; 5:
/// `STREAMED_COPY` runs and [`FromWorker::Ready`]'s `streamed_copies`; 6: a content key comes
/// with its prefix key.
pub const WORKER_PROTOCOL: u32 = 6;

pub use gpushare_client::ring::record::{NO_DEVICE_TIME, UNMEASURED_DEVICE_TIME};

/// The worker stream of a *timed* command-ring record — one whose completion and device time
/// the worker reports with `OP_DONE`: `LAUNCH`, `MEMCPY_HTOD`, `MEMCPY_DTOH`, `MEMCPY_DTOD`,
/// `STREAMED_COPY`, `MEMSET`. `None` for every other kind. The one list both ends use.
pub fn timed_stream(cmd: &Command<'_>) -> Option<u64> {
    match cmd {
        Command::Launch(l) => Some(l.stream),
        Command::MemcpyHtoD(c) | Command::MemcpyDtoH(c) => Some(c.stream),
        Command::StreamedCopy(c) => Some(c.stream),
        Command::MemcpyDtoD(c) => Some(c.stream),
        Command::Memset(m) => Some(m.stream),
        Command::WriteValue(_)
        | Command::EventRecord(_)
        | Command::StreamWaitEvent(_)
        | Command::HostFn(_)
        | Command::HostFnDone(_)
        | Command::Call(_)
        | Command::HostFnReady(_)
        | Command::AsyncError(_)
        | Command::OpDone(_) => None,
    }
}

/// Whether a command-ring record is timed (see [`timed_stream`]).
pub fn is_timed(cmd: &Command<'_>) -> bool {
    timed_stream(cmd).is_some()
}

/// A `HOST_FN` marker whose token has this bit is a *gate*: after posting `HOST_FN_READY` the
/// worker holds its stream until the broker sends `HOST_FN_DONE{token}` on the command ring. A
/// tenant's host function is one: what the stream does after it must see what it did.
pub const GATED: u64 = 1 << 63;

/// The longest a worker holds a stream at a gate (the broker gives a tenant's host function
/// 30 s); past it the stream goes on and the worker logs it.
pub const GATE_LIMIT: std::time::Duration = std::time::Duration::from_secs(40);

/// Which driver a worker opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverChoice {
    /// The CPU device.
    Cpu,
    /// The real driver.
    Cuda,
}

/// Socket messages from the broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// First message, with the link region's descriptor.
    Hello {
        /// [`WORKER_PROTOCOL`].
        protocol: u32,
        /// The isolation group, for logs.
        group: String,
        /// The driver to open.
        driver: DriverChoice,
        /// The link region's layout (checked against the descriptor's header).
        layout: ShmLayout,
    },
    /// Maps a tenant region (staging area) or host buffer, sent with its descriptor, as region
    /// `id`; with `register`, also registers it with the driver (pinned, device-mapped).
    Attach {
        /// Region id the command ring names.
        id: u32,
        /// Bytes.
        len: u64,
        /// Register with the driver.
        register: bool,
    },
    /// Forgets region `id` (unregistering it first if it was registered).
    Detach {
        /// Region id.
        id: u32,
    },
    /// Exports physical granule `handle` (deduplication across workers): answered with
    /// [`FromWorker::Exported`] and the descriptor.
    ExportGranule {
        /// The worker's physical allocation handle.
        handle: u64,
    },
    /// Imports the physical granule whose descriptor comes with the message (another worker's
    /// export): answered with [`FromWorker::Imported`].
    ImportGranule,
}

/// Socket messages from the worker, one per [`ToWorker`] message, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The driver is open.
    Ready {
        /// [`WORKER_PROTOCOL`].
        protocol: u32,
        /// `cuDriverGetVersion`.
        driver_version: i32,
        /// Device 0's snapshot.
        info: DeviceInfo,
        /// VMM granularity.
        granularity: u64,
        /// The library in use, for logs and status.
        backend: String,
        /// `cuCtxGetStreamPriorityRange`: (least, greatest).
        priorities: (i32, i32),
        /// The driver has the stream memory operations streamed copies are made of.
        streamed_copies: bool,
    },
    /// The worker could not start (the driver did not load or has no device).
    Failed {
        /// `CUresult`.
        code: u32,
        /// Why.
        reason: String,
    },
    /// A region is attached; for a registration, its device address.
    Attached {
        /// Device address of a registered buffer.
        device_ptr: Option<u64>,
    },
    /// [`ToWorker::ExportGranule`]: the descriptor comes with the message.
    Exported,
    /// [`ToWorker::ImportGranule`]: the new handle.
    Imported {
        /// The worker's physical allocation handle.
        handle: u64,
    },
    /// A socket request failed.
    Error {
        /// `CUresult`.
        code: u32,
    },
}

/// A synchronous request on the command ring (a CALL record's payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerRequest {
    /// `cuMemGetInfo`.
    MemGetInfo,
    /// `cuMemGetAllocationGranularity`.
    Granularity { option: u32 },
    /// `cuMemAddressReserve`.
    AddressReserve {
        size: u64,
        align: u64,
        addr: u64,
        flags: u64,
    },
    /// `cuMemAddressFree`.
    AddressFree { ptr: u64, size: u64 },
    /// `cuMemCreate` on device 0.
    MemCreate { size: u64 },
    /// `cuMemRelease`.
    MemRelease { handle: u64 },
    /// `cuMemMap`.
    MemMap {
        ptr: u64,
        size: u64,
        offset: u64,
        handle: u64,
    },
    /// `cuMemUnmap`.
    MemUnmap { ptr: u64, size: u64 },
    /// `cuMemSetAccess` for device 0: 0 none, 1 read, 3 read-write.
    MemSetAccess { ptr: u64, size: u64, access: u8 },
    /// A VMM-backed allocation (reserve, create, map, read-write).
    VmmAlloc { size: u64 },
    /// Frees a [`WorkerRequest::VmmAlloc`].
    VmmFree { ptr: u64, size: u64, handle: u64 },
    /// A VMM-backed allocation with one physical allocation per granule (deduplicable).
    VmmAllocGranules { size: u64 },
    /// Frees a [`WorkerRequest::VmmAllocGranules`]: every granule unmapped, the non-zero
    /// handles (one per granule) released.
    VmmFreeGranules { ptr: u64, handles: Vec<u64> },
    /// Maps the physical `shared` read-only at granule `addr` in place of `old` (released).
    GranuleJoin { addr: u64, old: u64, shared: u64 },
    /// Copy-on-write: a private copy of the granule at `addr` mapped read-write in place of
    /// the shared one; answered with its handle.
    GranulePrivatize { addr: u64 },
    /// The content key of physical granule `handle` cut into `pieces` (read through a private
    /// read-only mapping), and its prefix key when the pieces are one, the whole granule.
    HandleKey {
        handle: u64,
        pieces: Vec<(u64, u64)>,
    },
    /// `cuModuleLoadData` of an image in an attached region, refused with
    /// `CUDA_ERROR_OUT_OF_MEMORY` before the driver sees it when the image's module variables
    /// declare more than `max_globals` bytes; answered with `Pair(module, declared bytes)`.
    ModuleLoad {
        region: u32,
        offset: u64,
        len: u64,
        max_globals: u64,
    },
    /// `cuModuleUnload`.
    ModuleUnload { module: u64 },
    /// `cuModuleGetFunction` (with its parameter layout).
    ModuleGetFunction { module: u64, name: String },
    /// `cuModuleGetGlobal`.
    ModuleGetGlobal { module: u64, name: String },
    /// `cuFuncGetAttribute`.
    FuncGetAttribute { function: u64, attribute: i32 },
    /// `cuFuncSetAttribute`.
    FuncSetAttribute {
        function: u64,
        attribute: i32,
        value: i32,
    },
    /// A non-blocking stream.
    StreamCreate { flags: u32, priority: i32 },
    /// Destroys a stream once its work is done.
    StreamDestroy { stream: u64 },
    /// `cuStreamQuery`.
    StreamQuery { stream: u64 },
    /// `cuStreamSynchronize` (blocks).
    StreamSynchronize { stream: u64 },
    /// `cuEventCreate`.
    EventCreate { flags: u32 },
    /// `cuEventDestroy`.
    EventDestroy { event: u64 },
    /// `cuEventQuery`.
    EventQuery { event: u64 },
    /// `cuEventSynchronize` (blocks).
    EventSynchronize { event: u64 },
    /// `cuEventElapsedTime`.
    EventElapsed { start: u64, end: u64 },
    /// `cuCtxGetLimit`.
    CtxGetLimit { limit: u32 },
    /// `cuCtxSetLimit`.
    CtxSetLimit { limit: u32, value: u64 },
}

impl WorkerRequest {
    /// Whether the request may wait for the device: such requests run on the worker's
    /// executors, so the command ring keeps flowing.
    pub fn blocks(&self) -> bool {
        matches!(
            self,
            WorkerRequest::StreamSynchronize { .. }
                | WorkerRequest::EventSynchronize { .. }
                | WorkerRequest::ModuleLoad { .. }
                | WorkerRequest::ModuleUnload { .. }
                | WorkerRequest::VmmFree { .. }
                | WorkerRequest::VmmFreeGranules { .. }
                | WorkerRequest::GranuleJoin { .. }
                | WorkerRequest::GranulePrivatize { .. }
                | WorkerRequest::HandleKey { .. }
                | WorkerRequest::MemUnmap { .. }
        )
    }
}

/// The answer to a [`WorkerRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerReply {
    /// Success, nothing to return.
    Done,
    /// A `CUresult` other than success.
    Failed(u32),
    /// A value.
    Value(u64),
    /// Two values (free and total, pointer and size, ...).
    Pair(u64, u64),
    /// A VMM allocation.
    Alloc { ptr: u64, size: u64, handle: u64 },
    /// A granule-wise VMM allocation: its address and one handle per granule.
    Granules { ptr: u64, handles: Vec<u64> },
    /// A content key and, for a granule of one piece, its prefix key.
    Key([u8; 32], Option<[u8; 32]>),
    /// A boolean (query: idle / complete).
    Flag(bool),
    /// `cuFuncGetAttribute`.
    Int(i32),
    /// Elapsed milliseconds.
    Millis(f32),
    /// A function with its parameter layout (`None`: the driver cannot tell) and, per
    /// parameter, whether the kernel may store through it (`None`: unknown).
    Function {
        function: u64,
        params: Option<Vec<ParamInfo>>,
        may_write: Option<Vec<bool>>,
    },
}
