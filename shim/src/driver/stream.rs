//! Streams. Creating and destroying one is a call; querying and synchronising compare the
//! stream's completion slot (raised by the broker as commands complete) with the seq of the last
//! command the shim pushed on it — no round trip. Waits spin briefly, then sleep on a futex, and
//! end with an error if the broker goes away.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_client::ring::record::{HostFn, StreamWait};
use gpushare_client::ring::Command;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUcontext, CUdevice, CUevent, CUstream};

use super::context::{current, require_current};
use crate::runtime::{HostFnCall, Runtime, StreamState};

/// `CU_STREAM_NON_BLOCKING`
const CU_STREAM_NON_BLOCKING: u32 = 0x1;

/// Creates a stream on the broker and registers it.
pub(crate) fn create(rt: &Runtime, flags: u32, priority: i32) -> CuResult<Arc<StreamState>> {
    if flags & !CU_STREAM_NON_BLOCKING != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let (handle, slot) = match rt.call(Request::StreamCreate { flags, priority })? {
        Reply::Stream {
            stream,
            completion_slot,
        } => (stream, completion_slot),
        _ => return Err(CuError::UNKNOWN),
    };
    let slot = rt
        .region()
        .stream_slot(slot)
        .map_err(|_| CuError::UNKNOWN)?;
    let ctx = current().map_or(0, |c| c.handle);
    let s = Arc::new(StreamState {
        handle,
        slot,
        last: AtomicU64::new(0),
        flags,
        priority,
        ctx,
    });
    rt.streams.insert(handle, s.clone());
    Ok(s)
}

fn handle(s: CUstream) -> u64 {
    s as usize as u64
}

fn destroy(stream: CUstream) -> CuResult {
    let rt = require_current()?;
    let h = handle(stream);
    if !rt.streams.contains_key(&h) {
        return Err(CuError::INVALID_HANDLE);
    }
    rt.call_empty(Request::StreamDestroy { stream: h })?;
    rt.streams.remove(&h);
    Ok(())
}

fn query(stream: CUstream, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    rt.sticky()?;
    if s.slot.load() >= s.last.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(CuError::NOT_READY)
    }
}

fn synchronize(stream: CUstream, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    rt.wait_for(&s.slot, s.last.load(Ordering::Acquire), s.handle)
}

fn wait_event(stream: CUstream, event: CUevent, flags: u32, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    let e = rt.event(event as usize as u64)?;
    rt.submit_on(
        &s,
        &Command::StreamWaitEvent(StreamWait {
            stream: s.handle,
            event: e.handle,
            flags,
            reserved: 0,
        }),
    )?;
    Ok(())
}

/// Enqueues a host function: the token is a leaked `HostFnCall` the notifier thread takes back
/// and runs when the broker says the stream reached it.
pub(crate) fn host_fn(
    stream: CUstream,
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    data: *mut c_void,
    per_thread: bool,
) -> CuResult {
    let rt = require_current()?;
    let func = func.ok_or(CuError::INVALID_VALUE)?;
    let s = rt.stream(handle(stream), per_thread)?;
    let token = Box::into_raw(Box::new(HostFnCall { func, data })) as usize as u64;
    let pushed = rt.submit_on(
        &s,
        &Command::HostFn(HostFn {
            stream: s.handle,
            token,
        }),
    );
    if pushed.is_err() {
        // SAFETY: the box leaked just above; the broker never saw the token.
        drop(unsafe { Box::from_raw(token as usize as *mut HostFnCall) });
    }
    pushed.map(|_| ())
}

/// A `cuStreamAddCallback` callback with its arguments, adapted to a host function.
struct StreamCallback {
    func: unsafe extern "C" fn(CUstream, u32, *mut c_void),
    stream: CUstream,
    data: *mut c_void,
}

