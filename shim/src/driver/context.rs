//! Contexts: the per-thread current-context stack, primary contexts and created contexts.
//!
//! The broker keeps one execution context per device for all tenants and hands each tenant its
//! own context handles; what CUDA makes per-context here (the current context of each thread,
//! flags, primary-context reference counts) is bookkeeping in the shim's runtime. A primary
//! context's handle is fixed for the life of the process (libcudart makes it current before
//! retaining it, with the handle it got from the hidden CUDART_INTERFACE table), and "active"
//! means retained.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::checks;
use gpushare_driver_abi::cuda_h::{
    CTX_API_VERSION, FUNC_CACHE_PREFER_NONE, SHARED_MEM_FOUR_BYTE_BANKS,
};
use gpushare_driver_abi::export_table;
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::current::{per_thread_slot, stack};
use crate::runtime::{
    current, current_ctx, require_current, runtime, ContextState, Primary, Runtime,
};
use crate::Shim;

fn ptr_of(h: u64) -> CUcontext {
    h as usize as CUcontext
}

fn handle_of(ctx: CUcontext) -> u64 {
    ctx as usize as u64
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

/// The context `ctx` names, or the current one for NULL.
fn context_or_current(rt: &Runtime, ctx: CUcontext) -> CuResult<Arc<ContextState>> {
    if ctx.is_null() {
        current()
    } else {
        rt.context(handle_of(ctx))
    }
}

/// Creates a context on `dev` and pushes it on the calling thread's stack.
fn create(dev: CUdevice, flags: u32) -> CuResult<CUcontext> {
    let rt = runtime()?;
    rt.device(dev)?;
    checks::ctx_flags(flags)?;
    let handle = match rt.call(Request::CtxCreate { device: dev, flags })? {
        Reply::Context { ctx } => ctx,
        _ => return Err(CuError::UNKNOWN),
    };
    rt.contexts.insert(
        handle,
        Arc::new(ContextState {
            handle,
            device: dev,
            flags: AtomicU32::new(flags),
            primary: false,
            usage: AtomicU32::new(1),
        }),
    );
    stack(|s| s.push(handle))?;
    Ok(ptr_of(handle))
}

fn destroy(ctx: CUcontext) -> CuResult {
    let rt = runtime()?;
    let c = rt.context(handle_of(ctx))?;
    if c.primary {
        return Err(CuError::INVALID_CONTEXT);
    }
    rt.call_empty(Request::CtxDestroy { ctx: c.handle })?;
    rt.contexts.remove(&c.handle);
    let _ = stack(|s| s.retain(|&h| h != c.handle));
    export_table::context_destroyed(ctx);
    Ok(())
}

/// `cuCtxDetach`: `ctx` must be current; the last detach of a created context destroys it (a
/// primary context is released with `cuDevicePrimaryCtxRelease`, so its count stays at 1).
fn detach(ctx: CUcontext) -> CuResult {
    let rt = runtime()?;
    let c = rt.context(handle_of(ctx))?;
    if current_ctx() != c.handle {
        crate::log(
            || tracing::debug!(target: "gpushare::shim", "cuCtxDetach of a context that is not current"),
        );
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
            crate::log(
                || tracing::warn!(target: "gpushare::shim", "cuCtxDetach would destroy the primary context; release it instead"),
            );
            Err(CuError::INVALID_CONTEXT)
        }
        (true, false) => destroy(ctx),
    }
}

fn with_primary<T>(
    dev: CUdevice,
    f: impl FnOnce(&Runtime, &mut Primary) -> CuResult<T>,
) -> CuResult<T> {
    let rt = runtime()?;
    rt.device(dev)?;
    let mut all = rt.primary.lock().map_err(|_| CuError::UNKNOWN)?;
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
        usage: AtomicU32::new(1),
    });
    rt.contexts.insert(handle, c.clone());
    p.ctx = Some(c.clone());
    Ok(c)
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
    primary_store_flags(dev, 0)
}

/// Sets the flags of `dev`'s primary context (and of its context, once it exists).
fn primary_store_flags(dev: CUdevice, flags: u32) -> CuResult {
    with_primary(dev, |_, p| {
        p.flags = flags;
        if let Some(c) = &p.ctx {
            c.flags.store(flags, Ordering::Relaxed);
        }
        Ok(())
    })
}

