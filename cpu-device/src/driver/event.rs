//! Events: `cuEvent*`. Timestamps are modelled (see docs/cpu-device.md, "Timing model").

use std::sync::Arc;

use super::stream::work_stream;
use crate::error::{CuError, CuResult};
use crate::exec::event::{CU_EVENT_BLOCKING_SYNC, CU_EVENT_DISABLE_TIMING, CU_EVENT_INTERPROCESS};
use crate::exec::Event;
use crate::state::{self, Driver};
use crate::sys::{write_out, CUevent, CUstream};

/// The event behind `event`, or `INVALID_HANDLE`.
pub(crate) fn lookup(d: &Driver, event: CUevent) -> CuResult<Arc<Event>> {
    d.exec.events.get(event as u64).ok_or_else(|| {
        tracing::warn!("invalid event handle {:#x}", event as u64);
        CuError::INVALID_HANDLE
    })
}

fn create(out: *mut CUevent, flags: u32) -> CuResult {
    let (d, ctx) = state::current()?;
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    if flags & !(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS) != 0 {
        tracing::warn!("cuEventCreate: unknown flags {flags:#x}");
        return Err(CuError::INVALID_VALUE);
    }
    if flags & CU_EVENT_INTERPROCESS != 0 {
        tracing::warn!("cuEventCreate: CU_EVENT_INTERPROCESS is not supported by the CPU device");
        return Err(CuError::NOT_SUPPORTED);
    }
    let h = d.exec.events.insert(Arc::new(Event::new(ctx.id(), flags)));
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(out, h as CUevent) }
}

fn destroy(event: CUevent) -> CuResult {
    let d = state::driver()?;
    d.exec.events.remove(event as u64).ok_or_else(|| {
        tracing::warn!("cuEventDestroy: invalid event handle {:#x}", event as u64);
        CuError::INVALID_HANDLE
    })?;
    Ok(())
}

fn record(event: CUevent, stream: CUstream, flags: u32, per_thread: bool) -> CuResult {
    let (d, ctx, s) = work_stream(stream, per_thread)?;
    let e = lookup(d, event)?;
    // CU_EVENT_RECORD_EXTERNAL only matters under stream capture.
    if flags > 1 {
        return Err(CuError::INVALID_VALUE);
    }
    d.exec.record_event(&ctx, &e, &s)
}

fn owner_check(d: &Driver, e: &Event) -> CuResult {
    match d.contexts.get(e.ctx) {
        Some(c) => c.check_usable(),
        None => Err(CuError::INVALID_HANDLE),
    }
}

fn elapsed(out: *mut f32, start: CUevent, end: CUevent) -> CuResult {
    let d = state::driver()?;
    if out.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let (a, b) = (lookup(d, start)?, lookup(d, end)?);
    let ms = d.exec.elapsed_ms(&a, &b)?;
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(out, ms) }
}

cuda_exports! {
    /// `cuEventCreate`: flags DEFAULT, BLOCKING_SYNC, DISABLE_TIMING; INTERPROCESS → NOT_SUPPORTED.
    fn cuEventCreate(out: *mut CUevent, flags: u32) {
        create(out, flags)
    }

    /// `cuEventDestroy`
    fn cuEventDestroy(event: CUevent) {
        destroy(event)
    }

    /// `cuEventDestroy_v2`
    fn cuEventDestroy_v2(event: CUevent) {
        destroy(event)
    }

    /// `cuEventRecord`
    fn cuEventRecord(event: CUevent, stream: CUstream) {
        record(event, stream, 0, false)
    }

    /// `cuEventRecord_ptsz`
    fn cuEventRecord_ptsz(event: CUevent, stream: CUstream) {
        record(event, stream, 0, true)
    }

    /// `cuEventRecordWithFlags`: `CU_EVENT_RECORD_DEFAULT` or `_EXTERNAL` (same outside capture).
    fn cuEventRecordWithFlags(event: CUevent, stream: CUstream, flags: u32) {
        record(event, stream, flags, false)
    }

    /// `cuEventRecordWithFlags_ptsz`
    fn cuEventRecordWithFlags_ptsz(event: CUevent, stream: CUstream, flags: u32) {
        record(event, stream, flags, true)
    }

    /// `cuEventQuery`: `NOT_READY` while the recorded work is pending.
    fn cuEventQuery(event: CUevent) {
        let d = state::driver()?;
        let e = lookup(d, event)?;
        owner_check(d, &e)?;
        d.exec.query_event(&e)
    }

    /// `cuEventSynchronize`: waits for the recorded work; returns the context's sticky error.
    fn cuEventSynchronize(event: CUevent) {
        let d = state::driver()?;
        let e = lookup(d, event)?;
        owner_check(d, &e)?;
        d.exec.synchronize_event(&e)?;
        owner_check(d, &e)
    }

    /// `cuEventElapsedTime`: milliseconds between two completed records, modelled time.
    fn cuEventElapsedTime(out: *mut f32, start: CUevent, end: CUevent) {
        elapsed(out, start, end)
    }

    /// `cuEventElapsedTime_v2` (CUDA 12.8+): same as v1 here.
    fn cuEventElapsedTime_v2(out: *mut f32, start: CUevent, end: CUevent) {
        elapsed(out, start, end)
    }
}
