//! Launches: `cuLaunchKernel`, `cuLaunchKernelEx`, `cuLaunchCooperativeKernel` and
//! `cuLaunchHostFunc`, each with its `_ptsz` variant.
//!
//! Arguments come either as `kernelParams` (one pointer per parameter; sizes and offsets from the
//! kernel's PTX parameter list) or as `extra` (`CU_LAUNCH_PARAM_BUFFER_POINTER`/`_SIZE`/`_END`), and
//! are copied at submission. The launch shape is validated against the device limits
//! (`INVALID_VALUE`).

use std::ffi::c_void;

use super::stream::work_stream;
use crate::error::{CuError, CuResult};
use crate::exec::executor::{HostFn, KernelWork, SendPtr, Work};
use crate::sys::{CUfunction, CUstream};
use gpushare_driver_abi::cuda_h::read_launch_extra;
pub use gpushare_driver_abi::cuda_h::CuLaunchConfig;

/// Block dimension limits (x, y, z) and the grid's.
const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];
const MAX_GRID: [u32; 3] = [i32::MAX as u32, 65535, 65535];

/// A launch request as the entry points receive it.
struct Launch {
    func: CUfunction,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
}

fn invalid(msg: String) -> CuError {
    tracing::warn!("launch rejected: {msg}");
    CuError::INVALID_VALUE
}

/// Checks the launch shape against the device and kernel limits.
fn check_shape(k: &gpushare_ptx::Kernel, grid: [u32; 3], block: [u32; 3]) -> CuResult {
    let name = k.name();
    for i in 0..3 {
        if block[i] == 0 || block[i] > MAX_BLOCK[i] {
            return Err(invalid(format!(
                "{name}: block {block:?} outside 1..={MAX_BLOCK:?}"
            )));
        }
        if grid[i] == 0 || grid[i] > MAX_GRID[i] {
            return Err(invalid(format!(
                "{name}: grid {grid:?} outside 1..={MAX_GRID:?}"
            )));
        }
    }
    let threads = u64::from(block[0]) * u64::from(block[1]) * u64::from(block[2]);
    let limit = k.max_threads_per_block().min(1024);
    if threads > u64::from(limit) {
        return Err(invalid(format!(
            "{name}: {threads} threads per block, limit {limit}"
        )));
    }
    if let Some(req) = k.required_block_dims() {
        if req != block {
            return Err(invalid(format!(
                "{name}: block {block:?} but .reqntid {req:?}"
            )));
        }
    }
    Ok(())
}

