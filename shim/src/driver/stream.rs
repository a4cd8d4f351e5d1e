//! Streams. Creating and destroying one is a call; querying and synchronising compare the
//! stream's completion slot (raised by the broker as commands complete) with the seq of the last
//! command the shim pushed on it — no round trip. Waits spin briefly, then sleep on a futex, and
//! end with an error if the broker goes away.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_client::ring::record::{HostFn, StreamWait, WriteValue};
use gpushare_client::ring::Command;
use gpushare_driver_abi::checks::copy::device_range;
use gpushare_driver_abi::graph::capture;
use gpushare_driver_abi::graph::node::{HostNode, NodeKind};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::{current, require_current, HostFnCall, Runtime, StreamState};
use crate::Shim;

/// The calling thread's runtime and the stream `stream` names (see [`Runtime::stream`]).
fn with_stream(
    stream: CUstream,
    default_stream: DefaultStream,
) -> CuResult<(&'static Runtime, Arc<StreamState>)> {
    let rt = require_current()?;
    Ok((rt, rt.stream(stream, default_stream)?))
}

/// Enqueues a host function: the token is a leaked `HostFnCall` the notifier thread takes back
/// and runs when the broker says the stream reached it.
pub(crate) fn host_fn(
    stream: CUstream,
    func: CUhostFn,
    data: *mut c_void,
    default_stream: DefaultStream,
) -> CuResult {
    let rt = require_current()?;
    let s = rt.stream(stream, default_stream)?;
    let node = || Ok(NodeKind::Host(HostNode { func, data }));
    if let Some(captured) = capture::record(stream, default_stream, node) {
        return captured;
    }
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
    func: CUstreamCallback,
    stream: CUstream,
    data: *mut c_void,
}

unsafe extern "C" fn run_stream_callback(arg: *mut c_void) {
    // SAFETY: `arg` is the `StreamCallback` box leaked by `stream_add_callback`, run exactly
    // once (the notifier runs each host function once).
    let cb = unsafe { Box::from_raw(arg.cast::<StreamCallback>()) };
    // SAFETY: the application's callback with its own arguments, as CUDA calls it (status
    // CUDA_SUCCESS), on the notifier thread outside any CUDA call.
    unsafe { (cb.func)(cb.stream, 0, cb.data) };
}

/// The context `stream` was created in (the current one for default streams).
fn stream_ctx(stream: CUstream, default_stream: DefaultStream) -> CuResult<CUcontext> {
    let (_, s) = with_stream(stream, default_stream)?;
    let ctx = if s.ctx != 0 { s.ctx } else { current()?.handle };
    Ok(ctx as usize as CUcontext)
}

/// Creates a stream with `priority` and writes its handle.
fn create(stream: Out<'_, CUstream>, flags: u32, priority: i32) -> CuResult {
    let rt = require_current()?;
    let s = rt.create_stream(flags, priority)?;
    stream.write(s.handle as usize as CUstream)
}

