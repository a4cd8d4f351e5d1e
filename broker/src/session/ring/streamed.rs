//! A tenant's `STREAMED_COPY` record on the ring thread: the channel checked, the copy accepted
//! (queued as one [`Op::Streamed`], which the scheduler may cut into runs of whole pieces, and
//! watched for stalls) or declined, and the answer written into the channel's state word.
//!
//! The broker declines a streamed copy the worker cannot run (a driver without stream memory
//! operations, a staging area the driver did not register) and an upload deduplication must
//! hash on its way (its first granule is resident, so the copy may be skipped: the bytes must be
//! at hand before the copy is queued, and a streamed copy's are not). The tenant then copies the
//! same bytes the ordinary way. The tenant writes its first [`PROBED_PIECES`] before it pushes
//! the record, which is what deduplication's probe reads.

use std::sync::Arc;

use gpushare_client::code::{self, CuCode};
use gpushare_client::proto::STAGING_REGION;
use gpushare_client::ring::record::{StreamedCopy as StreamedRecord, STREAMED_HTOD};
use gpushare_client::shm::channel::{
    self, ABORTED, ACCEPTED, CHANNEL_BYTES, DECLINED, HEADER, PIECE, PROBED_PIECES,
};
use gpushare_client::shm::StagingSpan;

use super::{batch_key, submit};
use crate::device::{Stream, StreamedCopy};
use crate::session::completion::AfterBatch;
use crate::session::dedup;
use crate::session::error::Violation;
use crate::session::host::host_mem;
use crate::session::state::TenantState;
use crate::session::tenant::Tenant;
use crate::work::Op;

/// Handles a `STREAMED_COPY` record (see the module documentation).
pub fn streamed_copy(t: &Arc<Tenant>, seq: u64, c: &StreamedRecord) -> Result<(), Violation> {
    if c.host_region != STAGING_REGION || c.first_piece != 0 {
        return Err(Violation(
            "a streamed copy's channel must be in staging, from piece 0".into(),
        ));
    }
    if channel::pieces(c.len) > u64::from(u32::MAX / 2) {
        return Err(Violation(format!(
            "streamed copy of {} bytes: too many pieces",
            c.len
        )));
    }
    let host = {
        let guard = t.state();
        let Some(st) = guard.as_ref() else {
            return Ok(());
        };
        host_mem(t, st, STAGING_REGION, c.channel, CHANNEL_BYTES)?
    };
    let htod = c.flags & STREAMED_HTOD != 0;
    let copy = StreamedCopy::new(t.info.id, htod, c.device_ptr, c.len, host)
        .map(Arc::new)
        .ok_or_else(|| Violation("a streamed copy's channel is misaligned".into()))?;
    submit(t, seq, c.stream, None, |st, stream| {
        let planned = plan(t, st, c, &copy, &stream);
        let answer = match &planned {
            Ok(ops) if ops.is_empty() => DECLINED,
            Ok(_) => ACCEPTED,
            // The stream or the device range was refused (an asynchronous error says which).
            Err(_) => ABORTED,
        };
        // Answered before anything is queued, so before the copy can complete and its channel be
        // freed. A channel not accepted is the tenant's to free.
        t.dev.link().streamed().settle(&copy, answer);
        let mut ops = planned?;
        if answer == ACCEPTED {
            let done = finished(t, &copy, c.channel);
            if let Err(f) = t.after_batch(batch_key(c.stream), done) {
                // A full batch was closed as this command was tracked.
                ops.push(dedup::after_copy(stream, f));
            }
        }
        Ok(ops)
    })
}

/// The operations of an accepted copy; none when the broker declines it (see the module
/// documentation).
fn plan(
    t: &Tenant,
    st: &mut TenantState,
    c: &StreamedRecord,
    copy: &Arc<StreamedCopy>,
    stream: &Arc<Stream>,
) -> Result<Vec<Op>, CuCode> {
    st.memory.check(c.device_ptr, c.len).map_err(|e| e.code())?;
    if !stream.device().streamed_copies() || !copy.host().attachment().is_registered() {
        return Ok(Vec::new());
    }
    let op = Op::Streamed {
        copy: Arc::clone(copy),
        first: 0,
        len: c.len,
        stream: Arc::clone(stream),
    };
    if !copy.htod {
        return Ok(vec![op]);
    }
    let first = copy
        .host()
        .sub(HEADER, PROBED_PIECES * PIECE)
        .ok_or(code::ERROR_INVALID_VALUE)?;
    let Some((mut ops, keying)) =
        dedup::streamed_upload_ops(t, st, c.device_ptr, c.len, &first, op)
    else {
        return Ok(Vec::new());
    };
    if let Some(f) = keying {
        if let Err(f) = t.after_batch(batch_key(c.stream), f) {
            ops.push(dedup::after_copy(Arc::clone(stream), f));
        }
    }
    Ok(ops)
}

/// What runs once an accepted copy's commands completed (its batch's marker): the watch lets go
/// of it, then an upload's channel is freed, and a download's if its tenant has read every piece
/// out already (else the tenant frees it once it has); unless the copy was aborted (its tenant
/// frees an aborted copy's channel, once it has seen the abort and the command complete).
fn finished(t: &Tenant, copy: &Arc<StreamedCopy>, channel: u64) -> AfterBatch {
    let (copy, staging) = (Arc::clone(copy), t.staging.clone());
    Box::new(move || {
        if copy.finish() && (copy.htod || copy.let_go()) {
            let span = StagingSpan {
                offset: channel,
                len: CHANNEL_BYTES,
            };
            if let Err(e) = staging.free(span) {
                tracing::warn!(
                    session = copy.session,
                    "freeing a streamed copy's channel: {e}"
                );
            }
        }
    })
}
