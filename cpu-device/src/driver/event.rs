//! Events: `cuEvent*`. Timestamps are modelled (see docs/cpu-device.md, "Timing model").

use std::sync::Arc;

use gpushare_driver_abi::cuda_h::{
    CU_EVENT_FLAGS, CU_EVENT_INTERPROCESS, CU_EVENT_RECORD_EXTERNAL,
};
use gpushare_driver_abi::graph::capture;
use gpushare_driver_abi::surface::{DefaultStream, Flags, Out};

use super::resolve::{event, work_stream};
use crate::error::{CuError, CuResult};
use crate::exec::Event;
use crate::state::{self, Driver};
use crate::sys::{CUevent, CUstream};
use crate::CpuDevice;

/// The owning context's sticky error, if any (`INVALID_HANDLE` once the context is gone).
fn owner_check(d: &Driver, e: &Event) -> CuResult {
    match d.contexts.get(e.ctx) {
        Some(c) => c.check_usable(),
        None => Err(CuError::INVALID_HANDLE),
    }
}

/// Records `ev` on `stream` (under capture: see [`capture::event_record`]).
fn record(
    ev: CUevent,
    stream: CUstream,
    external: bool,
    default_stream: DefaultStream,
) -> CuResult {
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    let e = event(d, ev)?;
    if let Some(captured) = capture::event_record(ev, stream, default_stream, external) {
        return captured;
    }
    d.exec.record_event(&ctx, &e, &s)
}

gpushare_driver_abi::implement! {
    impl Event for CpuDevice {
        /// Flags DEFAULT, BLOCKING_SYNC, DISABLE_TIMING; INTERPROCESS → NOT_SUPPORTED.
        fn event_create(ev: Out<'_, CUevent>, flags: Flags<{ CU_EVENT_FLAGS }>) -> CuResult {
            let (d, ctx) = state::current()?;
            if flags.bits() & CU_EVENT_INTERPROCESS != 0 {
                tracing::warn!("cuEventCreate: CU_EVENT_INTERPROCESS is not supported by the CPU device");
                return Err(CuError::NOT_SUPPORTED);
            }
            ev.write(d.exec.events.insert(Arc::new(Event::new(ctx.id(), flags.bits()))) as CUevent)
        }

        fn event_destroy(ev: CUevent) -> CuResult {
            let d = state::driver()?;
            d.exec.events.remove(ev as u64).ok_or_else(|| {
                tracing::warn!("cuEventDestroy: invalid event handle {:#x}", ev as u64);
                CuError::INVALID_HANDLE
            })?;
            Ok(())
        }

        fn event_record(ev: CUevent, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            record(ev, stream, false, default_stream)
        }

        /// `CU_EVENT_RECORD_EXTERNAL` only matters under stream capture (an event-record node).
        fn event_record_with_flags(ev: CUevent, stream: CUstream, flags: Flags<{ CU_EVENT_RECORD_EXTERNAL }>, default_stream: DefaultStream) -> CuResult {
            record(ev, stream, flags.bits() & CU_EVENT_RECORD_EXTERNAL != 0, default_stream)
        }

        /// `NOT_READY` while the recorded work is pending.
        fn event_query(ev: CUevent) -> CuResult {
            capture::check_event(ev)?;
            let d = state::driver()?;
            let e = event(d, ev)?;
            owner_check(d, &e)?;
            d.exec.query_event(&e)
        }

        /// Waits for the recorded work; returns the context's sticky error.
        fn event_synchronize(ev: CUevent) -> CuResult {
            capture::check_event(ev)?;
            let d = state::driver()?;
            let e = event(d, ev)?;
            owner_check(d, &e)?;
            d.exec.synchronize_event(&e)?;
            owner_check(d, &e)
        }

        /// Milliseconds between two completed records, modelled time.
        fn event_elapsed_time(ms: Out<'_, f32>, start: CUevent, end: CUevent) -> CuResult {
            let d = state::driver()?;
            let (a, b) = (event(d, start)?, event(d, end)?);
            ms.write(d.exec.elapsed_ms(&a, &b)?)
        }
    }
}
