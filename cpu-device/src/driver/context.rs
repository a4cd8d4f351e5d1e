//! Contexts: primary context, created contexts and the per-thread current-context stack.
//!
//! The CPU device has one device; contexts are bookkeeping (ownership of memory, streams, events and
//! modules, limits, sticky errors). Calls that need a current context fail with `INVALID_CONTEXT`
//! when the calling thread has none.

use std::sync::atomic::Ordering;

use std::ffi::c_void;

use gpushare_driver_abi::checks;
use gpushare_driver_abi::cuda_h::{
    limit, CTX_API_VERSION, FUNC_CACHE_PREFER_NONE, SHARED_MEM_FOUR_BYTE_BANKS,
    STREAM_PRIORITY_GREATEST, STREAM_PRIORITY_LEAST,
};
use gpushare_driver_abi::export_table;
use gpushare_driver_abi::surface::{Flags, OptOut, Out};

use super::device::device;
use super::resolve::context;
use crate::error::{CuError, CuResult};
use crate::state;
use crate::sys::{CUcontext, CUdevice};
use crate::CpuDevice;

fn handle_of(ctx: CUcontext) -> u64 {
    ctx as u64
}

fn ptr_of(handle: u64) -> CUcontext {
    handle as CUcontext
}

fn create(dev: CUdevice, flags: u32) -> CuResult<u64> {
    let d = device(dev)?;
    checks::ctx_flags(flags)?;
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
    export_table::context_destroyed(ctx);
    d.teardown_context(&c);
    d.contexts.remove(c.id());
    if state::current_handle() == c.id() {
        state::pop_current_handle();
    }
    Ok(())
}

/// `cuCtxDetach`: `ctx` must be current; the last detach of a created context destroys it (a
/// primary context is released with `cuDevicePrimaryCtxRelease`, so its count stays at 1).
fn detach(ctx: CUcontext) -> CuResult {
    let d = state::driver()?;
    let c = context(d, ctx)?;
    if state::current_handle() != c.id() {
        tracing::debug!("cuCtxDetach of a context that is not current");
        return Err(CuError::INVALID_CONTEXT);
    }
    let last = c
        .usage
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n > 1).then(|| n - 1)
        })
        .is_err();
    match (last, c.primary) {
        (false, _) => Ok(()),
        (true, true) => {
            tracing::warn!("cuCtxDetach would destroy the primary context; release it instead");
            Err(CuError::INVALID_CONTEXT)
        }
        (true, false) => destroy(ctx),
    }
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
        export_table::context_destroyed(ptr_of(h));
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
        export_table::context_destroyed(ptr_of(h));
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
    checks::ctx_flags(flags)?;
    let mut p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
    p.flags = flags;
    if let Some(c) = p.handle.and_then(|h| d.contexts.get(h)) {
        c.flags.store(flags, Ordering::Relaxed);
    }
    Ok(())
}

