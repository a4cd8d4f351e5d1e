//! Modules, libraries, kernels and functions: `cuModule*`, `cuLibrary*`, `cuKernel*`, `cuFunc*`.
//!
//! Images may be NUL-terminated PTX, a fatbin (or the wrapper nvcc emits) carrying PTX, or a file
//! holding either; cubins (SASS) give `NO_BINARY_FOR_GPU`, anything else `INVALID_IMAGE`. A
//! `CUkernel` is accepted wherever a `CUfunction` is (the runtime passes them interchangeably).

use std::ffi::c_void;
use std::sync::Mutex;

use crate::error::{CuError, CuResult};
use crate::exec::image;
use crate::exec::module::{FuncAttrs, LoadError};
use crate::state::{self, Driver};
use crate::sys::{CUdeviceptr, CUfunction, CUkernel, CUlibrary, CUmodule};
use gpushare_driver_abi::checks::jit::JitLogs;
use gpushare_driver_abi::surface::{OptOut, Out};

fn sm(d: &Driver) -> u32 {
    let (major, minor) = d.profile.compute_capability;
    major * 10 + minor
}

/// Loads the image at `image` into the current context, writing the JIT logs.
///
/// # Safety
/// `image` points to PTX text, a cubin, a fatbin or a fatbin wrapper.
unsafe fn load_data(out: Out<'_, CUmodule>, image: *const c_void, logs: &JitLogs<'_>) -> CuResult {
    let (d, ctx) = state::current()?;
    // SAFETY: the caller's contract.
    let result = unsafe { image::ptx_from_ptr(image, sm(d)) }
        .map_err(LoadError::from)
        .and_then(|text| d.exec.load_module(&ctx, &text));
    finish_load(out, result, logs)
}

/// Writes the handle of a loaded module or library (both are `void *` handles) and the JIT logs.
fn finish_load(
    out: Out<'_, *mut c_void>,
    result: Result<u64, LoadError>,
    logs: &JitLogs<'_>,
) -> CuResult {
    match result {
        Ok(h) => {
            logs.finish("gpushare CPU device: PTX loaded for interpretation", "");
            out.write(h as *mut c_void)
        }
        Err(e) => {
            logs.finish("", &e.message);
            Err(e.code)
        }
    }
}

fn read_file(path: &str) -> CuResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        tracing::warn!("cannot read module file {path:?}: {e}");
        CuError::FILE_NOT_FOUND
    })
}

fn load_library(out: Out<'_, CUlibrary>, text: CuResult<String>, logs: &JitLogs<'_>) -> CuResult {
    let d = state::driver()?;
    let result = text
        .map_err(LoadError::from)
        .and_then(|t| d.exec.load_library(&t));
    finish_load(out, result, logs)
}

/// `CUfunction_attribute` values.
mod attr {
    pub const MAX_THREADS_PER_BLOCK: i32 = 0;
    pub const SHARED_SIZE_BYTES: i32 = 1;
    pub const CONST_SIZE_BYTES: i32 = 2;
    pub const LOCAL_SIZE_BYTES: i32 = 3;
    pub const NUM_REGS: i32 = 4;
    pub const PTX_VERSION: i32 = 5;
    pub const BINARY_VERSION: i32 = 6;
    pub const CACHE_MODE_CA: i32 = 7;
    pub const MAX_DYNAMIC_SHARED_SIZE_BYTES: i32 = 8;
    pub const PREFERRED_SHARED_MEMORY_CARVEOUT: i32 = 9;
    pub const CLUSTER_SIZE_MUST_BE_SET: i32 = 10;
    pub const CLUSTER_SCHEDULING_POLICY_PREFERENCE: i32 = 15;
}

/// What a function attribute query needs.
struct FuncView<'a> {
    kernel: &'a gpushare_ptx::Kernel,
    ptx: &'a gpushare_ptx::Module,
    target: u32,
    attrs: &'a Mutex<FuncAttrs>,
}

