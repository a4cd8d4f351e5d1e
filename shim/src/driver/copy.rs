//! Copies and memsets: `cuMemcpy*` and `cuMemset*`, synchronous and asynchronous, with their
//! `_ptds`/`_ptsz` per-thread-default-stream twins (the `Copies` family is in `family`, the
//! staging of pageable memory in `staged`).
//!
//! A copy's geometry is the shared [`CopyShape`]: device ranges are checked against the shim's
//! own tables before anything is sent (`INVALID_VALUE` for a range outside one allocation, or
//! outside mapped memory with the access needed, as on the CPU device), so that a bad
//! asynchronous copy fails at the call instead of poisoning the context. Host memory travels two
//! ways:
//! - pinned memory the shim allocated is named by region and offset: zero-copy on both sides;
//! - pageable memory is staged through the region's staging area: synchronous copies use the
//!   client's staged copies; an asynchronous copy from pageable memory is copied into staging
//!   pieces handed to the broker (`COPY_RELEASE_STAGING`: it frees them), so the call returns at
//!   once and the caller may reuse its buffer; an asynchronous copy into pageable memory returns
//!   once the bytes are there, as CUDA's does.
//!
//! Synchronous copies and memsets keep CUDA's "API synchronization behavior" and no more (the
//! table is in docs/architecture.md): they run on the default stream the entry point names
//! (legacy, or per-thread for `_ptds`) and report the sticky error, and
//! - device to device and memsets of device memory are records: no host synchronisation;
//! - pageable host to device is pipelined and returns once the last piece is staged and the work
//!   before it on the stream is done (CUDA synchronises the stream first); the tenant may reuse
//!   its buffer at once, the copy of its last pieces may still run (four pieces at most are in
//!   flight: the call waits for the oldest before staging more);
//! - pageable device to host is pipelined and returns when the bytes are in place;
//! - copies from and to pinned memory, and memsets of it, are synchronous requests (CUDA's are
//!   synchronous with respect to the host); so is any copy or memset whose device side is host
//!   memory (managed, a pinned buffer's device address, a DEVICEMAP registration): the host may
//!   read it as soon as the call returns.
//!
//! Asynchronous ones are ring records on their stream. 2D copies (host and device memory only;
//! CUDA arrays are `NOT_SUPPORTED`) are copies of rows on a stream, then waited for when
//! synchronous. Only the `_v2` ABI (64-bit `CUdeviceptr`) is declared, as on the CPU device.

use std::sync::atomic::Ordering;

use gpushare_client::proto::{HostSpan, Request};
use gpushare_client::ring::record::{CopyDevice, Memset};
use gpushare_client::ring::Command;
use gpushare_driver_abi::checks::copy::{device_range, memset_span, CopyShape};
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::{ctx_rt, runtime, HostMemory, Runtime, StreamState};

mod family;
mod staged;
mod streamed;

use staged::{batched, dtoh_pipelined, host_record, htod_released, UPLOAD_DEPTH};
use streamed::{Streamed, STREAM_FROM};

/// How an entry point waits, and which default stream a NULL stream names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Synchronous.
    Sync(DefaultStream),
    /// Asynchronous on a stream.
    Async(CUstream, DefaultStream),
}

/// A contiguous piece of a copy (absolute addresses).
#[derive(Clone, Copy, Debug)]
struct Run {
    dst: u64,
    src: u64,
    len: u64,
}

/// The copy as contiguous runs: one when rows are adjacent on both sides, else one per row.
/// (The spans were checked, so nothing overflows.)
fn runs(r: &CopyShape) -> Vec<Run> {
    if r.is_linear() {
        return vec![Run {
            dst: r.dst,
            src: r.src,
            len: r.width * r.height,
        }];
    }
    (0..r.height)
        .map(|row| Run {
            dst: r.dst + row * r.dst_pitch,
            src: r.src + row * r.src_pitch,
            len: r.width,
        })
        .collect()
}

