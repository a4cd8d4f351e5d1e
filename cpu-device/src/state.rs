//! Driver-global state (created once by `cuInit`): the table of contexts, device memory and the
//! executor, and each thread's current-context stack.
//!
//! This is the layer above [`crate::exec`]: the [`Driver`] owns the [`Executor`] and hands it what
//! it needs (device memory, the clock) at creation; nothing below reaches back to [`driver`].

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};

use crate::clock::Clock;
use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::exec::Executor;
use crate::handles::{HandleKind, HandleTable};
use crate::memory::DeviceMemory;
use crate::profile::DeviceProfile;

/// Everything the driver owns after `cuInit`.
pub struct Driver {
    /// The modelled device (there is exactly one: ordinal 0).
    pub profile: DeviceProfile,
    /// Live contexts (primary and created).
    pub contexts: HandleTable<Context>,
    /// The primary context of device 0.
    pub primary: Mutex<PrimaryContext>,
    /// Device memory: the address arena, allocations, VMM, host registrations (shared with the
    /// executor, which runs copies and kernels over it and frees module variables).
    pub memory: Arc<DeviceMemory>,
    /// Streams, events, modules and the work executor.
    pub exec: Arc<Executor>,
    /// The timing model's clock (the executor holds a copy with the same origin).
    pub clock: Clock,
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
    let memory = Arc::new(DeviceMemory::new(&profile)?);
    let clock = Clock::start();
    let exec = Executor::new(&profile, Arc::clone(&memory), clock)?;
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
        clock,
    };
    Ok(DRIVER.get_or_init(|| driver))
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
        self.clock.now_ns()
    }
}
