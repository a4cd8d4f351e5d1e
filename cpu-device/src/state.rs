//! Driver-global state (created once by `cuInit`) and contexts with their per-thread current stack.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::error::{CuError, CuResult};
use crate::handles::{HandleKind, HandleTable};
use crate::profile::DeviceProfile;

/// Everything the driver owns after `cuInit`.
pub struct Driver {
    /// The modelled device (there is exactly one: ordinal 0).
    pub profile: DeviceProfile,
    /// Live contexts (primary and created).
    pub contexts: HandleTable<Context>,
    /// The primary context of device 0.
    pub primary: Mutex<PrimaryContext>,
    /// Device memory: the address arena, allocations, VMM, host registrations.
    pub memory: crate::memory::DeviceMemory,
    /// Streams, events, modules and the work executor.
    pub exec: crate::exec::Executor,
    /// Wall-clock origin of the timing model.
    pub epoch: Instant,
}

/// Primary-context bookkeeping (`cuDevicePrimaryCtx*`).
#[derive(Default)]
pub struct PrimaryContext {
    /// Handle of the primary context once created; kept across release/retain cycles.
    pub handle: Option<u64>,
    /// Retain count; the context is active while > 0.
    pub refcount: u32,
    /// Flags set with `cuDevicePrimaryCtxSetFlags`.
    pub flags: u32,
}

static DRIVER: OnceLock<Driver> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The driver, or `NOT_INITIALIZED` before a successful `cuInit`.
#[inline]
pub fn driver() -> CuResult<&'static Driver> {
    DRIVER.get().ok_or(CuError::NOT_INITIALIZED)
}

/// Initialises the driver (idempotent). Fails if the profile named in the environment is unknown.
pub fn init() -> CuResult<&'static Driver> {
    if let Some(d) = DRIVER.get() {
        return Ok(d);
    }
    let _guard = INIT_LOCK.lock().map_err(|_| CuError::UNKNOWN)?;
    if let Some(d) = DRIVER.get() {
        return Ok(d);
    }
    let profile = DeviceProfile::from_env()?;
    let memory = crate::memory::DeviceMemory::new(&profile)?;
    let exec = crate::exec::Executor::new(&profile)?;
    tracing::info!(
        "CPU device initialised: {} ({} SMs, {} MiB)",
        profile.name,
        profile.sm_count,
        profile.total_memory >> 20
    );
    let driver = Driver {
        profile,
        contexts: HandleTable::new(HandleKind::Context),
        primary: Mutex::new(PrimaryContext::default()),
        memory,
        exec,
        epoch: Instant::now(),
    };
    Ok(DRIVER.get_or_init(|| driver))
}

/// A CUDA context. All resources (memory, streams, events, modules) belong to one.
pub struct Context {
    /// Handle value (set right after insertion in the table).
    pub handle: OnceLock<u64>,
    /// Device ordinal.
    pub device: i32,
    /// `CU_CTX_*` flags.
    pub flags: AtomicU32,
    /// True for the device's primary context.
    pub primary: bool,
    /// False once destroyed (or, for the primary context, released to zero or reset).
    active: AtomicBool,
    /// A sticky error (e.g. `ILLEGAL_ADDRESS` after a faulting kernel): every later call fails with it.
    sticky: AtomicU32,
    /// `cuCtxSetLimit` values.
    pub limits: Mutex<Limits>,
}

/// Context limits (`CUlimit`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// `CU_LIMIT_STACK_SIZE`
    pub stack_size: u64,
    /// `CU_LIMIT_PRINTF_FIFO_SIZE`
    pub printf_fifo_size: u64,
    /// `CU_LIMIT_MALLOC_HEAP_SIZE`
    pub malloc_heap_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stack_size: 1024,
            printf_fifo_size: 1 << 20,
            malloc_heap_size: 8 << 20,
        }
    }
}