/// Unified addressing: whether `p` is device memory of the tenant (pinned host memory the shim
/// allocated is host memory, even where its device address equals its host address; addresses
/// the shim does not know are host memory).
fn is_device(rt: &Runtime, p: u64) -> bool {
    if matches!(rt.host_memory(p as usize, 1), HostMemory::Shared { .. }) {
        return false;
    }
    rt.device_range_of(p).is_some() || rt.in_local_reservation(p)
}

/// A linear synchronous copy with at least one device side (see the module documentation).
///
/// # Safety
/// A host side of `r` must be valid for `run.len` bytes (readable source, writable destination).
unsafe fn sync_linear(rt: &Runtime, r: &CopyShape, run: Run, ds: DefaultStream) -> CuResult {
    let Run { dst, src, len } = run;
    let shared = |p: u64| match rt.host_memory(p as usize, len as usize) {
        HostMemory::Shared { alloc, offset } => Some(HostSpan {
            region: alloc.region,
            offset,
            len,
        }),
        HostMemory::Pageable => None,
    };
    let s = rt.stream(std::ptr::null_mut(), ds)?;
    // Host memory on a device side (managed, pinned, mapped): the host may read it on return.
    let host_backed =
        (r.dst_dev && rt.is_host_backed(dst)) || (r.src_dev && rt.is_host_backed(src));
    match (r.dst_dev, r.src_dev) {
        (true, true) => {
            let c = CopyDevice {
                stream: s.handle,
                dst,
                src,
                len,
            };
            rt.submit_on(&s, &Command::MemcpyDtoD(c))?;
            if host_backed {
                rt.wait_stream(&s)?;
            }
        }
        (true, false) => match shared(src) {
            Some(src) => rt.call_empty(Request::MemcpyHtoD { dst, src })?,
            None => {
                let before = s.last.load(Ordering::Acquire);
                let streamed = if len >= STREAM_FROM {
                    // SAFETY: the caller's source buffer, readable for `len` bytes per the
                    // contract.
                    unsafe { streamed::htod(rt, &s, run)? }
                } else {
                    Streamed::Declined
                };
                if let Streamed::Declined = streamed {
                    // SAFETY: as above.
                    unsafe { htod_released(rt, &s, run, Some(UPLOAD_DEPTH))? };
                }
                if host_backed {
                    rt.wait_stream(&s)?;
                } else {
                    rt.wait_for(&s.slot, before, s.handle)?;
                }
            }
        },
        _ => match shared(dst) {
            Some(dst) => rt.call_empty(Request::MemcpyDtoH { dst, src })?,
            // SAFETY: the caller's destination buffer, writable for `len` bytes and no one
            // else's during the call, per the contract.
            None => unsafe { dtoh_pageable(rt, &s, run)? },
        },
    }
    rt.sticky()
}

/// A device-to-host copy into one pageable run, streamed when it is large (and the broker
/// accepts), else pipelined; returns once every byte is in place.
///
/// # Safety
/// `[run.dst, run.dst + run.len)` must be writable host memory no one else uses during the call.
unsafe fn dtoh_pageable(rt: &Runtime, s: &StreamState, run: Run) -> CuResult {
    if run.len >= STREAM_FROM {
        // SAFETY: per the caller's contract.
        if let Streamed::Done = unsafe { streamed::dtoh(rt, s, run)? } {
            return Ok(());
        }
    }
    // SAFETY: per the caller's contract.
    unsafe { dtoh_pipelined(rt, s, run) }
}

