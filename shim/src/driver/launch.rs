//! Launches: `cuLaunchKernel`, `cuLaunchKernelEx`, `cuLaunchCooperativeKernel` and
//! `cuLaunchHostFunc`, each with its `_ptsz` variant — the hot path.
//!
//! A launch is one LAUNCH record on the ring and no round trip: the shape is validated here
//! against the device and kernel limits fetched when the kernel was looked up (so an invalid
//! configuration fails synchronously with `INVALID_VALUE`, as CUDA's does, and does not poison
//! the context), and the arguments are packed by the parameter layout the broker reported
//! (`kernelParams`: one pointer per parameter; `extra`: one packed buffer). Errors during
//! execution surface at the next synchronising call.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use gpushare_client::ring::record::{Launch, MAX_PARAM_BYTES};
use gpushare_client::ring::Command;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{CUfunction, CUstream};

use super::context::require_current;
use crate::runtime::FunctionInfo;
use gpushare_driver_abi::cuda_h::read_launch_extra;
pub use gpushare_driver_abi::cuda_h::CuLaunchConfig;

/// `CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X` (then Y, Z, and the grid's X, Y, Z).
const ATTR_MAX_BLOCK_DIM_X: i32 = 2;
/// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`
const ATTR_MAX_SHARED_OPTIN: i32 = 97;

/// A launch request as the entry points receive it.
struct LaunchArgs {
    func: CUfunction,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
}

fn invalid(f: &FunctionInfo, msg: std::fmt::Arguments<'_>) -> CuError {
    crate::log(
        || tracing::warn!(target: "gpushare::shim", "launch of {:?} rejected: {msg}", f.name),
    );
    CuError::INVALID_VALUE
}

/// Checks the launch shape against the device limits and the kernel's.
fn check_shape(
    dev: &gpushare_client::proto::DeviceInfo,
    f: &FunctionInfo,
    l: &LaunchArgs,
) -> CuResult {
    for i in 0..3 {
        let max_block = dev
            .attribute(ATTR_MAX_BLOCK_DIM_X + i as i32)
            .unwrap_or(1024) as u32;
        let max_grid = dev
            .attribute(ATTR_MAX_BLOCK_DIM_X + 3 + i as i32)
            .unwrap_or(65535) as u32;
        if l.block[i] == 0 || l.block[i] > max_block {
            return Err(invalid(f, format_args!("block {:?} out of range", l.block)));
        }
        if l.grid[i] == 0 || l.grid[i] > max_grid {
            return Err(invalid(f, format_args!("grid {:?} out of range", l.grid)));
        }
    }
    let threads = u64::from(l.block[0]) * u64::from(l.block[1]) * u64::from(l.block[2]);
    if threads > u64::from(f.max_threads) {
        return Err(invalid(
            f,
            format_args!("{threads} threads per block, limit {}", f.max_threads),
        ));
    }
    let max_dynamic = f.max_dynamic_shared.load(Ordering::Relaxed);
    let optin = dev.attribute(ATTR_MAX_SHARED_OPTIN).unwrap_or(i32::MAX) as u32;
    if l.shared > max_dynamic || f.static_shared.saturating_add(l.shared) > optin {
        return Err(invalid(
            f,
            format_args!(
                "{} bytes of dynamic shared memory, limit {max_dynamic} (raise it with \
                 CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)",
                l.shared
            ),
        ));
    }
    Ok(())
}

