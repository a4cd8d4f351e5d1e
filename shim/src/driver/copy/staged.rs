//! Copies through shared memory: the outcome of the client's staged copies, ring records naming
//! shared host memory, and the staging of pageable memory for copies on a stream (released pieces
//! for asynchronous host-to-device copies, batches waited for otherwise).

use gpushare_client::code::CuCode;
use gpushare_client::proto::STAGING_REGION;
use gpushare_client::ring::record::{CopyHost, COPY_RELEASE_STAGING};
use gpushare_client::ring::Command;
use gpushare_client::shm::{Staging, StagingSpan};
use gpushare_client::ClientError;
use gpushare_driver_abi::error::{CuError, CuResult};

use super::Run;
use crate::runtime::{Runtime, StreamState};

/// A staged copy's outcome.
pub(super) fn staged(rt: &Runtime, r: Result<CuCode, ClientError>) -> CuResult {
    match r {
        Ok(code) => CuError::from_code(code).map_or(Ok(()), Err),
        Err(e) => Err(rt.transport_error(e)),
    }
}

fn staging(rt: &Runtime) -> CuResult<&Staging> {
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

/// An asynchronous copy from one pageable run: staging pieces the broker frees.
///
/// # Safety
/// `[run.src, run.src + run.len)` must be readable host memory for the call.
pub(super) unsafe fn htod_released(rt: &Runtime, s: &StreamState, run: Run) -> CuResult {
    let st = staging(rt)?;
    let piece = piece_size(st);
    let mut off = 0;
    while off < run.len {
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
                    COPY_RELEASE_STAGING,
                );
                rt.submit_on(s, &cmd)
            });
        if let Err(e) = pushed {
            // Not pushed: the span is still ours.
            let _ = st.free(span);
            return Err(e);
        }
        off += n;
    }
    Ok(())
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