/// Runs a checked copy between the device and host memory on stream `s`.
///
/// # Safety
/// The host side must be valid for the copy (see [`copy`]).
unsafe fn host_on_stream(
    rt: &Runtime,
    s: &StreamState,
    r: &CopyShape,
    spans: (u64, u64),
) -> CuResult {
    let runs = runs(r);
    let htod = r.dst_dev;
    let (host, host_span) = if htod {
        (r.src, spans.1)
    } else {
        (r.dst, spans.0)
    };
    match rt.host_memory(host as usize, host_span as usize) {
        HostMemory::Shared { alloc, offset } => {
            for run in &runs {
                let (dev, h) = if htod {
                    (run.dst, run.src)
                } else {
                    (run.src, run.dst)
                };
                let off = offset + (h - host);
                rt.submit_on(s, &host_record(s, htod, dev, alloc.region, off, run.len, 0))?;
            }
            Ok(())
        }
        HostMemory::Pageable => match runs.as_slice() {
            // SAFETY: the host run is the caller's source buffer, readable per the contract.
            [run] if htod => unsafe { htod_released(rt, s, *run, None) },
            // SAFETY: the host run is the caller's destination, writable and no one else's.
            [run] => unsafe { dtoh_pageable(rt, s, *run) },
            // SAFETY: the host runs are the caller's buffers, valid per the contract.
            _ => unsafe { batched(rt, s, &runs, htod) },
        },
    }
}

/// Runs a checked copy on stream `s` (records; pageable destinations are waited for).
///
/// # Safety
/// Host sides must be valid for the copy (see [`copy`]).
unsafe fn on_stream(rt: &Runtime, s: &StreamState, r: &CopyShape, spans: (u64, u64)) -> CuResult {
    match (r.dst_dev, r.src_dev) {
        (true, true) => {
            for run in runs(r) {
                let c = CopyDevice {
                    stream: s.handle,
                    dst: run.dst,
                    src: run.src,
                    len: run.len,
                };
                rt.submit_on(s, &Command::MemcpyDtoD(c))?;
            }
            Ok(())
        }
        // SAFETY: the host side is valid per the contract.
        (true, false) | (false, true) => unsafe { host_on_stream(rt, s, r, spans) },
        (false, false) => {
            rt.wait_stream(s)?;
            for run in runs(r) {
                // SAFETY: the caller's host buffers, valid for the copy per the contract (they
                // may overlap, as memmove allows).
                unsafe {
                    std::ptr::copy(
                        run.src as usize as *const u8,
                        run.dst as usize as *mut u8,
                        run.len as usize,
                    )
                };
            }
            Ok(())
        }
    }
}

/// A copy: checked, then a synchronous request, records on a stream, or a host copy.
///
/// # Safety
/// Each host side of `r` (where the shim finds no device memory) must be valid for its span of
/// the copy, as the CUDA driver API requires of the caller: a readable source, a writable
/// destination no one else uses during the call.
unsafe fn copy(what: &str, mut r: CopyShape, mode: Mode) -> CuResult {
    let rt = ctx_rt()?;
    let stream = match mode {
        Mode::Async(s, ds) => Some(rt.stream(s, ds)?),
        Mode::Sync(_) => None,
    };
    if r.is_empty() {
        return Ok(());
    }
    let spans = r.spans(what)?;
    // A "host" pointer that is device memory of the tenant is copied as device memory (it is
    // not addressable here).
    r.dst_dev = r.dst_dev || is_device(rt, r.dst);
    r.src_dev = r.src_dev || is_device(rt, r.src);
    r.check_sides(what, spans, |p, len, w| rt.device_range_ok(p, len, w))?;
    if let Mode::Async(stream, ds) = mode {
        if let Some(captured) = capture::record(stream, ds, || Ok(NodeKind::copy(&r))) {
            return captured;
        }
    }
    let s = match (mode, stream) {
        (_, Some(s)) => s,
        (Mode::Sync(ds), None) if r.is_linear() && (r.dst_dev || r.src_dev) => {
            let run = Run {
                dst: r.dst,
                src: r.src,
                len: r.width * r.height,
            };
            // SAFETY: host sides are valid per the contract.
            return unsafe { sync_linear(rt, &r, run, ds) };
        }
        (Mode::Sync(ds), None) => rt.stream(std::ptr::null_mut(), ds)?,
        (Mode::Async(..), None) => return Err(CuError::UNKNOWN),
    };
    // SAFETY: host sides are valid per the contract.
    let result = unsafe { on_stream(rt, &s, &r, spans) };
    match mode {
        Mode::Sync(_) => {
            result?;
            rt.wait_stream(&s)
        }
        Mode::Async(..) => result,
    }
}

