//! Streams: `cuStream*`. Each stream-taking entry point also has a `_ptsz` variant in which NULL
//! means the calling thread's per-thread default stream instead of the legacy default stream.
//!
//! Work submission needs a stream of the current context (another context's, a destroyed or a
//! made-up handle → `INVALID_HANDLE`); queries, synchronisation and getters accept any live stream
//! (see [`super::resolve`]).

use std::ffi::c_void;
use std::sync::Arc;

use gpushare_driver_abi::cuda_h::{
    CUstreamCallback, CU_EVENT_WAIT_EXTERNAL, CU_STREAM_NON_BLOCKING,
    CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER,
};
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::{DefaultStream, Flags, OptOut, Out};

use super::resolve::{any_stream, event, raw, work_stream};
use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::exec::stream::{PRIORITY_GREATEST, PRIORITY_LEAST};
use crate::exec::value_wait::{Condition, ValueWait};
use crate::exec::work::{MemsetWork, SendPtr, Work};
use crate::exec::{Stream, StreamKind};
use crate::state;
use crate::sys::{CUcontext, CUdevice, CUdeviceptr, CUevent, CUstream};
use crate::CpuDevice;

fn create(out: Out<'_, CUstream>, flags: u32, priority: i32) -> CuResult {
    let (d, ctx) = state::current()?;
    let s = Stream::new(ctx.id(), flags, priority, StreamKind::Created);
    out.write(d.exec.streams.insert(Arc::new(s)) as CUstream)
}

fn destroy(stream: CUstream) -> CuResult {
    let d = state::driver()?;
    let h = raw(stream);
    let s = d.exec.streams.remove(h).ok_or_else(|| {
        tracing::warn!("cuStreamDestroy: invalid stream handle {h:#x}");
        CuError::INVALID_HANDLE
    })?;
    capture::forget_stream(stream);
    // Pending work still completes (the ops hold the stream); the model forgets it afterwards.
    d.exec.submit_forget(Some(s.key), None);
    Ok(())
}

/// `cuStreamWaitValue32` (`wide`: `64`): queues a wait for the word at `addr` (aligned device
/// memory or registered host memory) to meet the condition `flags` names.
fn wait_value(
    stream: CUstream,
    default_stream: DefaultStream,
    addr: CUdeviceptr,
    value: u64,
    flags: u32,
    wide: bool,
) -> CuResult {
    let (what, len) = if wide {
        ("cuStreamWaitValue64", 8)
    } else {
        ("cuStreamWaitValue32", 4)
    };
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    let cond = Condition::from_flags(flags).ok_or_else(|| {
        tracing::warn!("{what}: flags {flags:#x} name no wait condition");
        CuError::INVALID_VALUE
    })?;
    if !addr.is_multiple_of(len) {
        tracing::warn!("{what}: address {addr:#x} is not {len}-byte aligned");
        return Err(CuError::INVALID_VALUE);
    }
    d.memory.device_range(addr, len, false).inspect_err(|_| {
        tracing::warn!("{what}: {addr:#x} is not device memory");
    })?;
    if let Some(refused) = capture::not_capturable(stream, default_stream, what) {
        return refused;
    }
    let w = ValueWait {
        addr,
        value,
        cond,
        wide,
    };
    d.exec.submit(&ctx, &s, Work::WaitValue(w)).map(|_| ())
}

/// Writes `f(context, stream)` for a getter.
fn get<T>(
    stream: CUstream,
    default_stream: DefaultStream,
    out: Out<'_, T>,
    f: impl FnOnce(&Context, &Stream) -> T,
) -> CuResult {
    let (_, ctx, s) = any_stream(stream, default_stream)?;
    out.write(f(&ctx, &s))
}