unsafe extern "C" fn run_stream_callback(arg: *mut c_void) {
    // SAFETY: `arg` is the `StreamCallback` box leaked by `add_callback`, run exactly once.
    let cb = unsafe { Box::from_raw(arg.cast::<StreamCallback>()) };
    // SAFETY: the application's callback with its own arguments; status is CUDA_SUCCESS.
    unsafe { (cb.func)(cb.stream, 0, cb.data) };
}

fn add_callback(
    stream: CUstream,
    func: Option<unsafe extern "C" fn(CUstream, u32, *mut c_void)>,
    data: *mut c_void,
    flags: u32,
    per_thread: bool,
) -> CuResult {
    if flags != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let func = func.ok_or(CuError::INVALID_VALUE)?;
    let cb = Box::into_raw(Box::new(StreamCallback { func, stream, data }));
    let r = host_fn(stream, Some(run_stream_callback), cb.cast(), per_thread);
    if r.is_err() {
        // SAFETY: the box leaked just above was not handed out.
        drop(unsafe { Box::from_raw(cb) });
    }
    r
}

fn get_priority(stream: CUstream, out: *mut i32, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, s.priority) }
}

fn get_flags(stream: CUstream, out: *mut u32, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, s.flags) }
}

fn get_ctx(stream: CUstream, out: *mut CUcontext, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    let ctx = if s.ctx != 0 { s.ctx } else { current()?.handle };
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, ctx as usize as CUcontext) }
}

fn get_ctx_v2(
    stream: CUstream,
    out: *mut CUcontext,
    green: *mut *mut c_void,
    per_thread: bool,
) -> CuResult {
    get_ctx(stream, out, per_thread)?;
    if !green.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null: no green contexts here.
        unsafe { write_out(green, std::ptr::null_mut()) }?;
    }
    Ok(())
}

fn get_id(stream: CUstream, out: *mut u64, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(handle(stream), per_thread)?;
    // Default streams: CUDA reports small fixed ids (legacy 0... here the wire handle).
    let id = match s.handle {
        0 => 1,
        h => h & 0xFFFF_FFFF,
    };
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, id) }
}

fn get_device(stream: CUstream, out: *mut CUdevice, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    rt.stream(handle(stream), per_thread)?;
    let dev = current()?.device;
    // SAFETY: out-pointer from the caller.
    unsafe { write_out(out, dev) }
}

fn is_capturing(stream: CUstream, out: *mut i32, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    rt.stream(handle(stream), per_thread)?;
    // SAFETY: out-pointer from the caller: CU_STREAM_CAPTURE_STATUS_NONE.
    unsafe { write_out(out, 0) }
}

