//! What the shim remembers about the tenant's objects: one type per kind (contexts, streams,
//! events, kernels, modules, allocations, pinned host memory), held in the [`Runtime`]'s tables.
//!
//! [`Runtime`]: super::Runtime

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gpushare_client::proto::ParamInfo;
use gpushare_client::shm::HostBuffer;
use gpushare_client::wait::SeqWord;
use gpushare_driver_abi::checks::legacy::LegacyLaunch;

/// One context the tenant can make current.
#[derive(Debug)]
pub struct ContextState {
    /// Broker handle (the `CUcontext` value).
    pub handle: u64,
    /// Device ordinal.
    pub device: i32,
    /// `CU_CTX_*` flags.
    pub flags: AtomicU32,
    /// A device's primary context.
    pub primary: bool,
    /// Usage count (`cuCtxAttach`/`cuCtxDetach`): 1 at creation.
    pub usage: AtomicU32,
}

/// A device's primary context: its handle once the broker gave one, its retain count and flags.
#[derive(Debug, Default)]
pub struct Primary {
    /// The context, once retained (the handle then stays for the life of the process).
    pub ctx: Option<Arc<ContextState>>,
    /// Retains not yet released ("active" means at least one).
    pub refs: u32,
    /// `cuDevicePrimaryCtxSetFlags`.
    pub flags: u32,
}

/// Everything the shim knows about one kernel.
#[derive(Debug)]
pub struct FunctionInfo {
    /// The `CUfunction`/`CUkernel` value the application holds (the broker's handle when the
    /// kernel was first looked up; stable across a library's reload).
    pub key: u64,
    /// The broker's current handle (what launches name).
    pub handle: u64,
    /// Module (or library) it came from, as the application names it.
    pub module: u64,
    /// Mangled name (NUL-terminated, for `cuFuncGetName`).
    pub name: std::ffi::CString,
    /// Parameter layout, in declaration order.
    pub params: Vec<ParamInfo>,
    /// Bytes of the packed parameter buffer (end of the last parameter).
    pub param_bytes: usize,
    /// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`.
    pub max_threads: u32,
    /// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES` (static shared memory).
    pub static_shared: u32,
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` (the application may raise it).
    pub max_dynamic_shared: AtomicU32,
    /// What the deprecated `cuFuncSetBlockShape`/`cuParamSet*` calls set (for `cuLaunch*`).
    pub legacy: Mutex<LegacyLaunch>,
}

/// A loaded module or library.
#[derive(Debug)]
pub struct ModuleState {
    /// The broker's current handle. The application keeps naming the module by the first one: a
    /// library outlives a primary-context reset (as CUDA's are context-independent) and is
    /// reloaded under a new broker handle.
    pub wire: AtomicU64,
    /// A library's image, kept for that reload; `None` for modules.
    pub image: Option<Vec<u8>>,
}

/// A stream: its wire handle and its completion slot.
#[derive(Debug)]
pub struct StreamState {
    /// Broker handle (0 = the tenant's legacy default stream).
    pub handle: u64,
    /// The broker raises it to the seq of each command on this stream as it completes.
    pub slot: SeqWord,
    /// Seq of the last command the shim pushed on this stream.
    pub last: AtomicU64,
    /// `CU_STREAM_*` flags.
    pub flags: u32,
    /// Priority.
    pub priority: i32,
    /// Context the stream was created in (0 for default streams: the current one).
    pub ctx: u64,
}

impl StreamState {
    /// Records that command `seq` was pushed on this stream.
    #[inline]
    pub fn pushed(&self, seq: u64) {
        self.last.fetch_max(seq, Ordering::AcqRel);
    }
}

/// An event: where its last record completes.
#[derive(Debug)]
pub struct EventState {
    /// Broker handle.
    pub handle: u64,
    /// `CU_EVENT_*` flags.
    pub flags: u32,
    /// (stream slot, seq of the `EVENT_RECORD`, stream wire handle) of the last record; `None`
    /// before the first.
    pub recorded: Mutex<Option<(SeqWord, u64, u64)>>,
}

/// One `cuMemAlloc`/`cuMemAllocPitch` allocation as the shim remembers it.
#[derive(Clone, Copy, Debug)]
pub struct Alloc {
    /// Bytes the application asked for (pitched: pitch × height).
    pub size: u64,
    /// Context current at allocation time.
    pub ctx: u64,
    /// Process-unique id (`CU_POINTER_ATTRIBUTE_BUFFER_ID`).
    pub id: u64,
    /// Whether `[base, base + size)` is reserved in this process (and must be unmapped on free).
    pub reserved: bool,
}

/// Pinned host memory the shim allocated (`cuMemHostAlloc`, `cuMemAllocHost`), managed memory
/// (`cuMemAllocManaged`), or the memfd a `cuMemHostRegister(DEVICEMAP)` range was re-backed
/// with: a sealed memfd mapped here and in the broker's worker.
#[derive(Debug)]
pub struct HostAlloc {
    /// Region id it was registered under.
    pub region: u32,
    /// The buffer (its mapping is what the application got).
    pub buffer: HostBuffer,
    /// Device-visible address of its first byte.
    pub device_ptr: u64,
    /// `CU_MEMHOSTALLOC_*` flags.
    pub flags: u32,
    /// Context current when it was allocated (pointer attributes).
    pub ctx: u64,
    /// `cuMemAllocManaged` memory (freed with `cuMemFree`; device memory for pointer
    /// attributes; its host address is always its device address).
    pub managed: bool,
}

/// A host range registered with `cuMemHostRegister`.
#[derive(Clone, Debug)]
pub struct Registered {
    /// Bytes, from the pointer given.
    pub len: usize,
    /// `CU_MEMHOSTREGISTER_*` flags.
    pub flags: u32,
    /// With DEVICEMAP (or READ_ONLY): the memfd the range's whole pages were re-backed with and
    /// registered in the worker; its first byte is the first byte of the first page.
    pub mapped: Option<Arc<HostAlloc>>,
}

impl Registered {
    /// The device address of host address `ptr` inside the registration starting at `start`.
    pub fn device_ptr(&self, start: usize, ptr: usize) -> Option<u64> {
        let m = self.mapped.as_ref()?;
        let page = start & !(super::memory::PAGE as usize - 1);
        Some(m.device_ptr + (ptr - page) as u64)
    }
}

/// How a host address range is backed.
#[derive(Clone, Debug)]
pub enum HostMemory {
    /// Inside a shim-allocated pinned buffer: the broker can reach it by region and offset.
    Shared {
        /// The allocation.
        alloc: Arc<HostAlloc>,
        /// Offset of the range's start inside it.
        offset: u64,
    },
    /// Ordinary process memory: staged through the region.
    Pageable,
}

/// A host function waiting for its stream: what `HOST_FN` tokens point to.
pub struct HostFnCall {
    /// The application's function.
    pub func: unsafe extern "C" fn(*mut std::ffi::c_void),
    /// Its argument.
    pub data: *mut std::ffi::c_void,
}
