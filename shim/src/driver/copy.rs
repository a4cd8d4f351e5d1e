//! Copies and memsets: `cuMemcpy*` and `cuMemset*`, synchronous and asynchronous, with their
//! `_ptds`/`_ptsz` per-thread-default-stream variants (the entry points are in [`exports`], the
//! staging of pageable memory in `staged`).
//!
//! Device ranges are checked against the shim's own tables before anything is sent
//! (`INVALID_VALUE` for a range outside one allocation, or outside mapped memory with the access
//! needed, as on the CPU device), so that a bad asynchronous copy fails at the call instead of
//! poisoning the context. Host memory travels two ways:
//! - pinned memory the shim allocated is named by region and offset: zero-copy on both sides;
//! - pageable memory is staged through the region's staging area: synchronous copies use the
//!   client's staged copies; an asynchronous copy from pageable memory is copied into staging
//!   pieces handed to the broker (`COPY_RELEASE_STAGING`: it frees them), so the call returns at
//!   once and the caller may reuse its buffer; an asynchronous copy into pageable memory returns
//!   once the bytes are there, as CUDA's does.
//!
//! Linear synchronous copies and memsets are synchronous requests (run by the broker on the
//! tenant's legacy stream, which orders them after the per-thread default streams too), and
//! report the sticky error. Asynchronous ones are ring records on their stream. 2D copies (host
//! and device memory only; CUDA arrays are `NOT_SUPPORTED`) are copies of rows on a stream, then
//! waited for when synchronous. Only the `_v2` ABI (64-bit `CUdeviceptr`) is exported, as on the
//! CPU device.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use gpushare_client::proto::{HostSpan, Request};
use gpushare_client::ring::record::{CopyDevice, Memset};
use gpushare_client::ring::Command;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{CUcontext, CUdeviceptr, CUstream};

use super::memory::{ctx_rt, in_local_reservation};
use crate::runtime::{runtime, HostMemory, Runtime, StreamState};

pub mod exports;
mod staged;

pub use gpushare_driver_abi::cuda_h::CudaMemcpy2D;
use gpushare_driver_abi::cuda_h::{
    MEMORYTYPE_ARRAY, MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, MEMORYTYPE_UNIFIED,
};
use staged::{batched, host_bytes, host_bytes_mut, host_record, htod_released, staged};

/// How an entry point waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Synchronous (`true`: called through a `_ptds` entry point).
    Sync(bool),
    /// Asynchronous on a stream; `true` when NULL means per-thread.
    Async(CUstream, bool),
}

/// A (possibly 2D) copy: `height` rows of `width` bytes.
#[derive(Clone, Copy)]
struct Req {
    dst_dev: bool,
    src_dev: bool,
    dst: u64,
    src: u64,
    width: u64,
    height: u64,
    dst_pitch: u64,
    src_pitch: u64,
}

/// A contiguous piece of a copy (absolute addresses).
#[derive(Clone, Copy, Debug)]
struct Run {
    dst: u64,
    src: u64,
    len: u64,
}

impl Req {
    fn linear(dst_dev: bool, src_dev: bool, dst: u64, src: u64, bytes: u64) -> Req {
        Req {
            dst_dev,
            src_dev,
            dst,
            src,
            width: bytes,
            height: 1,
            dst_pitch: bytes,
            src_pitch: bytes,
        }
    }

    /// Whether the rows are adjacent on both sides (one contiguous run).
    fn is_linear(&self) -> bool {
        self.height == 1 || (self.dst_pitch == self.width && self.src_pitch == self.width)
    }

    /// The copy as contiguous runs: one when rows are adjacent on both sides, else one per row.
    /// (The spans were checked, so nothing overflows.)
    fn runs(&self) -> Vec<Run> {
        if self.is_linear() {
            return vec![Run {
                dst: self.dst,
                src: self.src,
                len: self.width * self.height,
            }];
        }
        (0..self.height)
            .map(|r| Run {
                dst: self.dst + r * self.dst_pitch,
                src: self.src + r * self.src_pitch,
                len: self.width,
            })
            .collect()
    }
}

