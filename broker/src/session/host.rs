//! Host memory a tenant names: a span of its staging area (region 0) or of a host buffer it
//! registered, as the worker maps it ([`Attachment`]). Used by the ring thread (asynchronous
//! copies) and by request handlers (synchronous copies, module images). A span outside them is a
//! protocol violation.

use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::{HostSpan, STAGING_REGION};

use super::error::{ExecError, Violation};
use super::state::TenantState;
use super::tenant::Tenant;
use crate::device::{Attachment, HostMem};

/// Largest module image read from shared memory.
const MAX_IMAGE: u64 = 1 << 30;

/// Host memory named by `(region, offset, len)`: the staging area or a registered buffer.
/// Anything outside them is a protocol violation.
pub fn host_mem(
    t: &Tenant,
    st: &TenantState,
    region: u32,
    offset: u64,
    len: u64,
) -> Result<HostMem, Violation> {
    let bad = || {
        Violation(format!(
            "host span {offset:#x}+{len:#x} of region {region} is outside shared memory"
        ))
    };
    if region == STAGING_REGION {
        let at = t.staging.check(offset, len).map_err(|_| bad())?;
        HostMem::new(Arc::clone(&t.attachment), at, len as usize).ok_or_else(bad)
    } else {
        let h = st.host_regions.get(&region).ok_or_else(bad)?;
        match offset.checked_add(len) {
            Some(end) if end <= h.size => HostMem::new(
                Arc::clone(h.reg.attachment()),
                offset as usize,
                len as usize,
            )
            .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// Where a module image lies: the attachment (staging area or registered buffer) the worker
/// reads it from, its offset there and its length. The span is checked here; the worker copies
/// the bytes out and checks the image itself.
pub fn image_span(t: &Tenant, span: HostSpan) -> Result<(Arc<Attachment>, u64, u64), ExecError> {
    if span.len > MAX_IMAGE {
        return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
    }
    let outside = || {
        ExecError::Violation(format!(
            "module image {:#x}+{:#x} outside host region {}",
            span.offset, span.len, span.region
        ))
    };
    if span.region == STAGING_REGION {
        let at = t
            .staging
            .check(span.offset, span.len)
            .map_err(|_| outside())?;
        return Ok((Arc::clone(&t.attachment), at as u64, span.len));
    }
    let guard = t.state();
    let st = guard
        .as_ref()
        .ok_or(ExecError::Code(code::ERROR_DEINITIALIZED))?;
    let h = st.host_regions.get(&span.region).ok_or_else(outside)?;
    match span.offset.checked_add(span.len) {
        Some(end) if end <= h.size => Ok((Arc::clone(h.reg.attachment()), span.offset, span.len)),
        _ => Err(outside()),
    }
}