gpushare_driver_abi::implement! {
    impl Context for Shim {
        /// `cuCtxCreate`: creates a context and pushes it on the calling thread's stack.
        fn ctx_create(pctx: Out<'_, CUcontext>, flags: u32, dev: CUdevice) -> CuResult {
            pctx.write(create(dev, flags)?)
        }

        /// `cuCtxCreate_v3`: execution-affinity parameters are not supported.
        fn ctx_create_v3(pctx: Out<'_, CUcontext>, params: *mut c_void, num_params: i32, flags: u32, dev: CUdevice) -> CuResult {
            checks::ctx_affinity_params(params, num_params)?;
            pctx.write(create(dev, flags)?)
        }

        /// `cuCtxCreate_v4`: `CUctxCreateParams` (affinity, CIG) must be NULL or empty.
        unsafe fn ctx_create_v4(pctx: Out<'_, CUcontext>, params: *mut [usize; 3], flags: u32, dev: CUdevice) -> CuResult {
            // SAFETY: the caller passes NULL or a CUctxCreateParams.
            unsafe { checks::ctx_create_params(params) }?;
            pctx.write(create(dev, flags)?)
        }

        /// `cuCtxDestroy`: not a primary context.
        fn ctx_destroy(ctx: CUcontext) -> CuResult {
            destroy(ctx)
        }

        /// `cuCtxPushCurrent`
        fn ctx_push_current(ctx: CUcontext) -> CuResult {
            let c = runtime()?.context(handle_of(ctx))?;
            stack(|s| s.push(c.handle))
        }

        /// `cuCtxPopCurrent`
        fn ctx_pop_current(pctx: OptOut<'_, CUcontext>) -> CuResult {
            runtime()?;
            let h = stack(|s| s.pop())?.ok_or(CuError::INVALID_CONTEXT)?;
            pctx.write(ptr_of(h))
        }

        /// `cuCtxSetCurrent`: NULL unbinds.
        fn ctx_set_current(ctx: CUcontext) -> CuResult {
            let rt = runtime()?;
            if ctx.is_null() {
                return set_current(0);
            }
            set_current(rt.context(handle_of(ctx))?.handle)
        }

        /// `cuCtxGetCurrent`: NULL when none is current.
        fn ctx_get_current(pctx: Out<'_, CUcontext>) -> CuResult {
            runtime()?;
            pctx.write(ptr_of(stack(|s| s.last().copied())?.unwrap_or(0)))
        }

        /// `cuCtxGetDevice`
        fn ctx_get_device(dev: Out<'_, CUdevice>) -> CuResult {
            dev.write(current()?.device)
        }

        /// `cuCtxGetDevice_v2`: NULL means the current context.
        fn ctx_get_device_v2(dev: Out<'_, CUdevice>, ctx: CUcontext) -> CuResult {
            dev.write(context_or_current(runtime()?, ctx)?.device)
        }

        /// `cuCtxGetFlags`
        fn ctx_get_flags(flags: Out<'_, u32>) -> CuResult {
            flags.write(current()?.flags.load(Ordering::Relaxed))
        }

        /// `cuCtxSetFlags`
        fn ctx_set_flags(flags: u32) -> CuResult {
            let c = current()?;
            checks::ctx_flags(flags)?;
            c.flags.store(flags, Ordering::Relaxed);
            Ok(())
        }

        /// `cuCtxGetId`: a process-unique id per context.
        fn ctx_get_id(ctx: CUcontext, id: Out<'_, u64>) -> CuResult {
            let rt = runtime()?;
            let c = context_or_current(rt, ctx)?;
            let v = *rt
                .ctx_ids
                .entry(c.handle)
                .or_insert_with(|| rt.next_ctx_id.fetch_add(1, Ordering::Relaxed));
            id.write(v)
        }

        /// `cuCtxGetApiVersion`: contexts report the 3.2+ API (3020).
        fn ctx_get_api_version(ctx: CUcontext, version: Out<'_, u32>) -> CuResult {
            context_or_current(runtime()?, ctx)?;
            version.write(CTX_API_VERSION)
        }

        /// `cuCtxSynchronize`: waits for all of the tenant's work; returns the sticky error.
        fn ctx_synchronize() -> CuResult {
            let c = current()?;
            let rt = runtime()?;
            rt.sticky()?;
            rt.call_empty(Request::CtxSynchronize { ctx: c.handle })?;
            rt.sticky()
        }

        /// `cuCtxSynchronize_v2`: waits for the tenant's work in `ctx` (NULL: the current context).
        fn ctx_synchronize_v2(ctx: CUcontext) -> CuResult {
            let rt = runtime()?;
            let c = context_or_current(rt, ctx)?;
            rt.sticky()?;
            rt.call_empty(Request::CtxSynchronize { ctx: c.handle })?;
            rt.sticky()
        }

        /// `cuCtxGetLimit`
        fn ctx_get_limit(value: Out<'_, usize>, limit: i32) -> CuResult {
            let rt = require_current()?;
            match rt.call(Request::CtxGetLimit { limit: limit as u32 })? {
                Reply::Value(v) => value.write(v as usize),
                _ => Err(CuError::UNKNOWN),
            }
        }

        /// `cuCtxSetLimit`
        fn ctx_set_limit(limit: i32, value: usize) -> CuResult {
            let rt = require_current()?;
            rt.call_empty(Request::CtxSetLimit { limit: limit as u32, value: value as u64 })
        }

        /// `cuCtxGetCacheConfig`: `CU_FUNC_CACHE_PREFER_NONE`.
        fn ctx_get_cache_config(config: Out<'_, i32>) -> CuResult {
            require_current()?;
            config.write(FUNC_CACHE_PREFER_NONE)
        }

        /// `cuCtxSetCacheConfig`: accepted (0..=3) and ignored.
        fn ctx_set_cache_config(config: i32) -> CuResult {
            require_current()?;
            checks::cache_config(config)
        }

        /// `cuCtxGetSharedMemConfig`: four-byte banks.
        fn ctx_get_shared_mem_config(config: Out<'_, i32>) -> CuResult {
            require_current()?;
            config.write(SHARED_MEM_FOUR_BYTE_BANKS)
        }

        /// `cuCtxSetSharedMemConfig`: accepted and ignored.
        fn ctx_set_shared_mem_config(config: i32) -> CuResult {
            require_current()?;
            checks::shared_mem_config(config)
        }

        /// `cuCtxGetStreamPriorityRange`: the broker's device's range.
        fn ctx_get_stream_priority_range(least: OptOut<'_, i32>, greatest: OptOut<'_, i32>) -> CuResult {
            let rt = require_current()?;
            let Reply::PriorityRange { least: l, greatest: g } =
                rt.call(Request::CtxGetStreamPriorityRange)?
            else {
                return Err(CuError::UNKNOWN);
            };
            least.write(l)?;
            greatest.write(g)
        }

        /// `cuCtxResetPersistingL2Cache`: nothing persists.
        fn ctx_reset_persisting_l2_cache() -> CuResult {
            require_current().map(|_| ())
        }

        /// `cuDevicePrimaryCtxRetain`
        fn device_primary_ctx_retain(pctx: Out<'_, CUcontext>, dev: CUdevice) -> CuResult {
            let c = with_primary(dev, |rt, p| {
                let c = primary_handle(rt, dev, p)?;
                p.refs += 1;
                Ok(c)
            })?;
            pctx.write(ptr_of(c.handle))
        }

        /// `cuDevicePrimaryCtxRelease`
        fn device_primary_ctx_release(dev: CUdevice) -> CuResult {
            primary_release(dev)
        }

        /// `cuDevicePrimaryCtxReset`
        fn device_primary_ctx_reset(dev: CUdevice) -> CuResult {
            primary_reset(dev)
        }

        /// `cuDevicePrimaryCtxSetFlags`
        fn device_primary_ctx_set_flags(dev: CUdevice, flags: u32) -> CuResult {
            checks::ctx_flags(flags)?;
            primary_store_flags(dev, flags)
        }

        /// `cuDevicePrimaryCtxGetState`
        fn device_primary_ctx_get_state(dev: CUdevice, flags: Out<'_, u32>, active: Out<'_, i32>) -> CuResult {
            let (f, a) = with_primary(dev, |_, p| Ok((p.flags, (p.refs > 0) as i32)))?;
            flags.write(f)?;
            active.write(a)
        }

        /// `cuCtxAttach`: increments the current context's usage count (local).
        fn ctx_attach(pctx: Out<'_, CUcontext>, _flags: Flags<0>) -> CuResult {
            let c = current()?;
            c.usage.fetch_add(1, Ordering::AcqRel);
            pctx.write(ptr_of(c.handle))
        }

        /// `cuCtxDetach`: the last detach of a created context destroys it (forwarded).
        fn ctx_detach(ctx: CUcontext) -> CuResult {
            detach(ctx)
        }
    }
}