/// Bytes from the first to the last byte touched by `height` rows of `width` bytes `pitch` apart.
fn span(width: u64, height: u64, pitch: u64) -> CuResult<u64> {
    (height - 1)
        .checked_mul(pitch)
        .and_then(|v| v.checked_add(width))
        .ok_or(CuError::INVALID_VALUE)
}

/// Fails with `INVALID_VALUE` unless `[ptr, ptr + len)` lies inside one device range of the
/// tenant (for VMM reservations: fully mapped with the access needed).
fn check_device(rt: &Runtime, what: &str, ptr: u64, len: u64, write: bool) -> CuResult {
    let ok = match super::vmm::check_access(ptr, len, write) {
        Some(r) => r.is_ok(),
        None => rt
            .device_range_of(ptr)
            .is_some_and(|(b, s)| ptr.checked_add(len).is_some_and(|e| e <= b + s)),
    };
    if ok {
        return Ok(());
    }
    crate::log(|| {
        tracing::warn!(target: "gpushare::shim",
            "{what}: device range {ptr:#x}+{len} is not inside one allocation{}",
            if write { " with write access" } else { "" })
    });
    Err(CuError::INVALID_VALUE)
}

/// Unified addressing: whether `p` is device memory of the tenant (pinned host memory the shim
/// allocated is host memory, even where its device address equals its host address; addresses
/// the shim does not know are host memory).
fn is_device(rt: &Runtime, p: u64) -> bool {
    if matches!(rt.host_memory(p as usize, 1), HostMemory::Shared { .. }) {
        return false;
    }
    rt.device_range_of(p).is_some() || in_local_reservation(p)
}

/// A linear synchronous copy with at least one device side: a synchronous request.
fn sync_linear(rt: &Runtime, r: &Req, run: Run) -> CuResult {
    let Run { dst, src, len } = run;
    match (r.dst_dev, r.src_dev) {
        (true, true) => rt.call_empty(Request::MemcpyDtoD { dst, src, len })?,
        (true, false) => match rt.host_memory(src as usize, len as usize) {
            HostMemory::Shared { alloc, offset } => {
                let src = HostSpan {
                    region: alloc.region,
                    offset,
                    len,
                };
                rt.call_empty(Request::MemcpyHtoD { dst, src })?
            }
            HostMemory::Pageable => {
                // SAFETY: the caller's source buffer, readable for `len` bytes per the API.
                let bytes = unsafe { host_bytes(src, len) };
                staged(rt, rt.client.copy_to_device(dst, bytes))?
            }
        },
        _ => match rt.host_memory(dst as usize, len as usize) {
            HostMemory::Shared { alloc, offset } => {
                let dst = HostSpan {
                    region: alloc.region,
                    offset,
                    len,
                };
                rt.call_empty(Request::MemcpyDtoH { dst, src })?
            }
            HostMemory::Pageable => {
                // SAFETY: the caller's destination buffer, writable for `len` bytes per the API.
                let bytes = unsafe { host_bytes_mut(dst, len) };
                staged(rt, rt.client.copy_from_device(bytes, src))?
            }
        },
    }
    rt.sticky()
}

