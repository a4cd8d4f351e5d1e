//! Contexts: primary context, created contexts and the per-thread current-context stack.
//!
//! The CPU device has one device; contexts are bookkeeping (ownership of memory, streams, events and
//! modules, limits, sticky errors). Calls that need a current context fail with `INVALID_CONTEXT`
//! when the calling thread has none.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{CuError, CuResult};
use crate::state::{self, Context, Driver};
use crate::sys::{write_out, CUcontext, CUdevice};

use super::device::device;
use gpushare_driver_abi::cuda_h::CTX_FLAGS_MASK;

fn handle_of(ctx: CUcontext) -> u64 {
    ctx as u64
}

fn ptr_of(handle: u64) -> CUcontext {
    handle as CUcontext
}

/// The context behind `ctx`, which must be live and active.
pub(crate) fn lookup(driver: &Driver, ctx: CUcontext) -> CuResult<Arc<Context>> {
    let c = driver
        .contexts
        .get(handle_of(ctx))
        .ok_or(CuError::INVALID_CONTEXT)?;
    if !c.is_active() {
        return Err(CuError::INVALID_CONTEXT);
    }
    Ok(c)
}

fn create(dev: CUdevice, flags: u32) -> CuResult<u64> {
    let d = device(dev)?;
    if flags & !CTX_FLAGS_MASK != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let ctx = d.create_context(dev, flags, false);
    state::push_current_handle(ctx.id());
    Ok(ctx.id())
}

fn destroy(ctx: CUcontext) -> CuResult {
    let d = state::driver()?;
    let c = d
        .contexts
        .get(handle_of(ctx))
        .ok_or(CuError::INVALID_CONTEXT)?;
    if c.primary {
        return Err(CuError::INVALID_CONTEXT);
    }
    // libcudart's per-context state goes first (its destructors may still use the context).
    super::export_table::context_destroyed(ctx);
    d.teardown_context(&c);
    d.contexts.remove(c.id());
    if state::current_handle() == c.id() {
        state::pop_current_handle();
    }
    Ok(())
}

fn primary_retain(dev: CUdevice) -> CuResult<u64> {
    let d = device(dev)?;
    let mut p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
    let handle = match p.handle {
        Some(h) => {
            let c = d.contexts.get(h).ok_or(CuError::UNKNOWN)?;
            if p.refcount == 0 {
                c.clear_poison();
                c.flags.store(p.flags, Ordering::Relaxed);
                c.set_active(true);
            }
            h
        }
        None => {
            let c = d.create_context(dev, p.flags, true);
            p.handle = Some(c.id());
            c.id()
        }
    };
    p.refcount += 1;
    Ok(handle)
}

fn primary_release(dev: CUdevice) -> CuResult {
    let d = device(dev)?;
    // The last release destroys the context: libcudart's per-context state goes first, with no
    // lock held (its destructors call back into the driver).
    let last = {
        let p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
        p.handle.filter(|_| p.refcount == 1)
    };
    if let Some(h) = last {
        super::export_table::context_destroyed(ptr_of(h));
    }
    let mut p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
    if p.refcount == 0 {
        return Err(CuError::INVALID_CONTEXT);
    }
    p.refcount -= 1;
    if p.refcount == 0 {
        if let Some(c) = p.handle.and_then(|h| d.contexts.get(h)) {
            d.teardown_context(&c);
        }
    }
    Ok(())
}

fn primary_reset(dev: CUdevice) -> CuResult {
    let d = device(dev)?;
    // As in primary_release: libcudart's per-context state goes first, with no lock held.
    let handle = d.primary.lock().map_err(|_| CuError::UNKNOWN)?.handle;
    if let Some(h) = handle {
        super::export_table::context_destroyed(ptr_of(h));
    }
    let p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
    if let Some(c) = p.handle.and_then(|h| d.contexts.get(h)) {
        d.teardown_context(&c);
        c.clear_poison();
        c.set_active(p.refcount > 0);
    }
    Ok(())
}

fn primary_set_flags(dev: CUdevice, flags: u32) -> CuResult {
    let d = device(dev)?;
    if flags & !CTX_FLAGS_MASK != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let mut p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
    p.flags = flags;
    if let Some(c) = p.handle.and_then(|h| d.contexts.get(h)) {
        c.flags.store(flags, Ordering::Relaxed);
    }
    Ok(())
}

/// `CUlimit` values.
const LIMIT_STACK_SIZE: i32 = 0;
const LIMIT_PRINTF_FIFO_SIZE: i32 = 1;
const LIMIT_MALLOC_HEAP_SIZE: i32 = 2;
const LIMIT_DEV_RUNTIME_SYNC_DEPTH: i32 = 3;
const LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT: i32 = 4;
const LIMIT_MAX_L2_FETCH_GRANULARITY: i32 = 5;
const LIMIT_PERSISTING_L2_CACHE_SIZE: i32 = 6;

