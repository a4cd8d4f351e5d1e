//! Contexts: the per-thread current-context stack, primary contexts and created contexts.
//!
//! The broker keeps one execution context per device for all tenants and hands each tenant its
//! own context handles; what CUDA makes per-context here (the current context of each thread,
//! flags, primary-context reference counts) is bookkeeping in the shim. A primary context's
//! handle is fixed for the life of the process (libcudart makes it current before retaining it,
//! with the handle it got from the hidden CUDART_INTERFACE table), and "active" means retained.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use dashmap::DashMap;
use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::export_table;
use gpushare_driver_abi::sys::{write_out, CUcontext, CUdevice};

use crate::runtime::{runtime, Runtime, StreamState};
use gpushare_driver_abi::cuda_h::CTX_FLAGS_MASK;

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
}

#[derive(Debug, Default)]
struct Primary {
    ctx: Option<Arc<ContextState>>,
    refs: u32,
    flags: u32,
}

static CONTEXTS: LazyLock<DashMap<u64, Arc<ContextState>>> = LazyLock::new(DashMap::new);
static PRIMARY: Mutex<Vec<Primary>> = Mutex::new(Vec::new());

thread_local! {
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static PER_THREAD_STREAM: RefCell<Option<Arc<StreamState>>> = const { RefCell::new(None) };
}

/// Runs `f` on the calling thread's context stack. While the thread (or, at exit, the process)
/// is tearing its thread-locals down there is none: `CUDA_ERROR_DEINITIALIZED`, never a panic.
fn stack<T>(f: impl FnOnce(&mut Vec<u64>) -> T) -> CuResult<T> {
    STACK
        .try_with(|s| s.try_borrow_mut().map(|mut s| f(&mut s)).ok())
        .ok()
        .flatten()
        .ok_or(CuError::DEINITIALIZED)
}

/// Runs `f` on the calling thread's per-thread default stream slot (see [`stack`]).
fn per_thread_slot<T>(f: impl FnOnce(&mut Option<Arc<StreamState>>) -> T) -> CuResult<T> {
    PER_THREAD_STREAM
        .try_with(|p| p.try_borrow_mut().map(|mut p| f(&mut p)).ok())
        .ok()
        .flatten()
        .ok_or(CuError::DEINITIALIZED)
}

fn ptr_of(h: u64) -> CUcontext {
    h as usize as CUcontext
}

fn handle_of(ctx: CUcontext) -> u64 {
    ctx as usize as u64
}

fn lookup(ctx: CUcontext) -> CuResult<Arc<ContextState>> {
    CONTEXTS
        .get(&handle_of(ctx))
        .map(|c| c.clone())
        .ok_or(CuError::INVALID_CONTEXT)
}

/// The calling thread's current context.
#[inline]
pub fn current() -> CuResult<Arc<ContextState>> {
    runtime()?;
    let top = stack(|s| s.last().copied())?;
    let h = top.filter(|&h| h != 0).ok_or(CuError::INVALID_CONTEXT)?;
    CONTEXTS
        .get(&h)
        .map(|c| c.clone())
        .ok_or(CuError::CONTEXT_IS_DESTROYED)
}

/// Fails with `INVALID_CONTEXT` unless the calling thread has a current context (cheap: a
/// thread-local read).
#[inline]
pub fn require_current() -> CuResult<&'static Runtime> {
    let rt = runtime()?;
    let has = stack(|s| s.last().is_some_and(|&h| h != 0))?;
    if has {
        Ok(rt)
    } else {
        Err(CuError::INVALID_CONTEXT)
    }
}

/// `cuCtxSetCurrent`: replaces the top of the stack; NULL pops it (a no-op on an empty stack).
fn set_current(h: u64) -> CuResult {
    stack(|s| match (h, s.last_mut()) {
        (0, _) => {
            s.pop();
        }
        (_, Some(top)) => *top = h,
        (_, None) => s.push(h),
    })
}

/// The calling thread's per-thread default stream (created on first use, as a blocking stream:
/// it synchronises with the legacy default stream like CUDA's does).
pub fn per_thread_stream(rt: &Runtime) -> CuResult<Arc<StreamState>> {
    if let Some(s) = per_thread_slot(|p| p.clone())? {
        return Ok(s);
    }
    let s = super::stream::create(rt, 0, 0)?;
    per_thread_slot(|p| *p = Some(s.clone()))?;
    Ok(s)
}