/// A device-to-device copy.
fn dtod(what: &str, dst: CUdeviceptr, src: CUdeviceptr, bytes: usize, mode: Mode) -> CuResult {
    // SAFETY: both sides are device memory: no host memory is touched.
    unsafe {
        copy(
            what,
            CopyShape::linear(true, true, dst, src, bytes as u64),
            mode,
        )
    }
}

/// `cuMemcpy`/`cuMemcpyAsync`: the direction comes from where the pointers are.
///
/// # Safety
/// As for [`copy`].
unsafe fn unified(what: &str, dst: u64, src: u64, bytes: usize, mode: Mode) -> CuResult {
    let rt = runtime()?;
    let r = CopyShape::linear(
        is_device(rt, dst),
        is_device(rt, src),
        dst,
        src,
        bytes as u64,
    );
    // SAFETY: per the contract.
    unsafe { copy(what, r, mode) }
}

/// Peer copies: one device per context here, so a device-to-device copy between live contexts.
fn peer(
    what: &str,
    dst: u64,
    dst_ctx: CUcontext,
    src: u64,
    src_ctx: CUcontext,
    bytes: usize,
    mode: Mode,
) -> CuResult {
    let rt = runtime()?;
    rt.context(dst_ctx as usize as u64)?;
    rt.context(src_ctx as usize as u64)?;
    dtod(what, dst, src, bytes, mode)
}

/// A memset of `size.1` rows of `size.0` elements of `elem` bytes, `pitch` bytes apart.
fn memset(
    what: &str,
    dst: u64,
    pitch: usize,
    elem: u8,
    value: u32,
    size: (usize, usize),
    mode: Mode,
) -> CuResult {
    let rt = ctx_rt()?;
    let stream = match mode {
        Mode::Async(s, ds) => Some(rt.stream(s, ds)?),
        Mode::Sync(_) => None,
    };
    let (pitch, width, height) = (pitch as u64, size.0 as u64, size.1 as u64);
    if width == 0 || height == 0 {
        return Ok(());
    }
    let span = memset_span(what, width, height, pitch, elem)?;
    device_range(what, dst, span, true, rt.device_range_ok(dst, span, true))?;
    if let Mode::Async(stream, ds) = mode {
        let node = || Ok(NodeKind::memset(dst, pitch, elem, value, width, height));
        if let Some(captured) = capture::record(stream, ds, node) {
            return captured;
        }
    }
    let stream = match (stream, mode) {
        (Some(s), _) => Some(s),
        // A memset of host memory (pinned, managed, mapped) is synchronous; of device memory,
        // it is not.
        (None, Mode::Sync(_)) if rt.is_host_backed(dst) => None,
        (None, Mode::Sync(ds)) => Some(rt.stream(std::ptr::null_mut(), ds)?),
        (None, Mode::Async(..)) => return Err(CuError::UNKNOWN),
    };
    match stream {
        None => {
            let element_size = elem;
            rt.call_empty(Request::Memset {
                dst,
                pitch,
                value,
                element_size,
                width,
                height,
            })?;
            rt.sticky()
        }
        Some(s) => {
            let element_size = u32::from(elem);
            let m = Memset {
                stream: s.handle,
                dst,
                pitch,
                width,
                height,
                value,
                element_size,
            };
            rt.submit_on(&s, &Command::Memset(m)).map(|_| ())
        }
    }
}

/// A one-row memset of `n` elements.
fn memset_1d(what: &str, dst: CUdeviceptr, elem: u8, value: u32, n: usize, mode: Mode) -> CuResult {
    let pitch = n.saturating_mul(usize::from(elem));
    memset(what, dst, pitch, elem, value, (n, 1), mode)
}