cuda_exports! {
    /// `cuStreamCreate`
    fn cuStreamCreate(ph: *mut CUstream, flags: u32) {
        let rt = require_current()?;
        if ph.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let s = create(rt, flags, 0)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(ph, s.handle as usize as CUstream) }
    }

    /// `cuStreamCreateWithPriority`: clamped to the broker's range, as CUDA does.
    fn cuStreamCreateWithPriority(ph: *mut CUstream, flags: u32, priority: i32) {
        let rt = require_current()?;
        if ph.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let (least, greatest) = match rt.call(Request::CtxGetStreamPriorityRange)? {
            Reply::PriorityRange { least, greatest } => (least, greatest),
            _ => return Err(CuError::UNKNOWN),
        };
        let priority = priority.clamp(greatest.min(least), least.max(greatest));
        let s = create(rt, flags, priority)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(ph, s.handle as usize as CUstream) }
    }

    /// `cuStreamDestroy` (v1)
    fn cuStreamDestroy(stream: CUstream) { destroy(stream) }
    /// `cuStreamDestroy_v2`
    fn cuStreamDestroy_v2(stream: CUstream) { destroy(stream) }

    /// `cuStreamSynchronize`
    fn cuStreamSynchronize(stream: CUstream) { synchronize(stream, false) }
    /// `cuStreamSynchronize_ptsz`
    fn cuStreamSynchronize_ptsz(stream: CUstream) { synchronize(stream, true) }

    /// `cuStreamQuery`: `SUCCESS` when idle, `NOT_READY` otherwise.
    fn cuStreamQuery(stream: CUstream) { query(stream, false) }
    /// `cuStreamQuery_ptsz`
    fn cuStreamQuery_ptsz(stream: CUstream) { query(stream, true) }

    /// `cuStreamWaitEvent`
    fn cuStreamWaitEvent(stream: CUstream, event: CUevent, flags: u32) { wait_event(stream, event, flags, false) }
    /// `cuStreamWaitEvent_ptsz`
    fn cuStreamWaitEvent_ptsz(stream: CUstream, event: CUevent, flags: u32) { wait_event(stream, event, flags, true) }

    /// `cuStreamAddCallback`
    fn cuStreamAddCallback(stream: CUstream, func: Option<unsafe extern "C" fn(CUstream, u32, *mut c_void)>, data: *mut c_void, flags: u32) {
        add_callback(stream, func, data, flags, false)
    }
    /// `cuStreamAddCallback_ptsz`
    fn cuStreamAddCallback_ptsz(stream: CUstream, func: Option<unsafe extern "C" fn(CUstream, u32, *mut c_void)>, data: *mut c_void, flags: u32) {
        add_callback(stream, func, data, flags, true)
    }

    /// `cuStreamGetPriority`
    fn cuStreamGetPriority(stream: CUstream, out: *mut i32) { get_priority(stream, out, false) }
    /// `cuStreamGetPriority_ptsz`
    fn cuStreamGetPriority_ptsz(stream: CUstream, out: *mut i32) { get_priority(stream, out, true) }

    /// `cuStreamGetFlags`
    fn cuStreamGetFlags(stream: CUstream, out: *mut u32) { get_flags(stream, out, false) }
    /// `cuStreamGetFlags_ptsz`
    fn cuStreamGetFlags_ptsz(stream: CUstream, out: *mut u32) { get_flags(stream, out, true) }

    /// `cuStreamGetCtx`
    fn cuStreamGetCtx(stream: CUstream, out: *mut CUcontext) { get_ctx(stream, out, false) }
    /// `cuStreamGetCtx_ptsz`
    fn cuStreamGetCtx_ptsz(stream: CUstream, out: *mut CUcontext) { get_ctx(stream, out, true) }

    /// `cuStreamGetCtx_v2`: no green contexts, so that output is NULL.
    fn cuStreamGetCtx_v2(stream: CUstream, out: *mut CUcontext, green: *mut *mut c_void) { get_ctx_v2(stream, out, green, false) }
    /// `cuStreamGetCtx_v2_ptsz`
    fn cuStreamGetCtx_v2_ptsz(stream: CUstream, out: *mut CUcontext, green: *mut *mut c_void) { get_ctx_v2(stream, out, green, true) }

    /// `cuStreamGetId`
    fn cuStreamGetId(stream: CUstream, out: *mut u64) { get_id(stream, out, false) }
    /// `cuStreamGetId_ptsz`
    fn cuStreamGetId_ptsz(stream: CUstream, out: *mut u64) { get_id(stream, out, true) }

    /// `cuStreamGetDevice`
    fn cuStreamGetDevice(stream: CUstream, out: *mut CUdevice) { get_device(stream, out, false) }
    /// `cuStreamGetDevice_ptsz`
    fn cuStreamGetDevice_ptsz(stream: CUstream, out: *mut CUdevice) { get_device(stream, out, true) }

    /// `cuStreamIsCapturing`: graphs are not supported, so never.
    fn cuStreamIsCapturing(stream: CUstream, out: *mut i32) { is_capturing(stream, out, false) }
    /// `cuStreamIsCapturing_ptsz`
    fn cuStreamIsCapturing_ptsz(stream: CUstream, out: *mut i32) { is_capturing(stream, out, true) }
}
