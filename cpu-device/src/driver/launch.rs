//! Launches: `cuLaunchKernel`, `cuLaunchKernelEx`, `cuLaunchCooperativeKernel` and
//! `cuLaunchHostFunc`, each with its `_ptsz` variant; the deprecated execution control
//! (`cuFuncSetBlockShape`, `cuFuncSetSharedSize`, `cuParamSet*`, `cuLaunch`, `cuLaunchGrid`,
//! `cuLaunchGridAsync`), whose state lives with the function and whose launches take the same
//! path with the bytes set as an `extra` buffer ([`gpushare_driver_abi::checks::legacy`]).
//!
//! Arguments come either as `kernelParams` (one pointer per parameter; sizes and offsets from the
//! kernel's PTX parameter list) or as `extra` (`CU_LAUNCH_PARAM_BUFFER_POINTER`/`_SIZE`/`_END`), and
//! are copied at submission. The launch shape is validated against the device limits
//! (`INVALID_VALUE`).

use std::ffi::c_void;

use gpushare_driver_abi::checks::launch::{self as limits, LaunchArgs};
use gpushare_driver_abi::checks::legacy::{self, LegacyLaunch};
use gpushare_driver_abi::cuda_h::{CUhostFn, CuLaunchConfig};
use gpushare_driver_abi::graph::capture;
use gpushare_driver_abi::graph::node::{HostNode, NodeKind};
use gpushare_driver_abi::surface::{DefaultStream, In};

use super::resolve::work_stream;
use crate::error::{CuError, CuResult};
use crate::exec::work::{KernelWork, SendPtr, Work};
use crate::state;
use crate::sys::{CUfunction, CUstream};
use crate::CpuDevice;

/// Block dimension limits (x, y, z) and the grid's.
const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];
const MAX_GRID: [u32; 3] = [i32::MAX as u32, 65535, 65535];

/// Logs why a launch of `k` is rejected; `INVALID_VALUE`.
fn invalid(k: &gpushare_ptx::Kernel, msg: String) -> CuError {
    tracing::warn!("launch of `{}` rejected: {msg}", k.name());
    CuError::INVALID_VALUE
}

/// Checks the launch shape against the device and kernel limits (`.maxntid`, `.reqntid`).
fn check_shape(k: &gpushare_ptx::Kernel, grid: [u32; 3], block: [u32; 3]) -> CuResult {
    let max_threads = k.max_threads_per_block().min(1024);
    limits::shape(grid, block, MAX_GRID, MAX_BLOCK, max_threads).map_err(|msg| invalid(k, msg))?;
    match k.required_block_dims() {
        Some(req) if req != block => {
            Err(invalid(k, format!("block {block:?} but .reqntid {req:?}")))
        }
        _ => Ok(()),
    }
}

/// Packs the arguments into the kernel's parameter buffer (an `extra` buffer may carry tail
/// padding up to the largest alignment of the kernel's parameters).
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
    let layout = k.params().iter().map(|p| (p.offset, p.size));
    let tail_align = k.params().iter().map(|p| p.align).max().unwrap_or(1);
    // SAFETY: the caller's kernelParams/extra, valid per the contract; `buf` holds `need` bytes.
    unsafe { limits::pack_params(layout, need, tail_align, params, extra, &mut buf) }
        .map_err(|msg| invalid(k, msg))?;
    Ok(buf)
}

