//! Launches: `cuLaunchKernel`, `cuLaunchKernelEx`, `cuLaunchCooperativeKernel` and
//! `cuLaunchHostFunc`, each with its `_ptsz` twin — the hot path.
//!
//! A launch is one LAUNCH record on the ring and no round trip: the shape is validated here
//! against the device and kernel limits fetched when the kernel was looked up (so an invalid
//! configuration fails synchronously with `INVALID_VALUE`, as CUDA's does, and does not poison
//! the context), and the arguments are packed by the parameter layout the broker reported
//! (`kernelParams`: one pointer per parameter; `extra`: one packed buffer) with the shared
//! [`gpushare_driver_abi::checks::launch`]. Errors during execution surface at the next
//! synchronising call.
//!
//! The deprecated execution control (`cuFuncSetBlockShape`, `cuFuncSetSharedSize`,
//! `cuParamSet*`) sets state kept with the kernel in the shim's function table, with no round
//! trip; `cuLaunch`, `cuLaunchGrid` and `cuLaunchGridAsync` launch through the same path, the
//! bytes set passed as an `extra` buffer ([`gpushare_driver_abi::checks::legacy`]).

use std::sync::atomic::Ordering;

use gpushare_client::proto::DeviceInfo;
use gpushare_client::ring::record::{Launch as LaunchRecord, MAX_PARAM_BYTES};
use gpushare_client::ring::Command;
use gpushare_driver_abi::checks::launch::{self as limits, LaunchArgs};
use gpushare_driver_abi::checks::legacy::{self, LegacyLaunch};
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::prelude::*;

use crate::runtime::{require_current, FunctionInfo};
use crate::Shim;

/// `CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X` (then Y, Z, and the grid's X, Y, Z).
const ATTR_MAX_BLOCK_DIM_X: i32 = 2;
/// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`
const ATTR_MAX_SHARED_OPTIN: i32 = 97;
/// Tail padding a packed `extra` buffer may carry (the largest alignment of a parameter type).
const EXTRA_TAIL_ALIGN: usize = 16;

fn invalid(f: &FunctionInfo, msg: String) -> CuError {
    crate::log(
        || tracing::warn!(target: "gpushare::shim", "launch of {:?} rejected: {msg}", f.name),
    );
    CuError::INVALID_VALUE
}

/// Checks the launch shape and shared memory against the device limits and the kernel's.
fn check_shape(dev: &DeviceInfo, f: &FunctionInfo, l: &LaunchArgs) -> CuResult {
    let attr = |a: i32, default: i32| dev.attribute(a).unwrap_or(default) as u32;
    let max_block = [0, 1, 2].map(|i| attr(ATTR_MAX_BLOCK_DIM_X + i, 1024));
    let max_grid = [3, 4, 5].map(|i| attr(ATTR_MAX_BLOCK_DIM_X + i, 65535));
    limits::shape(l.grid, l.block, max_grid, max_block, f.max_threads)
        .and_then(|()| {
            limits::shared_memory(
                l.shared,
                f.static_shared,
                f.max_dynamic_shared.load(Ordering::Relaxed),
                attr(ATTR_MAX_SHARED_OPTIN, i32::MAX),
            )
        })
        .map_err(|msg| invalid(f, msg))
}

/// Checks and enqueues a launch.
///
/// # Safety
/// `l.params`/`l.extra` must be valid as `cuLaunchKernel` requires (see
/// [`limits::pack_params`]).
unsafe fn launch(l: LaunchArgs, default_stream: DefaultStream) -> CuResult {
    let rt = require_current()?;
    rt.sticky()?;
    let f = rt.function(l.func as usize as u64)?;
    check_shape(rt.device(0)?, &f, &l)?;
    let need = f.param_bytes;
    if need > MAX_PARAM_BYTES {
        return Err(invalid(&f, format!("{need} bytes of parameters")));
    }
    let mut buf = [0u8; MAX_PARAM_BYTES];
    let layout = f
        .params
        .iter()
        .map(|p| (p.offset as usize, p.size as usize));
    // SAFETY: the caller's kernelParams/extra, valid per the contract; `buf` holds `need` bytes.
    let len =
        unsafe { limits::pack_params(layout, need, EXTRA_TAIL_ALIGN, l.params, l.extra, &mut buf) }
            .map_err(|msg| invalid(&f, msg))?;
    let s = rt.stream(l.stream, default_stream)?;
    let node = || {
        let offsets = f.params.iter().map(|p| p.offset as usize).collect();
        Ok(NodeKind::kernel(
            l.func,
            l.grid,
            l.block,
            l.shared,
            &buf[..len],
            offsets,
        ))
    };
    if let Some(captured) = capture::record(l.stream, default_stream, node) {
        return captured;
    }
    let record = LaunchRecord {
        function: f.handle,
        stream: s.handle,
        grid: l.grid,
        block: l.block,
        shared_mem_bytes: l.shared,
        params: &buf[..len],
    };
    rt.submit_on(&s, &Command::Launch(record)).map(|_| ())
}

