//! The shim's process-wide state: the broker session and what the shim remembers about the
//! tenant's objects so that hot-path calls need no round trip.
//!
//! [`init`] (from `cuInit`) connects once; every other entry point reaches the state through
//! [`runtime`], which fails with `CUDA_ERROR_NOT_INITIALIZED` before `cuInit` (or with
//! `cuInit`'s own error after a failed one). Two daemon threads start with the session:
//! - the **watcher** blocks until the broker hangs up, then marks the region closed, which cancels
//!   every wait in the process (a tenant whose broker dies gets an error, never a hang);
//! - the **notifier** reads the notify ring: it runs host functions (`cuLaunchHostFunc`) when
//!   their stream reaches them, and logs asynchronous errors (which are also in the sticky word).
//!
//! Handles the application sees are the broker's opaque handle values (contexts, modules,
//! functions, streams, events), so the broker validates them; the shim keeps a table per kind
//! for what it must know locally (a kernel's parameter layout, a stream's completion slot, an
//! event's last record), and an unknown value is `CUDA_ERROR_INVALID_HANDLE` before anything is
//! sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, RwLock};

use dashmap::DashMap;
use gpushare_client::proto::{DeviceInfo, ParamInfo, Reply, Request};
use gpushare_client::ring::record::HostFnDone;
use gpushare_client::ring::{Command, RecordBuf};
use gpushare_client::shm::{HostBuffer, Region, LEGACY_STREAM_SLOT};
use gpushare_client::wait::{Cancel, SeqWord, WaitError, WaitPolicy};
use gpushare_client::{paths, Client, ClientError, ClientOptions, Hello};
use gpushare_driver_abi::error::{CuError, CuResult};

use crate::driver::context;

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
    pub max_dynamic_shared: std::sync::atomic::AtomicU32,
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

/// Pinned host memory the shim allocated (`cuMemHostAlloc`, `cuMemAllocHost`): a sealed memfd
/// mapped here and in the broker.
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

/// The connected session and the shim's tables; see the module documentation.
pub struct Runtime {
    /// The broker session.
    pub client: Client,
    /// Devices as the broker described them at connect time.
    pub devices: Vec<DeviceInfo>,
    /// `cuDriverGetVersion` of the broker's driver.
    pub driver_version: i32,
    /// Wait policy for completions (spin, then futex; no timeout: cancelled when the broker dies).
    pub policy: WaitPolicy,
    /// Fires when the session closes.
    pub cancel: Cancel,
    /// Sticky asynchronous error word.
    pub async_error: SeqWord,
    /// The legacy default stream.
    pub legacy: Arc<StreamState>,
    /// Created streams by handle.
    pub streams: DashMap<u64, Arc<StreamState>>,
    /// Events by handle.
    pub events: DashMap<u64, Arc<EventState>>,
    /// Kernels by handle.
    pub functions: DashMap<u64, Arc<FunctionInfo>>,
    /// Loaded modules (and libraries) by the handle the application holds.
    pub modules: DashMap<u64, Arc<ModuleState>>,
    /// Device address ranges this tenant owns (allocations, module globals): base -> size. Used
    /// to tell device pointers from host pointers (`cuMemcpy`, pointer attributes).
    pub device_ranges: RwLock<BTreeMap<u64, u64>>,
    /// Pinned host allocations by start address.
    pub host_allocs: RwLock<BTreeMap<usize, Arc<HostAlloc>>>,
    /// Host ranges registered with `cuMemHostRegister` (start -> (len, flags)); they stay
    /// pageable for copies.
    pub host_registered: RwLock<BTreeMap<usize, (usize, u32)>>,
    /// Next host region id.
    pub next_region: AtomicU64,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("session", &self.client.session_id())
            .finish()
    }
}

static RUNTIME: OnceLock<Result<Runtime, CuError>> = OnceLock::new();