fn create(dev: CUdevice, flags: u32) -> CuResult<u64> {
    let rt = runtime()?;
    rt.device(dev)?;
    if flags & !CTX_FLAGS_MASK != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let handle = match rt.call(Request::CtxCreate { device: dev, flags })? {
        Reply::Context { ctx } => ctx,
        _ => return Err(CuError::UNKNOWN),
    };
    CONTEXTS.insert(
        handle,
        Arc::new(ContextState {
            handle,
            device: dev,
            flags: AtomicU32::new(flags),
            primary: false,
        }),
    );
    stack(|s| s.push(handle))?;
    Ok(handle)
}

fn destroy(ctx: CUcontext) -> CuResult {
    let rt = runtime()?;
    let c = lookup(ctx)?;
    if c.primary {
        return Err(CuError::INVALID_CONTEXT);
    }
    rt.call_empty(Request::CtxDestroy { ctx: c.handle })?;
    CONTEXTS.remove(&c.handle);
    let _ = stack(|s| s.retain(|&h| h != c.handle));
    export_table::context_destroyed(ctx);
    Ok(())
}

fn with_primary<T>(
    dev: CUdevice,
    f: impl FnOnce(&Runtime, &mut Primary) -> CuResult<T>,
) -> CuResult<T> {
    let rt = runtime()?;
    rt.device(dev)?;
    let mut all = PRIMARY.lock().map_err(|_| CuError::UNKNOWN)?;
    let i = dev as usize;
    if all.len() <= i {
        all.resize_with(i + 1, Primary::default);
    }
    f(rt, &mut all[i])
}

/// The handle of `dev`'s primary context, asking the broker the first time.
fn primary_handle(rt: &Runtime, dev: CUdevice, p: &mut Primary) -> CuResult<Arc<ContextState>> {
    if let Some(c) = &p.ctx {
        return Ok(c.clone());
    }
    let handle = match rt.call(Request::PrimaryCtxRetain { device: dev })? {
        Reply::Context { ctx } => ctx,
        _ => return Err(CuError::UNKNOWN),
    };
    let c = Arc::new(ContextState {
        handle,
        device: dev,
        flags: AtomicU32::new(p.flags),
        primary: true,
    });
    CONTEXTS.insert(handle, c.clone());
    p.ctx = Some(c.clone());
    Ok(c)
}

