//! The `stream` family: the tenant's streams (every broker stream is non-blocking at the driver;
//! CUDA's legacy-stream semantics are rebuilt among the tenant's own streams, see
//! [`crate::session::state`]).

use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::request::StreamRequest;
use gpushare_client::proto::Reply;

use super::support::{sync_stream, with_state};
use crate::session::error::{ExecError, ExecResult};
use crate::session::limits::Limit;
use crate::session::state::{TenantState, TenantStream, JOIN_EVENT_FLAGS, STREAM_NON_BLOCKING};
use crate::session::tenant::Tenant;

/// Executes a `stream` request.
pub fn execute(t: &Tenant, req: StreamRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        StreamRequest::StreamCreate { flags, priority } => stream_create(t, flags, priority),
        StreamRequest::StreamDestroy { stream } => with_state(t, |st| {
            if TenantState::is_legacy(stream) {
                return Err(ExecError::Code(code::ERROR_INVALID_HANDLE));
            }
            let s = st.streams.remove(stream)?;
            st.put_slot(s.slot);
            // The driver stream is destroyed when the last queued operation naming it is gone.
            Ok(Reply::Empty)
        }),
        StreamRequest::StreamQuery { stream } => {
            let s = with_state(t, |st| Ok(Arc::clone(&st.stream(stream)?.dev)))?;
            if dev.stream_query(&s)? {
                Ok(Reply::Empty)
            } else {
                Err(ExecError::Code(code::ERROR_NOT_READY))
            }
        }
        StreamRequest::StreamSynchronize { stream } => {
            let s = with_state(t, |st| Ok(Arc::clone(&st.stream(stream)?.dev)))?;
            sync_stream(t, &s)?;
            Ok(Reply::Empty)
        }
    }
}

/// Checks that one more stream fits `max_streams`.
fn fits(t: &Tenant, st: &TenantState) -> Result<(), ExecError> {
    t.limits
        .check(Limit::Streams, st.streams.len() as u64, 1)
        .map_err(|e| ExecError::Code(e.code()))
}

/// `StreamCreate`, bounded by `max_streams` (checked again when the stream is added: a stream
/// created on the other lane meanwhile counts) and by the region's completion slots.
fn stream_create(t: &Tenant, flags: u32, priority: i32) -> ExecResult {
    let dev = &t.dev;
    let slot = with_state(t, |st| {
        fits(t, st)?;
        Ok(st.take_slot()?)
    })?;
    let created = dev
        .stream_create(flags, priority)
        .and_then(|s| Ok((s, dev.event_create(JOIN_EVENT_FLAGS)?)));
    let (s, join) = match created {
        Ok(x) => x,
        Err(e) => {
            with_state(t, |st| {
                st.put_slot(slot);
                Ok(())
            })?;
            return Err(e.into());
        }
    };
    let blocking = flags & STREAM_NON_BLOCKING == 0;
    let stream = with_state(t, |st| {
        if let Err(e) = fits(t, st) {
            st.put_slot(slot);
            return Err(e);
        }
        // A new blocking stream's first operation waits for the legacy stream's work so far.
        Ok(st
            .streams
            .insert(TenantStream::new(s, slot, blocking, join))?)
    })?;
    Ok(Reply::Stream {
        stream,
        completion_slot: slot,
    })
}