/// Packs the arguments into `buf` by the kernel's parameter layout; returns the length.
fn pack_params(
    f: &FunctionInfo,
    l: &LaunchArgs,
    buf: &mut [u8; MAX_PARAM_BYTES],
) -> CuResult<usize> {
    let need = f.param_bytes;
    if need > MAX_PARAM_BYTES {
        return Err(invalid(f, format_args!("{need} bytes of parameters")));
    }
    match (l.params.is_null(), l.extra.is_null()) {
        (false, false) => Err(invalid(
            f,
            format_args!("both kernelParams and extra given"),
        )),
        (true, true) if f.params.is_empty() => Ok(0),
        (true, true) => Err(invalid(
            f,
            format_args!("{} parameters but no arguments", f.params.len()),
        )),
        (false, true) => {
            for (i, p) in f.params.iter().enumerate() {
                // SAFETY: kernelParams holds one pointer per kernel parameter.
                let arg = unsafe { l.params.add(i).read() };
                if arg.is_null() {
                    return Err(invalid(f, format_args!("argument {i} is NULL")));
                }
                let (off, size) = (p.offset as usize, p.size as usize);
                // SAFETY: the argument points to a value of the parameter's size.
                let bytes = unsafe { std::slice::from_raw_parts(arg.cast::<u8>(), size) };
                buf[off..off + size].copy_from_slice(bytes);
            }
            Ok(need)
        }
        (true, false) => {
            // SAFETY: `extra` is a key/value list terminated by CU_LAUNCH_PARAM_END.
            let (ptr, size) = unsafe { read_launch_extra(l.extra) }
                .map_err(|e| invalid(f, format_args!("{e}")))?;
            let size = size.unwrap_or(0);
            // A C struct mirroring the parameters may carry tail padding up to its alignment
            // (at most 16 bytes for any kernel parameter type).
            if size < need || size > need.next_multiple_of(16).max(need) {
                return Err(invalid(
                    f,
                    format_args!("argument buffer of {size} bytes, kernel needs {need}"),
                ));
            }
            if need > 0 {
                if ptr.is_null() {
                    return Err(invalid(
                        f,
                        format_args!("NULL CU_LAUNCH_PARAM_BUFFER_POINTER"),
                    ));
                }
                // SAFETY: the buffer holds `size >= need` bytes.
                buf[..need].copy_from_slice(unsafe { std::slice::from_raw_parts(ptr, need) });
            }
            Ok(need)
        }
    }
}

fn launch(l: LaunchArgs, per_thread: bool) -> CuResult {
    let rt = require_current()?;
    rt.sticky()?;
    let f = rt.function(l.func as usize as u64)?;
    let dev = rt.device(0)?;
    check_shape(dev, &f, &l)?;
    let mut buf = [0u8; MAX_PARAM_BYTES];
    let len = pack_params(&f, &l, &mut buf)?;
    let s = rt.stream(l.stream as usize as u64, per_thread)?;
    rt.submit_on(
        &s,
        &Command::Launch(Launch {
            function: f.handle,
            stream: s.handle,
            grid: l.grid,
            block: l.block,
            shared_mem_bytes: l.shared,
            params: &buf[..len],
        }),
    )?;
    Ok(())
}

fn launch_ex(
    config: *const CuLaunchConfig,
    func: CUfunction,
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
        crate::log(|| {
            tracing::debug!(target: "gpushare::shim",
                "cuLaunchKernelEx: {} launch attributes ignored", c.num_attrs)
        });
    }
    launch(
        LaunchArgs {
            func,
            grid: c.grid,
            block: c.block,
            shared: c.shared,
            stream: c.stream,
            params,
            extra,
        },
        per_thread,
    )
}

#[allow(clippy::too_many_arguments)]
fn args(
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
) -> LaunchArgs {
    LaunchArgs {
        func,
        grid: [gx, gy, gz],
        block: [bx, by, bz],
        shared,
        stream,
        params,
        extra,
    }
}

/// A host function's C type.
type HostFn = unsafe extern "C" fn(*mut c_void);

cuda_exports! {
    /// `cuLaunchKernel`: accepts a `CUkernel` as the function.
    fn cuLaunchKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch(args(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra), false)
    }

    /// `cuLaunchKernel_ptsz`
    fn cuLaunchKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch(args(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra), true)
    }

    /// `cuLaunchKernelEx`: launch attributes are ignored.
    fn cuLaunchKernelEx(config: *const CuLaunchConfig, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch_ex(config, f, params, extra, false)
    }

    /// `cuLaunchKernelEx_ptsz`
    fn cuLaunchKernelEx_ptsz(config: *const CuLaunchConfig, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void) {
        launch_ex(config, f, params, extra, true)
    }

    /// `cuLaunchCooperativeKernel`: launched like any kernel (grid-wide synchronisation is the
    /// device's business).
    fn cuLaunchCooperativeKernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void) {
        launch(args(f, gx, gy, gz, bx, by, bz, shared, stream, params, std::ptr::null_mut()), false)
    }

    /// `cuLaunchCooperativeKernel_ptsz`
    fn cuLaunchCooperativeKernel_ptsz(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void) {
        launch(args(f, gx, gy, gz, bx, by, bz, shared, stream, params, std::ptr::null_mut()), true)
    }

    /// `cuLaunchHostFunc`: runs `f(data)` on the shim's notifier thread when the stream reaches it.
    fn cuLaunchHostFunc(stream: CUstream, f: Option<HostFn>, data: *mut c_void) {
        super::stream::host_fn(stream, f, data, false)
    }

    /// `cuLaunchHostFunc_ptsz`
    fn cuLaunchHostFunc_ptsz(stream: CUstream, f: Option<HostFn>, data: *mut c_void) {
        super::stream::host_fn(stream, f, data, true)
    }
}