cuda_exports! {
    /// `cuCtxCreate` (v1)
    fn cuCtxCreate(pctx: *mut CUcontext, flags: u32, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxCreate_v2`: creates a context and pushes it on the calling thread's stack.
    fn cuCtxCreate_v2(pctx: *mut CUcontext, flags: u32, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxCreate_v3`: execution-affinity parameters are not supported.
    fn cuCtxCreate_v3(pctx: *mut CUcontext, params: *mut std::ffi::c_void, num_params: i32, flags: u32, dev: CUdevice) {
        if pctx.is_null() || num_params < 0 || (num_params > 0 && params.is_null()) {
            return Err(CuError::INVALID_VALUE);
        }
        if num_params > 0 {
            return Err(CuError::NOT_SUPPORTED);
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxCreate_v4`: `CUctxCreateParams` (affinity, CIG) must be NULL or empty.
    fn cuCtxCreate_v4(pctx: *mut CUcontext, params: *mut [usize; 3], flags: u32, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        if !params.is_null() {
            // SAFETY: the caller passes a valid CUctxCreateParams (three pointer-sized fields).
            let p = unsafe { params.read_unaligned() };
            if p[0] != 0 || p[2] != 0 {
                return Err(CuError::NOT_SUPPORTED);
            }
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxDestroy` (v1)
    fn cuCtxDestroy(ctx: CUcontext) {
        destroy(ctx)
    }

    /// `cuCtxDestroy_v2`
    fn cuCtxDestroy_v2(ctx: CUcontext) {
        destroy(ctx)
    }

    /// `cuCtxSetCurrent`: NULL unbinds.
    fn cuCtxSetCurrent(ctx: CUcontext) {
        runtime()?;
        if ctx.is_null() {
            return set_current(0);
        }
        let c = lookup(ctx)?;
        set_current(c.handle)
    }

    /// `cuCtxGetCurrent`: NULL when none is current.
    fn cuCtxGetCurrent(pctx: *mut CUcontext) {
        runtime()?;
        let top = stack(|s| s.last().copied())?.unwrap_or(0);
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(pctx, ptr_of(top)) }
    }

    /// `cuCtxPushCurrent` (v1)
    fn cuCtxPushCurrent(ctx: CUcontext) {
        runtime()?;
        let c = lookup(ctx)?;
        stack(|s| s.push(c.handle))
    }

    /// `cuCtxPushCurrent_v2`
    fn cuCtxPushCurrent_v2(ctx: CUcontext) {
        runtime()?;
        let c = lookup(ctx)?;
        stack(|s| s.push(c.handle))
    }

    /// `cuCtxPopCurrent` (v1)
    fn cuCtxPopCurrent(pctx: *mut CUcontext) {
        runtime()?;
        let h = stack(|s| s.pop())?.ok_or(CuError::INVALID_CONTEXT)?;
        if !pctx.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pctx, ptr_of(h)) }?;
        }
        Ok(())
    }

    /// `cuCtxPopCurrent_v2`
    fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) {
        runtime()?;
        let h = stack(|s| s.pop())?.ok_or(CuError::INVALID_CONTEXT)?;
        if !pctx.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pctx, ptr_of(h)) }?;
        }
        Ok(())
    }

    /// `cuCtxGetDevice`
    fn cuCtxGetDevice(dev: *mut CUdevice) {
        let c = current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(dev, c.device) }
    }

    /// `cuCtxGetFlags`
    fn cuCtxGetFlags(flags: *mut u32) {
        let c = current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(flags, c.flags.load(Ordering::Relaxed)) }
    }

    /// `cuCtxSetFlags`
    fn cuCtxSetFlags(flags: u32) {
        let c = current()?;
        if flags & !CTX_FLAGS_MASK != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        c.flags.store(flags, Ordering::Relaxed);
        Ok(())
    }

    /// `cuCtxGetId`: a process-unique id per context.
    fn cuCtxGetId(ctx: CUcontext, id: *mut u64) {
        let c = if ctx.is_null() { current()? } else { lookup(ctx)? };
        static IDS: LazyLock<DashMap<u64, u64>> = LazyLock::new(DashMap::new);
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let v = *IDS.entry(c.handle).or_insert_with(|| NEXT.fetch_add(1, Ordering::Relaxed));
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(id, v) }
    }

    /// `cuCtxGetApiVersion`: contexts report the 3.2+ API (3020).
    fn cuCtxGetApiVersion(ctx: CUcontext, version: *mut u32) {
        if ctx.is_null() {
            current()?;
        } else {
            lookup(ctx)?;
        }
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(version, 3020) }
    }

    /// `cuCtxSynchronize`: waits for all of the tenant's work; returns the sticky error.
    fn cuCtxSynchronize() {
        let c = current()?;
        let rt = runtime()?;
        rt.sticky()?;
        rt.call_empty(Request::CtxSynchronize { ctx: c.handle })?;
        rt.sticky()
    }

    /// `cuCtxGetLimit`
    fn cuCtxGetLimit(value: *mut usize, limit: u32) {
        let rt = require_current()?;
        if value.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let v = match rt.call(Request::CtxGetLimit { limit })? {
            Reply::Value(v) => v,
            _ => return Err(CuError::UNKNOWN),
        };
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(value, v as usize) }
    }

    /// `cuCtxSetLimit`
    fn cuCtxSetLimit(limit: u32, value: usize) {
        let rt = require_current()?;
        rt.call_empty(Request::CtxSetLimit { limit, value: value as u64 })
    }

    /// `cuCtxGetCacheConfig`: `CU_FUNC_CACHE_PREFER_NONE`.
    fn cuCtxGetCacheConfig(config: *mut i32) {
        require_current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(config, 0) }
    }

    /// `cuCtxSetCacheConfig`: accepted (0..=3) and ignored.
    fn cuCtxSetCacheConfig(config: i32) {
        require_current()?;
        if !(0..=3).contains(&config) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(())
    }

    /// `cuCtxGetSharedMemConfig`: four-byte banks.
    fn cuCtxGetSharedMemConfig(config: *mut i32) {
        require_current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(config, 1) }
    }

    /// `cuCtxSetSharedMemConfig`: accepted and ignored.
    fn cuCtxSetSharedMemConfig(config: i32) {
        require_current()?;
        if !(0..=2).contains(&config) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(())
    }

    /// `cuCtxGetStreamPriorityRange`
    fn cuCtxGetStreamPriorityRange(least: *mut i32, greatest: *mut i32) {
        let rt = require_current()?;
        let (l, g) = match rt.call(Request::CtxGetStreamPriorityRange)? {
            Reply::PriorityRange { least, greatest } => (least, greatest),
            _ => return Err(CuError::UNKNOWN),
        };
        if !least.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(least, l) }?;
        }
        if !greatest.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(greatest, g) }?;
        }
        Ok(())
    }

    /// `cuCtxResetPersistingL2Cache`: nothing persists.
    fn cuCtxResetPersistingL2Cache() {
        require_current().map(|_| ())
    }

    /// `cuDevicePrimaryCtxRetain`
    fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let c = with_primary(dev, |rt, p| {
            let c = primary_handle(rt, dev, p)?;
            p.refs += 1;
            Ok(c)
        })?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(c.handle)) }
    }

    /// `cuDevicePrimaryCtxRelease` (v1)
    fn cuDevicePrimaryCtxRelease(dev: CUdevice) {
        primary_release(dev)
    }

    /// `cuDevicePrimaryCtxRelease_v2`
    fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) {
        primary_release(dev)
    }

    /// `cuDevicePrimaryCtxReset` (v1)
    fn cuDevicePrimaryCtxReset(dev: CUdevice) {
        primary_reset(dev)
    }

    /// `cuDevicePrimaryCtxReset_v2`
    fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) {
        primary_reset(dev)
    }

    /// `cuDevicePrimaryCtxSetFlags` (v1)
    fn cuDevicePrimaryCtxSetFlags(dev: CUdevice, flags: u32) {
        primary_set_flags(dev, flags)
    }

    /// `cuDevicePrimaryCtxSetFlags_v2`
    fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, flags: u32) {
        primary_set_flags(dev, flags)
    }

    /// `cuDevicePrimaryCtxGetState`
    fn cuDevicePrimaryCtxGetState(dev: CUdevice, flags: *mut u32, active: *mut i32) {
        let (f, a) = with_primary(dev, |_, p| Ok((p.flags, (p.refs > 0) as i32)))?;
        // SAFETY: out-pointers from the caller.
        unsafe {
            write_out(flags, f)?;
            write_out(active, a)
        }
    }
}

