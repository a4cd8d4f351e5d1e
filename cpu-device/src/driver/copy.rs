//! Copies and memsets: `cuMemcpy*` and `cuMemset*`, synchronous and asynchronous, with their
//! `_ptds`/`_ptsz` per-thread-default-stream variants.
//!
//! Every copy is an op on a stream (synchronous ones on the legacy or per-thread default stream,
//! then waited for; they return the context's sticky error). A copy's geometry is the shared
//! [`CopyShape`]: pitches and device ranges are validated at submission (`INVALID_VALUE` for a
//! range outside one allocation or a read-only destination).
//! Host pointers are captured and used at execution time, except that asynchronous copies from
//! pageable memory are staged (copied into a driver buffer at submission, as CUDA does) and
//! asynchronous copies to pageable memory return only once complete (as CUDA does). Only the `_v2`
//! ABI (64-bit `CUdeviceptr`) is exported. On a capturing stream a checked copy or memset becomes
//! a graph node instead ([`capture::record`]).

use std::ffi::c_void;

use gpushare_driver_abi::checks::copy::{device_range, memset_span, CopyShape};
use gpushare_driver_abi::cuda_h::CudaMemcpy2D;
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::DefaultStream;

use super::resolve::{self, work_stream};
use crate::error::CuResult;
use crate::exec::executor::Until;
use crate::exec::timing::CopyKind;
use crate::exec::work::{CopyWork, MemsetWork, Work};
use crate::memory::MemoryKind;
use crate::state::{self, Driver};
use crate::sys::{CUcontext, CUdeviceptr, CUstream};

/// How an entry point waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Synchronous on the default stream the entry point implies.
    Sync(DefaultStream),
    /// Asynchronous on a stream (NULL: the default stream the entry point implies).
    Async(CUstream, DefaultStream),
}

impl Mode {
    /// The stream the work goes on (NULL: the default stream) and which default stream NULL
    /// names.
    fn stream(self) -> (CUstream, DefaultStream) {
        match self {
            Mode::Sync(ds) => (std::ptr::null_mut(), ds),
            Mode::Async(s, ds) => (s, ds),
        }
    }
}

/// Whether `[ptr, ptr + len)` lies inside one allocation (with write access: `write`).
fn device_ok(d: &Driver, ptr: u64, len: u64, write: bool) -> bool {
    d.memory.device_range(ptr, len, write).is_ok()
}

/// Unified addressing: whether `p` is device memory.
fn is_device(d: &Driver, p: u64) -> bool {
    d.memory.classify(p) == Some(MemoryKind::Device)
}

/// The direction of a copy between the sides `r` names.
fn kind_of(r: &CopyShape) -> CopyKind {
    match (r.dst_dev, r.src_dev) {
        (true, true) => CopyKind::D2D,
        (true, false) => CopyKind::H2D,
        (false, true) => CopyKind::D2H,
        (false, false) => CopyKind::H2H,
    }
}

/// Copies the source rows of a host-to-device copy into a driver buffer (CUDA stages pageable
/// sources at submission, so the caller may reuse the buffer once the call returns).
///
/// # Safety
/// The source rows of `r` must be readable host memory.
unsafe fn stage(r: &CopyShape) -> Vec<u8> {
    let mut buf = Vec::with_capacity((r.width * r.height) as usize);
    for row in 0..r.height {
        let p = (r.src + row * r.src_pitch) as *const u8;
        // SAFETY: a source row, readable per the contract.
        buf.extend_from_slice(unsafe { std::slice::from_raw_parts(p, r.width as usize) });
    }
    buf
}

/// An asynchronous copy or memset on a capturing stream becomes a node (synchronous ones are
/// refused during capture by the export layer, unless the thread's mode is relaxed: then they
/// run).
fn captured(mode: Mode, node: impl FnOnce() -> CuResult<NodeKind>) -> Option<CuResult> {
    match mode {
        Mode::Async(stream, ds) => capture::record(stream, ds, node),
        Mode::Sync(_) => None,
    }
}