/// Runs `f` on the deprecated launch state of the kernel `func` names.
fn with_legacy<T>(
    func: CUfunction,
    f: impl FnOnce(&mut LegacyLaunch) -> CuResult<T>,
) -> CuResult<T> {
    let rt = require_current()?;
    let info = rt.function(func as usize as u64)?;
    let mut state = info.legacy.lock().map_err(|_| CuError::UNKNOWN)?;
    f(&mut state)
}

/// `cuLaunch`/`cuLaunchGrid`/`cuLaunchGridAsync`: the kernel's deprecated state as a launch.
fn legacy_launch(func: CUfunction, grid: (i32, i32), stream: CUstream) -> CuResult {
    let rt = require_current()?;
    let info = rt.function(func as usize as u64)?;
    let state = info.legacy.lock().map_err(|_| CuError::UNKNOWN)?;
    state.with_launch(func, grid, stream, info.param_bytes, |args| {
        // SAFETY: `with_launch` passes no kernelParams and an `extra` list naming
        // `param_bytes` bytes of its own, valid for the duration of this call.
        unsafe { launch(args, DefaultStream::Legacy) }
    })
}

gpushare_driver_abi::implement! {
    impl Launch for Shim {
        /// `cuLaunchKernel`: accepts a `CUkernel` as the function.
        unsafe fn launch_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let l = LaunchArgs { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams/extra.
            unsafe { launch(l, default_stream) }
        }

        /// `cuLaunchKernelEx`: launch attributes are ignored.
        unsafe fn launch_kernel_ex(config: In<CuLaunchConfig>, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let l = LaunchArgs::from_config(&config, f, params, extra)?;
            // SAFETY: the caller's kernelParams/extra.
            unsafe { launch(l, default_stream) }
        }

        /// `cuLaunchCooperativeKernel`: launched like any kernel (grid-wide synchronisation is
        /// the device's business).
        unsafe fn launch_cooperative_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, default_stream: DefaultStream) -> CuResult {
            let extra = std::ptr::null_mut();
            let l = LaunchArgs { func: f, grid: [gx, gy, gz], block: [bx, by, bz], shared, stream, params, extra };
            // SAFETY: the caller's kernelParams.
            unsafe { launch(l, default_stream) }
        }

        /// `cuLaunchHostFunc`: runs `func(data)` on the shim's notifier thread when the stream
        /// reaches it.
        unsafe fn launch_host_func(stream: CUstream, func: CUhostFn, data: *mut c_void, default_stream: DefaultStream) -> CuResult {
            super::stream::host_fn(stream, func, data, default_stream)
        }

        /// `cuFuncSetBlockShape` (local).
        fn func_set_block_shape(func: CUfunction, x: i32, y: i32, z: i32) -> CuResult {
            with_legacy(func, |l| l.set_block_shape(x, y, z))
        }

        /// `cuFuncSetSharedSize` (local; checked at launch).
        fn func_set_shared_size(func: CUfunction, bytes: u32) -> CuResult {
            with_legacy(func, |l| {
                l.set_shared_size(bytes);
                Ok(())
            })
        }

        /// `cuParamSetSize` (local).
        fn param_set_size(func: CUfunction, bytes: u32) -> CuResult {
            with_legacy(func, |l| l.set_size(bytes))
        }

        /// `cuParamSeti` (local).
        fn param_seti(func: CUfunction, offset: i32, value: u32) -> CuResult {
            with_legacy(func, |l| l.set_bytes(offset, &value.to_ne_bytes()))
        }

        /// `cuParamSetf` (local).
        fn param_setf(func: CUfunction, offset: i32, value: f32) -> CuResult {
            with_legacy(func, |l| l.set_bytes(offset, &value.to_ne_bytes()))
        }

        /// `cuParamSetv` (local): `ptr` holds `bytes` bytes (NULL only with 0).
        unsafe fn param_setv(func: CUfunction, offset: i32, ptr: *mut c_void, bytes: u32) -> CuResult {
            with_legacy(func, |l| {
                // SAFETY: the caller's buffer holds `bytes` bytes, as cuParamSetv requires.
                let data = unsafe { legacy::source_bytes(ptr, bytes) }?;
                l.set_bytes(offset, data)
            })
        }

        /// `cuLaunch`: a 1 × 1 grid on the legacy default stream.
        fn launch(func: CUfunction) -> CuResult {
            legacy_launch(func, (1, 1), std::ptr::null_mut())
        }

        /// `cuLaunchGrid`: on the legacy default stream (asynchronous, like any launch).
        fn launch_grid(func: CUfunction, width: i32, height: i32) -> CuResult {
            legacy_launch(func, (width, height), std::ptr::null_mut())
        }

        /// `cuLaunchGridAsync`
        fn launch_grid_async(func: CUfunction, width: i32, height: i32, stream: CUstream) -> CuResult {
            legacy_launch(func, (width, height), stream)
        }
    }
}