cuda_exports! {
    /// `cuCtxCreate` (v1 ABI, same as v2 here).
    fn cuCtxCreate(pctx: *mut CUcontext, flags: u32, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxCreate_v2`
    fn cuCtxCreate_v2(pctx: *mut CUcontext, flags: u32, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = create(dev, flags)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuCtxCreate_v3`: execution-affinity parameters are not supported (must be none).
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

    /// `cuCtxDestroy`
    fn cuCtxDestroy(ctx: CUcontext) {
        destroy(ctx)
    }

    /// `cuCtxDestroy_v2`
    fn cuCtxDestroy_v2(ctx: CUcontext) {
        destroy(ctx)
    }

    /// `cuCtxSetCurrent`: NULL unbinds. A primary context may be made current before it is
    /// retained (libcudart's `cudaSetDevice` does so with the handle from its export table);
    /// calls that need the context fail until it is.
    fn cuCtxSetCurrent(ctx: CUcontext) {
        let d = state::driver()?;
        if ctx.is_null() {
            state::set_current_handle(0);
            return Ok(());
        }
        let c = match d.contexts.get(handle_of(ctx)) {
            Some(c) if c.primary => c,
            _ => lookup(d, ctx)?,
        };
        state::set_current_handle(c.id());
        Ok(())
    }

    /// `cuCtxGetCurrent`: NULL when none.
    fn cuCtxGetCurrent(pctx: *mut CUcontext) {
        state::driver()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(pctx, ptr_of(state::current_handle())) }
    }

    /// `cuCtxPushCurrent`
    fn cuCtxPushCurrent(ctx: CUcontext) {
        let d = state::driver()?;
        let c = lookup(d, ctx)?;
        state::push_current_handle(c.id());
        Ok(())
    }

    /// `cuCtxPushCurrent_v2`
    fn cuCtxPushCurrent_v2(ctx: CUcontext) {
        let d = state::driver()?;
        let c = lookup(d, ctx)?;
        state::push_current_handle(c.id());
        Ok(())
    }

    /// `cuCtxPopCurrent`
    fn cuCtxPopCurrent(pctx: *mut CUcontext) {
        state::driver()?;
        let h = state::pop_current_handle().ok_or(CuError::INVALID_CONTEXT)?;
        if !pctx.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pctx, ptr_of(h)) }?;
        }
        Ok(())
    }

    /// `cuCtxPopCurrent_v2`
    fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) {
        state::driver()?;
        let h = state::pop_current_handle().ok_or(CuError::INVALID_CONTEXT)?;
        if !pctx.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(pctx, ptr_of(h)) }?;
        }
        Ok(())
    }

    /// `cuCtxGetDevice`
    fn cuCtxGetDevice(dev: *mut CUdevice) {
        let (_, c) = state::current_unchecked()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(dev, c.device) }
    }

    /// `cuCtxGetFlags`
    fn cuCtxGetFlags(flags: *mut u32) {
        let (_, c) = state::current_unchecked()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(flags, c.flags.load(Ordering::Relaxed)) }
    }

    /// `cuCtxSetFlags`
    fn cuCtxSetFlags(flags: u32) {
        let (_, c) = state::current()?;
        if flags & !CTX_FLAGS_MASK != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        c.flags.store(flags, Ordering::Relaxed);
        Ok(())
    }

    /// `cuCtxGetId`
    fn cuCtxGetId(ctx: CUcontext, id: *mut u64) {
        let d = state::driver()?;
        let c = if ctx.is_null() { state::current_unchecked()?.1 } else { lookup(d, ctx)? };
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(id, c.id() & 0xFFFF_FFFF) }
    }

    /// `cuCtxGetApiVersion`: contexts report the 3.2+ API (3020).
    fn cuCtxGetApiVersion(ctx: CUcontext, version: *mut u32) {
        let d = state::driver()?;
        if ctx.is_null() {
            state::current_unchecked()?;
        } else {
            lookup(d, ctx)?;
        }
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(version, 3020) }
    }

    /// `cuCtxSynchronize`: waits for all work of the current context; returns its sticky error.
    fn cuCtxSynchronize() {
        let (d, c) = state::current_unchecked()?;
        c.check_usable()?;
        d.exec.synchronize_context(&c)?;
        c.check_usable()
    }

    /// `cuCtxGetLimit`
    fn cuCtxGetLimit(value: *mut usize, limit: i32) {
        let (_, c) = state::current()?;
        let l = c.limits.lock().map_err(|_| CuError::UNKNOWN)?;
        let v = match limit {
            LIMIT_STACK_SIZE => l.stack_size,
            LIMIT_PRINTF_FIFO_SIZE => l.printf_fifo_size,
            LIMIT_MALLOC_HEAP_SIZE => l.malloc_heap_size,
            LIMIT_DEV_RUNTIME_SYNC_DEPTH => 2,
            LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT => 2048,
            LIMIT_MAX_L2_FETCH_GRANULARITY => 64,
            LIMIT_PERSISTING_L2_CACHE_SIZE => 0,
            _ => return Err(CuError::UNSUPPORTED_LIMIT),
        };
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(value, v as usize) }
    }

    /// `cuCtxSetLimit`
    fn cuCtxSetLimit(limit: i32, value: usize) {
        let (_, c) = state::current()?;
        let mut l = c.limits.lock().map_err(|_| CuError::UNKNOWN)?;
        match limit {
            LIMIT_STACK_SIZE => l.stack_size = value as u64,
            LIMIT_PRINTF_FIFO_SIZE => l.printf_fifo_size = value as u64,
            LIMIT_MALLOC_HEAP_SIZE => l.malloc_heap_size = value as u64,
            LIMIT_DEV_RUNTIME_SYNC_DEPTH
            | LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT
            | LIMIT_MAX_L2_FETCH_GRANULARITY
            | LIMIT_PERSISTING_L2_CACHE_SIZE => {}
            _ => return Err(CuError::UNSUPPORTED_LIMIT),
        }
        Ok(())
    }

    /// `cuCtxGetCacheConfig`: always `CU_FUNC_CACHE_PREFER_NONE`.
    fn cuCtxGetCacheConfig(config: *mut i32) {
        state::current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(config, 0) }
    }

    /// `cuCtxSetCacheConfig`: accepted (0..=3) and ignored: there is no L1/shared split to model.
    fn cuCtxSetCacheConfig(config: i32) {
        state::current()?;
        if !(0..=3).contains(&config) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(())
    }

    /// `cuCtxGetSharedMemConfig`: four-byte banks.
    fn cuCtxGetSharedMemConfig(config: *mut i32) {
        state::current()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(config, 1) }
    }

    /// `cuCtxSetSharedMemConfig`: accepted and ignored.
    fn cuCtxSetSharedMemConfig(config: i32) {
        state::current()?;
        if !(0..=2).contains(&config) {
            return Err(CuError::INVALID_VALUE);
        }
        Ok(())
    }

    /// `cuCtxGetStreamPriorityRange`: least 0, greatest -5 (as Hopper reports).
    fn cuCtxGetStreamPriorityRange(least: *mut i32, greatest: *mut i32) {
        state::current()?;
        if !least.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(least, 0) }?;
        }
        if !greatest.is_null() {
            // SAFETY: out-pointer from the caller, checked non-null.
            unsafe { write_out(greatest, -5) }?;
        }
        Ok(())
    }

    /// `cuCtxResetPersistingL2Cache`: nothing to reset.
    fn cuCtxResetPersistingL2Cache() {
        state::current().map(|_| ())
    }

    /// `cuDevicePrimaryCtxRetain`
    fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) {
        if pctx.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = primary_retain(dev)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pctx, ptr_of(h)) }
    }

    /// `cuDevicePrimaryCtxRelease`
    fn cuDevicePrimaryCtxRelease(dev: CUdevice) {
        primary_release(dev)
    }

    /// `cuDevicePrimaryCtxRelease_v2`
    fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) {
        primary_release(dev)
    }

    /// `cuDevicePrimaryCtxReset`
    fn cuDevicePrimaryCtxReset(dev: CUdevice) {
        primary_reset(dev)
    }

    /// `cuDevicePrimaryCtxReset_v2`
    fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) {
        primary_reset(dev)
    }

    /// `cuDevicePrimaryCtxSetFlags`
    fn cuDevicePrimaryCtxSetFlags(dev: CUdevice, flags: u32) {
        primary_set_flags(dev, flags)
    }

    /// `cuDevicePrimaryCtxSetFlags_v2`
    fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, flags: u32) {
        primary_set_flags(dev, flags)
    }

    /// `cuDevicePrimaryCtxGetState`
    fn cuDevicePrimaryCtxGetState(dev: CUdevice, flags: *mut u32, active: *mut i32) {
        let d = device(dev)?;
        let p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
        // SAFETY: out-pointers from the caller.
        unsafe {
            write_out(flags, p.flags)?;
            write_out(active, i32::from(p.refcount > 0))
        }
    }
}