fn copy(what: &str, r: CopyShape, mode: Mode) -> CuResult {
    let (stream, default_stream) = mode.stream();
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    if r.is_empty() {
        return Ok(());
    }
    let (dst_span, src_span) = r.spans(what)?;
    r.check_sides(what, (dst_span, src_span), |p, len, w| {
        device_ok(d, p, len, w)
    })?;
    if let Some(captured) = captured(mode, || Ok(NodeKind::copy(&r))) {
        return captured;
    }
    let kind = kind_of(&r);
    let pinned = match kind {
        CopyKind::H2D => d
            .memory
            .host_is_pinned(r.src as *const u8, src_span as usize),
        CopyKind::D2H => d
            .memory
            .host_is_pinned(r.dst as *const u8, dst_span as usize),
        CopyKind::D2D => true,
        CopyKind::H2H => false,
    };
    let is_async = matches!(mode, Mode::Async(..));
    // SAFETY: the caller's source rows are readable now (checked above: not NULL; valid per the
    // CUDA contract).
    let staged = (is_async && kind == CopyKind::H2D && !pinned).then(|| unsafe { stage(&r) });
    let work = Work::Copy(CopyWork {
        kind,
        dst: r.dst,
        src: r.src,
        width: r.width,
        height: r.height,
        dst_pitch: r.dst_pitch,
        src_pitch: r.src_pitch,
        pinned,
        staged,
    });
    let op = d.exec.submit(&ctx, &s, work)?;
    // Synchronous copies, and copies to or between pageable host buffers, return when done.
    let blocking = !is_async || (!pinned && matches!(kind, CopyKind::D2H | CopyKind::H2H));
    if blocking {
        d.exec.wait(&op, Until::End)?;
        ctx.check_usable()?;
    }
    Ok(())
}

/// `cuMemcpy`/`cuMemcpyAsync`: the direction comes from where the pointers are.
fn unified(what: &str, dst: u64, src: u64, bytes: u64, mode: Mode) -> CuResult {
    let d = state::driver()?;
    let r = CopyShape::linear(is_device(d, dst), is_device(d, src), dst, src, bytes);
    copy(what, r, mode)
}

/// Peer copies: one device, so a device-to-device copy between live contexts.
fn peer(
    what: &str,
    dst: u64,
    dst_ctx: CUcontext,
    src: u64,
    src_ctx: CUcontext,
    bytes: u64,
    mode: Mode,
) -> CuResult {
    let d = state::driver()?;
    resolve::context(d, dst_ctx)?;
    resolve::context(d, src_ctx)?;
    copy(what, CopyShape::linear(true, true, dst, src, bytes), mode)
}

fn memset(what: &str, w: MemsetWork, mode: Mode) -> CuResult {
    let (stream, default_stream) = mode.stream();
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    if w.width == 0 || w.height == 0 {
        return Ok(());
    }
    let span = memset_span(what, w.width, w.height, w.pitch, w.elem)?;
    device_range(what, w.dst, span, true, device_ok(d, w.dst, span, true))?;
    let node = || {
        Ok(NodeKind::memset(
            w.dst, w.pitch, w.elem, w.value, w.width, w.height,
        ))
    };
    if let Some(captured) = captured(mode, node) {
        return captured;
    }
    let op = d.exec.submit(&ctx, &s, Work::Memset(w))?;
    if matches!(mode, Mode::Sync(_)) {
        d.exec.wait(&op, Until::End)?;
        ctx.check_usable()?;
    }
    Ok(())
}

/// A `CUDA_MEMCPY2D` (host and device memory; CUDA arrays are `NOT_SUPPORTED`).
fn copy_2d(what: &str, c: &CudaMemcpy2D, mode: Mode) -> CuResult {
    let d = state::driver()?;
    copy(what, CopyShape::from_2d(c, |p| is_device(d, p))?, mode)
}

fn htod(what: &str, dst: CUdeviceptr, src: *const c_void, n: usize, mode: Mode) -> CuResult {
    let r = CopyShape::linear(true, false, dst, src as u64, n as u64);
    copy(what, r, mode)
}

fn dtoh(what: &str, dst: *mut c_void, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    let r = CopyShape::linear(false, true, dst as u64, src, n as u64);
    copy(what, r, mode)
}

fn dtod(what: &str, dst: CUdeviceptr, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    copy(
        what,
        CopyShape::linear(true, true, dst, src, n as u64),
        mode,
    )
}

fn set_1d(what: &str, dst: CUdeviceptr, elem: u8, value: u32, n: usize, mode: Mode) -> CuResult {
    set_2d(what, dst, n * usize::from(elem), elem, value, (n, 1), mode)
}

/// A memset of `size.1` rows of `size.0` elements, `pitch` bytes apart.
fn set_2d(
    what: &str,
    dst: CUdeviceptr,
    pitch: usize,
    elem: u8,
    value: u32,
    size: (usize, usize),
    mode: Mode,
) -> CuResult {
    let w = MemsetWork {
        dst,
        pitch: pitch as u64,
        width: size.0 as u64,
        height: size.1 as u64,
        elem,
        value,
        wake: false,
    };
    memset(what, w, mode)
}

mod family;
