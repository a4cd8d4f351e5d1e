//! The [`Runtime`]: the broker session and the shim's tables of the tenant's objects, created by
//! the first successful `cuInit` and alive for the rest of the process. Every entry point reaches
//! it through [`runtime`], which fails with `CUDA_ERROR_NOT_INITIALIZED` before `cuInit` (or with
//! `cuInit`'s own error after a failed one).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use dashmap::DashMap;
use gpushare_client::proto::{DeviceInfo, Reply, Request};
use gpushare_client::ring::Command;
use gpushare_client::shm::{Region, LEGACY_STREAM_SLOT};
use gpushare_client::wait::{Cancel, SeqWord, WaitError, WaitPolicy};
use gpushare_client::{paths, Client, ClientError, ClientOptions, Hello};
use gpushare_driver_abi::error::{CuError, CuResult};

use super::objects::{
    Alloc, ContextState, EventState, FunctionInfo, HostAlloc, ModuleState, Primary, Registered,
    StreamState,
};
use super::vmm::VmmTable;

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
    /// Contexts the tenant can make current, by handle.
    pub contexts: DashMap<u64, Arc<ContextState>>,
    /// Each device's primary context, by ordinal.
    pub primary: Mutex<Vec<Primary>>,
    /// `cuCtxGetId` values by context handle.
    pub ctx_ids: DashMap<u64, u64>,
    /// Created streams by handle.
    pub streams: DashMap<u64, Arc<StreamState>>,
    /// Events by handle.
    pub events: DashMap<u64, Arc<EventState>>,
    /// Kernels by handle.
    pub functions: DashMap<u64, Arc<FunctionInfo>>,
    /// Loaded modules (and libraries) by the handle the application holds.
    pub modules: DashMap<u64, Arc<ModuleState>>,
    /// Device address ranges this tenant owns (allocations, module globals, reservations, pinned
    /// buffers' device addresses): base -> size. Used to tell device pointers from host pointers
    /// (`cuMemcpy`, pointer attributes).
    pub device_ranges: RwLock<BTreeMap<u64, u64>>,
    /// `cuMemAlloc`/`cuMemAllocPitch` allocations by base address.
    pub allocs: RwLock<BTreeMap<u64, Alloc>>,
    /// The VMM objects.
    pub vmm: Mutex<VmmTable>,
    /// Pinned host allocations by start address.
    pub host_allocs: RwLock<BTreeMap<usize, Arc<HostAlloc>>>,
    /// Host ranges registered with `cuMemHostRegister`, by the pointer given; copies from and
    /// to them stay staged (device-mapped ones are re-backed by a memfd the worker maps).
    pub host_registered: RwLock<BTreeMap<usize, Registered>>,
    /// `CU_POINTER_ATTRIBUTE_SYNC_MEMOPS` settings, by the base of the range they were set on.
    pub sync_memops: Mutex<HashMap<u64, bool>>,
    /// Next host region id.
    pub next_region: AtomicU64,
    /// Next process-unique id (buffer and memory block ids).
    pub next_id: AtomicU64,
    /// Next `cuCtxGetId` value.
    pub next_ctx_id: AtomicU64,
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

/// Connects to the broker once; later calls return the first outcome.
pub(super) fn connect_once() -> CuResult<&'static Runtime> {
    match RUNTIME.get_or_init(connect) {
        Ok(rt) => Ok(rt),
        Err(e) => Err(*e),
    }
}

fn tenant_name() -> String {
    if let Some(n) = std::env::var(paths::TENANT_NAME_ENV)
        .ok()
        .filter(|n| !n.is_empty())
    {
        return n;
    }
    // A process may call itself anything: the default name keeps printable characters only
    // (the broker refuses names with control characters).
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        })
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
        contexts: DashMap::new(),
        primary: Mutex::new(Vec::new()),
        ctx_ids: DashMap::new(),
        streams: DashMap::new(),
        events: DashMap::new(),
        functions: DashMap::new(),
        modules: DashMap::new(),
        device_ranges: RwLock::new(BTreeMap::new()),
        allocs: RwLock::new(BTreeMap::new()),
        vmm: Mutex::new(VmmTable::default()),
        host_allocs: RwLock::new(BTreeMap::new()),
        host_registered: RwLock::new(BTreeMap::new()),
        sync_memops: Mutex::new(HashMap::new()),
        next_region: AtomicU64::new(1),
        next_id: AtomicU64::new(1),
        next_ctx_id: AtomicU64::new(1),
        client,
    })
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

    /// Waits for everything pushed on `s` so far (see [`Runtime::wait_for`]).
    pub fn wait_stream(&self, s: &StreamState) -> CuResult {
        self.wait_for(&s.slot, s.last.load(Ordering::Acquire), s.handle)
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

    /// Whether `ordinal` names one of the broker's devices.
    pub fn has_device(&self, ordinal: i32) -> bool {
        self.device(ordinal).is_ok()
    }

    /// A fresh process-unique id (buffer ids, memory block ids).
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The context a `CUcontext` names (`INVALID_CONTEXT` for NULL or an unknown one).
    pub fn context(&self, handle: u64) -> CuResult<Arc<ContextState>> {
        self.contexts
            .get(&handle)
            .map(|c| c.clone())
            .ok_or(CuError::INVALID_CONTEXT)
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

    /// Runs `f` on the VMM table.
    pub fn vmm<T>(&self, f: impl FnOnce(&mut VmmTable) -> T) -> T {
        f(&mut self.vmm.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
