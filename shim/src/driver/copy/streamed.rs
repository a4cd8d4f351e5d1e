//! Streamed pageable copies: one `STREAMED_COPY` record for a whole synchronous copy, its
//! pieces handed over through a channel in staging (`gpushare_client::shm::channel`) instead of
//! a record, a completion and a staging release each.
//!
//! Host to device, the tenant writes the first pieces into the channel's slots, pushes the
//! record, then writes each further piece as soon as the device has copied the piece that used
//! its slot; it returns once every piece is staged (CUDA lets a pageable upload return before
//! its DMA) and the broker has accepted the copy. Device to host, it pushes the record and reads
//! each piece out as soon as the device has copied it in, then tells the device the slot is
//! free. The broker may decline a copy (deduplication needs an upload hashed on its way; the
//! worker cannot run streamed copies): the caller then copies the same bytes the ordinary way.

use gpushare_client::proto::STAGING_REGION;
use gpushare_client::ring::record::{StreamedCopy, STREAMED_HTOD};
use gpushare_client::ring::Command;
use gpushare_client::shm::channel::{self, Channel, ChannelError, CHANNEL_BYTES, SLOTS};
use gpushare_client::shm::{Staging, StagingSpan};
use gpushare_client::ClientError;
use gpushare_driver_abi::error::{CuError, CuResult};

use super::staged::{host_bytes, host_bytes_mut, staging, staging_alloc};
use super::Run;
use crate::runtime::{Runtime, StreamState};

/// Copies from this size on are streamed (smaller ones have too few pieces to gain from it).
pub(super) const STREAM_FROM: u64 = 8 << 20;

/// How a streamed copy ended.
pub(super) enum Streamed {
    /// Every byte is staged (host to device) or in place (device to host).
    Done,
    /// The broker declined it before the device touched it: copy it another way.
    Declined,
}

/// A channel's end as the copy's outcome.
fn ended(rt: &Runtime, e: ChannelError) -> CuResult<Streamed> {
    match e {
        ChannelError::Declined => Ok(Streamed::Declined),
        ChannelError::Aborted => {
            crate::log(|| {
                tracing::error!(
                    target: "gpushare::shim",
                    "the broker aborted a streamed copy (no piece handed over for too long)"
                )
            });
            Err(CuError::UNKNOWN)
        }
        ChannelError::Cancelled => Err(rt.transport_error(ClientError::Ring(
            gpushare_client::ring::RingError::Wait(gpushare_client::wait::WaitError::Cancelled),
        ))),
    }
}

/// A channel in fresh staging, reset.
fn open(rt: &Runtime, st: &Staging) -> CuResult<(StagingSpan, Channel)> {
    let span = staging_alloc(rt, st, CHANNEL_BYTES)?;
    match st.channel(span) {
        Ok(ch) => {
            ch.reset();
            Ok((span, ch))
        }
        Err(e) => {
            let _ = st.free(span);
            Err(rt.transport_error(ClientError::Staging(e)))
        }
    }
}

/// Pushes the copy's record (returns its sequence number); on failure the channel's span is
/// freed (the broker never saw it).
fn push(
    rt: &Runtime,
    s: &StreamState,
    st: &Staging,
    span: StagingSpan,
    run: Run,
    htod: bool,
) -> CuResult<u64> {
    let rec = StreamedCopy {
        stream: s.handle,
        device_ptr: if htod { run.dst } else { run.src },
        channel: span.offset,
        len: run.len,
        first_piece: 0,
        host_region: STAGING_REGION,
        flags: if htod { STREAMED_HTOD } else { 0 },
    };
    rt.submit_on(s, &Command::StreamedCopy(rec))
        .inspect_err(|_| {
            let _ = st.free(span);
        })
}

/// Writes piece `k` of `run`'s source into its slot.
///
/// # Safety
/// `run.src` must be readable for `run.len` bytes.
unsafe fn stage(rt: &Runtime, st: &Staging, span: StagingSpan, run: Run, k: u64) -> CuResult {
    let n = channel::piece_len(run.len, k);
    // SAFETY: piece k of the caller's source, readable per the contract.
    let bytes = unsafe { host_bytes(run.src + k * channel::PIECE, n) };
    st.write(span.offset + channel::slot(k), bytes)
        .map_err(|e| rt.transport_error(ClientError::Staging(e)))
}

/// A synchronous pageable host-to-device copy of `run`, streamed.
///
/// # Safety
/// `[run.src, run.src + run.len)` must be readable host memory for the call.
pub(super) unsafe fn htod(rt: &Runtime, s: &StreamState, run: Run) -> CuResult<Streamed> {
    let st = staging(rt)?;
    let (span, ch) = open(rt, st)?;
    let n = channel::pieces(run.len);
    let first = n.min(SLOTS);
    for k in 0..first {
        // SAFETY: per the caller's contract.
        if let Err(e) = unsafe { stage(rt, st, span, run, k) } {
            let _ = st.free(span);
            return Err(e);
        }
    }
    // The broker reads the first pieces (deduplication's probe) when it sees the record.
    Channel::publish(ch.tenant(), first as u32);
    push(rt, s, st, span, run, true)?;
    // From here on the broker frees the span.
    for k in first..n {
        if let Err(e) = ch.wait_device((k + 1 - SLOTS) as u32, &rt.cancel) {
            return ended(rt, e);
        }
        // SAFETY: per the caller's contract.
        unsafe { stage(rt, st, span, run, k)? };
        Channel::publish(ch.tenant(), (k + 1) as u32);
    }
    match ch.wait_settled(&rt.cancel) {
        Ok(()) => Ok(Streamed::Done),
        Err(e) => ended(rt, e),
    }
}

/// A synchronous pageable device-to-host copy into `run`, streamed; returns once every byte is
/// in place.
///
/// The tenant frees a download's channel, once the command is complete (its last piece read
/// out is not the device's last touch of the channel: the device writes its count after it).
///
/// # Safety
/// `[run.dst, run.dst + run.len)` must be writable host memory no one else uses during the call.
pub(super) unsafe fn dtoh(rt: &Runtime, s: &StreamState, run: Run) -> CuResult<Streamed> {
    let st = staging(rt)?;
    let (span, ch) = open(rt, st)?;
    let seq = push(rt, s, st, span, run, false)?;
    // SAFETY: per the caller's contract.
    let read = unsafe { read_out(rt, st, span, &ch, run) };
    let outcome = read.and_then(|()| ch.wait_settled(&rt.cancel));
    rt.wait_for(&s.slot, seq, s.handle)?;
    let _ = st.free(span);
    match outcome {
        Ok(()) => Ok(Streamed::Done),
        Err(e) => ended(rt, e),
    }
}

/// Reads every piece of a download out of its channel as the device fills it.
///
/// # Safety
/// As for [`dtoh`].
unsafe fn read_out(
    rt: &Runtime,
    st: &Staging,
    span: StagingSpan,
    ch: &Channel,
    run: Run,
) -> Result<(), ChannelError> {
    for k in 0..channel::pieces(run.len) {
        ch.wait_device((k + 1) as u32, &rt.cancel)?;
        let n = channel::piece_len(run.len, k);
        // SAFETY: piece k of the caller's destination, writable and no one else's.
        let out = unsafe { host_bytes_mut(run.dst + k * channel::PIECE, n) };
        if st.read(span.offset + channel::slot(k), out).is_err() {
            // The span was checked when the channel was made.
            return Err(ChannelError::Cancelled);
        }
        Channel::publish(ch.tenant(), (k + 1) as u32);
    }
    Ok(())
}
