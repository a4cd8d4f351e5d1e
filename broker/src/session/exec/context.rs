//! The `context` family: contexts and limits.
//!
//! Every tenant context handle aliases the broker's one shared context on device 0; the tenant's
//! resources belong to the session, not to a context (they are freed when the session ends).
//! Limits set with `CtxSetLimit` apply to the shared context, i.e. to everyone.

use gpushare_client::code;
use gpushare_client::proto::request::ContextRequest;
use gpushare_client::proto::Reply;

use super::support::{device0, sync_tenant, with_state};
use crate::session::error::{ExecError, ExecResult};
use crate::session::state::ContextEntry;
use crate::session::tenant::Tenant;

/// Executes a `context` request.
pub fn execute(t: &Tenant, req: ContextRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        ContextRequest::CtxCreate { device, .. } => {
            device0(device)?;
            let ctx = with_state(t, |st| {
                Ok(st.contexts.insert(ContextEntry { primary: false })?)
            })?;
            Ok(Reply::Context { ctx })
        }
        ContextRequest::CtxDestroy { ctx } => with_state(t, |st| match st.contexts.get(ctx) {
            Ok(c) if !c.primary => {
                st.contexts.remove(ctx)?;
                Ok(Reply::Empty)
            }
            _ => Err(ExecError::Code(code::ERROR_INVALID_CONTEXT)),
        }),
        ContextRequest::PrimaryCtxRetain { device } => {
            device0(device)?;
            with_state(t, |st| {
                let ctx = match st.primary {
                    Some((h, n)) => {
                        st.primary = Some((h, n.saturating_add(1)));
                        h
                    }
                    None => {
                        let h = st.contexts.insert(ContextEntry { primary: true })?;
                        st.primary = Some((h, 1));
                        h
                    }
                };
                Ok(Reply::Context { ctx })
            })
        }
        ContextRequest::PrimaryCtxRelease { device } => {
            device0(device)?;
            with_state(t, |st| match st.primary {
                Some((h, n)) if n > 0 => {
                    st.primary = Some((h, n - 1));
                    Ok(Reply::Empty)
                }
                _ => Err(ExecError::Code(code::ERROR_INVALID_CONTEXT)),
            })
        }
        ContextRequest::CtxSynchronize { ctx } => {
            with_state(t, |st| {
                if ctx == 0 || st.contexts.get(ctx).is_ok() {
                    Ok(())
                } else {
                    Err(ExecError::Code(code::ERROR_INVALID_CONTEXT))
                }
            })?;
            sync_tenant(t)?;
            Ok(Reply::Empty)
        }
        ContextRequest::CtxGetLimit { limit } => Ok(Reply::Value(dev.ctx_get_limit(limit)?)),
        ContextRequest::CtxSetLimit { limit, value } => {
            dev.ctx_set_limit(limit, value)?;
            Ok(Reply::Empty)
        }
        ContextRequest::CtxGetStreamPriorityRange => {
            let (least, greatest) = dev.stream_priority_range()?;
            Ok(Reply::PriorityRange { least, greatest })
        }
    }
}
