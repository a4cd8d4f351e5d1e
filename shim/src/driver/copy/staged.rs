//! Copies through shared memory: the outcome of the client's staged copies, ring records naming
//! shared host memory, and the staging of pageable memory for copies on a stream.
//!
//! A copy of one pageable run is *pipelined* in pieces of [`PIPELINE_PIECE`]: host to device,
//! each piece is written into staging and pushed as a record whose staging the broker frees,
//! marked (`COPY_MARK`) so that the freeing happens as soon as the piece is copied, not when the
//! tenant next waits ([`htod_released`]; the tenant writes piece k+1 while the worker copies
//! piece k, and the call returns once the last piece is staged); device to host,
//! [`DOWNLOAD_DEPTH`] pieces are in flight, each marked so its completion is seen alone, and the
//! tenant reads piece k out of staging while the worker copies piece k+1 ([`dtoh_pipelined`]).
//! Several runs (2D copies) go in batches waited for ([`batched`]).
//!
//! A pipeline keeps few pieces in flight ([`UPLOAD_DEPTH`] for a synchronous upload): staging is
//! allocated lowest-first, so a few pieces in flight means the same few MiB of staging again and
//! again, which stay in the CPU caches; both sides' copies then touch DRAM only for the
//! application's and the device's bytes. An asynchronous upload stages as far ahead as staging
//! allows instead: gpushare's asynchronous pageable uploads never wait for the device (CUDA
//! allows them to be synchronous; returning once staged is what lets them overlap).

use gpushare_client::proto::STAGING_REGION;
use std::collections::VecDeque;

use gpushare_client::ring::record::{CopyHost, COPY_MARK, COPY_RELEASE_STAGING};
use gpushare_client::ring::Command;
use gpushare_client::shm::{Staging, StagingSpan};
use gpushare_client::ClientError;
use gpushare_driver_abi::error::{CuError, CuResult};

use super::Run;
use crate::runtime::{Runtime, StreamState};

pub(super) fn staging(rt: &Runtime) -> CuResult<&Staging> {
    rt.client.staging().ok_or(CuError::UNKNOWN)
}

fn staging_alloc(rt: &Runtime, st: &Staging, len: u64) -> CuResult<StagingSpan> {
    st.alloc(len, &rt.policy, &rt.cancel)
        .map_err(|e| rt.transport_error(ClientError::Staging(e)))
}

/// Largest staging piece: half the area, so that two threads copying at once both progress.
fn piece_size(st: &Staging) -> u64 {
    (st.size() / 2).max(st.chunk_size())
}

/// A pipelined copy's piece: large enough that a record's cost vanishes, small enough that the
/// two sides overlap for most of the copy, and a multiple of the 2 MiB VMM granule, so an upload
/// of whole granules stays one of whole granules for deduplication.
pub(super) const PIPELINE_PIECE: u64 = 4 << 20;
/// Device-to-host pieces in flight at once (12 MiB of staging).
const DOWNLOAD_DEPTH: usize = 3;
/// Host-to-device pieces of a synchronous upload in flight at once (16 MiB of staging): measured
/// on the CPU device, 4 × 4 MiB ran at 12.6–13.1 GB/s where staging the whole 64 MiB ahead ran
/// at 9.4 (docs/benchmarks-transfers.md).
pub(super) const UPLOAD_DEPTH: usize = 4;

fn pipeline_piece(st: &Staging) -> u64 {
    PIPELINE_PIECE.min(piece_size(st))
}

/// The application's bytes at `addr`.
///
/// # Safety
/// `[addr, addr + len)` must be readable host memory for the duration of the borrow.
pub(super) unsafe fn host_bytes<'a>(addr: u64, len: u64) -> &'a [u8] {
    // SAFETY: per the caller's contract.
    unsafe { std::slice::from_raw_parts(addr as usize as *const u8, len as usize) }
}

/// The application's buffer at `addr`.
///
/// # Safety
/// `[addr, addr + len)` must be writable host memory no one else uses during the borrow.
pub(super) unsafe fn host_bytes_mut<'a>(addr: u64, len: u64) -> &'a mut [u8] {
    // SAFETY: per the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(addr as usize as *mut u8, len as usize) }
}

