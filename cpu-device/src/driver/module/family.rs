//! The [`Module`](gpushare_driver_abi::surface::Module) family of the CPU device: modules,
//! libraries, kernels and functions (helpers in the parent module).

use std::ffi::{c_char, c_void};

use gpushare_driver_abi::checks::{self, jit::JitLogs};
use gpushare_driver_abi::cuda_h::{CUjitOption, FUNCTION_LOADED, MODULE_EAGER_LOADING};
use gpushare_driver_abi::surface::{OptOut, Out};

use super::{
    finish_load, function_view, get_attribute, kernel_view, load_data, load_library, param_info,
    read_file, set_attribute, sm, with_function, with_kernel, write_global,
};
use crate::error::{CuError, CuResult};
use crate::exec::image;
use crate::exec::module::LoadError;
use crate::state;
use crate::sys::{CUdevice, CUdeviceptr, CUfunction, CUkernel, CUlibrary, CUmodule};
use crate::CpuDevice;

/// Writes up to `n` handles from `handles` into `out`.
///
/// # Safety
/// `out` is NULL or holds `n` entries.
unsafe fn enumerate(out: *mut u64, n: u32, handles: CuResult<Vec<u64>>) -> CuResult {
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
        .map(|k| d.exec.module_function(mod_ as u64, k.name()))
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
        .map(|k| d.exec.library_kernel(lib as u64, k.name()))
        .collect()
}