/// Runs a checked copy on stream `s` (records; pageable destinations are waited for).
fn on_stream(rt: &Runtime, s: &StreamState, r: &Req, spans: (u64, u64)) -> CuResult {
    let runs = r.runs();
    match (r.dst_dev, r.src_dev) {
        (true, true) => {
            for run in &runs {
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
        (true, false) | (false, true) => {
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
                    [run] if htod => htod_released(rt, s, *run),
                    _ => batched(rt, s, &runs, htod),
                },
            }
        }
        (false, false) => {
            rt.wait_for(&s.slot, s.last.load(Ordering::Acquire), s.handle)?;
            for run in &runs {
                // SAFETY: the caller's host buffers, valid for the copy per the API (they may
                // overlap, as memmove allows).
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

fn copy(what: &str, mut r: Req, mode: Mode) -> CuResult {
    let rt = ctx_rt()?;
    let stream = match mode {
        Mode::Async(s, pt) => Some(rt.stream(s as usize as u64, pt)?),
        Mode::Sync(_) => None,
    };
    if r.width == 0 || r.height == 0 {
        return Ok(());
    }
    if r.height > 1 && (r.dst_pitch < r.width || r.src_pitch < r.width) {
        crate::log(
            || tracing::warn!(target: "gpushare::shim", "{what}: pitch smaller than the row width"),
        );
        return Err(CuError::INVALID_VALUE);
    }
    let dst_span = span(r.width, r.height, r.dst_pitch)?;
    let src_span = span(r.width, r.height, r.src_pitch)?;
    // A "host" pointer that is device memory of the tenant is copied as device memory (it is
    // not addressable here).
    r.dst_dev = r.dst_dev || is_device(rt, r.dst);
    r.src_dev = r.src_dev || is_device(rt, r.src);
    for (dev, ptr, len, write) in [
        (r.dst_dev, r.dst, dst_span, true),
        (r.src_dev, r.src, src_span, false),
    ] {
        if dev {
            check_device(rt, what, ptr, len, write)?;
        } else if ptr == 0 {
            crate::log(|| tracing::warn!(target: "gpushare::shim", "{what}: NULL host pointer"));
            return Err(CuError::INVALID_VALUE);
        }
    }
    let s = match (mode, stream) {
        (_, Some(s)) => s,
        (Mode::Sync(_), None) if r.is_linear() && (r.dst_dev || r.src_dev) => {
            let run = Run {
                dst: r.dst,
                src: r.src,
                len: r.width * r.height,
            };
            return sync_linear(rt, &r, run);
        }
        (Mode::Sync(pt), None) => rt.stream(0, pt)?,
        (Mode::Async(..), None) => return Err(CuError::UNKNOWN),
    };
    let result = on_stream(rt, &s, &r, (dst_span, src_span));
    match mode {
        Mode::Sync(_) => {
            result?;
            rt.wait_for(&s.slot, s.last.load(Ordering::Acquire), s.handle)
        }
        Mode::Async(..) => result,
    }
}

/// `cuMemcpy`/`cuMemcpyAsync`: the direction comes from where the pointers are.
fn unified(what: &str, dst: u64, src: u64, bytes: u64, mode: Mode) -> CuResult {
    let rt = runtime()?;
    let r = Req::linear(is_device(rt, dst), is_device(rt, src), dst, src, bytes);
    copy(what, r, mode)
}

/// Fails with `INVALID_CONTEXT` unless `ctx` is a live context.
fn check_context(ctx: CUcontext) -> CuResult {
    if ctx.is_null() {
        return Err(CuError::INVALID_CONTEXT);
    }
    let mut version = 0u32;
    // SAFETY: the shim's own entry point, with a live out-pointer; it only looks `ctx` up.
    let rc = unsafe { super::context::cuCtxGetApiVersion(ctx, &mut version) };
    CuError::from_code(rc).map_or(Ok(()), Err)
}

/// Peer copies: one device per context here, so a device-to-device copy.
fn peer(
    what: &str,
    dst: u64,
    dst_ctx: CUcontext,
    src: u64,
    src_ctx: CUcontext,
    bytes: u64,
    mode: Mode,
) -> CuResult {
    runtime()?;
    check_context(dst_ctx)?;
    check_context(src_ctx)?;
    copy(what, Req::linear(true, true, dst, src, bytes), mode)
}

/// A memset of `height` rows of `width` elements of `elem` bytes, `pitch` bytes apart.
#[allow(clippy::too_many_arguments)]
fn memset(
    what: &str,
    dst: u64,
    pitch: u64,
    elem: u8,
    value: u32,
    width: u64,
    height: u64,
    mode: Mode,
) -> CuResult {
    let rt = ctx_rt()?;
    let stream = match mode {
        Mode::Async(s, pt) => Some(rt.stream(s as usize as u64, pt)?),
        Mode::Sync(_) => None,
    };
    if width == 0 || height == 0 {
        return Ok(());
    }
    let row = width
        .checked_mul(u64::from(elem))
        .ok_or(CuError::INVALID_VALUE)?;
    if height > 1 && pitch < row {
        crate::log(|| {
            tracing::warn!(target: "gpushare::shim",
                "{what}: pitch {pitch} smaller than the row ({row} bytes)")
        });
        return Err(CuError::INVALID_VALUE);
    }
    check_device(rt, what, dst, span(row, height, pitch)?, true)?;
    match stream {
        None => {
            rt.call_empty(Request::Memset {
                dst,
                pitch,
                value,
                element_size: elem,
                width,
                height,
            })?;
            rt.sticky()
        }
        Some(s) => {
            let m = Memset {
                stream: s.handle,
                dst,
                pitch,
                width,
                height,
                value,
                element_size: u32::from(elem),
            };
            rt.submit_on(&s, &Command::Memset(m)).map(|_| ())
        }
    }
}

fn set_1d(what: &str, dst: CUdeviceptr, elem: u8, value: u32, n: usize, mode: Mode) -> CuResult {
    let pitch = (n as u64).saturating_mul(u64::from(elem));
    memset(what, dst, pitch, elem, value, n as u64, 1, mode)
}

fn set_2d(
    what: &str,
    dst: CUdeviceptr,
    pitch: usize,
    elem: u8,
    value: u32,
    size: (usize, usize),
    mode: Mode,
) -> CuResult {
    memset(
        what,
        dst,
        pitch as u64,
        elem,
        value,
        size.0 as u64,
        size.1 as u64,
        mode,
    )
}

/// Resolves one side of a 2D copy: (address of its first byte, on device?).
fn side_2d(
    rt: &Runtime,
    ty: u32,
    host: u64,
    device: u64,
    x: usize,
    y: usize,
    pitch: usize,
) -> CuResult<(u64, bool)> {
    let (base, dev) = match ty {
        MEMORYTYPE_HOST => (host, false),
        MEMORYTYPE_DEVICE => (device, true),
        MEMORYTYPE_UNIFIED => (device, is_device(rt, device)),
        MEMORYTYPE_ARRAY => {
            crate::log(|| {
                tracing::warn!(target: "gpushare::shim",
                    "cuMemcpy2D with CUDA arrays is not supported by the shim")
            });
            return Err(CuError::NOT_SUPPORTED);
        }
        _ => return Err(CuError::INVALID_VALUE),
    };
    let off = (y as u64)
        .checked_mul(pitch as u64)
        .and_then(|v| v.checked_add(x as u64))
        .ok_or(CuError::INVALID_VALUE)?;
    Ok((base.checked_add(off).ok_or(CuError::INVALID_VALUE)?, dev))
}

fn copy_2d(what: &str, p: *const CudaMemcpy2D, mode: Mode) -> CuResult {
    let rt = runtime()?;
    if p.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: the caller passes a valid CUDA_MEMCPY2D.
    let c = unsafe { p.read_unaligned() };
    let (src, src_dev) = side_2d(
        rt,
        c.src_memory_type,
        c.src_host as u64,
        c.src_device,
        c.src_x_in_bytes,
        c.src_y,
        c.src_pitch,
    )?;
    let (dst, dst_dev) = side_2d(
        rt,
        c.dst_memory_type,
        c.dst_host as u64,
        c.dst_device,
        c.dst_x_in_bytes,
        c.dst_y,
        c.dst_pitch,
    )?;
    let req = Req {
        dst_dev,
        src_dev,
        dst,
        src,
        width: c.width_in_bytes as u64,
        height: c.height as u64,
        dst_pitch: c.dst_pitch as u64,
        src_pitch: c.src_pitch as u64,
    };
    copy(what, req, mode)
}

fn htod(what: &str, dst: CUdeviceptr, src: *const c_void, n: usize, mode: Mode) -> CuResult {
    copy(
        what,
        Req::linear(true, false, dst, src as u64, n as u64),
        mode,
    )
}

fn dtoh(what: &str, dst: *mut c_void, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    copy(
        what,
        Req::linear(false, true, dst as u64, src, n as u64),
        mode,
    )
}

fn dtod(what: &str, dst: CUdeviceptr, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    copy(what, Req::linear(true, true, dst, src, n as u64), mode)
}
