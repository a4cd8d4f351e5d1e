//! Copies and memsets: `cuMemcpy*` and `cuMemset*`, synchronous and asynchronous, with their
//! `_ptds`/`_ptsz` per-thread-default-stream variants.
//!
//! Every copy is an op on a stream (synchronous ones on the legacy or per-thread default stream,
//! then waited for; they return the context's sticky error). Device ranges are validated at
//! submission (`INVALID_VALUE` for a range outside one allocation or a read-only destination).
//! Host pointers are captured and used at execution time, except that asynchronous copies from
//! pageable memory are staged (copied into a driver buffer at submission, as CUDA does) and
//! asynchronous copies to pageable memory return only once complete (as CUDA does). Only the `_v2`
//! ABI (64-bit `CUdeviceptr`) is exported.

use std::ffi::c_void;

use gpushare_driver_abi::surface::DefaultStream;

use super::resolve::{self, work_stream};
use crate::error::{CuError, CuResult};
use crate::exec::executor::{CopyWork, MemsetWork, Until, Work};
use crate::exec::timing::CopyKind;
use crate::memory::MemoryKind;
use crate::state::{self, Driver};
use crate::sys::{CUcontext, CUdeviceptr, CUstream};
use gpushare_driver_abi::cuda_h::CudaMemcpy2D;
use gpushare_driver_abi::cuda_h::{
    MEMORYTYPE_ARRAY, MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, MEMORYTYPE_UNIFIED,
};

/// How an entry point waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Synchronous on the default stream the entry point implies.
    Sync(DefaultStream),
    /// Asynchronous on a stream (NULL: the default stream the entry point implies).
    Async(CUstream, DefaultStream),
}

/// A (possibly 2-D) copy request.
struct Req {
    kind: CopyKind,
    dst: u64,
    src: u64,
    width: u64,
    height: u64,
    dst_pitch: u64,
    src_pitch: u64,
}

impl Req {
    fn linear(kind: CopyKind, dst: u64, src: u64, bytes: u64) -> Self {
        Req {
            kind,
            dst,
            src,
            width: bytes,
            height: 1,
            dst_pitch: bytes,
            src_pitch: bytes,
        }
    }
}

/// Bytes from the first to the last byte touched by `height` rows of `width` bytes `pitch` apart.
fn span(width: u64, height: u64, pitch: u64) -> CuResult<u64> {
    (height - 1)
        .checked_mul(pitch)
        .and_then(|v| v.checked_add(width))
        .ok_or(CuError::INVALID_VALUE)
}

fn check_device(d: &Driver, what: &str, ptr: u64, len: u64, write: bool) -> CuResult {
    d.memory
        .device_range(ptr, len, write)
        .map(|_| ())
        .inspect_err(|_| {
            tracing::warn!(
                "{what}: device range {ptr:#x}+{len} is not inside one allocation{}",
                if write { " with write access" } else { "" }
            );
        })
}

