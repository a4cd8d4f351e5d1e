//! Launches: `cuLaunchKernel`, `cuLaunchKernelEx`, `cuLaunchCooperativeKernel` and
//! `cuLaunchHostFunc`, each with its `_ptsz` variant.
//!
//! Arguments come either as `kernelParams` (one pointer per parameter; sizes and offsets from the
//! kernel's PTX parameter list) or as `extra` (`CU_LAUNCH_PARAM_BUFFER_POINTER`/`_SIZE`/`_END`), and
//! are copied at submission. The launch shape is validated against the device limits
//! (`INVALID_VALUE`).

use std::ffi::c_void;

use gpushare_driver_abi::cuda_h::{read_launch_extra, CUhostFn, CuLaunchConfig};
use gpushare_driver_abi::surface::{DefaultStream, In};

use super::resolve::work_stream;
use crate::error::{CuError, CuResult};
use crate::exec::executor::{KernelWork, SendPtr, Work};
use crate::sys::{CUfunction, CUstream};
use crate::CpuDevice;

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
///
/// # Safety
/// As [`launch`].
unsafe fn pack_params(
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

/// Validates and submits a kernel launch.
///
/// # Safety
/// `l.params` / `l.extra` are as `cuLaunchKernel` requires (one pointer per parameter to a value
/// of its size, or a `CU_LAUNCH_PARAM_*` list).
unsafe fn launch(l: Launch, default_stream: DefaultStream) -> CuResult {
    let (d, ctx, s) = work_stream(l.stream, default_stream)?;
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
    // SAFETY: the caller's contract.
    let params = unsafe { pack_params(k, l.params, l.extra) }?;
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

gpushare_driver_abi::implement! {
    impl Launch for CpuDevice {
        /// Accepts a `CUkernel` as the function.
        unsafe fn launch_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let l = Launch { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams/extra, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Launch attributes are ignored.
        unsafe fn launch_kernel_ex(config: In<CuLaunchConfig>, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            if config.num_attrs > 0 {
                if config.attrs.is_null() {
                    return Err(CuError::INVALID_VALUE);
                }
                tracing::debug!("cuLaunchKernelEx: {} launch attributes ignored", config.num_attrs);
            }
            let l = Launch { func: f, grid: config.grid, block: config.block, shared: config.shared, stream: config.stream, params, extra };
            // SAFETY: the caller's kernelParams/extra, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Launched like any kernel (blocks run concurrently only up to the worker thread count,
        /// so grid-wide synchronisation is not supported).
        unsafe fn launch_cooperative_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let extra = std::ptr::null_mut();
            let l = Launch { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Runs `func(data)` on the executor thread in stream order (with pacing, at its modelled
        /// start).
        unsafe fn launch_host_func(stream: CUstream, func: CUhostFn, data: *mut c_void, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = work_stream(stream, default_stream)?;
            d.exec.submit(&ctx, &s, Work::HostFn(func, SendPtr(data))).map(|_| ())
        }
    }
}
