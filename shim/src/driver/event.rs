//! Events. A record is an `EVENT_RECORD` command on the ring; the shim remembers the stream slot
//! and seq of the last record, so querying and synchronising need no round trip. Elapsed time
//! is a call (the broker holds the timestamps).

use std::sync::{Arc, Mutex};

use gpushare_client::proto::{Reply, Request};
use gpushare_client::ring::record::EventRecord;
use gpushare_client::ring::Command;
use gpushare_driver_abi::graph::capture;
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::{require_current, EventState};
use crate::Shim;

fn handle(e: CUevent) -> u64 {
    e as usize as u64
}

fn record(event: CUevent, stream: CUstream, flags: u32, default_stream: DefaultStream) -> CuResult {
    let rt = require_current()?;
    let e = rt.event(handle(event))?;
    let s = rt.stream(stream, default_stream)?;
    let external = flags & CU_EVENT_RECORD_EXTERNAL != 0;
    if let Some(captured) = capture::event_record(event, stream, default_stream, external) {
        return captured;
    }
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

gpushare_driver_abi::implement! {
    impl Event for Shim {
        /// `cuEventCreate`
        fn event_create(event: Out<'_, CUevent>, flags: Flags<{ CU_EVENT_FLAGS }>) -> CuResult {
            let rt = require_current()?;
            let flags = flags.bits();
            let Reply::Event { event: h } = rt.call(Request::EventCreate { flags })? else {
                return Err(CuError::UNKNOWN);
            };
            rt.events.insert(h, Arc::new(EventState { handle: h, flags, recorded: Mutex::new(None) }));
            event.write(h as usize as CUevent)
        }

        /// `cuEventDestroy`
        fn event_destroy(event: CUevent) -> CuResult {
            let rt = require_current()?;
            let h = handle(event);
            rt.event(h)?;
            rt.call_empty(Request::EventDestroy { event: h })?;
            rt.events.remove(&h);
            Ok(())
        }

        /// `cuEventRecord`
        fn event_record(event: CUevent, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            record(event, stream, 0, default_stream)
        }

        /// `cuEventRecordWithFlags`
        fn event_record_with_flags(event: CUevent, stream: CUstream, flags: Flags<{ CU_EVENT_RECORD_EXTERNAL }>, default_stream: DefaultStream) -> CuResult {
            record(event, stream, flags.bits(), default_stream)
        }

        /// `cuEventQuery`: `SUCCESS` once the last record completed (or if never recorded).
        fn event_query(event: CUevent) -> CuResult {
            capture::check_event(event)?;
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
        fn event_synchronize(event: CUevent) -> CuResult {
            capture::check_event(event)?;
            let rt = require_current()?;
            let e = rt.event(handle(event))?;
            let last = e.recorded.lock().map_err(|_| CuError::UNKNOWN)?.clone();
            match last {
                Some((slot, seq, stream)) => rt.wait_for(&slot, seq, stream),
                None => rt.sticky(),
            }
        }

        /// `cuEventElapsedTime`
        fn event_elapsed_time(ms: Out<'_, f32>, start: CUevent, end: CUevent) -> CuResult {
            let rt = require_current()?;
            let (s, e) = (rt.event(handle(start))?, rt.event(handle(end))?);
            match rt.call(Request::EventElapsedTime { start: s.handle, end: e.handle })? {
                Reply::ElapsedMs(v) => ms.write(v),
                _ => Err(CuError::UNKNOWN),
            }
        }
    }
}