/// A copy record between device memory and shared host memory.
pub(super) fn host_record(
    s: &StreamState,
    htod: bool,
    dev: u64,
    region: u32,
    offset: u64,
    len: u64,
    flags: u32,
) -> Command<'static> {
    let c = CopyHost {
        stream: s.handle,
        device_ptr: dev,
        host_offset: offset,
        len,
        host_region: region,
        flags,
    };
    if htod {
        Command::MemcpyHtoD(c)
    } else {
        Command::MemcpyDtoH(c)
    }
}

/// A copy from one pageable run: staging pieces the broker frees. With `depth` (a synchronous
/// upload), at most that many pieces are in flight: before staging another, the tenant waits
/// for the oldest to be copied, so the call returns with all but the last `depth` pieces
/// copied (CUDA lets a synchronous pageable upload return before or after its DMA; it
/// synchronises with the stream's earlier work either way). Without (an asynchronous upload),
/// it stages as far ahead as staging allows and never waits for the device.
///
/// # Safety
/// `[run.src, run.src + run.len)` must be readable host memory for the call.
pub(super) unsafe fn htod_released(
    rt: &Runtime,
    s: &StreamState,
    run: Run,
    depth: Option<usize>,
) -> CuResult {
    let st = staging(rt)?;
    let piece = pipeline_piece(st);
    let mut in_flight = VecDeque::new();
    let mut off = 0;
    while off < run.len {
        if depth.is_some_and(|d| in_flight.len() >= d) {
            if let Some(oldest) = in_flight.pop_front() {
                rt.wait_for(&s.slot, oldest, s.handle)?;
            }
        }
        let n = (run.len - off).min(piece);
        let span = staging_alloc(rt, st, n)?;
        // SAFETY: part of the caller's source run, readable per the contract.
        let bytes = unsafe { host_bytes(run.src + off, n) };
        let pushed = st
            .write(span.offset, bytes)
            .map_err(|e| rt.transport_error(ClientError::Staging(e)))
            .and_then(|()| {
                let cmd = host_record(
                    s,
                    true,
                    run.dst + off,
                    STAGING_REGION,
                    span.offset,
                    n,
                    COPY_RELEASE_STAGING | COPY_MARK,
                );
                rt.submit_on(s, &cmd)
            });
        match pushed {
            Ok(seq) if depth.is_some() => in_flight.push_back(seq),
            Ok(_) => {}
            Err(e) => {
                // Not pushed: the span is still ours.
                let _ = st.free(span);
                return Err(e);
            }
        }
        off += n;
    }
    Ok(())
}

/// A device-to-host copy into one pageable run, pipelined (see the module documentation);
/// returns once every byte is in place.
///
/// With pieces in flight it never blocks on staging: its own pieces may be what fills it (the
/// tenant frees them, not the broker), e.g. with several threads downloading at once; it reads
/// out its oldest piece instead, which frees one.
///
/// # Safety
/// `[run.dst, run.dst + run.len)` must be writable host memory no one else uses during the call.
pub(super) unsafe fn dtoh_pipelined(rt: &Runtime, s: &StreamState, run: Run) -> CuResult {
    let st = staging(rt)?;
    let piece = pipeline_piece(st);
    let (mut off, mut result) = (0, Ok(()));
    let mut in_flight: VecDeque<(Run, StagingSpan, u64)> = VecDeque::new();
    loop {
        if off < run.len && in_flight.len() < DOWNLOAD_DEPTH && result.is_ok() {
            let n = (run.len - off).min(piece);
            let span = if in_flight.is_empty() {
                staging_alloc(rt, st, n).map(Some)
            } else {
                st.try_alloc(n)
                    .map_err(|e| rt.transport_error(ClientError::Staging(e)))
            };
            match span {
                Ok(Some(span)) => {
                    let part = Run {
                        dst: run.dst + off,
                        src: run.src + off,
                        len: n,
                    };
                    off += n;
                    match push_download(rt, s, st, part, span) {
                        Ok(seq) => in_flight.push_back((part, span, seq)),
                        Err(e) => result = Err(e),
                    }
                    continue;
                }
                // Staging is full: read the oldest piece out first.
                Ok(None) => {}
                Err(e) => result = Err(e),
            }
        }
        let Some((part, span, seq)) = in_flight.pop_front() else {
            return result;
        };
        // A piece pushed is waited for before its span is freed, failed or not.
        let waited = rt.wait_for(&s.slot, seq, s.handle);
        if result.is_ok() {
            result = waited.and_then(|()| {
                // SAFETY: a piece of the caller's destination, writable and no one else's.
                let out = unsafe { host_bytes_mut(part.dst, part.len) };
                st.read(span.offset, out)
                    .map_err(|e| rt.transport_error(ClientError::Staging(e)))
            });
        }
        let _ = st.free(span);
    }
}