/// The primary context's handle if it exists and `pred(refs)` holds (no state changed).
fn primary_if(dev: CUdevice, pred: impl FnOnce(u32) -> bool) -> CuResult<Option<u64>> {
    with_primary(dev, |_, p| {
        Ok(p.ctx.as_ref().map(|c| c.handle).filter(|_| pred(p.refs)))
    })
}

/// Destroys what the tenant created in the primary context — modules, streams, events, memory
/// — as a real context teardown does. libcudart's per-context state goes first (its storage
/// destructors call back into the driver, so no lock is held).
fn teardown_primary(ctx: u64) -> CuResult {
    export_table::context_destroyed(ptr_of(ctx));
    let rt = runtime()?;
    rt.call_empty(Request::CtxSynchronize { ctx })?;
    super::module::reset_all(rt);
    let streams: Vec<u64> = rt.streams.iter().map(|s| *s.key()).collect();
    for stream in streams {
        let _ = rt.call_empty(Request::StreamDestroy { stream });
        rt.streams.remove(&stream);
    }
    let _ = per_thread_slot(|p| p.take());
    let events: Vec<u64> = rt.events.iter().map(|e| *e.key()).collect();
    for event in events {
        let _ = rt.call_empty(Request::EventDestroy { event });
        rt.events.remove(&event);
    }
    super::memory::free_all(rt);
    Ok(())
}

/// `cuDevicePrimaryCtxRelease`: the last release destroys the context's resources.
fn primary_release(dev: CUdevice) -> CuResult {
    if let Some(ctx) = primary_if(dev, |refs| refs == 1)? {
        teardown_primary(ctx)?;
    }
    with_primary(dev, |_, p| {
        if p.refs == 0 {
            return Err(CuError::INVALID_CONTEXT);
        }
        p.refs -= 1;
        Ok(())
    })
}

/// `cuDevicePrimaryCtxReset`: destroys the context's resources; the handle stays valid.
fn primary_reset(dev: CUdevice) -> CuResult {
    if let Some(ctx) = primary_if(dev, |_| true)? {
        teardown_primary(ctx)?;
    }
    with_primary(dev, |_, p| {
        p.flags = 0;
        if let Some(c) = &p.ctx {
            c.flags.store(0, Ordering::Relaxed);
        }
        Ok(())
    })
}

fn primary_set_flags(dev: CUdevice, flags: u32) -> CuResult {
    if flags & !CTX_FLAGS_MASK != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    with_primary(dev, |_, p| {
        p.flags = flags;
        if let Some(c) = &p.ctx {
            c.flags.store(flags, Ordering::Relaxed);
        }
        Ok(())
    })
}
