//! Modules, libraries, kernels and functions.
//!
//! Loading stages the image in shared memory (the staging area, or a temporary registered host
//! buffer for images larger than half of it) and sends `ModuleLoad` naming it; a fatbin wrapper
//! is resolved to the fatbin it points at, and the image goes to the broker exactly as it came
//! (the CPU device picks the PTX, a real GPU gets the fatbin with its cubins). A library is a
//! module and a `CUkernel` is the kernel's `CUfunction` handle, so either can be launched.
//! Looking a kernel up fetches its parameter layout and launch limits once; launches then need
//! nothing but the shim's table.

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use gpushare_client::proto::{HostSpan, Reply, Request, STAGING_REGION};
use gpushare_client::shm::HostBuffer;
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::image::{file_kind, image_bytes, ImageKind};
use gpushare_driver_abi::surface::{OptOut, Out};
use gpushare_driver_abi::sys::CUdeviceptr;

use crate::runtime::{FunctionInfo, ModuleState, Runtime};

/// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`
const ATTR_MAX_THREADS: i32 = 0;
/// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`
const ATTR_SHARED_SIZE: i32 = 1;
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`
const ATTR_MAX_DYNAMIC_SHARED: i32 = 8;

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
fn load_file(rt: &Runtime, path: &str, library: bool) -> CuResult<u64> {
    let bytes = read_file(path)?;
    let wire = load_bytes(rt, &bytes)?;
    Ok(register(rt, wire, library.then_some(bytes)))
}

/// A module file's bytes (PTX gains its NUL terminator).
fn read_file(path: &str) -> CuResult<Vec<u8>> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        crate::log(|| tracing::warn!(target: "gpushare::shim", "cannot read module {path}: {e}"));
        CuError::FILE_NOT_FOUND
    })?;
    if file_kind(&bytes)? == ImageKind::Ptx && bytes.last() != Some(&0) {
        bytes.push(0);
    }
    Ok(bytes)
}

/// Writes a loaded module's handle.
fn finish_load(out: Out<'_, *mut c_void>, module: CuResult<u64>) -> CuResult {
    out.write(module? as usize as *mut c_void)
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

/// A function attribute, from the broker (`function` is its handle).
pub(crate) fn function_attribute(rt: &Runtime, function: u64, attribute: i32) -> CuResult<i32> {
    match rt.call(Request::FuncGetAttribute {
        function,
        attribute,
    })? {
        Reply::Int(v) => Ok(v),
        _ => Err(CuError::UNKNOWN),
    }
}

/// Looks a kernel up (once per name) with its parameter layout and launch limits.
fn get_function(rt: &Runtime, module: u64, name: &str) -> CuResult<Arc<FunctionInfo>> {
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
        legacy: Default::default(),
    }))
}

/// `cuModuleGetGlobal`/`cuLibraryGetGlobal`: a module variable's address and size (either
/// output optional); the range becomes a device range of the tenant.
fn get_global(
    rt: &Runtime,
    dptr: OptOut<'_, CUdeviceptr>,
    bytes: OptOut<'_, usize>,
    module: u64,
    name: &str,
) -> CuResult {
    let (ptr, size) = match rt.call(Request::ModuleGetGlobal {
        module: wire_of(rt, module)?,
        name: name.to_string(),
    })? {
        Reply::Global { ptr, size } => (ptr, size),
        _ => return Err(CuError::UNKNOWN),
    };
    rt.add_device_range(ptr, size);
    dptr.write(ptr)?;
    bytes.write(size as usize)
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

/// A kernel parameter's offset and size (either output optional).
fn param_info(
    f: &FunctionInfo,
    index: usize,
    offset: OptOut<'_, usize>,
    size: OptOut<'_, usize>,
) -> CuResult {
    let p = f.params.get(index).ok_or(CuError::INVALID_VALUE)?;
    offset.write(p.offset as usize)?;
    size.write(p.size as usize)
}

/// The one-line description a failed load writes into the caller's JIT error log.
fn load_error(e: CuError) -> String {
    format!(
        "gpushare: the broker could not load the module ({}); its log (GPUSHARE_LOG) has the details",
        e.name()
    )
}

fn h(p: *mut c_void) -> u64 {
    p as usize as u64
}

mod family;
