//! Events: markers recorded into streams. An event's timestamp is the modelled completion time of
//! the work that precedes it in its stream (the modelled end of its record marker), so
//! `cuEventElapsedTime` reports modelled, not wall-clock, time.

use std::sync::{Arc, Mutex};

use super::executor::Until;
use super::op::OpState;
use super::stream::Stream;
use super::work::Work;
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};

pub use gpushare_driver_abi::cuda_h::{CU_EVENT_BLOCKING_SYNC, CU_EVENT_DISABLE_TIMING};

/// An event.
pub struct Event {
    /// Owning context.
    pub ctx: u64,
    /// `CU_EVENT_*` flags.
    pub flags: u32,
    /// The marker of the most recent record, if any.
    pub(crate) recorded: Mutex<Option<Arc<OpState>>>,
}

impl Event {
    /// A new, never-recorded event.
    pub fn new(ctx: u64, flags: u32) -> Self {
        Event {
            ctx,
            flags,
            recorded: Mutex::new(None),
        }
    }

    /// The marker of the most recent record.
    pub fn recorded(&self) -> Option<Arc<OpState>> {
        self.recorded.lock().ok().and_then(|r| r.clone())
    }
}

impl Executor {
    /// Records `event` into `stream` (both of context `ctx`).
    pub fn record_event(
        &self,
        ctx: &Arc<Context>,
        event: &Event,
        stream: &Arc<Stream>,
    ) -> CuResult {
        if event.ctx != ctx.id() || stream.ctx != ctx.id() {
            tracing::warn!("cuEventRecord: event and stream belong to different contexts");
            return Err(CuError::INVALID_HANDLE);
        }
        let mut slot = event.recorded.lock().map_err(|_| CuError::UNKNOWN)?;
        let op = self.submit(ctx, stream, Work::Marker)?;
        *slot = Some(op);
        Ok(())
    }

    /// Makes later work on `stream` wait for the most recent record of `event` (a no-op if the
    /// event was never recorded).
    pub fn wait_event(&self, ctx: &Arc<Context>, stream: &Arc<Stream>, event: &Event) -> CuResult {
        match event.recorded() {
            Some(target) => self.submit(ctx, stream, Work::Wait(target)).map(|_| ()),
            None => Ok(()),
        }
    }

    /// `cuEventQuery`: `NOT_READY` while the recorded work is pending.
    pub fn query_event(&self, event: &Event) -> CuResult {
        match event.recorded() {
            Some(op) if !self.is_complete(&op) => Err(CuError::NOT_READY),
            _ => Ok(()),
        }
    }

    /// `cuEventSynchronize`: waits for the recorded work (immediately done if never recorded).
    pub fn synchronize_event(&self, event: &Event) -> CuResult {
        match event.recorded() {
            Some(op) => self.wait(&op, Until::End),
            None => Ok(()),
        }
    }

    /// `cuEventElapsedTime`: milliseconds between two completed events, from modelled timestamps.
    pub fn elapsed_ms(&self, start: &Event, end: &Event) -> CuResult<f32> {
        if (start.flags | end.flags) & CU_EVENT_DISABLE_TIMING != 0 {
            tracing::warn!("cuEventElapsedTime on an event created with CU_EVENT_DISABLE_TIMING");
            return Err(CuError::INVALID_HANDLE);
        }
        let (Some(a), Some(b)) = (start.recorded(), end.recorded()) else {
            tracing::warn!("cuEventElapsedTime on an event that was never recorded");
            return Err(CuError::INVALID_HANDLE);
        };
        if !self.is_complete(&a) || !self.is_complete(&b) {
            return Err(CuError::NOT_READY);
        }
        Ok(elapsed_between(a.span().end, b.span().end))
    }
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier), ns inputs.
pub fn elapsed_between(a: u64, b: u64) -> f32 {
    ((b as f64 - a as f64) / 1e6) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_is_signed_milliseconds() {
        assert_eq!(elapsed_between(1_000_000, 3_500_000), 2.5);
        assert_eq!(elapsed_between(3_000_000, 1_000_000), -2.0);
        let e = Event::new(1, CU_EVENT_BLOCKING_SYNC);
        assert!(e.recorded().is_none());
    }
}
