//! The `Module` family: modules, libraries, kernels and functions (helpers in the parent
//! module).

use gpushare_driver_abi::checks::{self, jit::JitLogs};
use gpushare_driver_abi::cuda_h::{FUNCTION_LOADED, MODULE_EAGER_LOADING};
use gpushare_driver_abi::surface::prelude::*;

use super::{
    finish_load, function_attribute, get_function, get_global, h, load_error, load_file, load_ptr,
    param_info, set_attribute, unload, wire_of,
};
use crate::runtime::{require_current, runtime};
use crate::Shim;

gpushare_driver_abi::implement! {
    impl Module for Shim {
        /// `cuModuleLoad`: a PTX, cubin or fatbin file; a missing file → `FILE_NOT_FOUND`.
        fn module_load(module: Out<'_, CUmodule>, path: &str) -> CuResult {
            let rt = require_current()?;
            finish_load(module, load_file(rt, path, false))
        }

        /// `cuModuleLoadData`: PTX text, a cubin, a fatbin or a fatbin wrapper.
        unsafe fn module_load_data(module: Out<'_, CUmodule>, image: *const c_void) -> CuResult {
            let rt = require_current()?;
            // SAFETY: the caller passes a valid image (PTX text, cubin, fatbin or wrapper), readable
            // for the call.
            finish_load(module, unsafe { load_ptr(rt, image, false) })
        }

        /// `cuModuleLoadDataEx`: JIT options are not forwarded; a failure is described in the
        /// error log buffer when one is given (the broker's log holds the details).
        unsafe fn module_load_data_ex(module: Out<'_, CUmodule>, image: *const c_void, n: u32, options: *const CUjitOption, values: *mut *mut c_void) -> CuResult {
            let rt = require_current()?;
            // SAFETY: the caller's option list of `n` entries, with its buffers, for this call.
            let logs = unsafe { JitLogs::parse(n, options, values) }?;
            // SAFETY: the caller passes a valid image (PTX text, cubin, fatbin or wrapper), readable
            // for the call.
            let loaded = unsafe { load_ptr(rt, image, false) };
            match loaded {
                Ok(_) => logs.finish("", ""),
                Err(e) => logs.finish("", &load_error(e)),
            }
            finish_load(module, loaded)
        }

        /// `cuModuleLoadFatBinary`
        unsafe fn module_load_fat_binary(module: Out<'_, CUmodule>, fatbin: *const c_void) -> CuResult {
            let rt = require_current()?;
            // SAFETY: the caller passes a valid image (PTX text, cubin, fatbin or wrapper), readable
            // for the call.
            finish_load(module, unsafe { load_ptr(rt, fatbin, false) })
        }

        /// `cuModuleUnload`
        fn module_unload(module: CUmodule) -> CuResult {
            unload(require_current()?, h(module))
        }

        /// `cuModuleGetFunction`: `NOT_FOUND` for an unknown name.
        fn module_get_function(function: Out<'_, CUfunction>, module: CUmodule, name: &str) -> CuResult {
            let f = get_function(runtime()?, h(module), name)?;
            function.write(f.key as usize as CUfunction)
        }

        /// `cuModuleGetGlobal`: address and size of a module variable (both outputs optional).
        fn module_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, module: CUmodule, name: &str) -> CuResult {
            get_global(runtime()?, dptr, bytes, h(module), name)
        }

        /// `cuModuleGetLoadingMode`: eager.
        fn module_get_loading_mode(mode: Out<'_, i32>) -> CuResult {
            runtime()?;
            mode.write(MODULE_EAGER_LOADING)
        }

        /// `cuLibraryLoadData`: a library is a module here; options are accepted and not
        /// forwarded.
        unsafe fn library_load_data(library: Out<'_, CUlibrary>, code: *const c_void, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut i32, lib_values: *mut *mut c_void, n_lib: u32) -> CuResult {
            let _ = (jit_options, jit_values, n_jit, lib_options, lib_values, n_lib);
            let rt = runtime()?;
            // SAFETY: the caller passes a valid image (PTX text, cubin, fatbin or wrapper), readable
            // for the call.
            finish_load(library, unsafe { load_ptr(rt, code, true) })
        }

        /// `cuLibraryLoadFromFile`
        unsafe fn library_load_from_file(library: Out<'_, CUlibrary>, path: &str, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut i32, lib_values: *mut *mut c_void, n_lib: u32) -> CuResult {
            let _ = (jit_options, jit_values, n_jit, lib_options, lib_values, n_lib);
            finish_load(library, load_file(runtime()?, path, true))
        }

        /// `cuLibraryUnload`
        fn library_unload(library: CUlibrary) -> CuResult {
            unload(runtime()?, h(library))
        }

        /// `cuLibraryGetKernel`: the kernel's handle doubles as its `CUfunction`.
        fn library_get_kernel(kernel: Out<'_, CUkernel>, library: CUlibrary, name: &str) -> CuResult {
            let f = get_function(runtime()?, h(library), name)?;
            kernel.write(f.key as usize as CUkernel)
        }

        /// `cuLibraryGetModule`: the library's module is the library.
        fn library_get_module(module: Out<'_, CUmodule>, library: CUlibrary) -> CuResult {
            wire_of(runtime()?, h(library))?;
            module.write(library)
        }

        /// `cuLibraryGetGlobal`
        fn library_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, library: CUlibrary, name: &str) -> CuResult {
            get_global(runtime()?, dptr, bytes, h(library), name)
        }

        /// `cuKernelGetFunction`: the same handle, in the current context.
        fn kernel_get_function(function: Out<'_, CUfunction>, kernel: CUkernel) -> CuResult {
            let f = require_current()?.function(h(kernel))?;
            function.write(f.key as usize as CUfunction)
        }

        /// `cuKernelGetLibrary`
        fn kernel_get_library(library: Out<'_, CUlibrary>, kernel: CUkernel) -> CuResult {
            let f = runtime()?.function(h(kernel))?;
            library.write(f.module as usize as CUlibrary)
        }

        /// `cuKernelGetName`: the string lives as long as the kernel's entry.
        fn kernel_get_name(name: Out<'_, *const c_char>, kernel: CUkernel) -> CuResult {
            name.write(runtime()?.function(h(kernel))?.name.as_ptr())
        }

        /// `cuKernelGetAttribute`
        fn kernel_get_attribute(value: Out<'_, i32>, attrib: i32, kernel: CUkernel, dev: CUdevice) -> CuResult {
            let rt = runtime()?;
            rt.device(dev)?;
            let f = rt.function(h(kernel))?;
            value.write(function_attribute(rt, f.handle, attrib)?)
        }

        /// `cuKernelSetAttribute`
        fn kernel_set_attribute(attrib: i32, value: i32, kernel: CUkernel, dev: CUdevice) -> CuResult {
            let rt = runtime()?;
            rt.device(dev)?;
            let f = rt.function(h(kernel))?;
            set_attribute(rt, &f, attrib, value)
        }

        /// `cuKernelSetCacheConfig`: accepted and ignored.
        fn kernel_set_cache_config(kernel: CUkernel, config: i32, dev: CUdevice) -> CuResult {
            let rt = runtime()?;
            rt.device(dev)?;
            rt.function(h(kernel))?;
            checks::cache_config(config)
        }

        /// `cuKernelGetParamInfo`
        fn kernel_get_param_info(kernel: CUkernel, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) -> CuResult {
            let f = runtime()?.function(h(kernel))?;
            param_info(&f, index, offset, size)
        }

        /// `cuFuncGetAttribute`
        fn func_get_attribute(value: Out<'_, i32>, attrib: i32, func: CUfunction) -> CuResult {
            let rt = runtime()?;
            let f = rt.function(h(func))?;
            value.write(function_attribute(rt, f.handle, attrib)?)
        }

        /// `cuFuncSetAttribute`
        fn func_set_attribute(func: CUfunction, attrib: i32, value: i32) -> CuResult {
            let rt = runtime()?;
            let f = rt.function(h(func))?;
            set_attribute(rt, &f, attrib, value)
        }

        /// `cuFuncSetCacheConfig`: accepted and ignored.
        fn func_set_cache_config(func: CUfunction, config: i32) -> CuResult {
            runtime()?.function(h(func))?;
            checks::cache_config(config)
        }

        /// `cuFuncSetSharedMemConfig`: accepted and ignored.
        fn func_set_shared_mem_config(func: CUfunction, config: i32) -> CuResult {
            runtime()?.function(h(func))?;
            checks::shared_mem_config(config)
        }

        /// `cuFuncGetModule`
        fn func_get_module(module: Out<'_, CUmodule>, func: CUfunction) -> CuResult {
            module.write(runtime()?.function(h(func))?.module as usize as CUmodule)
        }

        /// `cuFuncGetName`: the string lives as long as the function's entry.
        fn func_get_name(name: Out<'_, *const c_char>, func: CUfunction) -> CuResult {
            name.write(runtime()?.function(h(func))?.name.as_ptr())
        }

        /// `cuFuncGetParamInfo`
        fn func_get_param_info(func: CUfunction, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) -> CuResult {
            let f = runtime()?.function(h(func))?;
            param_info(&f, index, offset, size)
        }

        /// `cuFuncIsLoaded`: loading is eager.
        fn func_is_loaded(state: Out<'_, i32>, func: CUfunction) -> CuResult {
            runtime()?.function(h(func))?;
            state.write(FUNCTION_LOADED)
        }

        /// `cuFuncLoad`: loading is eager.
        fn func_load(func: CUfunction) -> CuResult {
            runtime()?.function(h(func)).map(|_| ())
        }
    }
}
