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
//! worker cannot run streamed copies), and it aborts one whose pieces were not handed over in
//! time (the process was stopped, its source is read from a slow disk): the caller then copies
//! the same bytes the ordinary way. So does it when staging has no room for a channel now.

use std::sync::OnceLock;

use gpushare_client::proto::STAGING_REGION;
use gpushare_client::ring::record::{StreamedCopy, STREAMED_HTOD};
use gpushare_client::ring::Command;
use gpushare_client::shm::channel::{
    self, Channel, ChannelError, CHANNEL_BYTES, PROBED_PIECES, SLOTS,
};
use gpushare_client::shm::{Staging, StagingError, StagingSpan};
use gpushare_client::ClientError;
use gpushare_driver_abi::error::{CuError, CuResult};

use super::staged::{host_bytes, host_bytes_mut, staging};
use super::Run;
use crate::runtime::{Runtime, StreamState};

/// Copies from this size on are streamed (smaller ones have too few pieces to gain from it).
pub(super) const STREAM_FROM: u64 = 8 << 20;

/// Downloads from this size on, or from the size of the CPU's last-level cache where that is
/// larger, are read out of their slots with streaming stores (`gpushare_os::raw::streaming`):
/// [`read_out_streaming_from`]. Ordinary stores read each line of the application's buffer before
/// they overwrite it and leave it in the cache; a destination larger than the cache would not
/// stay there, so the read is wasted: a 64 MiB download ran at 15.2–15.6 GB/s with them against
/// 10.1–11.8 (docs/benchmarks-transfers.md). Below the cache's size, what the application reads
/// next may still be in the cache, so smaller downloads keep ordinary stores.
const READ_OUT_STREAMING_MIN: u64 = 32 << 20;

/// The size from which downloads are read out with streaming stores (found once).
fn read_out_streaming_from() -> u64 {
    static FROM: OnceLock<u64> = OnceLock::new();
    *FROM.get_or_init(|| {
        let cache = gpushare_client::os::last_level_cache_bytes().unwrap_or(0);
        READ_OUT_STREAMING_MIN.max(cache)
    })
}

/// How a streamed copy ended.
pub(super) enum Streamed {
    /// Every byte is staged (host to device) or in place (device to host).
    Done,
    /// The broker declined the copy, or aborted it (its source or destination was not handed
    /// over in time): copy the same bytes another way.
    Declined,
}

/// What stops a wait on a channel: the session closed, or the context failed (a failed command
/// never moves the channel's counts).
fn stop(rt: &Runtime) -> impl Fn() -> bool + '_ {
    move || rt.sticky().is_err()
}

/// The outcome of a channel that did not end in `Done`, once the tenant is done with it: a
/// declined or aborted copy's channel is the tenant's to free (an aborted one once its command
/// is complete: the device may still be copying); a failed one stays (the session or context is
/// lost).
fn ended(
    rt: &Runtime,
    s: &StreamState,
    st: &Staging,
    span: StagingSpan,
    seq: u64,
    e: ChannelError,
) -> CuResult<Streamed> {
    match e {
        ChannelError::Declined => {
            let _ = st.free(span);
            Ok(Streamed::Declined)
        }
        ChannelError::Aborted => {
            crate::log(|| {
                tracing::warn!(
                    target: "gpushare::shim",
                    "the broker aborted a streamed copy (no piece handed over in time); copying it again in pieces"
                )
            });
            rt.wait_for(&s.slot, seq, s.handle)?;
            let _ = st.free(span);
            Ok(Streamed::Declined)
        }
        ChannelError::Cancelled => Err(rt.sticky().err().unwrap_or(CuError::UNKNOWN)),
    }
}