fn copy(what: &str, r: Req, mode: Mode) -> CuResult {
    let (stream, default_stream) = match mode {
        Mode::Sync(ds) => (std::ptr::null_mut(), ds),
        Mode::Async(s, ds) => (s, ds),
    };
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    if r.width == 0 || r.height == 0 {
        return Ok(());
    }
    if r.height > 1 && (r.dst_pitch < r.width || r.src_pitch < r.width) {
        tracing::warn!("{what}: pitch smaller than the row width");
        return Err(CuError::INVALID_VALUE);
    }
    let dst_span = span(r.width, r.height, r.dst_pitch)?;
    let src_span = span(r.width, r.height, r.src_pitch)?;
    let (dst_dev, src_dev) = match r.kind {
        CopyKind::H2D => (true, false),
        CopyKind::D2H => (false, true),
        CopyKind::D2D => (true, true),
        CopyKind::H2H => (false, false),
    };
    for (dev, ptr, len, write) in [
        (dst_dev, r.dst, dst_span, true),
        (src_dev, r.src, src_span, false),
    ] {
        if dev {
            check_device(d, what, ptr, len, write)?;
        } else if ptr == 0 {
            tracing::warn!("{what}: NULL host pointer");
            return Err(CuError::INVALID_VALUE);
        }
    }
    let pinned = match r.kind {
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
    let staged = if is_async && r.kind == CopyKind::H2D && !pinned {
        let mut buf = Vec::with_capacity((r.width * r.height) as usize);
        for row in 0..r.height {
            let p = (r.src + row * r.src_pitch) as *const u8;
            // SAFETY: the caller's source rows are readable now (CUDA stages pageable sources at
            // submission, so the caller may reuse the buffer once this call returns).
            buf.extend_from_slice(unsafe { std::slice::from_raw_parts(p, r.width as usize) });
        }
        Some(buf)
    } else {
        None
    };
    let work = Work::Copy(CopyWork {
        kind: r.kind,
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
    let blocking = !is_async || (!pinned && matches!(r.kind, CopyKind::D2H | CopyKind::H2H));
    if blocking {
        d.exec.wait(&op, Until::End)?;
        ctx.check_usable()?;
    }
    Ok(())
}

/// `cuMemcpy`/`cuMemcpyAsync`/peer copies: the direction comes from where the pointers are.
fn unified(what: &str, dst: u64, src: u64, bytes: u64, mode: Mode) -> CuResult {
    let d = state::driver()?;
    let on_device = |p: u64| d.memory.classify(p) == Some(MemoryKind::Device);
    let kind = match (on_device(dst), on_device(src)) {
        (true, true) => CopyKind::D2D,
        (true, false) => CopyKind::H2D,
        (false, true) => CopyKind::D2H,
        (false, false) => CopyKind::H2H,
    };
    copy(what, Req::linear(kind, dst, src, bytes), mode)
}

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
    copy(what, Req::linear(CopyKind::D2D, dst, src, bytes), mode)
}

fn memset(what: &str, w: MemsetWork, mode: Mode) -> CuResult {
    let (stream, default_stream) = match mode {
        Mode::Sync(ds) => (std::ptr::null_mut(), ds),
        Mode::Async(s, ds) => (s, ds),
    };
    let (d, ctx, s) = work_stream(stream, default_stream)?;
    if w.width == 0 || w.height == 0 {
        return Ok(());
    }
    let row = w
        .width
        .checked_mul(u64::from(w.elem))
        .ok_or(CuError::INVALID_VALUE)?;
    if w.height > 1 && w.pitch < row {
        tracing::warn!(
            "{what}: pitch {} smaller than the row ({row} bytes)",
            w.pitch
        );
        return Err(CuError::INVALID_VALUE);
    }
    check_device(d, what, w.dst, span(row, w.height, w.pitch)?, true)?;
    let op = d.exec.submit(&ctx, &s, Work::Memset(w))?;
    if matches!(mode, Mode::Sync(_)) {
        d.exec.wait(&op, Until::End)?;
        ctx.check_usable()?;
    }
    Ok(())
}

/// Resolves one side of a 2-D copy: (address of its first byte, on device?).
fn side_2d(
    d: &Driver,
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
        MEMORYTYPE_UNIFIED => (
            device,
            d.memory.classify(device) == Some(MemoryKind::Device),
        ),
        MEMORYTYPE_ARRAY => {
            tracing::warn!("cuMemcpy2D with CUDA arrays is not supported by the CPU device");
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

fn copy_2d(what: &str, c: &CudaMemcpy2D, mode: Mode) -> CuResult {
    let d = state::driver()?;
    let (src, src_dev) = side_2d(
        d,
        c.src_memory_type,
        c.src_host as u64,
        c.src_device,
        c.src_x_in_bytes,
        c.src_y,
        c.src_pitch,
    )?;
    let (dst, dst_dev) = side_2d(
        d,
        c.dst_memory_type,
        c.dst_host as u64,
        c.dst_device,
        c.dst_x_in_bytes,
        c.dst_y,
        c.dst_pitch,
    )?;
    let kind = match (dst_dev, src_dev) {
        (true, true) => CopyKind::D2D,
        (true, false) => CopyKind::H2D,
        (false, true) => CopyKind::D2H,
        (false, false) => CopyKind::H2H,
    };
    let req = Req {
        kind,
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
        Req::linear(CopyKind::H2D, dst, src as u64, n as u64),
        mode,
    )
}

fn dtoh(what: &str, dst: *mut c_void, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    copy(
        what,
        Req::linear(CopyKind::D2H, dst as u64, src, n as u64),
        mode,
    )
}

fn dtod(what: &str, dst: CUdeviceptr, src: CUdeviceptr, n: usize, mode: Mode) -> CuResult {
    copy(what, Req::linear(CopyKind::D2D, dst, src, n as u64), mode)
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
    };
    memset(what, w, mode)
}

mod family;
