//! The `copy` family: synchronous copies and memsets. They run on the tenant's legacy stream
//! (with its join semantics) and return once the stream has finished them. Every device range
//! is checked against the tenant's own memory; a host span outside shared memory is a protocol
//! violation.

use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::request::CopyRequest;
use gpushare_client::proto::HostSpan;
use gpushare_client::proto::Reply;

use super::support::{sync_stream, with_state};
use crate::device::{HostMem, Stream};
use crate::session::dedup;
use crate::session::error::{ExecError, ExecResult, SessionError};
use crate::session::host::host_mem;
use crate::session::state::TenantState;
use crate::session::tenant::Tenant;
use crate::work::{memset_extent, Op};

/// Executes a `copy` request.
pub fn execute(t: &Tenant, req: CopyRequest) -> ExecResult {
    match req {
        CopyRequest::MemcpyHtoD { dst, src } => {
            upload(t, dst, resolve_host(t, src)?)?;
            Ok(Reply::Empty)
        }
        CopyRequest::MemcpyDtoH { dst, src } => {
            let host = resolve_host(t, dst)?;
            with_state(t, |st| Ok(st.memory.check(src, dst.len)?))?;
            sync_op(t, |_, stream| {
                vec![Op::CopyDtoH {
                    dst: host,
                    src,
                    stream,
                }]
            })?;
            Ok(Reply::Empty)
        }
        CopyRequest::MemcpyDtoD { dst, src, len } => {
            with_state(t, |st| {
                st.memory.check(dst, len)?;
                Ok(st.memory.check(src, len)?)
            })?;
            sync_op(t, |st, stream| {
                let cow = dedup::written(t, st, 0, dst, len);
                cow.into_iter()
                    .chain([Op::CopyDtoD {
                        dst,
                        src,
                        len,
                        stream,
                    }])
                    .collect()
            })?;
            Ok(Reply::Empty)
        }
        CopyRequest::Memset {
            dst,
            pitch,
            value,
            element_size,
            width,
            height,
        } => {
            let es = u32::from(element_size);
            if !matches!(es, 1 | 2 | 4) {
                return Err(ExecError::Code(code::ERROR_INVALID_VALUE));
            }
            let len = memset_extent(pitch, width, height, u64::from(es))
                .ok_or(code::ERROR_INVALID_VALUE)?;
            with_state(t, |st| Ok(st.memory.check(dst, len)?))?;
            sync_op(t, |st, stream| {
                let cow = dedup::written(t, st, 0, dst, len);
                cow.into_iter()
                    .chain([Op::Memset {
                        dst,
                        pitch,
                        value,
                        element_size: es,
                        width,
                        height,
                        stream,
                    }])
                    .collect()
            })?;
            Ok(Reply::Empty)
        }
    }
}

/// A synchronous upload, with what deduplication adds to it.
fn upload(t: &Tenant, dst: u64, host: HostMem) -> Result<(), ExecError> {
    let later = with_state(t, |st| {
        st.memory.check(dst, host.len() as u64)?;
        Ok(dedup::hash_later(t, st, dst, &host))
    })?;
    if later {
        return upload_keyed_later(t, dst, host);
    }
    sync_op(t, |st, stream| {
        let (mut ops, keying) = dedup::upload_ops(t, st, 0, dst, host, Arc::clone(&stream));
        ops.extend(keying.map(|f| dedup::after_copy(stream, f)));
        ops
    })
}

/// A large synchronous upload: copied without hashing on the way; once the copy is done, the
/// granules it covered get their keys from the device's bytes, off the tenant's path
/// (docs/dedup.md).
fn upload_keyed_later(t: &Tenant, dst: u64, host: HostMem) -> Result<(), ExecError> {
    let len = host.len() as u64;
    sync_op(t, |st, stream| dedup::copy_ops(t, st, dst, host, stream))?;
    let covered = with_state(t, |st| Ok(dedup::uploaded_unhashed(st, dst, len)))?;
    dedup::key_from_device(t, covered);
    Ok(())
}

/// Runs `build`'s operations on the tenant's legacy stream and waits for them.
fn sync_op(
    t: &Tenant,
    build: impl FnOnce(&mut TenantState, Arc<Stream>) -> Vec<Op>,
) -> Result<(), ExecError> {
    let (ops, stream) = with_state(t, |st| {
        let (stream, _, mut ops) = st.prepare(0)?;
        let built = build(st, Arc::clone(&stream));
        ops.extend(built);
        Ok((ops, stream))
    })?;
    match t.submit_and_wait(ops) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(SessionError::Closed) => return Err(ExecError::Code(code::ERROR_DEINITIALIZED)),
        Err(e) => return Err(ExecError::Violation(e.to_string())),
    }
    sync_stream(t, &stream)
}

fn resolve_host(t: &Tenant, span: HostSpan) -> Result<HostMem, ExecError> {
    with_state(t, |st| {
        Ok(host_mem(t, st, span.region, span.offset, span.len)?)
    })
}