gpushare_driver_abi::implement! {
    impl Context for CpuDevice {
        /// A created context, pushed on the calling thread's stack.
        fn ctx_create(pctx: Out<'_, CUcontext>, flags: u32, dev: CUdevice) -> CuResult {
            pctx.write(ptr_of(create(dev, flags)?))
        }

        /// Execution-affinity parameters are not supported (must be none).
        fn ctx_create_v3(pctx: Out<'_, CUcontext>, params: *mut c_void, num_params: i32, flags: u32, dev: CUdevice) -> CuResult {
            checks::ctx_affinity_params(params, num_params)?;
            pctx.write(ptr_of(create(dev, flags)?))
        }

        /// `CUctxCreateParams` (affinity, CIG) must be NULL or empty.
        unsafe fn ctx_create_v4(pctx: Out<'_, CUcontext>, params: *mut [usize; 3], flags: u32, dev: CUdevice) -> CuResult {
            // SAFETY: the caller's contract: NULL or a CUctxCreateParams.
            unsafe { checks::ctx_create_params(params) }?;
            pctx.write(ptr_of(create(dev, flags)?))
        }

        /// Not for a primary context.
        fn ctx_destroy(ctx: CUcontext) -> CuResult {
            destroy(ctx)
        }

        /// NULL unbinds. A primary context may be made current before it is retained
        /// (libcudart's `cudaSetDevice` does so with the handle from its export table); calls that
        /// need the context fail until it is.
        fn ctx_set_current(ctx: CUcontext) -> CuResult {
            let d = state::driver()?;
            if ctx.is_null() {
                state::set_current_handle(0);
                return Ok(());
            }
            let c = match d.contexts.get(handle_of(ctx)) {
                Some(c) if c.primary => c,
                _ => context(d, ctx)?,
            };
            state::set_current_handle(c.id());
            Ok(())
        }

        /// NULL when none.
        fn ctx_get_current(pctx: Out<'_, CUcontext>) -> CuResult {
            state::driver()?;
            pctx.write(ptr_of(state::current_handle()))
        }

        fn ctx_push_current(ctx: CUcontext) -> CuResult {
            let d = state::driver()?;
            let c = context(d, ctx)?;
            state::push_current_handle(c.id());
            Ok(())
        }

        fn ctx_pop_current(pctx: OptOut<'_, CUcontext>) -> CuResult {
            state::driver()?;
            let h = state::pop_current_handle().ok_or(CuError::INVALID_CONTEXT)?;
            pctx.write(ptr_of(h))
        }

        fn ctx_get_device(dev: Out<'_, CUdevice>) -> CuResult {
            dev.write(state::current_unchecked()?.1.device)
        }

        fn ctx_get_device_v2(dev: Out<'_, CUdevice>, ctx: CUcontext) -> CuResult {
            let d = state::driver()?;
            let c = if ctx.is_null() { state::current_unchecked()?.1 } else { context(d, ctx)? };
            dev.write(c.device)
        }

        fn ctx_get_flags(flags: Out<'_, u32>) -> CuResult {
            flags.write(state::current_unchecked()?.1.flags.load(Ordering::Relaxed))
        }

        fn ctx_set_flags(flags: u32) -> CuResult {
            let (_, c) = state::current()?;
            checks::ctx_flags(flags)?;
            c.flags.store(flags, Ordering::Relaxed);
            Ok(())
        }

        fn ctx_get_id(ctx: CUcontext, id: Out<'_, u64>) -> CuResult {
            let d = state::driver()?;
            let c = if ctx.is_null() { state::current_unchecked()?.1 } else { context(d, ctx)? };
            id.write(c.id() & 0xFFFF_FFFF)
        }

        /// Contexts report the 3.2+ API.
        fn ctx_get_api_version(ctx: CUcontext, version: Out<'_, u32>) -> CuResult {
            let d = state::driver()?;
            if ctx.is_null() {
                state::current_unchecked()?;
            } else {
                context(d, ctx)?;
            }
            version.write(CTX_API_VERSION)
        }

        /// Waits for all work of the current context; returns its sticky error.
        fn ctx_synchronize() -> CuResult {
            let (d, c) = state::current_unchecked()?;
            c.check_usable()?;
            d.exec.synchronize_context(&c)?;
            c.check_usable()
        }

        fn ctx_synchronize_v2(ctx: CUcontext) -> CuResult {
            let d = state::driver()?;
            let c = if ctx.is_null() { state::current_unchecked()?.1 } else { context(d, ctx)? };
            c.check_usable()?;
            d.exec.synchronize_context(&c)?;
            c.check_usable()
        }

        fn ctx_get_limit(value: Out<'_, usize>, which: i32) -> CuResult {
            let (_, c) = state::current()?;
            let l = c.limits.lock().map_err(|_| CuError::UNKNOWN)?;
            let v = match which {
                limit::STACK_SIZE => l.stack_size,
                limit::PRINTF_FIFO_SIZE => l.printf_fifo_size,
                limit::MALLOC_HEAP_SIZE => l.malloc_heap_size,
                limit::DEV_RUNTIME_SYNC_DEPTH => 2,
                limit::DEV_RUNTIME_PENDING_LAUNCH_COUNT => 2048,
                limit::MAX_L2_FETCH_GRANULARITY => 64,
                limit::PERSISTING_L2_CACHE_SIZE => 0,
                _ => return Err(CuError::UNSUPPORTED_LIMIT),
            };
            value.write(v as usize)
        }

        fn ctx_set_limit(which: i32, value: usize) -> CuResult {
            let (_, c) = state::current()?;
            let mut l = c.limits.lock().map_err(|_| CuError::UNKNOWN)?;
            match which {
                limit::STACK_SIZE => l.stack_size = value as u64,
                limit::PRINTF_FIFO_SIZE => l.printf_fifo_size = value as u64,
                limit::MALLOC_HEAP_SIZE => l.malloc_heap_size = value as u64,
                limit::DEV_RUNTIME_SYNC_DEPTH
                | limit::DEV_RUNTIME_PENDING_LAUNCH_COUNT
                | limit::MAX_L2_FETCH_GRANULARITY
                | limit::PERSISTING_L2_CACHE_SIZE => {}
                _ => return Err(CuError::UNSUPPORTED_LIMIT),
            }
            Ok(())
        }

        fn ctx_get_cache_config(config: Out<'_, i32>) -> CuResult {
            state::current()?;
            config.write(FUNC_CACHE_PREFER_NONE)
        }

        /// Accepted and ignored: there is no L1/shared split to model.
        fn ctx_set_cache_config(config: i32) -> CuResult {
            state::current()?;
            checks::cache_config(config)
        }

        fn ctx_get_shared_mem_config(config: Out<'_, i32>) -> CuResult {
            state::current()?;
            config.write(SHARED_MEM_FOUR_BYTE_BANKS)
        }

        /// Accepted and ignored.
        fn ctx_set_shared_mem_config(config: i32) -> CuResult {
            state::current()?;
            checks::shared_mem_config(config)
        }

        fn ctx_get_stream_priority_range(least: OptOut<'_, i32>, greatest: OptOut<'_, i32>) -> CuResult {
            state::current()?;
            least.write(STREAM_PRIORITY_LEAST)?;
            greatest.write(STREAM_PRIORITY_GREATEST)
        }

        /// Nothing to reset.
        fn ctx_reset_persisting_l2_cache() -> CuResult {
            state::current().map(|_| ())
        }

        fn device_primary_ctx_retain(pctx: Out<'_, CUcontext>, dev: CUdevice) -> CuResult {
            pctx.write(ptr_of(primary_retain(dev)?))
        }

        fn device_primary_ctx_release(dev: CUdevice) -> CuResult {
            primary_release(dev)
        }

        fn device_primary_ctx_reset(dev: CUdevice) -> CuResult {
            primary_reset(dev)
        }

        fn device_primary_ctx_set_flags(dev: CUdevice, flags: u32) -> CuResult {
            primary_set_flags(dev, flags)
        }

        /// Increments the current context's usage count.
        fn ctx_attach(pctx: Out<'_, CUcontext>, _flags: Flags<0>) -> CuResult {
            let (_, c) = state::current_unchecked()?;
            c.usage.fetch_add(1, Ordering::AcqRel);
            pctx.write(ptr_of(c.id()))
        }

        fn ctx_detach(ctx: CUcontext) -> CuResult {
            detach(ctx)
        }

        fn device_primary_ctx_get_state(dev: CUdevice, flags: Out<'_, u32>, active: Out<'_, i32>) -> CuResult {
            let d = device(dev)?;
            let p = d.primary.lock().map_err(|_| CuError::UNKNOWN)?;
            flags.write(p.flags)?;
            active.write(i32::from(p.refcount > 0))
        }
    }
}