gpushare_driver_abi::implement! {
    impl Stream for CpuDevice {
        fn stream_create(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>) -> CuResult {
            create(stream, flags.bits(), PRIORITY_LEAST)
        }

        /// The priority is clamped to `[-5, 0]`.
        fn stream_create_with_priority(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>, priority: i32) -> CuResult {
            create(stream, flags.bits(), priority.clamp(PRIORITY_GREATEST, PRIORITY_LEAST))
        }

        /// Pending work still completes.
        fn stream_destroy(stream: CUstream) -> CuResult {
            destroy(stream)
        }

        /// Waits for the stream's work; returns the context's sticky error.
        fn stream_synchronize(stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = any_stream(stream, default_stream)?;
            capture::check_stream_sync(stream, default_stream)?;
            ctx.check_usable()?;
            d.exec.synchronize_stream(&s)?;
            ctx.check_usable()
        }

        /// `CUDA_ERROR_NOT_READY` while work is pending.
        fn stream_query(stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = any_stream(stream, default_stream)?;
            capture::check_stream_sync(stream, default_stream)?;
            ctx.check_usable()?;
            d.exec.query_stream(&s)?;
            ctx.check_usable()
        }

        /// Later work on the stream waits for the event's latest record.
        fn stream_wait_event(stream: CUstream, ev: CUevent, flags: Flags<{ CU_EVENT_WAIT_EXTERNAL }>, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = work_stream(stream, default_stream)?;
            let e = event(d, ev)?;
            let external = flags.bits() & CU_EVENT_WAIT_EXTERNAL != 0;
            if let Some(captured) = capture::wait_event::<CpuDevice>(stream, default_stream, ev, external) {
                return captured;
            }
            d.exec.wait_event(&ctx, &s, &e)
        }

        /// The callback runs on the executor thread in stream order, and also after an error (with
        /// the error code).
        unsafe fn stream_add_callback(stream: CUstream, callback: CUstreamCallback, data: *mut c_void, _flags: Flags<0>, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = work_stream(stream, default_stream)?;
            if let Some(refused) = capture::not_capturable(stream, default_stream, "cuStreamAddCallback") {
                return refused;
            }
            let work = Work::Callback(callback, SendPtr(stream), SendPtr(data));
            d.exec.submit(&ctx, &s, work).map(|_| ())
        }

        fn stream_get_priority(stream: CUstream, priority: Out<'_, i32>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, priority, |_, s| s.priority)
        }

        fn stream_get_flags(stream: CUstream, flags: Out<'_, u32>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, flags, |_, s| s.flags)
        }

        fn stream_get_ctx(stream: CUstream, pctx: Out<'_, CUcontext>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, pctx, |c, _| c.id() as CUcontext)
        }

        /// There are no green contexts (NULL).
        fn stream_get_ctx_v2(stream: CUstream, pctx: Out<'_, CUcontext>, pgreen: OptOut<'_, *mut c_void>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, pctx, |c, _| c.id() as CUcontext)?;
            pgreen.write(std::ptr::null_mut())
        }

        fn stream_get_id(stream: CUstream, id: Out<'_, u64>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, id, |_, s| s.key)
        }

        fn stream_get_device(stream: CUstream, dev: Out<'_, CUdevice>, default_stream: DefaultStream) -> CuResult {
            get(stream, default_stream, dev, |c, _| c.device)
        }

        /// A 4-byte write in stream order (the executor runs ops in order, so every write the
        /// stream issued before is visible first, with or without the memory barrier), stored
        /// atomically; it then wakes the futex waiters on the word (a thread or process sleeping on
        /// it, a stream wait). Captured, it is a memset node (whose replays wake nobody).
        fn stream_write_value32(stream: CUstream, addr: CUdeviceptr, value: u32, _flags: Flags<{ CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER }>, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = work_stream(stream, default_stream)?;
            if !addr.is_multiple_of(4) {
                tracing::warn!("cuStreamWriteValue32: address {addr:#x} is not 4-byte aligned");
                return Err(CuError::INVALID_VALUE);
            }
            d.memory.device_range(addr, 4, true).inspect_err(|_| {
                tracing::warn!("cuStreamWriteValue32: {addr:#x} is not writable device memory");
            })?;
            let node = || Ok(NodeKind::memset(addr, 4, 4, value, 1, 1));
            if let Some(captured) = capture::record(stream, default_stream, node) {
                return captured;
            }
            let w = MemsetWork { dst: addr, pitch: 4, width: 1, height: 1, elem: 4, value, wake: true };
            d.exec.submit(&ctx, &s, Work::Memset(w)).map(|_| ())
        }

        /// Later work on the stream waits, off the executor thread, until the word meets the
        /// condition (GEQ, EQ, AND or NOR; FLUSH is accepted). Not capturable.
        fn stream_wait_value32(stream: CUstream, addr: CUdeviceptr, value: u32, flags: u32, default_stream: DefaultStream) -> CuResult {
            wait_value(stream, default_stream, addr, u64::from(value), flags, false)
        }

        /// As `cuStreamWaitValue32`, on an 8-byte aligned 64-bit word (sleeping on its first 32
        /// bits).
        fn stream_wait_value64(stream: CUstream, addr: CUdeviceptr, value: u64, flags: u32, default_stream: DefaultStream) -> CuResult {
            wait_value(stream, default_stream, addr, value, flags, true)
        }
    }
}