/// Validates and submits a kernel launch.
///
/// # Safety
/// `l.params` / `l.extra` are as `cuLaunchKernel` requires (one pointer per parameter to a value
/// of its size, or a `CU_LAUNCH_PARAM_*` list).
unsafe fn launch(l: LaunchArgs, default_stream: DefaultStream) -> CuResult {
    let (d, ctx, s) = work_stream(l.stream, default_stream)?;
    let func = d.exec.resolve_function(&ctx, l.func as u64)?;
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
    let optin = d.profile.shared_per_block_optin;
    limits::shared_memory(l.shared, static_shared, max_dynamic, optin)
        .map_err(|msg| invalid(k, msg))?;
    // SAFETY: the caller's contract.
    let params = unsafe { pack_params(k, l.params, l.extra) }?;
    let node = || {
        let offsets = k.params().iter().map(|p| p.offset).collect();
        Ok(NodeKind::kernel(
            l.func, l.grid, l.block, l.shared, &params, offsets,
        ))
    };
    if let Some(captured) = capture::record(l.stream, default_stream, node) {
        return captured;
    }
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

/// Runs `f` on the deprecated launch state of the function `func` names (a `CUfunction`, or a
/// `CUkernel` resolved in the current context).
fn with_legacy<T>(
    func: CUfunction,
    f: impl FnOnce(&mut LegacyLaunch) -> CuResult<T>,
) -> CuResult<T> {
    let (d, ctx) = state::current_unchecked()?;
    let func = d.exec.resolve_function(&ctx, func as u64)?;
    let mut legacy = func.legacy.lock().map_err(|_| CuError::UNKNOWN)?;
    f(&mut legacy)
}

/// `cuLaunch`/`cuLaunchGrid`/`cuLaunchGridAsync`: the function's deprecated state as a launch.
fn legacy_launch(func: CUfunction, grid: (i32, i32), stream: CUstream) -> CuResult {
    let (d, ctx) = state::current()?;
    let f = d.exec.resolve_function(&ctx, func as u64)?;
    let need = f.kernel()?.param_bytes();
    let legacy = f.legacy.lock().map_err(|_| CuError::UNKNOWN)?;
    legacy.with_launch(func, grid, stream, need, |args| {
        // SAFETY: `with_launch` passes no kernelParams and an `extra` list naming `need` bytes of
        // its own, valid for the duration of this call.
        unsafe { launch(args, DefaultStream::Legacy) }
    })
}

gpushare_driver_abi::implement! {
    impl Launch for CpuDevice {
        /// Accepts a `CUkernel` as the function.
        unsafe fn launch_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let l = LaunchArgs { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams/extra, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Launch attributes are ignored.
        unsafe fn launch_kernel_ex(config: In<CuLaunchConfig>, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let l = LaunchArgs::from_config(&config, f, params, extra)?;
            // SAFETY: the caller's kernelParams/extra, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Launched like any kernel (blocks run concurrently only up to the worker thread count,
        /// so grid-wide synchronisation is not supported).
        unsafe fn launch_cooperative_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let extra = std::ptr::null_mut();
            let l = LaunchArgs { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams, as CUDA requires them.
            unsafe { launch(l, default_stream) }
        }

        /// Runs `func(data)` on the executor thread in stream order (with pacing, at its modelled
        /// start).
        unsafe fn launch_host_func(stream: CUstream, func: CUhostFn, data: *mut c_void, default_stream: DefaultStream) -> CuResult {
            let (d, ctx, s) = work_stream(stream, default_stream)?;
            let node = || Ok(NodeKind::Host(HostNode { func, data }));
            if let Some(captured) = capture::record(stream, default_stream, node) {
                return captured;
            }
            d.exec.submit(&ctx, &s, Work::HostFn(func, SendPtr(data))).map(|_| ())
        }

        fn func_set_block_shape(func: CUfunction, x: i32, y: i32, z: i32) -> CuResult {
            with_legacy(func, |l| l.set_block_shape(x, y, z))
        }

        /// Checked at launch, against the kernel's limit.
        fn func_set_shared_size(func: CUfunction, bytes: u32) -> CuResult {
            with_legacy(func, |l| {
                l.set_shared_size(bytes);
                Ok(())
            })
        }

        fn param_set_size(func: CUfunction, bytes: u32) -> CuResult {
            with_legacy(func, |l| l.set_size(bytes))
        }

        fn param_seti(func: CUfunction, offset: i32, value: u32) -> CuResult {
            with_legacy(func, |l| l.set_bytes(offset, &value.to_ne_bytes()))
        }

        fn param_setf(func: CUfunction, offset: i32, value: f32) -> CuResult {
            with_legacy(func, |l| l.set_bytes(offset, &value.to_ne_bytes()))
        }

        /// `ptr` holds `bytes` bytes (NULL only with 0).
        unsafe fn param_setv(func: CUfunction, offset: i32, ptr: *mut c_void, bytes: u32) -> CuResult {
            with_legacy(func, |l| {
                // SAFETY: the caller's buffer holds `bytes` bytes, as cuParamSetv requires.
                let data = unsafe { legacy::source_bytes(ptr, bytes) }?;
                l.set_bytes(offset, data)
            })
        }

        /// A 1 × 1 grid on the legacy default stream.
        fn launch(func: CUfunction) -> CuResult {
            legacy_launch(func, (1, 1), std::ptr::null_mut())
        }

        /// On the legacy default stream (asynchronous, like any launch).
        fn launch_grid(func: CUfunction, width: i32, height: i32) -> CuResult {
            legacy_launch(func, (width, height), std::ptr::null_mut())
        }

        fn launch_grid_async(func: CUfunction, width: i32, height: i32, stream: CUstream) -> CuResult {
            legacy_launch(func, (width, height), stream)
        }
    }
}