/// A channel in fresh staging, reset; `None` when staging has no room for one now (the caller
/// copies the ordinary way, which waits for staging).
fn open(rt: &Runtime, st: &Staging) -> CuResult<Option<(StagingSpan, Channel)>> {
    let span = match st.try_alloc(CHANNEL_BYTES) {
        Ok(Some(span)) => span,
        Ok(None) | Err(StagingError::TooLarge { .. }) => return Ok(None),
        Err(e) => return Err(rt.transport_error(ClientError::Staging(e))),
    };
    match st.channel(span) {
        Ok(ch) => {
            ch.reset();
            Ok(Some((span, ch)))
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
unsafe fn stage(st: &Staging, span: StagingSpan, run: Run, k: u64) {
    let n = channel::piece_len(run.len, k);
    // SAFETY: piece k of the caller's source, readable per the contract.
    let bytes = unsafe { host_bytes(run.src + k * channel::PIECE, n) };
    // The span was checked when the channel was made; a slot lies inside it.
    let _ = st.write(span.offset + channel::slot(k), bytes);
}

/// A synchronous pageable host-to-device copy of `run`, streamed. The broker frees the channel
/// of a copy it accepted and did not abort.
///
/// # Safety
/// `[run.src, run.src + run.len)` must be readable host memory for the call.
pub(super) unsafe fn htod(rt: &Runtime, s: &StreamState, run: Run) -> CuResult<Streamed> {
    let st = staging(rt)?;
    let Some((span, ch)) = open(rt, st)? else {
        return Ok(Streamed::Declined);
    };
    let n = channel::pieces(run.len);
    let first = n.min(PROBED_PIECES);
    for k in 0..first {
        // SAFETY: per the caller's contract.
        unsafe { stage(st, span, run, k) };
    }
    // The broker reads these (deduplication's probe) when it sees the record; the rest of the
    // slots fill while the record travels.
    Channel::publish(ch.tenant(), first as u32);
    let seq = push(rt, s, st, span, run, true)?;
    let stop = stop(rt);
    let mut fed = Ok(());
    for k in first..n {
        if k >= SLOTS {
            fed = ch.wait_device((k + 1 - SLOTS) as u32, &stop);
            if fed.is_err() {
                break;
            }
        }
        // SAFETY: per the caller's contract.
        unsafe { stage(st, span, run, k) };
        Channel::publish(ch.tenant(), (k + 1) as u32);
    }
    match fed.and_then(|()| ch.complete(&stop)) {
        Ok(()) => Ok(Streamed::Done),
        Err(e) => ended(rt, s, st, span, seq, e),
    }
}

/// A synchronous pageable device-to-host copy into `run`, streamed; returns once every byte is
/// in place, without waiting for the command's completion to come back.
///
/// An accepted download's channel has two owners: the tenant until it has read every piece out,
/// the broker until the copy's commands completed (the device writes its count after the last
/// piece, and the broker's watch looks at the channel until then). The second to let go frees
/// it ([`Channel::let_go`]).
///
/// # Safety
/// `[run.dst, run.dst + run.len)` must be writable host memory no one else uses during the call.
pub(super) unsafe fn dtoh(rt: &Runtime, s: &StreamState, run: Run) -> CuResult<Streamed> {
    let st = staging(rt)?;
    let Some((span, ch)) = open(rt, st)? else {
        return Ok(Streamed::Declined);
    };
    let seq = push(rt, s, st, span, run, false)?;
    let stop = stop(rt);
    // SAFETY: per the caller's contract.
    let read = unsafe { read_out(st, span, &ch, run, &stop) };
    match read.and_then(|()| ch.complete(&stop)) {
        Ok(()) => {
            if ch.let_go() {
                let _ = st.free(span);
            }
            Ok(Streamed::Done)
        }
        Err(e) => ended(rt, s, st, span, seq, e),
    }
}

/// Reads every piece of a download out of its channel as the device fills it.
///
/// # Safety
/// As for [`dtoh`].
unsafe fn read_out(
    st: &Staging,
    span: StagingSpan,
    ch: &Channel,
    run: Run,
    stop: &dyn Fn() -> bool,
) -> Result<(), ChannelError> {
    let streaming = run.len >= read_out_streaming_from();
    for k in 0..channel::pieces(run.len) {
        ch.wait_device((k + 1) as u32, stop)?;
        let n = channel::piece_len(run.len, k);
        // SAFETY: piece k of the caller's destination, writable and no one else's.
        let out = unsafe { host_bytes_mut(run.dst + k * channel::PIECE, n) };
        // The span was checked when the channel was made; a slot lies inside it.
        let slot = span.offset + channel::slot(k);
        let _ = if streaming {
            st.read_streaming(slot, out)
        } else {
            st.read(slot, out)
        };
        Channel::publish(ch.tenant(), (k + 1) as u32);
    }
    Ok(())
}