/// How long a completion wait runs before the shim asks the broker whether the stream failed.
pub const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// The state, once `cuInit` succeeded.
#[inline]
pub fn runtime() -> CuResult<&'static Runtime> {
    match RUNTIME.get() {
        Some(Ok(rt)) => Ok(rt),
        Some(Err(e)) => Err(*e),
        None => Err(CuError::NOT_INITIALIZED),
    }
}

/// `cuInit`: connects to the broker once; later calls return the first outcome.
pub fn init() -> CuResult<&'static Runtime> {
    let rt = match RUNTIME.get_or_init(connect) {
        Ok(rt) => rt,
        Err(e) => return Err(*e),
    };
    static THREADS: Once = Once::new();
    THREADS.call_once(|| start_threads(rt));
    Ok(rt)
}

fn tenant_name() -> String {
    if let Some(n) = std::env::var(paths::TENANT_NAME_ENV)
        .ok()
        .filter(|n| !n.is_empty())
    {
        return n;
    }
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("pid-{}", std::process::id()))
}

fn connect() -> Result<Runtime, CuError> {
    let socket = paths::default_socket();
    let name = tenant_name();
    let client = Client::connect(
        &socket,
        &Hello::tenant(name.clone()),
        ClientOptions::default(),
    )
    .map_err(|e| {
        crate::log(|| {
            tracing::error!(target: "gpushare::shim",
                "cannot reach the gpushare broker at {} ({e}); start one with `gpushare broker` \
                 or set {}", socket.display(), paths::SOCKET_ENV)
        });
        CuError::NO_DEVICE
    })?;
    let region = client.region().ok_or(CuError::UNKNOWN)?;
    let legacy = Arc::new(StreamState {
        handle: 0,
        slot: region
            .stream_slot(LEGACY_STREAM_SLOT)
            .map_err(|_| CuError::UNKNOWN)?,
        last: AtomicU64::new(0),
        flags: 0,
        priority: 0,
        ctx: 0,
    });
    let welcome = client.welcome().clone();
    crate::log(|| {
        tracing::info!(target: "gpushare::shim",
            "tenant {name:?}: session {} with broker {} at {} ({} device(s), driver {})",
            welcome.session_id, welcome.broker_version, socket.display(),
            welcome.devices.len(), welcome.driver_version)
    });
    Ok(Runtime {
        devices: welcome.devices,
        driver_version: welcome.driver_version,
        policy: WaitPolicy::default(),
        cancel: region.cancel(),
        async_error: region.async_error(),
        legacy,
        streams: DashMap::new(),
        events: DashMap::new(),
        functions: DashMap::new(),
        modules: DashMap::new(),
        device_ranges: RwLock::new(BTreeMap::new()),
        host_allocs: RwLock::new(BTreeMap::new()),
        host_registered: RwLock::new(BTreeMap::new()),
        next_region: AtomicU64::new(1),
        client,
    })
}

fn start_threads(rt: &'static Runtime) {
    let watcher = std::thread::Builder::new()
        .name("gpushare-watch".into())
        .spawn(move || {
            if let Ok(true) = rt.client.watch_broker(None) {
                crate::log(|| {
                    tracing::error!(target: "gpushare::shim",
                        "the gpushare broker closed the session; CUDA calls now fail")
                });
            }
        });
    let notifier = std::thread::Builder::new()
        .name("gpushare-notify".into())
        .spawn(move || notify_loop(rt));
    if watcher.is_err() || notifier.is_err() {
        crate::log(
            || tracing::error!(target: "gpushare::shim", "cannot start the shim's helper threads"),
        );
    }
}

/// A host function waiting for its stream: what `HOST_FN` tokens point to.
pub struct HostFnCall {
    /// The application's function.
    pub func: unsafe extern "C" fn(*mut std::ffi::c_void),
    /// Its argument.
    pub data: *mut std::ffi::c_void,
}