impl Context {
    /// A new, active context.
    pub fn new(device: i32, flags: u32, primary: bool) -> Self {
        Context {
            handle: OnceLock::new(),
            device,
            flags: AtomicU32::new(flags),
            primary,
            active: AtomicBool::new(true),
            sticky: AtomicU32::new(0),
            limits: Mutex::new(Limits::default()),
        }
    }

    /// This context's handle value.
    pub fn id(&self) -> u64 {
        self.handle.get().copied().unwrap_or(0)
    }

    /// True until destroyed/deactivated.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Marks the context (in)active.
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
    }

    /// Records a sticky error; the first one wins.
    pub fn poison(&self, error: CuError) {
        let _ = self
            .sticky
            .compare_exchange(0, error.code(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// Clears the sticky error (only a primary-context reset does this).
    pub fn clear_poison(&self) {
        self.sticky.store(0, Ordering::Release);
    }

    /// The sticky error, if any.
    pub fn sticky_error(&self) -> Option<CuError> {
        CuError::from_code(self.sticky.load(Ordering::Acquire))
    }

    /// Fails with the sticky error if the context is poisoned, or `INVALID_CONTEXT` if inactive.
    pub fn check_usable(&self) -> CuResult {
        if !self.is_active() {
            return Err(CuError::INVALID_CONTEXT);
        }
        match self.sticky_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

thread_local! {
    /// This thread's context stack; the top is the current context.
    static CONTEXT_STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Handle of this thread's current context (0 when none).
pub fn current_handle() -> u64 {
    CONTEXT_STACK.with(|s| s.borrow().last().copied().unwrap_or(0))
}

/// Replaces the top of the stack (or pushes onto an empty one); 0 pops.
pub fn set_current_handle(handle: u64) {
    CONTEXT_STACK.with(|s| {
        let mut s = s.borrow_mut();
        if handle == 0 {
            s.pop();
        } else if let Some(top) = s.last_mut() {
            *top = handle;
        } else {
            s.push(handle);
        }
    })
}

/// Pushes onto this thread's stack.
pub fn push_current_handle(handle: u64) {
    CONTEXT_STACK.with(|s| s.borrow_mut().push(handle))
}

/// Pops this thread's stack.
pub fn pop_current_handle() -> Option<u64> {
    CONTEXT_STACK.with(|s| s.borrow_mut().pop())
}

/// The driver and this thread's current context, which must exist, be active and not poisoned.
/// Missing context: `INVALID_CONTEXT`; poisoned: its sticky error.
pub fn current() -> CuResult<(&'static Driver, Arc<Context>)> {
    let (driver, ctx) = current_unchecked()?;
    ctx.check_usable()?;
    Ok((driver, ctx))
}

/// Like [`current`] but returns a poisoned context too (for calls that must work on one, such as
/// `cuCtxGetDevice`).
pub fn current_unchecked() -> CuResult<(&'static Driver, Arc<Context>)> {
    let driver = driver()?;
    let handle = current_handle();
    if handle == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    let ctx = driver
        .contexts
        .get(handle)
        .ok_or(CuError::INVALID_CONTEXT)?;
    if !ctx.is_active() {
        return Err(CuError::INVALID_CONTEXT);
    }
    Ok((driver, ctx))
}

impl Driver {
    /// Creates and registers a context; returns it with its handle set.
    pub fn create_context(&self, device: i32, flags: u32, primary: bool) -> Arc<Context> {
        let ctx = Arc::new(Context::new(device, flags, primary));
        let handle = self.contexts.insert(Arc::clone(&ctx));
        let _ = ctx.handle.set(handle);
        ctx
    }

    /// Lets the context's queued work finish (as `cuCtxDestroy` does; a poisoned context's work is
    /// skipped), then frees everything it owns (streams, events, modules, memory) and deactivates it.
    pub fn teardown_context(&self, ctx: &Context) {
        self.exec.release_context(ctx.id());
        ctx.set_active(false);
        self.memory.release_context(ctx.id());
    }

    /// Nanoseconds since the driver's epoch (the timing model's clock).
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}