/// Packs the arguments into the kernel's parameter buffer.
fn pack_params(
    k: &gpushare_ptx::Kernel,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult<Vec<u8>> {
    let need = k.param_bytes();
    let mut buf = vec![0u8; need];
    let name = k.name();
    match (params.is_null(), extra.is_null()) {
        (false, false) => Err(invalid(format!(
            "{name}: both kernelParams and extra given"
        ))),
        (true, true) if k.params().is_empty() => Ok(buf),
        (true, true) => Err(invalid(format!(
            "{name}: {} parameters but no arguments",
            k.params().len()
        ))),
        (false, true) => {
            for (i, p) in k.params().iter().enumerate() {
                // SAFETY: kernelParams holds one pointer per kernel parameter.
                let arg = unsafe { params.add(i).read() };
                if arg.is_null() {
                    return Err(invalid(format!("{name}: argument {i} is NULL")));
                }
                // SAFETY: the argument points to a value of the parameter's size.
                let bytes = unsafe { std::slice::from_raw_parts(arg.cast::<u8>(), p.size) };
                buf[p.offset..p.offset + p.size].copy_from_slice(bytes);
            }
            Ok(buf)
        }
        (true, false) => {
            // SAFETY: `extra` is a key/value list terminated by CU_LAUNCH_PARAM_END.
            let (ptr, size) =
                unsafe { read_launch_extra(extra) }.map_err(|e| invalid(format!("{name}: {e}")))?;
            let size = size.unwrap_or(0);
            // A C struct mirroring the parameters may carry tail padding up to its alignment.
            let align = k.params().iter().map(|p| p.align).max().unwrap_or(1).max(1);
            if size < need || size > need.next_multiple_of(align) {
                return Err(invalid(format!(
                    "{name}: argument buffer of {size} bytes, kernel needs {need}"
                )));
            }
            if need > 0 {
                if ptr.is_null() {
                    return Err(invalid(format!(
                        "{name}: NULL CU_LAUNCH_PARAM_BUFFER_POINTER"
                    )));
                }
                // SAFETY: the buffer holds `size >= need` bytes.
                buf.copy_from_slice(unsafe { std::slice::from_raw_parts(ptr, need) });
            }
            Ok(buf)
        }
    }
}

fn launch(l: Launch, per_thread: bool) -> CuResult {
    let (d, ctx, s) = work_stream(l.stream, per_thread)?;
    let func = d.exec.resolve_function(d, &ctx, l.func as u64)?;
    if func.module.ctx != ctx.id() {
        tracing::warn!("launch of `{}` from another context", func.name_str());
        return Err(CuError::INVALID_HANDLE);
    }
    let k = func.kernel()?;
    check_shape(k, l.grid, l.block)?;
    let max_dynamic = func
        .attrs
        .lock()
        .map_err(|_| CuError::UNKNOWN)?
        .max_dynamic_shared;
    let static_shared = k.static_shared_bytes();
    if l.shared > max_dynamic || static_shared + l.shared > d.profile.shared_per_block_optin {
        return Err(invalid(format!(
            "{}: {} bytes of dynamic shared memory, limit {max_dynamic} (raise it with \
             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)",
            k.name(),
            l.shared
        )));
    }
    let params = pack_params(k, l.params, l.extra)?;
    let work = KernelWork {
        module: std::sync::Arc::clone(&func.module),
        kernel: func.name_str().to_owned(),
        config: gpushare_ptx::LaunchConfig {
            grid: l.grid,
            block: l.block,
            dynamic_shared_bytes: l.shared,
        },
        params,
        shared_per_block: static_shared + l.shared,
    };
    d.exec
        .submit(&ctx, &s, Work::Kernel(Box::new(work)))
        .map(|_| ())
}

fn launch_ex(
    config: *const CuLaunchConfig,
    f: CUfunction,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
    per_thread: bool,
) -> CuResult {
    if config.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: the caller passes a valid CUlaunchConfig.
    let c = unsafe { config.read_unaligned() };
    if c.num_attrs > 0 {
        if c.attrs.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        tracing::debug!(
            "cuLaunchKernelEx: {} launch attributes ignored",
            c.num_attrs
        );
    }
    let l = Launch {
        func: f,
        grid: c.grid,
        block: c.block,
        shared: c.shared,
        stream: c.stream,
        params,
        extra,
    };
    launch(l, per_thread)
}

fn host_func(stream: CUstream, f: Option<HostFn>, data: *mut c_void, per_thread: bool) -> CuResult {
    let (d, ctx, s) = work_stream(stream, per_thread)?;
    let Some(f) = f else {
        tracing::warn!("cuLaunchHostFunc with a NULL function");
        return Err(CuError::INVALID_VALUE);
    };
    d.exec
        .submit(&ctx, &s, Work::HostFn(f, SendPtr(data)))
        .map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn kernel_args(
    func: CUfunction,
    gx: u32,
    gy: u32,
    gz: u32,
    bx: u32,
    by: u32,
    bz: u32,
    shared: u32,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Launch {
    Launch {
        func,
        grid: [gx, gy, gz],
        block: [bx, by, bz],
        shared,
        stream,
        params,
        extra,
    }
}

cuda_exports! {
    /// `cuLaunchKernel`: accepts a `CUkernel` as the function.
    fn cuLaunchKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch(kernel_args(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra), false)
    }

    /// `cuLaunchKernel_ptsz`
    fn cuLaunchKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch(kernel_args(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra), true)
    }

    /// `cuLaunchKernelEx`: launch attributes are ignored.
    fn cuLaunchKernelEx(config: *const CuLaunchConfig, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch_ex(config, f, params, extra, false)
    }

    /// `cuLaunchKernelEx_ptsz`
    fn cuLaunchKernelEx_ptsz(config: *const CuLaunchConfig, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch_ex(config, f, params, extra, true)
    }

    /// `cuLaunchCooperativeKernel`: launched like any kernel (blocks run concurrently only up to the
    /// worker thread count, so grid-wide synchronisation is not supported).
    fn cuLaunchCooperativeKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void) {
        launch(kernel_args(f, gx, gy, gz, bx, by, bz, shared, stream, params, std::ptr::null_mut()), false)
    }

    /// `cuLaunchCooperativeKernel_ptsz`
    fn cuLaunchCooperativeKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void) {
        launch(kernel_args(f, gx, gy, gz, bx, by, bz, shared, stream, params, std::ptr::null_mut()), true)
    }

    /// `cuLaunchHostFunc`: runs `f(data)` on the executor thread in stream order (with pacing, at
    /// its modelled start).
    fn cuLaunchHostFunc(stream: CUstream, f: Option<HostFn>, data: *mut c_void) {
        host_func(stream, f, data, false)
    }

    /// `cuLaunchHostFunc_ptsz`
    fn cuLaunchHostFunc_ptsz(stream: CUstream, f: Option<HostFn>, data: *mut c_void) {
        host_func(stream, f, data, true)
    }
}