fn get_attribute(v: &FuncView<'_>, attrib: i32) -> CuResult<i32> {
    let a = *v.attrs.lock().map_err(|_| CuError::UNKNOWN)?;
    let k = v.kernel;
    let clamp = |x: u64| x.min(i32::MAX as u64) as i32;
    Ok(match attrib {
        attr::MAX_THREADS_PER_BLOCK => clamp(u64::from(k.max_threads_per_block())),
        attr::SHARED_SIZE_BYTES => clamp(u64::from(k.static_shared_bytes())),
        attr::CONST_SIZE_BYTES => clamp(
            v.ptx
                .globals()
                .iter()
                .filter(|g| g.space == gpushare_ptx::GlobalSpace::Const)
                .map(|g| g.size as u64)
                .sum(),
        ),
        attr::LOCAL_SIZE_BYTES => clamp(u64::from(k.local_bytes_per_thread())),
        attr::NUM_REGS => clamp(u64::from(k.num_regs().min(255))),
        attr::PTX_VERSION | attr::BINARY_VERSION => clamp(u64::from(v.target)),
        attr::CACHE_MODE_CA => 0,
        attr::MAX_DYNAMIC_SHARED_SIZE_BYTES => clamp(u64::from(a.max_dynamic_shared)),
        attr::PREFERRED_SHARED_MEMORY_CARVEOUT => a.carveout,
        attr::CLUSTER_SIZE_MUST_BE_SET..=attr::CLUSTER_SCHEDULING_POLICY_PREFERENCE => 0,
        _ => {
            tracing::warn!("unknown function attribute {attrib}");
            return Err(CuError::INVALID_VALUE);
        }
    })
}

fn set_attribute(d: &Driver, v: &FuncView<'_>, attrib: i32, value: i32) -> CuResult {
    let mut a = v.attrs.lock().map_err(|_| CuError::UNKNOWN)?;
    match attrib {
        attr::MAX_DYNAMIC_SHARED_SIZE_BYTES => {
            let limit = d
                .profile
                .shared_per_block_optin
                .saturating_sub(v.kernel.static_shared_bytes());
            match u32::try_from(value) {
                Ok(n) if n <= limit => a.max_dynamic_shared = n,
                _ => {
                    tracing::warn!("MAX_DYNAMIC_SHARED_SIZE_BYTES {value} is outside 0..={limit}");
                    return Err(CuError::INVALID_VALUE);
                }
            }
        }
        attr::PREFERRED_SHARED_MEMORY_CARVEOUT if (-1..=100).contains(&value) => a.carveout = value,
        // Cluster attributes are accepted and have no effect.
        attr::CLUSTER_SIZE_MUST_BE_SET..=attr::CLUSTER_SCHEDULING_POLICY_PREFERENCE => {}
        _ => {
            tracing::warn!("function attribute {attrib} cannot be set to {value}");
            return Err(CuError::INVALID_VALUE);
        }
    }
    Ok(())
}

/// Runs `f` on the function behind `func` (a `CUfunction`, or a `CUkernel` resolved in the
/// current context).
fn with_function<T>(
    func: CUfunction,
    f: impl FnOnce(&Driver, &crate::exec::Function) -> CuResult<T>,
) -> CuResult<T> {
    let d = state::driver()?;
    let func = match d.exec.functions.get(func as u64) {
        Some(func) => func,
        None => {
            let (_, ctx) = state::current()?;
            d.exec.resolve_function(&ctx, func as u64)?
        }
    };
    f(d, &func)
}

fn function_view<'a>(func: &'a crate::exec::Function) -> CuResult<FuncView<'a>> {
    Ok(FuncView {
        kernel: func.kernel()?,
        ptx: &func.module.ptx,
        target: func.module.target,
        attrs: &func.attrs,
    })
}

fn with_kernel<T>(
    kernel: CUkernel,
    f: impl FnOnce(&Driver, &crate::exec::KernelObj) -> CuResult<T>,
) -> CuResult<T> {
    let d = state::driver()?;
    let k = d.exec.kernels.get(kernel as u64).ok_or_else(|| {
        tracing::warn!("invalid kernel handle {:#x}", kernel as u64);
        CuError::INVALID_HANDLE
    })?;
    f(d, &k)
}

fn kernel_view(k: &crate::exec::KernelObj) -> CuResult<FuncView<'_>> {
    Ok(FuncView {
        kernel: k.kernel()?,
        ptx: &k.library.ptx,
        target: k.library.target,
        attrs: &k.attrs,
    })
}

fn param_info(
    k: &gpushare_ptx::Kernel,
    index: usize,
    offset: OptOut<'_, usize>,
    size: OptOut<'_, usize>,
) -> CuResult {
    let p = k.params().get(index).ok_or(CuError::INVALID_VALUE)?;
    offset.write(p.offset)?;
    size.write(p.size)
}

fn write_global(
    dptr: OptOut<'_, CUdeviceptr>,
    bytes: OptOut<'_, usize>,
    found: (u64, u64),
) -> CuResult {
    dptr.write(found.0)?;
    bytes.write(found.1 as usize)
}

mod family;