fn notify_loop(rt: &'static Runtime) {
    let Some(region) = rt.client.region() else {
        return;
    };
    let Ok(mut consumer) = region.notify_consumer() else {
        return;
    };
    consumer.set_wait(rt.policy, rt.cancel.clone());
    let mut buf = RecordBuf::new();
    loop {
        let popped = match consumer.pop(&mut buf) {
            Ok(p) => p,
            Err(_) => return, // session closed
        };
        match popped.cmd {
            Command::HostFnReady(ready) => {
                let token = ready.token;
                // SAFETY: tokens are `Box<HostFnCall>` pointers the shim leaked in
                // cuLaunchHostFunc, and the broker reports each exactly once; ownership comes
                // back here.
                let call = unsafe { Box::from_raw(token as usize as *mut HostFnCall) };
                let run = std::panic::AssertUnwindSafe(|| {
                    // SAFETY: the application's callback with its own argument, as CUDA would
                    // call it (on a driver thread, outside any CUDA call).
                    unsafe { (call.func)(call.data) }
                });
                let _ = std::panic::catch_unwind(run);
                let _ = rt.client.submit(&Command::HostFnDone(HostFnDone { token }));
            }
            Command::AsyncError(e) => {
                crate::log(|| {
                    tracing::warn!(target: "gpushare::shim",
                        "asynchronous error {} in command {}", e.code, e.seq)
                });
            }
            _ => {}
        }
    }
}

impl Runtime {
    /// The region (always present for tenant sessions).
    pub fn region(&self) -> &Region {
        // A tenant Welcome without a region fails `connect`, so this never panics.
        self.client.region().expect("tenant session has a region")
    }

    /// Maps a transport failure to the error the application sees.
    pub fn transport_error(&self, e: ClientError) -> CuError {
        crate::log(|| tracing::error!(target: "gpushare::shim", "broker session: {e}"));
        if self.cancel.is_cancelled() {
            CuError::DEVICE_UNAVAILABLE
        } else {
            match e {
                ClientError::Staging(_) => CuError::OUT_OF_MEMORY,
                _ => CuError::DEVICE_UNAVAILABLE,
            }
        }
    }

    /// A synchronous call: the reply body, or the broker's error code.
    pub fn call(&self, req: Request) -> CuResult<Reply> {
        let env = self.client.call(req).map_err(|e| self.transport_error(e))?;
        match CuError::from_code(env.code) {
            None => Ok(env.body),
            Some(e) => Err(e),
        }
    }

    /// A synchronous call whose reply carries nothing.
    pub fn call_empty(&self, req: Request) -> CuResult {
        self.call(req).map(|_| ())
    }

    /// Pushes an asynchronous command; returns its seq.
    #[inline]
    pub fn submit(&self, cmd: &Command<'_>) -> CuResult<u64> {
        self.client.submit(cmd).map_err(|e| self.transport_error(e))
    }

    /// Pushes an asynchronous command on `stream`.
    #[inline]
    pub fn submit_on(&self, stream: &StreamState, cmd: &Command<'_>) -> CuResult<u64> {
        let seq = self.submit(cmd)?;
        stream.pushed(seq);
        Ok(seq)
    }

