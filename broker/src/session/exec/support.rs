//! What the family handlers share: the tenant's tables, waiting for the tenant's streams, the
//! one device there is.

use gpushare_client::code;

use crate::device::Stream;
use crate::session::error::ExecError;
use crate::session::state::TenantState;
use crate::session::tenant::Tenant;

/// Runs `f` on the tenant's tables (`ERROR_DEINITIALIZED` once torn down). The tables' lock is
/// held while `f` runs (see the lock order in [`crate::session::tenant`]).
pub fn with_state<R>(
    t: &Tenant,
    f: impl FnOnce(&mut TenantState) -> Result<R, ExecError>,
) -> Result<R, ExecError> {
    let mut guard = t.state();
    match guard.as_mut() {
        Some(st) => f(st),
        None => Err(ExecError::Code(code::ERROR_DEINITIALIZED)),
    }
}

/// Waits for every stream of the tenant (not other tenants').
pub fn sync_tenant(t: &Tenant) -> Result<(), ExecError> {
    let streams = with_state(t, |st| Ok(st.all_streams()))?;
    let mut first = Ok(());
    for s in streams {
        if let Err(e) = t.dev.stream_synchronize(&s) {
            if first.is_ok() {
                first = Err(ExecError::from(e));
            }
        }
    }
    first
}

/// Waits for one stream.
pub fn sync_stream(t: &Tenant, s: &Stream) -> Result<(), ExecError> {
    Ok(t.dev.stream_synchronize(s)?)
}

/// Only device 0 exists (`ERROR_INVALID_DEVICE` otherwise).
pub fn device0(device: i32) -> Result<(), ExecError> {
    if device == 0 {
        Ok(())
    } else {
        Err(ExecError::Code(code::ERROR_INVALID_DEVICE))
    }
}
