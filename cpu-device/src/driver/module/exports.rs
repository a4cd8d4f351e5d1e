//! The exported `cuModule*`/`cuLibrary*`/`cuKernel*`/`cuFunc*` entry points (helpers in the parent
//! module).

use std::ffi::{c_char, c_void};

use super::{
    check_cache_config, finish_load, function_view, get_attribute, kernel_view, load_data,
    load_library, param_info, read_file, set_attribute, sm, with_function, with_kernel,
    write_global, JitLogs,
};
use crate::error::{CuError, CuResult};
use crate::exec::image;
use crate::exec::module::LoadError;
use crate::state;
use crate::sys::{
    c_str, write_out, CUdevice, CUdeviceptr, CUfunction, CUkernel, CUlibrary, CUmodule,
};
use gpushare_driver_abi::cuda_h::{FUNCTION_LOADED, MODULE_EAGER_LOADING};

fn no_logs() -> JitLogs {
    JitLogs::none()
}

/// Writes up to `n` handles from `handles` into `out`.
fn enumerate(out: *mut u64, n: u32, handles: CuResult<Vec<u64>>) -> CuResult {
    let handles = handles?;
    if out.is_null() && n > 0 {
        return Err(CuError::INVALID_VALUE);
    }
    for (i, h) in handles.iter().take(n as usize).enumerate() {
        // SAFETY: the caller's array holds `n` entries.
        unsafe { out.add(i).write_unaligned(*h) };
    }
    Ok(())
}

fn module_functions(mod_: CUmodule) -> CuResult<Vec<u64>> {
    let d = state::driver()?;
    let m = d
        .exec
        .modules
        .get(mod_ as u64)
        .ok_or(CuError::INVALID_HANDLE)?;
    m.ptx
        .kernels()
        .map(|k| d.exec.module_function(d, mod_ as u64, k.name()))
        .collect()
}

fn library_kernels(lib: CUlibrary) -> CuResult<Vec<u64>> {
    let d = state::driver()?;
    let l = d
        .exec
        .libraries
        .get(lib as u64)
        .ok_or(CuError::INVALID_HANDLE)?;
    l.ptx
        .kernels()
        .map(|k| d.exec.library_kernel(d, lib as u64, k.name()))
        .collect()
}