    /// The sticky asynchronous error, if any: every synchronising call reports it, as CUDA's
    /// do after a kernel fault.
    #[inline]
    pub fn sticky(&self) -> CuResult {
        match CuError::from_code(self.async_error.load() as u32) {
            None if self.cancel.is_cancelled() => Err(CuError::DEVICE_UNAVAILABLE),
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Waits until `word` (the completion slot of stream `stream`, a wire handle) reaches `seq`
    /// (spin, then futex; cancelled if the broker goes away), then reports the sticky error.
    ///
    /// A device fault can stop a stream for good (nothing on it completes again), so a wait that
    /// lasts longer than [`PROBE_INTERVAL`] asks the broker about the stream; a fault it reports
    /// becomes the tenant's sticky error and ends the wait, as CUDA's synchronising calls return it.
    pub fn wait_for(&self, word: &SeqWord, seq: u64, stream: u64) -> CuResult {
        if seq > 0 {
            let cancel = &self.cancel;
            let policy = self.policy.timeout(PROBE_INTERVAL);
            loop {
                match word.wait_until_or(|v| v >= seq, &policy, || cancel.is_cancelled()) {
                    Ok(_) => break,
                    Err(WaitError::TimedOut) => self.probe(stream)?,
                    Err(_) => return Err(CuError::DEVICE_UNAVAILABLE),
                }
            }
        }
        self.sticky()
    }

    /// Asks the broker whether `stream` failed; a sticky failure is recorded in the sticky word.
    fn probe(&self, stream: u64) -> CuResult {
        self.sticky()?;
        match self.call(Request::StreamQuery { stream }) {
            Ok(_) => Ok(()),
            Err(e) if e == CuError::NOT_READY => Ok(()),
            Err(e) => {
                if e.is_sticky() {
                    let _ = self.async_error.compare_publish(0, u64::from(e.code()));
                }
                Err(e)
            }
        }
    }

    /// Device `ordinal`'s snapshot.
    pub fn device(&self, ordinal: i32) -> CuResult<&DeviceInfo> {
        usize::try_from(ordinal)
            .ok()
            .and_then(|i| self.devices.get(i))
            .ok_or(CuError::INVALID_DEVICE)
    }

    /// The stream a `CUstream` argument names. `per_thread_api`: called through a `_ptsz`/`_ptds`
    /// entry point, where NULL means the calling thread's default stream.
    #[inline]
    pub fn stream(&self, handle: u64, per_thread_api: bool) -> CuResult<Arc<StreamState>> {
        match handle {
            0 if per_thread_api => context::per_thread_stream(self),
            0 | gpushare_driver_abi::sys::CU_STREAM_LEGACY => Ok(self.legacy.clone()),
            gpushare_driver_abi::sys::CU_STREAM_PER_THREAD => context::per_thread_stream(self),
            h => self
                .streams
                .get(&h)
                .map(|s| s.clone())
                .ok_or(CuError::INVALID_HANDLE),
        }
    }

    /// The kernel a `CUfunction` (or `CUkernel`) names.
    #[inline]
    pub fn function(&self, handle: u64) -> CuResult<Arc<FunctionInfo>> {
        self.functions
            .get(&handle)
            .map(|f| f.clone())
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// The event a `CUevent` names.
    pub fn event(&self, handle: u64) -> CuResult<Arc<EventState>> {
        self.events
            .get(&handle)
            .map(|e| e.clone())
            .ok_or(CuError::INVALID_HANDLE)
    }

    /// Remembers a device range the tenant owns.
    pub fn add_device_range(&self, base: u64, size: u64) {
        if let Ok(mut m) = self.device_ranges.write() {
            m.insert(base, size.max(1));
        }
    }

    /// Forgets the device range starting at `base`.
    pub fn remove_device_range(&self, base: u64) {
        if let Ok(mut m) = self.device_ranges.write() {
            m.remove(&base);
        }
    }

    /// The tenant's device range containing `ptr`: (base, size).
    pub fn device_range_of(&self, ptr: u64) -> Option<(u64, u64)> {
        let m = self.device_ranges.read().ok()?;
        let (&base, &size) = m.range(..=ptr).next_back()?;
        (ptr < base.saturating_add(size)).then_some((base, size))
    }

    /// How `[ptr, ptr + len)` in this process is backed.
    pub fn host_memory(&self, ptr: usize, len: usize) -> HostMemory {
        if let Ok(m) = self.host_allocs.read() {
            if let Some((&base, alloc)) = m.range(..=ptr).next_back() {
                let end = base + alloc.buffer.len() as usize;
                if ptr.checked_add(len).is_some_and(|e| e <= end) && ptr < end.max(base + 1) {
                    return HostMemory::Shared {
                        alloc: alloc.clone(),
                        offset: (ptr - base) as u64,
                    };
                }
            }
        }
        HostMemory::Pageable
    }

    /// The pinned allocation starting exactly at `ptr`.
    pub fn host_alloc_at(&self, ptr: usize) -> Option<Arc<HostAlloc>> {
        self.host_allocs.read().ok()?.get(&ptr).cloned()
    }
}