/// Pushes the record of one download piece into `span`; frees the span if it was not pushed.
fn push_download(
    rt: &Runtime,
    s: &StreamState,
    st: &Staging,
    part: Run,
    span: StagingSpan,
) -> CuResult<u64> {
    let rec = host_record(
        s,
        false,
        part.src,
        STAGING_REGION,
        span.offset,
        part.len,
        COPY_MARK,
    );
    rt.submit_on(s, &rec).inspect_err(|_| {
        let _ = st.free(span);
    })
}

/// Copies pageable runs through staging in batches: each batch is staged, its records are
/// pushed, the stream is waited for, and (device to host) the bytes are read back.
///
/// # Safety
/// The host side of every run must be valid for the call: readable sources (`htod`), writable
/// destinations no one else uses (device to host).
pub(super) unsafe fn batched(rt: &Runtime, s: &StreamState, runs: &[Run], htod: bool) -> CuResult {
    let st = staging(rt)?;
    let piece = piece_size(st);
    let mut parts = Vec::with_capacity(runs.len());
    for r in runs {
        let mut off = 0;
        while off < r.len {
            let n = (r.len - off).min(piece);
            parts.push(Run {
                dst: r.dst + off,
                src: r.src + off,
                len: n,
            });
            off += n;
        }
    }
    let mut i = 0;
    while i < parts.len() {
        let (mut j, mut total) = (i, 0);
        while j < parts.len() && total + parts[j].len <= piece {
            total += parts[j].len;
            j += 1;
        }
        let span = staging_alloc(rt, st, total)?;
        // SAFETY: the parts are pieces of the caller's runs, valid per the contract.
        let result = unsafe { batch(rt, s, st, span, &parts[i..j], htod) };
        let _ = st.free(span);
        result?;
        i = j;
    }
    Ok(())
}

/// One batch of [`batched`], through the staging `span`.
///
/// # Safety
/// As for [`batched`].
unsafe fn batch(
    rt: &Runtime,
    s: &StreamState,
    st: &Staging,
    span: StagingSpan,
    parts: &[Run],
    htod: bool,
) -> CuResult {
    let (mut at, mut last, mut result) = (span.offset, 0, Ok(()));
    for p in parts {
        if htod {
            // SAFETY: the caller's source piece, readable per the contract.
            let bytes = unsafe { host_bytes(p.src, p.len) };
            if let Err(e) = st.write(at, bytes) {
                result = Err(rt.transport_error(ClientError::Staging(e)));
                break;
            }
        }
        let dev = if htod { p.dst } else { p.src };
        match rt.submit_on(s, &host_record(s, htod, dev, STAGING_REGION, at, p.len, 0)) {
            Ok(seq) => last = seq,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        at += p.len;
    }
    // Whatever was pushed must be done with the span before it is freed.
    let waited = rt.wait_for(&s.slot, last, s.handle);
    result?;
    waited?;
    if !htod {
        let mut at = span.offset;
        for p in parts {
            // SAFETY: the caller's destination piece, writable and no one else's per the contract.
            let out = unsafe { host_bytes_mut(p.dst, p.len) };
            st.read(at, out)
                .map_err(|e| rt.transport_error(ClientError::Staging(e)))?;
            at += p.len;
        }
    }
    Ok(())
}
