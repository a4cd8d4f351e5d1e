//! Streams: `cuStream*`. Each stream-taking entry point also has a `_ptsz` variant in which NULL
//! means the calling thread's per-thread default stream instead of the legacy default stream.
//!
//! Work submission needs a stream of the current context (another context's, a destroyed or a
//! made-up handle → `INVALID_HANDLE`); queries, synchronisation and getters accept any live stream.

use std::ffi::c_void;
use std::sync::Arc;

use crate::error::{CuError, CuResult};
use crate::exec::executor::{SendPtr, StreamCallback, Work};
use crate::exec::stream::{CU_STREAM_NON_BLOCKING, PRIORITY_GREATEST, PRIORITY_LEAST};
use crate::exec::{Stream, StreamKind};
use crate::state::{self, Context, Driver};
use crate::sys::{write_out, CUcontext, CUdevice, CUevent, CUstream};

/// The stream value as an integer handle.
pub(crate) fn raw(stream: CUstream) -> u64 {
    stream as u64
}

/// Driver, current context and stream for submitting work. A poisoned context fails with its
/// sticky error.
pub(crate) fn work_stream(
    stream: CUstream,
    per_thread: bool,
) -> CuResult<(&'static Driver, Arc<Context>, Arc<Stream>)> {
    let (d, ctx) = state::current()?;
    let s = d.exec.resolve_stream(&ctx, raw(stream), per_thread)?;
    Ok((d, ctx, s))
}

/// Driver, owning context and stream for queries, synchronisation and getters (the context may be
/// poisoned; the caller decides).
pub(crate) fn any_stream(
    stream: CUstream,
    per_thread: bool,
) -> CuResult<(&'static Driver, Arc<Context>, Arc<Stream>)> {
    let h = raw(stream);
    if h <= crate::sys::CU_STREAM_PER_THREAD {
        let (d, ctx) = state::current_unchecked()?;
        let s = d.exec.resolve_stream(&ctx, h, per_thread)?;
        return Ok((d, ctx, s));
    }
    let d = state::driver()?;
    let s = d.exec.created_stream(h)?;
    let ctx = d
        .contexts
        .get(s.ctx)
        .filter(|c| c.is_active())
        .ok_or(CuError::INVALID_HANDLE)?;
    Ok((d, ctx, s))
}

fn create(out: *mut CUstream, flags: u32, priority: i32) -> CuResult {
    let (d, ctx) = state::current()?;
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    if flags & !CU_STREAM_NON_BLOCKING != 0 {
        tracing::warn!("cuStreamCreate: unknown flags {flags:#x}");
        return Err(CuError::INVALID_VALUE);
    }
    let s = Stream::new(ctx.id(), flags, priority, StreamKind::Created);
    let h = d.exec.streams.insert(Arc::new(s));
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(out, h as CUstream) }
}

fn destroy(stream: CUstream) -> CuResult {
    let d = state::driver()?;
    let h = raw(stream);
    let s = d.exec.streams.remove(h).ok_or_else(|| {
        tracing::warn!("cuStreamDestroy: invalid stream handle {h:#x}");
        CuError::INVALID_HANDLE
    })?;
    // Pending work still completes (the ops hold the stream); the model forgets it afterwards.
    d.exec.submit_forget(Some(s.key), None);
    Ok(())
}

fn synchronize(stream: CUstream, per_thread: bool) -> CuResult {
    let (d, ctx, s) = any_stream(stream, per_thread)?;
    ctx.check_usable()?;
    d.exec.synchronize_stream(&s)?;
    ctx.check_usable()
}

fn query(stream: CUstream, per_thread: bool) -> CuResult {
    let (d, ctx, s) = any_stream(stream, per_thread)?;
    ctx.check_usable()?;
    d.exec.query_stream(&s)?;
    ctx.check_usable()
}

fn wait_event(stream: CUstream, event: CUevent, flags: u32, per_thread: bool) -> CuResult {
    let (d, ctx, s) = work_stream(stream, per_thread)?;
    if flags > 1 {
        return Err(CuError::INVALID_VALUE);
    }
    let e = super::event::lookup(d, event)?;
    d.exec.wait_event(&ctx, &s, &e)
}

fn add_callback(
    stream: CUstream,
    cb: Option<StreamCallback>,
    data: *mut c_void,
    flags: u32,
    per_thread: bool,
) -> CuResult {
    let (d, ctx, s) = work_stream(stream, per_thread)?;
    let Some(cb) = cb else {
        return Err(CuError::INVALID_VALUE);
    };
    if flags != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let work = Work::Callback(cb, SendPtr(stream), SendPtr(data));
    d.exec.submit(&ctx, &s, work).map(|_| ())
}

fn get<T>(
    stream: CUstream,
    per_thread: bool,
    out: *mut T,
    f: impl FnOnce(&Context, &Stream) -> T,
) -> CuResult {
    let (_, ctx, s) = any_stream(stream, per_thread)?;
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, f(&ctx, &s)) }
}

fn priority_of(_: &Context, s: &Stream) -> i32 {
    s.priority
}

fn flags_of(_: &Context, s: &Stream) -> u32 {
    s.flags
}

fn ctx_of(c: &Context, _: &Stream) -> CUcontext {
    c.id() as CUcontext
}

fn id_of(_: &Context, s: &Stream) -> u64 {
    s.key
}

fn device_of(c: &Context, _: &Stream) -> CUdevice {
    c.device
}

fn get_ctx_v2(
    stream: CUstream,
    pctx: *mut CUcontext,
    pgreen: *mut *mut c_void,
    per_thread: bool,
) -> CuResult {
    get(stream, per_thread, pctx, ctx_of)?;
    if !pgreen.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(pgreen, std::ptr::null_mut()) }?;
    }
    Ok(())
}

