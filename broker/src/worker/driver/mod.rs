//! The device layer: every call the broker makes into the CUDA driver (real, or the CPU device)
//! goes through [`Driver`]. This is the only module of the broker with `unsafe` code.
//!
//! - [`loader`] picks and loads the library; [`api`] resolves its entry points (types from
//!   `cudarc::driver::sys`).
//! - [`Driver`] owns the primary context of device 0, which every broker thread makes current
//!   before its first driver call ([`Driver`] does this itself, once per thread).
//! - Driver allocations are VMM-backed ([`Driver::vmm_alloc`]: reserve + create + map + set
//!   access), so physical memory can later be swapped behind a tenant's addresses.
//! - Host memory handed to asynchronous copies is a [`HostMem`] (a range of a shared mapping);
//!   the [`Stream`] keeps it alive until a later host function ([`Driver::launch_host_fn`]) or a
//!   synchronisation proves the copy done, so the mapping cannot vanish under the DMA.
//! - Every stream the broker creates is non-blocking: tenants' legacy-stream semantics are
//!   implemented per tenant above this layer, with events.

pub mod api;
mod calls;
mod granules;
mod keying;
pub mod loader;
mod memory;
mod streamed;

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::sys::CUdevice;
use gpushare_client::os::Mapping;
use gpushare_client::proto::DeviceInfo;

pub use loader::{Backend, DeviceChoice};
pub use memory::{AccessFlags, VmmAlloc};
pub use streamed::StreamedRun;

/// Errors of the device layer. [`DeviceError::code`] gives the `CUresult` for replies.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A driver call failed.
    #[error("{call} failed with CUresult {code}")]
    Cuda {
        /// Entry point.
        call: &'static str,
        /// `CUresult`.
        code: u32,
    },
    /// The library could not be found or loaded.
    #[error("{0}")]
    Load(String),
    /// The driver has no usable device.
    #[error("no CUDA device available")]
    NoDevice,
    /// An argument the broker could not pass (e.g. a size that does not fit).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// Host memory the worker needed for itself could not be had.
    #[error("host memory: {0}")]
    Host(String),
}

impl DeviceError {
    /// The `CUresult` to report for this error.
    pub fn code(&self) -> u32 {
        use gpushare_client::code;
        match self {
            DeviceError::Cuda { code, .. } => *code,
            DeviceError::Load(_) => code::ERROR_NOT_INITIALIZED,
            DeviceError::NoDevice => code::ERROR_NO_DEVICE,
            DeviceError::Invalid(_) => code::ERROR_INVALID_VALUE,
            DeviceError::Host(_) => code::ERROR_OUT_OF_MEMORY,
        }
    }
}

/// Result of the device layer.
pub type DResult<T> = Result<T, DeviceError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A range of a shared host mapping (staging area or registered host buffer) used by an
/// asynchronous copy. Holding it keeps the mapping alive.
#[derive(Clone, Debug)]
pub struct HostMem {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl HostMem {
    /// `[offset, offset + len)` of `map`; `None` when outside the mapping.
    pub fn new(map: Arc<Mapping>, offset: usize, len: usize) -> Option<HostMem> {
        map.ptr_at(offset, len).ok()?;
        Some(HostMem { map, offset, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self) -> *mut u8 {
        // Bounds were checked at construction; the mapping is alive while `self` is.
        self.map
            .ptr_at(self.offset, self.len)
            .unwrap_or(std::ptr::null_mut())
    }
}

/// A broker-created device stream (always non-blocking), destroyed when the last reference
/// goes. Asynchronous copies park their [`HostMem`] here until the stream's next host function
/// or synchronisation.
pub struct Stream {
    dev: Arc<Driver>,
    raw: usize,
    keep: Mutex<Vec<HostMem>>,
    /// The first error the driver gave when a host function could not be enqueued (a device
    /// fault poisons the context): host functions then run inline, and can report it.
    failed: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({:#x})", self.raw)
    }
}

impl Stream {
    /// The raw handle, for logs.
    pub fn raw(&self) -> usize {
        self.raw
    }

    /// The driver error that made a host function on this stream run inline, if any.
    pub fn failure(&self) -> Option<u32> {
        match self.failed.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    fn keep(&self, m: HostMem) {
        lock(&self.keep).push(m);
    }

    fn take_kept(&self) -> Vec<HostMem> {
        std::mem::take(&mut *lock(&self.keep))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.raw != 0 {
            if let Err(e) = self.dev.stream_destroy(self) {
                tracing::warn!("destroying stream {:#x}: {e}", self.raw);
            }
        }
    }
}

/// A broker-created event, destroyed when the last reference goes.
pub struct Event {
    dev: Arc<Driver>,
    raw: usize,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({:#x})", self.raw)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if let Err(e) = self.dev.event_destroy(self) {
            tracing::warn!("destroying event {:#x}: {e}", self.raw);
        }
    }
}

/// A raw module handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleRaw(usize);
/// A raw function handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FunctionRaw(usize);

/// A host buffer registered with the driver (page-locked, device-mapped).
#[derive(Debug)]
pub struct HostRegistration {
    map: Arc<Mapping>,
    ptr: usize,
    device_ptr: u64,
}

impl HostRegistration {
    /// The device address of the buffer's first byte.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The mapping.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }
}

thread_local! {
    /// The context this thread made current (0: none yet).
    static BOUND: Cell<usize> = const { Cell::new(0) };
}

/// The driver, its primary context on device 0, and the device snapshot tenants see.
pub struct Driver {
    api: api::Api,
    backend: Backend,
    dev: CUdevice,
    ctx: usize,
    driver_version: i32,
    info: DeviceInfo,
    granularity: u64,
    /// Whether granules are created exportable as POSIX file descriptors (cleared the first
    /// time the driver refuses, so deduplication then stays within this worker).
    shareable: std::sync::atomic::AtomicBool,
    /// Pinned buffers for reading granules back to key them ([`keying`]), reused.
    read_buffers: Mutex<Vec<keying::ReadBuffer>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("backend", &self.backend)
            .field("name", &self.info.name)
            .finish()
    }
}

impl Driver {
    /// Loads the driver `choice` names, initialises it and retains device 0's primary context.
    pub fn open(choice: DeviceChoice) -> DResult<Driver> {
        match choice {
            DeviceChoice::Cpu => Driver::init(loader::load_cpu()?),
            DeviceChoice::Cuda => Driver::init(loader::load_cuda()?),
            DeviceChoice::Auto => match loader::load_cuda().and_then(Driver::init) {
                Ok(d) => Ok(d),
                Err(e) => {
                    tracing::info!("no usable CUDA driver ({e}); using the CPU device");
                    Driver::init(loader::load_cpu()?)
                }
            },
        }
    }

    /// Which library is in use.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `cuDriverGetVersion`.
    pub fn driver_version(&self) -> i32 {
        self.driver_version
    }

    /// Driver 0's snapshot (name, memory, attributes).
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

    fn bind(&self) -> DResult<()> {
        if BOUND.with(Cell::get) == self.ctx {
            return Ok(());
        }
        // SAFETY: `ctx` is the primary context retained in `init` and never released while the
        // `Driver` exists.
        let rc = unsafe { (self.api.ctx_set_current)(self.ctx as _) };
        check("cuCtxSetCurrent", rc)?;
        BOUND.with(|b| b.set(self.ctx));
        Ok(())
    }
}

/// Maps a raw `CUresult` to `Ok` or an error naming the call.
fn check(call: &'static str, rc: api::Rc) -> DResult<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(DeviceError::Cuda { call, code: rc })
    }
}