gpushare_driver_abi::implement! {
    impl Stream for Shim {
        /// `cuStreamCreate`
        fn stream_create(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>) -> CuResult {
            create(stream, flags.bits(), 0)
        }

        /// `cuStreamCreateWithPriority`: clamped to the broker's range, as CUDA does.
        fn stream_create_with_priority(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>, priority: i32) -> CuResult {
            let rt = require_current()?;
            let Reply::PriorityRange { least, greatest } =
                rt.call(Request::CtxGetStreamPriorityRange)?
            else {
                return Err(CuError::UNKNOWN);
            };
            create(stream, flags.bits(), priority.clamp(greatest.min(least), least.max(greatest)))
        }

        /// `cuStreamDestroy`
        fn stream_destroy(stream: CUstream) -> CuResult {
            let rt = require_current()?;
            let h = stream as usize as u64;
            if !rt.streams.contains_key(&h) {
                return Err(CuError::INVALID_HANDLE);
            }
            rt.call_empty(Request::StreamDestroy { stream: h })?;
            rt.streams.remove(&h);
            capture::forget_stream(stream);
            Ok(())
        }

        /// `cuStreamQuery`: `SUCCESS` when idle, `NOT_READY` otherwise.
        fn stream_query(stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let (rt, s) = with_stream(stream, default_stream)?;
            capture::check_stream_sync(stream, default_stream)?;
            rt.sticky()?;
            if s.slot.load() >= s.last.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(CuError::NOT_READY)
            }
        }

        /// `cuStreamSynchronize`
        fn stream_synchronize(stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let (rt, s) = with_stream(stream, default_stream)?;
            capture::check_stream_sync(stream, default_stream)?;
            rt.wait_stream(&s)
        }

        /// `cuStreamWaitEvent`
        fn stream_wait_event(stream: CUstream, event: CUevent, flags: Flags<{ CU_EVENT_WAIT_EXTERNAL }>, default_stream: DefaultStream) -> CuResult {
            let (rt, s) = with_stream(stream, default_stream)?;
            let e = rt.event(event as usize as u64)?;
            let external = flags.bits() & CU_EVENT_WAIT_EXTERNAL != 0;
            if let Some(captured) = capture::wait_event::<Shim>(stream, default_stream, event, external) {
                return captured;
            }
            let wait = StreamWait { stream: s.handle, event: e.handle, flags: flags.bits(), reserved: 0 };
            rt.submit_on(&s, &Command::StreamWaitEvent(wait)).map(|_| ())
        }

        /// `cuStreamAddCallback`: run by the notifier thread when the stream reaches it.
        unsafe fn stream_add_callback(stream: CUstream, callback: CUstreamCallback, data: *mut c_void, _flags: Flags<0>, default_stream: DefaultStream) -> CuResult {
            with_stream(stream, default_stream)?;
            if let Some(refused) = capture::not_capturable(stream, default_stream, "cuStreamAddCallback") {
                return refused;
            }
            let cb = Box::into_raw(Box::new(StreamCallback { func: callback, stream, data }));
            let r = host_fn(stream, run_stream_callback, cb.cast(), default_stream);
            if r.is_err() {
                // SAFETY: the box leaked just above was not handed out.
                drop(unsafe { Box::from_raw(cb) });
            }
            r
        }

        /// A `WRITE_VALUE` record: the broker writes in stream order (the real driver's
        /// `cuStreamWriteValue32`).
        fn stream_write_value32(stream: CUstream, addr: CUdeviceptr, value: u32, flags: Flags<{ CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER }>, default_stream: DefaultStream) -> CuResult {
            let (rt, s) = with_stream(stream, default_stream)?;
            if !addr.is_multiple_of(4) {
                return Err(CuError::INVALID_VALUE);
            }
            device_range("cuStreamWriteValue32", addr, 4, true, rt.device_range_ok(addr, 4, true))?;
            let node = || Ok(NodeKind::memset(addr, 4, 4, value, 1, 1));
            if let Some(captured) = capture::record(stream, default_stream, node) {
                return captured;
            }
            let w = WriteValue { stream: s.handle, addr, value: u64::from(value), size: 4, flags: flags.bits() };
            rt.submit_on(&s, &Command::WriteValue(w)).map(|_| ())
        }

        /// `cuStreamGetPriority`
        fn stream_get_priority(stream: CUstream, priority: Out<'_, i32>, default_stream: DefaultStream) -> CuResult {
            priority.write(with_stream(stream, default_stream)?.1.priority)
        }

        /// `cuStreamGetFlags`
        fn stream_get_flags(stream: CUstream, flags: Out<'_, u32>, default_stream: DefaultStream) -> CuResult {
            flags.write(with_stream(stream, default_stream)?.1.flags)
        }

        /// `cuStreamGetId`: default streams report small fixed ids, others their wire handle.
        fn stream_get_id(stream: CUstream, id: Out<'_, u64>, default_stream: DefaultStream) -> CuResult {
            let (_, s) = with_stream(stream, default_stream)?;
            id.write(match s.handle {
                0 => 1,
                h => h & 0xFFFF_FFFF,
            })
        }

        /// `cuStreamGetDevice`: the current context's device.
        fn stream_get_device(stream: CUstream, dev: Out<'_, CUdevice>, default_stream: DefaultStream) -> CuResult {
            with_stream(stream, default_stream)?;
            dev.write(current()?.device)
        }

        /// `cuStreamGetCtx`: the context the stream was created in (the current one for default
        /// streams).
        fn stream_get_ctx(stream: CUstream, pctx: Out<'_, CUcontext>, default_stream: DefaultStream) -> CuResult {
            pctx.write(stream_ctx(stream, default_stream)?)
        }

        /// `cuStreamGetCtx_v2`: no green contexts, so that output is NULL.
        fn stream_get_ctx_v2(stream: CUstream, pctx: Out<'_, CUcontext>, pgreen: OptOut<'_, *mut c_void>, default_stream: DefaultStream) -> CuResult {
            pctx.write(stream_ctx(stream, default_stream)?)?;
            pgreen.write(std::ptr::null_mut())
        }
    }
}