cuda_exports! {
    /// `cuModuleLoad`: a PTX or fatbin file; a missing file → `FILE_NOT_FOUND`.
    fn cuModuleLoad(out: *mut CUmodule, path: *const c_char) {
        let (d, ctx) = state::current()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let bytes = read_file(path)?;
        let result = image::ptx_from_bytes(&bytes, sm(d))
            .map_err(LoadError::from)
            .and_then(|text| d.exec.load_module(d, &ctx, &text));
        finish_load(out, result, &no_logs())
    }

    /// `cuModuleLoadData`: PTX text, a fatbin or a fatbin wrapper.
    fn cuModuleLoadData(out: *mut CUmodule, image: *const c_void) {
        load_data(out, image, &no_logs())
    }

    /// `cuModuleLoadDataEx`: options are accepted; the JIT log buffers are written.
    fn cuModuleLoadDataEx(out: *mut CUmodule, image: *const c_void, n: u32, options: *const u32, values: *mut *mut c_void) {
        // SAFETY: the caller passes `n` options and values.
        let logs = unsafe { JitLogs::parse(n, options, values) }?;
        load_data(out, image, &logs)
    }

    /// `cuModuleLoadFatBinary`
    fn cuModuleLoadFatBinary(out: *mut CUmodule, fatbin: *const c_void) {
        load_data(out, fatbin, &no_logs())
    }

    /// `cuModuleUnload`
    fn cuModuleUnload(module: CUmodule) {
        state::driver()?.exec.unload_module(module as u64)
    }

    /// `cuModuleGetLoadingMode`: eager.
    fn cuModuleGetLoadingMode(mode: *mut i32) {
        state::driver()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(mode, MODULE_EAGER_LOADING) }
    }

    /// `cuModuleGetFunction`: `NOT_FOUND` for an unknown name.
    fn cuModuleGetFunction(out: *mut CUfunction, module: CUmodule, name: *const c_char) {
        let d = state::driver()?;
        // SAFETY: NUL-terminated name from the caller.
        let name = unsafe { c_str(name) }?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = d.exec.module_function(d, module as u64, name)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(out, h as CUfunction) }
    }

    /// `cuModuleGetFunctionCount`
    fn cuModuleGetFunctionCount(count: *mut u32, module: CUmodule) {
        let n = module_functions(module)?.len() as u32;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(count, n) }
    }

    /// `cuModuleEnumerateFunctions`
    fn cuModuleEnumerateFunctions(out: *mut CUfunction, n: u32, module: CUmodule) {
        enumerate(out.cast(), n, module_functions(module))
    }

    /// `cuModuleGetGlobal_v2`: address and size of a module variable (both outputs optional).
    fn cuModuleGetGlobal_v2(dptr: *mut CUdeviceptr, bytes: *mut usize, module: CUmodule, name: *const c_char) {
        let d = state::driver()?;
        // SAFETY: NUL-terminated name from the caller.
        let name = unsafe { c_str(name) }?;
        write_global(dptr, bytes, d.exec.module_global(module as u64, name)?)
    }

    /// `cuLibraryLoadData`: JIT options as in `cuModuleLoadDataEx`; library options ignored.
    fn cuLibraryLoadData(out: *mut CUlibrary, code: *const c_void, jit_options: *const u32, jit_values: *mut *mut c_void, n_jit: u32, _lib_options: *const u32, _lib_values: *mut *mut c_void, _n_lib: u32) {
        let d = state::driver()?;
        // SAFETY: the caller passes `n_jit` options and values.
        let logs = unsafe { JitLogs::parse(n_jit, jit_options, jit_values) }?;
        // SAFETY: the caller passes a valid image.
        load_library(out, unsafe { image::ptx_from_ptr(code, sm(d)) }, &logs)
    }

    /// `cuLibraryLoadFromFile`
    fn cuLibraryLoadFromFile(out: *mut CUlibrary, path: *const c_char, jit_options: *const u32, jit_values: *mut *mut c_void, n_jit: u32, _lib_options: *const u32, _lib_values: *mut *mut c_void, _n_lib: u32) {
        let d = state::driver()?;
        // SAFETY: the caller passes `n_jit` options and values.
        let logs = unsafe { JitLogs::parse(n_jit, jit_options, jit_values) }?;
        let text = read_file(path).and_then(|bytes| image::ptx_from_bytes(&bytes, sm(d)));
        load_library(out, text, &logs)
    }

    /// `cuLibraryUnload`
    fn cuLibraryUnload(library: CUlibrary) {
        state::driver()?.exec.unload_library(library as u64)
    }

    /// `cuLibraryGetKernel`: `NOT_FOUND` for an unknown name.
    fn cuLibraryGetKernel(out: *mut CUkernel, library: CUlibrary, name: *const c_char) {
        let d = state::driver()?;
        // SAFETY: NUL-terminated name from the caller.
        let name = unsafe { c_str(name) }?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let h = d.exec.library_kernel(d, library as u64, name)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(out, h as CUkernel) }
    }

    /// `cuLibraryGetKernelCount`
    fn cuLibraryGetKernelCount(count: *mut u32, library: CUlibrary) {
        let n = library_kernels(library)?.len() as u32;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(count, n) }
    }

    /// `cuLibraryEnumerateKernels`
    fn cuLibraryEnumerateKernels(out: *mut CUkernel, n: u32, library: CUlibrary) {
        enumerate(out.cast(), n, library_kernels(library))
    }

    /// `cuLibraryGetModule`: the library's module in the current context.
    fn cuLibraryGetModule(out: *mut CUmodule, library: CUlibrary) {
        let (d, ctx) = state::current()?;
        let h = d.exec.library_module(d, &ctx, library as u64)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, h as CUmodule) }
    }

    /// `cuLibraryGetGlobal`: a variable of the library's module in the current context.
    fn cuLibraryGetGlobal(dptr: *mut CUdeviceptr, bytes: *mut usize, library: CUlibrary, name: *const c_char) {
        let (d, ctx) = state::current()?;
        // SAFETY: NUL-terminated name from the caller.
        let name = unsafe { c_str(name) }?;
        let m = d.exec.library_module(d, &ctx, library as u64)?;
        write_global(dptr, bytes, d.exec.module_global(m, name)?)
    }

    /// `cuKernelGetFunction`: the kernel's function in the current context.
    fn cuKernelGetFunction(out: *mut CUfunction, kernel: CUkernel) {
        let (d, ctx) = state::current()?;
        let h = d.exec.kernel_function(d, &ctx, kernel as u64)?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, h as CUfunction) }
    }

    /// `cuKernelGetLibrary`
    fn cuKernelGetLibrary(out: *mut CUlibrary, kernel: CUkernel) {
        let h = with_kernel(kernel, |_, k| Ok(k.library_handle))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, h as CUlibrary) }
    }

    /// `cuKernelGetAttribute`
    fn cuKernelGetAttribute(out: *mut i32, attrib: i32, kernel: CUkernel, _dev: CUdevice) {
        let v = with_kernel(kernel, |_, k| get_attribute(&kernel_view(k)?, attrib))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, v) }
    }

    /// `cuKernelSetAttribute`: applies to the kernel in every context.
    fn cuKernelSetAttribute(attrib: i32, value: i32, kernel: CUkernel, _dev: CUdevice) {
        with_kernel(kernel, |d, k| set_attribute(d, &kernel_view(k)?, attrib, value))
    }

    /// `cuKernelSetCacheConfig`: accepted (0..=3), no effect.
    fn cuKernelSetCacheConfig(kernel: CUkernel, config: i32, _dev: CUdevice) {
        check_cache_config(config)?;
        with_kernel(kernel, |_, k| {
            k.attrs.lock().map_err(|_| CuError::UNKNOWN)?.cache_config = config;
            Ok(())
        })
    }

    /// `cuKernelGetName`: valid while the library is loaded.
    fn cuKernelGetName(out: *mut *const c_char, kernel: CUkernel) {
        let p = with_kernel(kernel, |_, k| Ok(k.name.as_ptr()))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, p) }
    }

    /// `cuKernelGetParamInfo`: offset and size of parameter `index`; past the end → INVALID_VALUE.
    fn cuKernelGetParamInfo(kernel: CUkernel, index: usize, offset: *mut usize, size: *mut usize) {
        with_kernel(kernel, |_, k| param_info(k.kernel()?, index, offset, size))
    }

    /// `cuFuncGetAttribute`
    fn cuFuncGetAttribute(out: *mut i32, attrib: i32, func: CUfunction) {
        let v = with_function(func, |_, f| get_attribute(&function_view(f)?, attrib))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, v) }
    }

    /// `cuFuncSetAttribute`: MAX_DYNAMIC_SHARED_SIZE_BYTES (up to the opt-in limit), the carveout,
    /// cluster attributes (no effect).
    fn cuFuncSetAttribute(func: CUfunction, attrib: i32, value: i32) {
        with_function(func, |d, f| set_attribute(d, &function_view(f)?, attrib, value))
    }

    /// `cuFuncSetCacheConfig`: accepted (0..=3), no effect.
    fn cuFuncSetCacheConfig(func: CUfunction, config: i32) {
        check_cache_config(config)?;
        with_function(func, |_, f| {
            f.attrs.lock().map_err(|_| CuError::UNKNOWN)?.cache_config = config;
            Ok(())
        })
    }

    /// `cuFuncSetSharedMemConfig`: accepted (0..=2), no effect.
    fn cuFuncSetSharedMemConfig(func: CUfunction, config: i32) {
        if !(0..=2).contains(&config) {
            return Err(CuError::INVALID_VALUE);
        }
        with_function(func, |_, _| Ok(()))
    }

    /// `cuFuncGetModule`
    fn cuFuncGetModule(out: *mut CUmodule, func: CUfunction) {
        let h = with_function(func, |_, f| Ok(f.module_handle))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, h as CUmodule) }
    }

    /// `cuFuncGetName`: valid while the module is loaded.
    fn cuFuncGetName(out: *mut *const c_char, func: CUfunction) {
        let p = with_function(func, |_, f| Ok(f.name.as_ptr()))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, p) }
    }

    /// `cuFuncGetParamInfo`: offset and size of parameter `index`; past the end → INVALID_VALUE.
    fn cuFuncGetParamInfo(func: CUfunction, index: usize, offset: *mut usize, size: *mut usize) {
        with_function(func, |_, f| param_info(f.kernel()?, index, offset, size))
    }

    /// `cuFuncIsLoaded`: functions are loaded eagerly.
    fn cuFuncIsLoaded(out: *mut i32, func: CUfunction) {
        with_function(func, |_, _| Ok(()))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, FUNCTION_LOADED) }
    }

    /// `cuFuncLoad`: nothing to do.
    fn cuFuncLoad(func: CUfunction) {
        with_function(func, |_, _| Ok(()))
    }
}
