//! Modules, libraries, kernels and functions.
//!
//! Loading stages the image in shared memory (the staging area, or a temporary registered host
//! buffer for images larger than half of it) and sends `ModuleLoad` naming it; a fatbin wrapper
//! is resolved to the fatbin it points at, and the image goes to the broker exactly as it came
//! (the CPU device picks the PTX, a real GPU gets the fatbin with its cubins). A library is a
//! module and a `CUkernel` is the kernel's `CUfunction` handle, so either can be launched.
//! Looking a kernel up fetches its parameter layout and launch limits once; launches then need
//! nothing but the shim's table.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use gpushare_client::proto::{HostSpan, Reply, Request, STAGING_REGION};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::image::{file_kind, image_bytes, ImageKind};
use gpushare_driver_abi::sys::{
    c_str, write_out, CUdevice, CUdeviceptr, CUfunction, CUkernel, CUlibrary, CUmodule,
};

use super::context::require_current;
use crate::runtime::{FunctionInfo, ModuleState, Runtime};

/// `CU_MODULE_EAGER_LOADING`
const MODULE_EAGER_LOADING: i32 = 1;
/// `CU_FUNCTION_LOADING_STATE_LOADED`
const FUNCTION_LOADED: i32 = 1;
/// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`
const ATTR_MAX_THREADS: i32 = 0;
/// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`
const ATTR_SHARED_SIZE: i32 = 1;
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`
pub(crate) const ATTR_MAX_DYNAMIC_SHARED: i32 = 8;

/// Sends an image to the broker; returns the module handle.
fn load_bytes(rt: &Runtime, bytes: &[u8]) -> CuResult<u64> {
    let staging = rt.client.staging().ok_or(CuError::UNKNOWN)?;
    let reply = if (bytes.len() as u64) <= staging.size() / 2 {
        let span = staging
            .alloc(bytes.len() as u64, &rt.policy, &rt.cancel)
            .map_err(|_| CuError::OUT_OF_MEMORY)?;
        let result = staging
            .write(span.offset, bytes)
            .map_err(|_| CuError::UNKNOWN)
            .and_then(|()| {
                rt.call(Request::ModuleLoad {
                    image: HostSpan {
                        region: STAGING_REGION,
                        offset: span.offset,
                        len: bytes.len() as u64,
                    },
                })
            });
        let _ = staging.free(span);
        result?
    } else {
        // Larger than the staging area can hold at once: a temporary shared buffer.
        let buffer =
            HostBuffer::create(bytes.len() as u64, false).map_err(|_| CuError::OUT_OF_MEMORY)?;
        buffer
            .mapping()
            .write(0, bytes)
            .map_err(|_| CuError::UNKNOWN)?;
        let region = rt.next_region.fetch_add(1, Ordering::Relaxed) as u32;
        let env = rt
            .client
            .call_socket(
                Request::HostRegister {
                    region,
                    size: bytes.len() as u64,
                    flags: 0,
                },
                &[buffer.fd()],
            )
            .map_err(|e| rt.transport_error(e))?;
        if let Some(e) = CuError::from_code(env.code) {
            return Err(e);
        }
        let result = rt.call(Request::ModuleLoad {
            image: HostSpan {
                region,
                offset: 0,
                len: bytes.len() as u64,
            },
        });
        let _ = rt.call(Request::HostUnregister { region });
        result?
    };
    match reply {
        Reply::Module { module } => Ok(module),
        _ => Err(CuError::UNKNOWN),
    }
}

/// Registers a freshly loaded module (`image`: a library's, kept for reloads).
fn register(rt: &Runtime, wire: u64, image: Option<Vec<u8>>) -> u64 {
    let state = ModuleState {
        wire: AtomicU64::new(wire),
        image,
    };
    rt.modules.insert(wire, Arc::new(state));
    wire
}

/// The broker's current handle of the module the application calls `module`.
fn wire_of(rt: &Runtime, module: u64) -> CuResult<u64> {
    rt.modules
        .get(&module)
        .map(|m| m.wire.load(Ordering::Acquire))
        .ok_or(CuError::INVALID_HANDLE)
}

/// Loads the image at a C pointer as a module, or as a library (`library`: the image is kept).
///
/// # Safety
/// `image` must be NULL or a valid image (see [`image_bytes`]).
unsafe fn load_ptr(rt: &Runtime, image: *const c_void, library: bool) -> CuResult<u64> {
    // SAFETY: the caller's image, under the same contract.
    let (_, bytes) = unsafe { image_bytes(image) }?;
    let wire = load_bytes(rt, bytes)?;
    Ok(register(rt, wire, library.then(|| bytes.to_vec())))
}

/// Loads the image in a file as a module or a library.
fn load_file(rt: &Runtime, path: *const c_char, library: bool) -> CuResult<u64> {
    let bytes = read_file(path)?;
    let wire = load_bytes(rt, &bytes)?;
    Ok(register(rt, wire, library.then_some(bytes)))
}

/// A module file's bytes (PTX gains its NUL terminator).
fn read_file(path: *const c_char) -> CuResult<Vec<u8>> {
    // SAFETY: NUL-terminated path from the caller.
    let path = unsafe { c_str(path) }?;
    let mut bytes = std::fs::read(path).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "cannot read module {path}: {e}"));
        CuError::FILE_NOT_FOUND
    })?;
    if file_kind(&bytes)? == ImageKind::Ptx && bytes.last() != Some(&0) {
        bytes.push(0);
    }
    Ok(bytes)
}

fn finish_load(out: *mut *mut c_void, module: CuResult<u64>) -> CuResult {
    let m = module?;
    // SAFETY: out-pointer from the caller (checked non-null before loading).
    unsafe { write_out(out, m as usize as *mut c_void) }
}

fn unload(rt: &Runtime, module: u64) -> CuResult {
    let wire = wire_of(rt, module)?;
    rt.call_empty(Request::ModuleUnload { module: wire })?;
    rt.modules.remove(&module);
    rt.functions.retain(|_, f| f.module != module);
    Ok(())
}

/// A primary-context teardown: modules go away; libraries are reloaded from their images (fresh
/// globals, as CUDA reloads a context-independent library in the next context) and their kernels
/// keep the handles the application holds.
pub(crate) fn reset_all(rt: &Runtime) {
    let all: Vec<(u64, Arc<ModuleState>)> = rt
        .modules
        .iter()
        .map(|m| (*m.key(), m.value().clone()))
        .collect();
    for (key, m) in all {
        let _ = rt.call_empty(Request::ModuleUnload {
            module: m.wire.load(Ordering::Acquire),
        });
        let reloaded = m.image.as_deref().map(|image| load_bytes(rt, image));
        match reloaded {
            Some(Ok(wire)) => {
                m.wire.store(wire, Ordering::Release);
                let kernels: Vec<Arc<FunctionInfo>> = rt
                    .functions
                    .iter()
                    .filter(|f| f.module == key)
                    .map(|f| f.value().clone())
                    .collect();
                for f in kernels {
                    match resolve(rt, key, f.key, &f.name) {
                        Ok(info) => {
                            rt.functions.insert(f.key, info);
                        }
                        Err(_) => {
                            rt.functions.remove(&f.key);
                        }
                    }
                }
            }
            _ => {
                rt.modules.remove(&key);
                rt.functions.retain(|_, f| f.module != key);
            }
        }
    }
}

fn function_attribute(rt: &Runtime, function: u64, attribute: i32) -> CuResult<i32> {
    match rt.call(Request::FuncGetAttribute {
        function,
        attribute,
    })? {
        Reply::Int(v) => Ok(v),
        _ => Err(CuError::UNKNOWN),
    }
}

/// Looks a kernel up (once per name) with its parameter layout and launch limits.
fn get_function(rt: &Runtime, module: u64, name: *const c_char) -> CuResult<Arc<FunctionInfo>> {
    // SAFETY: NUL-terminated name from the caller.
    let name = unsafe { c_str(name) }?;
    wire_of(rt, module)?;
    let cname = CString::new(name).map_err(|_| CuError::INVALID_VALUE)?;
    let known = rt
        .functions
        .iter()
        .find(|f| f.module == module && f.name == cname)
        .map(|f| f.value().clone());
    if let Some(f) = known {
        return Ok(f);
    }
    let info = resolve(rt, module, 0, &cname)?;
    rt.functions.insert(info.key, info.clone());
    Ok(info)
}

/// Asks the broker for kernel `name` of `module` (application handle); `key` 0 makes the
/// broker's handle the application's.
fn resolve(rt: &Runtime, module: u64, key: u64, name: &CString) -> CuResult<Arc<FunctionInfo>> {
    let (handle, params) = match rt.call(Request::ModuleGetFunction {
        module: wire_of(rt, module)?,
        name: name.to_string_lossy().into_owned(),
    })? {
        Reply::Function { function, params } => (function, params),
        _ => return Err(CuError::UNKNOWN),
    };
    let param_bytes = params
        .iter()
        .map(|p| (p.offset + p.size) as usize)
        .max()
        .unwrap_or(0);
    Ok(Arc::new(FunctionInfo {
        key: if key == 0 { handle } else { key },
        handle,
        module,
        name: name.clone(),
        params,
        param_bytes,
        max_threads: function_attribute(rt, handle, ATTR_MAX_THREADS)? as u32,
        static_shared: function_attribute(rt, handle, ATTR_SHARED_SIZE)? as u32,
        max_dynamic_shared: AtomicU32::new(
            function_attribute(rt, handle, ATTR_MAX_DYNAMIC_SHARED)? as u32,
        ),
    }))
}

fn get_global(
    rt: &Runtime,
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    module: u64,
    name: *const c_char,
) -> CuResult {
    // SAFETY: NUL-terminated name from the caller.
    let name = unsafe { c_str(name) }?;
    let (ptr, size) = match rt.call(Request::ModuleGetGlobal {
        module: wire_of(rt, module)?,
        name: name.to_string(),
    })? {
        Reply::Global { ptr, size } => (ptr, size),
        _ => return Err(CuError::UNKNOWN),
    };
    rt.add_device_range(ptr, size);
    if !dptr.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(dptr, ptr) }?;
    }
    if !bytes.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(bytes, size as usize) }?;
    }
    Ok(())
}

fn set_attribute(rt: &Runtime, f: &FunctionInfo, attribute: i32, value: i32) -> CuResult {
    rt.call_empty(Request::FuncSetAttribute {
        function: f.handle,
        attribute,
        value,
    })?;
    if attribute == ATTR_MAX_DYNAMIC_SHARED {
        f.max_dynamic_shared.store(value as u32, Ordering::Relaxed);
    }
    Ok(())
}

fn param_info(f: &FunctionInfo, index: usize, offset: *mut usize, size: *mut usize) -> CuResult {
    let p = f.params.get(index).ok_or(CuError::INVALID_VALUE)?;
    if !offset.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(offset, p.offset as usize) }?;
    }
    if !size.is_null() {
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(size, p.size as usize) }?;
    }
    Ok(())
}

/// `CU_JIT_ERROR_LOG_BUFFER`
const JIT_ERROR_LOG_BUFFER: u32 = 5;
/// `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`
const JIT_ERROR_LOG_BUFFER_SIZE_BYTES: u32 = 6;

/// Writes a one-line description of a failed load into the caller's JIT error log, if it gave
/// one, and its length into the size option (as the driver reports the bytes written).
///
/// # Safety
/// `options` and `values` must hold `n` entries each.
unsafe fn write_error_log(n: u32, options: *const u32, values: *mut *mut c_void, e: CuError) {
    let (mut buf, mut cap, mut size_slot) = (std::ptr::null_mut::<u8>(), 0usize, None);
    for i in 0..n as usize {
        // SAFETY: both arrays hold `n` entries.
        let (opt, val) = unsafe { (options.add(i).read(), values.add(i).read()) };
        match opt {
            JIT_ERROR_LOG_BUFFER => buf = val.cast(),
            JIT_ERROR_LOG_BUFFER_SIZE_BYTES => {
                cap = val as usize;
                size_slot = Some(i);
            }
            _ => {}
        }
    }
    if buf.is_null() || cap == 0 {
        return;
    }
    let text = format!(
        "gpushare: the broker could not load the module ({}); its log (GPUSHARE_LOG) has the details",
        e.name()
    );
    let len = text.len().min(cap - 1);
    // SAFETY: the caller's buffer holds `cap` > len bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf, len);
        *buf.add(len) = 0;
    }
    if let Some(i) = size_slot {
        // SAFETY: slot `i` of the value array, which holds `n` entries.
        unsafe { values.add(i).write(len as *mut c_void) };
    }
}

fn check_cache_config(config: i32) -> CuResult {
    if (0..=3).contains(&config) {
        Ok(())
    } else {
        Err(CuError::INVALID_VALUE)
    }
}

fn h(p: *mut c_void) -> u64 {
    p as usize as u64
}

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
