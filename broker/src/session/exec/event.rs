//! The `event` family: the tenant's events.

use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::request::EventRequest;
use gpushare_client::proto::Reply;

use super::support::with_state;
use crate::session::error::{ExecError, ExecResult};
use crate::session::limits::Limit;
use crate::session::tenant::Tenant;

/// Executes a `event` request.
pub fn execute(t: &Tenant, req: EventRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        EventRequest::EventCreate { flags } => {
            // Bounded by `max_events`: checked before the worker creates the event and again
            // when it is added (an event created on the other lane meanwhile counts).
            with_state(t, |st| fits(t, st.events.len()))?;
            let e = dev.event_create(flags)?;
            let event = with_state(t, |st| {
                fits(t, st.events.len())?;
                Ok(st.events.insert(e)?)
            })?;
            Ok(Reply::Event { event })
        }
        EventRequest::EventDestroy { event } => with_state(t, |st| {
            st.events.remove(event)?;
            Ok(Reply::Empty)
        }),
        EventRequest::EventQuery { event } => {
            let e = with_state(t, |st| Ok(Arc::clone(st.events.get(event)?)))?;
            if dev.event_query(&e)? {
                Ok(Reply::Empty)
            } else {
                Err(ExecError::Code(code::ERROR_NOT_READY))
            }
        }
        EventRequest::EventSynchronize { event } => {
            let e = with_state(t, |st| Ok(Arc::clone(st.events.get(event)?)))?;
            dev.event_synchronize(&e)?;
            Ok(Reply::Empty)
        }
        EventRequest::EventElapsedTime { start, end } => {
            let (a, b) = with_state(t, |st| {
                Ok((
                    Arc::clone(st.events.get(start)?),
                    Arc::clone(st.events.get(end)?),
                ))
            })?;
            Ok(Reply::ElapsedMs(dev.event_elapsed(&a, &b)?))
        }
    }
}

/// Checks that one more event fits `max_events` beside the tenant's `held`.
fn fits(t: &Tenant, held: usize) -> Result<(), ExecError> {
    t.limits
        .check(Limit::Events, held as u64, 1)
        .map_err(|e| ExecError::Code(e.code()))
}
