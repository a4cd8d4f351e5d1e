//! The exported module, library, kernel and function entry points (helpers in the parent module).

#[allow(unused_imports)]
use super::*;

cuda_exports! {
    /// `cuModuleLoad`: a PTX, cubin or fatbin file; a missing file → `FILE_NOT_FOUND`.
    fn cuModuleLoad(out: *mut CUmodule, path: *const c_char) {
        let rt = require_current()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        finish_load(out, load_file(rt, path, false))
    }

    /// `cuModuleLoadData`: PTX text, a cubin, a fatbin or a fatbin wrapper.
    fn cuModuleLoadData(out: *mut CUmodule, image: *const c_void) {
        let rt = require_current()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller's image.
        finish_load(out, unsafe { load_ptr(rt, image, false) })
    }

    /// `cuModuleLoadDataEx`: JIT options are not forwarded; a failure is described in the
    /// error log buffer when one is given (the broker's log holds the details).
    fn cuModuleLoadDataEx(out: *mut CUmodule, image: *const c_void, n: u32, options: *const u32, values: *mut *mut c_void) {
        let rt = require_current()?;
        if out.is_null() || (n > 0 && (options.is_null() || values.is_null())) {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller's image.
        let loaded = unsafe { load_ptr(rt, image, false) };
        if let Err(e) = loaded {
            // SAFETY: `options` and `values` hold `n` entries (checked non-NULL when n > 0).
            unsafe { write_error_log(n, options, values, e) };
        }
        finish_load(out, loaded)
    }

    /// `cuModuleLoadFatBinary`
    fn cuModuleLoadFatBinary(out: *mut CUmodule, fatbin: *const c_void) {
        let rt = require_current()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller's image.
        finish_load(out, unsafe { load_ptr(rt, fatbin, false) })
    }

    /// `cuModuleUnload`
    fn cuModuleUnload(module: CUmodule) {
        let rt = require_current()?;
        unload(rt, h(module))
    }

    /// `cuModuleGetLoadingMode`: eager.
    fn cuModuleGetLoadingMode(mode: *mut i32) {
        crate::runtime::runtime()?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(mode, MODULE_EAGER_LOADING) }
    }

    /// `cuModuleGetFunction`: `NOT_FOUND` for an unknown name.
    fn cuModuleGetFunction(out: *mut CUfunction, module: CUmodule, name: *const c_char) {
        let rt = crate::runtime::runtime()?;
        if out.is_null() {
            // SAFETY: NUL-terminated name from the caller (checked first, like the CPU device).
            unsafe { c_str(name) }?;
            return Err(CuError::INVALID_VALUE);
        }
        let f = get_function(rt, h(module), name)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(out, f.key as usize as CUfunction) }
    }

    /// `cuModuleGetGlobal_v2`: address and size of a module variable (both outputs optional).
    fn cuModuleGetGlobal_v2(dptr: *mut CUdeviceptr, bytes: *mut usize, module: CUmodule, name: *const c_char) {
        let rt = crate::runtime::runtime()?;
        get_global(rt, dptr, bytes, h(module), name)
    }

    /// `cuLibraryLoadData`: a library is a module here; options are accepted and not forwarded.
    fn cuLibraryLoadData(out: *mut CUlibrary, code: *const c_void, jit_options: *mut u32, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut u32, lib_values: *mut *mut c_void, n_lib: u32) {
        let _ = (jit_options, jit_values, n_jit, lib_options, lib_values, n_lib);
        let rt = crate::runtime::runtime()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller's image.
        finish_load(out, unsafe { load_ptr(rt, code, true) })
    }

    /// `cuLibraryLoadFromFile`
    fn cuLibraryLoadFromFile(out: *mut CUlibrary, path: *const c_char, jit_options: *mut u32, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut u32, lib_values: *mut *mut c_void, n_lib: u32) {
        let _ = (jit_options, jit_values, n_jit, lib_options, lib_values, n_lib);
        let rt = crate::runtime::runtime()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        finish_load(out, load_file(rt, path, true))
    }

    /// `cuLibraryUnload`
    fn cuLibraryUnload(library: CUlibrary) {
        let rt = crate::runtime::runtime()?;
        unload(rt, h(library))
    }

    /// `cuLibraryGetKernel`: the kernel's handle doubles as its `CUfunction`.
    fn cuLibraryGetKernel(out: *mut CUkernel, library: CUlibrary, name: *const c_char) {
        let rt = crate::runtime::runtime()?;
        if out.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let f = get_function(rt, h(library), name)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(out, f.key as usize as CUkernel) }
    }

    /// `cuLibraryGetModule`: the library's module is the library.
    fn cuLibraryGetModule(out: *mut CUmodule, library: CUlibrary) {
        let rt = crate::runtime::runtime()?;
        wire_of(rt, h(library))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, library) }
    }

    /// `cuLibraryGetGlobal`
    fn cuLibraryGetGlobal(dptr: *mut CUdeviceptr, bytes: *mut usize, library: CUlibrary, name: *const c_char) {
        let rt = crate::runtime::runtime()?;
        get_global(rt, dptr, bytes, h(library), name)
    }

    /// `cuKernelGetFunction`: the same handle, in the current context.
    fn cuKernelGetFunction(out: *mut CUfunction, kernel: CUkernel) {
        let rt = require_current()?;
        let f = rt.function(h(kernel))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, f.key as usize as CUfunction) }
    }

    /// `cuKernelGetLibrary`
    fn cuKernelGetLibrary(out: *mut CUlibrary, kernel: CUkernel) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(kernel))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, f.module as usize as CUlibrary) }
    }

    /// `cuKernelGetAttribute`
    fn cuKernelGetAttribute(value: *mut i32, attribute: i32, kernel: CUkernel, dev: CUdevice) {
        let rt = crate::runtime::runtime()?;
        rt.device(dev)?;
        if value.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let f = rt.function(h(kernel))?;
        let v = function_attribute(rt, f.handle, attribute)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(value, v) }
    }

    /// `cuKernelSetAttribute`
    fn cuKernelSetAttribute(attribute: i32, value: i32, kernel: CUkernel, dev: CUdevice) {
        let rt = crate::runtime::runtime()?;
        rt.device(dev)?;
        let f = rt.function(h(kernel))?;
        set_attribute(rt, &f, attribute, value)
    }

    /// `cuKernelSetCacheConfig`: accepted and ignored.
    fn cuKernelSetCacheConfig(kernel: CUkernel, config: i32, dev: CUdevice) {
        let rt = crate::runtime::runtime()?;
        rt.device(dev)?;
        rt.function(h(kernel))?;
        check_cache_config(config)
    }

    /// `cuKernelGetName`
    fn cuKernelGetName(name: *mut *const c_char, kernel: CUkernel) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(kernel))?;
        // SAFETY: out-pointer from the caller; the string lives as long as the kernel's entry.
        unsafe { write_out(name, f.name.as_ptr()) }
    }

    /// `cuKernelGetParamInfo`
    fn cuKernelGetParamInfo(kernel: CUkernel, index: usize, offset: *mut usize, size: *mut usize) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(kernel))?;
        param_info(&f, index, offset, size)
    }

    /// `cuFuncGetAttribute`
    fn cuFuncGetAttribute(value: *mut i32, attribute: i32, func: CUfunction) {
        let rt = crate::runtime::runtime()?;
        if value.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let f = rt.function(h(func))?;
        let v = function_attribute(rt, f.handle, attribute)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(value, v) }
    }

    /// `cuFuncSetAttribute`
    fn cuFuncSetAttribute(func: CUfunction, attribute: i32, value: i32) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(func))?;
        set_attribute(rt, &f, attribute, value)
    }

    /// `cuFuncSetCacheConfig`: accepted and ignored.
    fn cuFuncSetCacheConfig(func: CUfunction, config: i32) {
        let rt = crate::runtime::runtime()?;
        rt.function(h(func))?;
        check_cache_config(config)
    }

    /// `cuFuncSetSharedMemConfig`: accepted and ignored.
    fn cuFuncSetSharedMemConfig(func: CUfunction, config: i32) {
        let rt = crate::runtime::runtime()?;
        rt.function(h(func))?;
        if (0..=2).contains(&config) { Ok(()) } else { Err(CuError::INVALID_VALUE) }
    }

    /// `cuFuncGetModule`
    fn cuFuncGetModule(out: *mut CUmodule, func: CUfunction) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(func))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(out, f.module as usize as CUmodule) }
    }

    /// `cuFuncGetName`
    fn cuFuncGetName(name: *mut *const c_char, func: CUfunction) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(func))?;
        // SAFETY: out-pointer from the caller; the string lives as long as the function's entry.
        unsafe { write_out(name, f.name.as_ptr()) }
    }

    /// `cuFuncGetParamInfo`
    fn cuFuncGetParamInfo(func: CUfunction, index: usize, offset: *mut usize, size: *mut usize) {
        let rt = crate::runtime::runtime()?;
        let f = rt.function(h(func))?;
        param_info(&f, index, offset, size)
    }

    /// `cuFuncIsLoaded`: loading is eager.
    fn cuFuncIsLoaded(state: *mut i32, func: CUfunction) {
        let rt = crate::runtime::runtime()?;
        rt.function(h(func))?;
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(state, FUNCTION_LOADED) }
    }

    /// `cuFuncLoad`: loading is eager.
    fn cuFuncLoad(func: CUfunction) {
        let rt = crate::runtime::runtime()?;
        rt.function(h(func)).map(|_| ())
    }
}