fn is_capturing(stream: CUstream, status: *mut i32, per_thread: bool) -> CuResult {
    // CU_STREAM_CAPTURE_STATUS_NONE: stream capture is not supported, so nothing is ever captured.
    get(stream, per_thread, status, |_, _| 0)
}

cuda_exports! {
    /// `cuStreamCreate`: flags `CU_STREAM_DEFAULT` or `CU_STREAM_NON_BLOCKING`.
    fn cuStreamCreate(out: *mut CUstream, flags: u32) {
        create(out, flags, PRIORITY_LEAST)
    }

    /// `cuStreamCreateWithPriority`: the priority is clamped to `[-5, 0]`.
    fn cuStreamCreateWithPriority(out: *mut CUstream, flags: u32, priority: i32) {
        create(out, flags, priority.clamp(PRIORITY_GREATEST, PRIORITY_LEAST))
    }

    /// `cuStreamDestroy`: pending work still completes.
    fn cuStreamDestroy(stream: CUstream) {
        destroy(stream)
    }

    /// `cuStreamDestroy_v2`
    fn cuStreamDestroy_v2(stream: CUstream) {
        destroy(stream)
    }

    /// `cuStreamSynchronize`: waits for the stream's work; returns the context's sticky error.
    fn cuStreamSynchronize(stream: CUstream) {
        synchronize(stream, false)
    }

    /// `cuStreamSynchronize_ptsz`
    fn cuStreamSynchronize_ptsz(stream: CUstream) {
        synchronize(stream, true)
    }

    /// `cuStreamQuery`: `CUDA_ERROR_NOT_READY` while work is pending.
    fn cuStreamQuery(stream: CUstream) {
        query(stream, false)
    }

    /// `cuStreamQuery_ptsz`
    fn cuStreamQuery_ptsz(stream: CUstream) {
        query(stream, true)
    }

    /// `cuStreamWaitEvent`: later work on the stream waits for the event's latest record.
    fn cuStreamWaitEvent(stream: CUstream, event: CUevent, flags: u32) {
        wait_event(stream, event, flags, false)
    }

    /// `cuStreamWaitEvent_ptsz`
    fn cuStreamWaitEvent_ptsz(stream: CUstream, event: CUevent, flags: u32) {
        wait_event(stream, event, flags, true)
    }

    /// `cuStreamAddCallback`: the callback runs on the executor thread in stream order, and also
    /// after an error (with the error code).
    fn cuStreamAddCallback(stream: CUstream, cb: Option<StreamCallback>, data: *mut c_void, flags: u32) {
        add_callback(stream, cb, data, flags, false)
    }

    /// `cuStreamAddCallback_ptsz`
    fn cuStreamAddCallback_ptsz(stream: CUstream, cb: Option<StreamCallback>, data: *mut c_void, flags: u32) {
        add_callback(stream, cb, data, flags, true)
    }

    /// `cuStreamGetPriority`
    fn cuStreamGetPriority(stream: CUstream, priority: *mut i32) {
        get(stream, false, priority, priority_of)
    }

    /// `cuStreamGetPriority_ptsz`
    fn cuStreamGetPriority_ptsz(stream: CUstream, priority: *mut i32) {
        get(stream, true, priority, priority_of)
    }

    /// `cuStreamGetFlags`
    fn cuStreamGetFlags(stream: CUstream, flags: *mut u32) {
        get(stream, false, flags, flags_of)
    }

    /// `cuStreamGetFlags_ptsz`
    fn cuStreamGetFlags_ptsz(stream: CUstream, flags: *mut u32) {
        get(stream, true, flags, flags_of)
    }

    /// `cuStreamGetCtx`
    fn cuStreamGetCtx(stream: CUstream, pctx: *mut CUcontext) {
        get(stream, false, pctx, ctx_of)
    }

    /// `cuStreamGetCtx_ptsz`
    fn cuStreamGetCtx_ptsz(stream: CUstream, pctx: *mut CUcontext) {
        get(stream, true, pctx, ctx_of)
    }

    /// `cuStreamGetCtx_v2`: there are no green contexts (NULL).
    fn cuStreamGetCtx_v2(stream: CUstream, pctx: *mut CUcontext, pgreen: *mut *mut c_void) {
        get_ctx_v2(stream, pctx, pgreen, false)
    }

    /// `cuStreamGetCtx_v2_ptsz`
    fn cuStreamGetCtx_v2_ptsz(stream: CUstream, pctx: *mut CUcontext, pgreen: *mut *mut c_void) {
        get_ctx_v2(stream, pctx, pgreen, true)
    }

    /// `cuStreamGetId`
    fn cuStreamGetId(stream: CUstream, id: *mut u64) {
        get(stream, false, id, id_of)
    }

    /// `cuStreamGetId_ptsz`
    fn cuStreamGetId_ptsz(stream: CUstream, id: *mut u64) {
        get(stream, true, id, id_of)
    }

    /// `cuStreamGetDevice`
    fn cuStreamGetDevice(stream: CUstream, dev: *mut CUdevice) {
        get(stream, false, dev, device_of)
    }

    /// `cuStreamGetDevice_ptsz`
    fn cuStreamGetDevice_ptsz(stream: CUstream, dev: *mut CUdevice) {
        get(stream, true, dev, device_of)
    }

    /// `cuStreamIsCapturing`: always `CU_STREAM_CAPTURE_STATUS_NONE` (no stream capture).
    fn cuStreamIsCapturing(stream: CUstream, status: *mut i32) {
        is_capturing(stream, status, false)
    }

    /// `cuStreamIsCapturing_ptsz`
    fn cuStreamIsCapturing_ptsz(stream: CUstream, status: *mut i32) {
        is_capturing(stream, status, true)
    }
}
