//! Resolving the stream and event handles a caller names: the default-stream rules (NULL is the
//! legacy default stream, or the per-thread one through a `_ptsz` entry point; `CU_STREAM_LEGACY`
//! and `CU_STREAM_PER_THREAD` name them explicitly) and the handle tables (another context's, a
//! destroyed or a made-up handle → `INVALID_HANDLE`). Shared by the families that take streams
//! and events.

use std::sync::Arc;

use gpushare_driver_abi::surface::DefaultStream;

use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::exec::{Event, Stream};
use crate::state::{self, Driver};
use crate::sys::{CUcontext, CUevent, CUstream};

/// The stream value as an integer handle.
pub(crate) fn raw(stream: CUstream) -> u64 {
    stream as u64
}

/// Driver, current context and stream for submitting work. A poisoned context fails with its
/// sticky error.
pub(crate) fn work_stream(
    stream: CUstream,
    default_stream: DefaultStream,
) -> CuResult<(&'static Driver, Arc<Context>, Arc<Stream>)> {
    let (d, ctx) = state::current()?;
    let s = d
        .exec
        .resolve_stream(&ctx, raw(stream), default_stream.per_thread())?;
    Ok((d, ctx, s))
}

/// Driver, owning context and stream for queries, synchronisation and getters (the context may be
/// poisoned; the caller decides).
pub(crate) fn any_stream(
    stream: CUstream,
    default_stream: DefaultStream,
) -> CuResult<(&'static Driver, Arc<Context>, Arc<Stream>)> {
    let h = raw(stream);
    if h <= crate::sys::CU_STREAM_PER_THREAD {
        let (d, ctx) = state::current_unchecked()?;
        let s = d
            .exec
            .resolve_stream(&ctx, h, default_stream.per_thread())?;
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

/// The event behind `event`, or `INVALID_HANDLE`.
pub(crate) fn event(d: &Driver, event: CUevent) -> CuResult<Arc<Event>> {
    d.exec.events.get(event as u64).ok_or_else(|| {
        tracing::warn!("invalid event handle {:#x}", event as u64);
        CuError::INVALID_HANDLE
    })
}

/// The context behind `ctx`, which must be live and active (`INVALID_CONTEXT` otherwise).
pub(crate) fn context(d: &Driver, ctx: CUcontext) -> CuResult<Arc<Context>> {
    let c = d.contexts.get(ctx as u64).ok_or(CuError::INVALID_CONTEXT)?;
    if !c.is_active() {
        return Err(CuError::INVALID_CONTEXT);
    }
    Ok(c)
}
