//! Events. A record is an `EVENT_RECORD` command on the ring; the shim remembers the stream slot
//! and seq of the last record, so querying and synchronising need no round trip. Elapsed time
//! is a call (the broker holds the timestamps).

use std::sync::{Arc, Mutex};

use gpushare_client::proto::{Reply, Request};
use gpushare_client::ring::record::EventRecord;
use gpushare_client::ring::Command;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUevent, CUstream};

use super::context::require_current;
use crate::runtime::EventState;

/// `CU_EVENT_*` creation flags: blocking sync, disable timing, interprocess.
const EVENT_FLAGS_MASK: u32 = 0x1 | 0x2 | 0x4;

fn handle(e: CUevent) -> u64 {
    e as usize as u64
}

fn destroy(event: CUevent) -> CuResult {
    let rt = require_current()?;
    let h = handle(event);
    rt.event(h)?;
    rt.call_empty(Request::EventDestroy { event: h })?;
    rt.events.remove(&h);
    Ok(())
}

fn record(event: CUevent, stream: CUstream, flags: u32, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    let e = rt.event(handle(event))?;
    let s = rt.stream(stream as usize as u64, per_thread)?;
    let mut last = e.recorded.lock().map_err(|_| CuError::UNKNOWN)?;
    let seq = rt.submit_on(
        &s,
        &Command::EventRecord(EventRecord {
            event: e.handle,
            stream: s.handle,
            flags,
            reserved: 0,
        }),
    )?;
    *last = Some((s.slot.clone(), seq, s.handle));
    Ok(())
}

fn elapsed(ms: *mut f32, start: CUevent, end: CUevent) -> CuResult {
    let rt = require_current()?;
    if ms.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let (s, e) = (rt.event(handle(start))?, rt.event(handle(end))?);
    let v = match rt.call(Request::EventElapsedTime {
        start: s.handle,
        end: e.handle,
    })? {
        Reply::ElapsedMs(v) => v,
        _ => return Err(CuError::UNKNOWN),
    };
    // SAFETY: out-pointer from the caller, checked non-null.
    unsafe { write_out(ms, v) }
}

cuda_exports! {
    /// `cuEventCreate`
    fn cuEventCreate(ph: *mut CUevent, flags: u32) {
        let rt = require_current()?;
        if ph.is_null() || flags & !EVENT_FLAGS_MASK != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let h = match rt.call(Request::EventCreate { flags })? {
            Reply::Event { event } => event,
            _ => return Err(CuError::UNKNOWN),
        };
        rt.events.insert(h, Arc::new(EventState { handle: h, flags, recorded: Mutex::new(None) }));
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(ph, h as usize as CUevent) }
    }

    /// `cuEventDestroy` (v1)
    fn cuEventDestroy(event: CUevent) { destroy(event) }
    /// `cuEventDestroy_v2`
    fn cuEventDestroy_v2(event: CUevent) { destroy(event) }

    /// `cuEventRecord`
    fn cuEventRecord(event: CUevent, stream: CUstream) { record(event, stream, 0, false) }
    /// `cuEventRecord_ptsz`
    fn cuEventRecord_ptsz(event: CUevent, stream: CUstream) { record(event, stream, 0, true) }
    /// `cuEventRecordWithFlags`
    fn cuEventRecordWithFlags(event: CUevent, stream: CUstream, flags: u32) { record(event, stream, flags, false) }
    /// `cuEventRecordWithFlags_ptsz`
    fn cuEventRecordWithFlags_ptsz(event: CUevent, stream: CUstream, flags: u32) { record(event, stream, flags, true) }

    /// `cuEventQuery`: `SUCCESS` once the last record completed (or if never recorded).
    fn cuEventQuery(event: CUevent) {
        let rt = require_current()?;
        let e = rt.event(handle(event))?;
        rt.sticky()?;
        let last = e.recorded.lock().map_err(|_| CuError::UNKNOWN)?.clone();
        match last {
            Some((slot, seq, _)) if slot.load() < seq => Err(CuError::NOT_READY),
            _ => Ok(()),
        }
    }

    /// `cuEventSynchronize`
    fn cuEventSynchronize(event: CUevent) {
        let rt = require_current()?;
        let e = rt.event(handle(event))?;
        let last = e.recorded.lock().map_err(|_| CuError::UNKNOWN)?.clone();
        match last {
            Some((slot, seq, stream)) => rt.wait_for(&slot, seq, stream),
            None => rt.sticky(),
        }
    }

    /// `cuEventElapsedTime`
    fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) { elapsed(ms, start, end) }
    /// `cuEventElapsedTime_v2`
    fn cuEventElapsedTime_v2(ms: *mut f32, start: CUevent, end: CUevent) { elapsed(ms, start, end) }
}