gpushare_driver_abi::implement! {
    impl Module for CpuDevice {
        /// A PTX or fatbin file; a missing file → `FILE_NOT_FOUND`.
        fn module_load(module: Out<'_, CUmodule>, path: &str) -> CuResult {
            let (d, ctx) = state::current()?;
            let bytes = read_file(path)?;
            let result = image::ptx_from_bytes(&bytes, sm(d))
                .map_err(LoadError::from)
                .and_then(|text| d.exec.load_module(&ctx, &text));
            finish_load(module, result, &JitLogs::none())
        }

        /// PTX text, a fatbin or a fatbin wrapper.
        unsafe fn module_load_data(module: Out<'_, CUmodule>, image: *const c_void) -> CuResult {
            // SAFETY: the caller's image.
            unsafe { load_data(module, image, &JitLogs::none()) }
        }

        /// Options are accepted; the JIT log buffers are written.
        unsafe fn module_load_data_ex(module: Out<'_, CUmodule>, image: *const c_void, n: u32, options: *const CUjitOption, values: *mut *mut c_void) -> CuResult {
            // SAFETY: the caller passes `n` options and values.
            let logs = unsafe { JitLogs::parse(n, options, values) }?;
            // SAFETY: the caller's image.
            unsafe { load_data(module, image, &logs) }
        }

        unsafe fn module_load_fat_binary(module: Out<'_, CUmodule>, fatbin: *const c_void) -> CuResult {
            // SAFETY: the caller's image.
            unsafe { load_data(module, fatbin, &JitLogs::none()) }
        }

        fn module_unload(module: CUmodule) -> CuResult {
            state::driver()?.exec.unload_module(module as u64)
        }

        /// Eager.
        fn module_get_loading_mode(mode: Out<'_, i32>) -> CuResult {
            state::driver()?;
            mode.write(MODULE_EAGER_LOADING)
        }

        /// `NOT_FOUND` for an unknown name.
        fn module_get_function(function: Out<'_, CUfunction>, module: CUmodule, name: &str) -> CuResult {
            let d = state::driver()?;
            function.write(d.exec.module_function(module as u64, name)? as CUfunction)
        }

        fn module_get_function_count(count: Out<'_, u32>, module: CUmodule) -> CuResult {
            count.write(module_functions(module)?.len() as u32)
        }

        unsafe fn module_enumerate_functions(functions: *mut CUfunction, n: u32, module: CUmodule) -> CuResult {
            // SAFETY: the caller's array holds `n` entries.
            unsafe { enumerate(functions.cast(), n, module_functions(module)) }
        }

        /// Address and size of a module variable.
        fn module_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, module: CUmodule, name: &str) -> CuResult {
            let d = state::driver()?;
            write_global(dptr, bytes, d.exec.module_global(module as u64, name)?)
        }

        /// JIT options as in `cuModuleLoadDataEx`; library options ignored.
        unsafe fn library_load_data(library: Out<'_, CUlibrary>, code: *const c_void, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, _lib_options: *mut i32, _lib_values: *mut *mut c_void, _n_lib: u32) -> CuResult {
            let d = state::driver()?;
            // SAFETY: the caller passes `n_jit` options and values.
            let logs = unsafe { JitLogs::parse(n_jit, jit_options, jit_values) }?;
            // SAFETY: the caller's image.
            load_library(library, unsafe { image::ptx_from_ptr(code, sm(d)) }, &logs)
        }

        unsafe fn library_load_from_file(library: Out<'_, CUlibrary>, path: &str, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, _lib_options: *mut i32, _lib_values: *mut *mut c_void, _n_lib: u32) -> CuResult {
            let d = state::driver()?;
            // SAFETY: the caller passes `n_jit` options and values.
            let logs = unsafe { JitLogs::parse(n_jit, jit_options, jit_values) }?;
            let text = read_file(path).and_then(|bytes| image::ptx_from_bytes(&bytes, sm(d)));
            load_library(library, text, &logs)
        }

        fn library_unload(library: CUlibrary) -> CuResult {
            state::driver()?.exec.unload_library(library as u64)
        }

        /// `NOT_FOUND` for an unknown name.
        fn library_get_kernel(kernel: Out<'_, CUkernel>, library: CUlibrary, name: &str) -> CuResult {
            let d = state::driver()?;
            kernel.write(d.exec.library_kernel(library as u64, name)? as CUkernel)
        }

        fn library_get_kernel_count(count: Out<'_, u32>, library: CUlibrary) -> CuResult {
            count.write(library_kernels(library)?.len() as u32)
        }

        unsafe fn library_enumerate_kernels(kernels: *mut CUkernel, n: u32, library: CUlibrary) -> CuResult {
            // SAFETY: the caller's array holds `n` entries.
            unsafe { enumerate(kernels.cast(), n, library_kernels(library)) }
        }

        /// The library's module in the current context.
        fn library_get_module(module: Out<'_, CUmodule>, library: CUlibrary) -> CuResult {
            let (d, ctx) = state::current()?;
            module.write(d.exec.library_module(&ctx, library as u64)? as CUmodule)
        }

        /// A variable of the library's module in the current context.
        fn library_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, library: CUlibrary, name: &str) -> CuResult {
            let (d, ctx) = state::current()?;
            let m = d.exec.library_module(&ctx, library as u64)?;
            write_global(dptr, bytes, d.exec.module_global(m, name)?)
        }

        /// The kernel's function in the current context.
        fn kernel_get_function(function: Out<'_, CUfunction>, kernel: CUkernel) -> CuResult {
            let (d, ctx) = state::current()?;
            function.write(d.exec.kernel_function(&ctx, kernel as u64)? as CUfunction)
        }

        fn kernel_get_library(library: Out<'_, CUlibrary>, kernel: CUkernel) -> CuResult {
            library.write(with_kernel(kernel, |_, k| Ok(k.library_handle))? as CUlibrary)
        }

        fn kernel_get_attribute(value: Out<'_, i32>, attrib: i32, kernel: CUkernel, _dev: CUdevice) -> CuResult {
            value.write(with_kernel(kernel, |_, k| get_attribute(&kernel_view(k)?, attrib))?)
        }

        /// Applies to the kernel in every context.
        fn kernel_set_attribute(attrib: i32, value: i32, kernel: CUkernel, _dev: CUdevice) -> CuResult {
            with_kernel(kernel, |d, k| set_attribute(d, &kernel_view(k)?, attrib, value))
        }

        /// Accepted (0..=3), no effect.
        fn kernel_set_cache_config(kernel: CUkernel, config: i32, _dev: CUdevice) -> CuResult {
            checks::cache_config(config)?;
            with_kernel(kernel, |_, k| {
                k.attrs.lock().map_err(|_| CuError::UNKNOWN)?.cache_config = config;
                Ok(())
            })
        }

        /// Valid while the library is loaded.
        fn kernel_get_name(name: Out<'_, *const c_char>, kernel: CUkernel) -> CuResult {
            name.write(with_kernel(kernel, |_, k| Ok(k.name.as_ptr()))?)
        }

        /// Offset and size of parameter `index`; past the end → INVALID_VALUE.
        fn kernel_get_param_info(kernel: CUkernel, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) -> CuResult {
            with_kernel(kernel, |_, k| param_info(k.kernel()?, index, offset, size))
        }

        fn func_get_attribute(value: Out<'_, i32>, attrib: i32, func: CUfunction) -> CuResult {
            value.write(with_function(func, |_, f| get_attribute(&function_view(f)?, attrib))?)
        }

        /// MAX_DYNAMIC_SHARED_SIZE_BYTES (up to the opt-in limit), the carveout, cluster
        /// attributes (no effect).
        fn func_set_attribute(func: CUfunction, attrib: i32, value: i32) -> CuResult {
            with_function(func, |d, f| set_attribute(d, &function_view(f)?, attrib, value))
        }

        /// Accepted (0..=3), no effect.
        fn func_set_cache_config(func: CUfunction, config: i32) -> CuResult {
            checks::cache_config(config)?;
            with_function(func, |_, f| {
                f.attrs.lock().map_err(|_| CuError::UNKNOWN)?.cache_config = config;
                Ok(())
            })
        }

        /// Accepted (0..=2), no effect.
        fn func_set_shared_mem_config(func: CUfunction, config: i32) -> CuResult {
            checks::shared_mem_config(config)?;
            with_function(func, |_, _| Ok(()))
        }

        fn func_get_module(module: Out<'_, CUmodule>, func: CUfunction) -> CuResult {
            module.write(with_function(func, |_, f| Ok(f.module_handle))? as CUmodule)
        }

        /// Valid while the module is loaded.
        fn func_get_name(name: Out<'_, *const c_char>, func: CUfunction) -> CuResult {
            name.write(with_function(func, |_, f| Ok(f.name.as_ptr()))?)
        }

        /// Offset and size of parameter `index`; past the end → INVALID_VALUE.
        fn func_get_param_info(func: CUfunction, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) -> CuResult {
            with_function(func, |_, f| param_info(f.kernel()?, index, offset, size))
        }

        /// Functions are loaded eagerly.
        fn func_is_loaded(state: Out<'_, i32>, func: CUfunction) -> CuResult {
            with_function(func, |_, _| Ok(()))?;
            state.write(FUNCTION_LOADED)
        }

        /// Nothing to do.
        fn func_load(func: CUfunction) -> CuResult {
            with_function(func, |_, _| Ok(()))
        }
    }
}
