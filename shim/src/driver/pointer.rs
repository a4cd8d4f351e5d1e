//! Pointer attributes: `cuPointerGetAttribute`, `cuPointerGetAttributes`, `cuPointerSetAttribute`.
//!
//! Answered locally wherever the shim knows the memory: pinned host memory it allocated, host
//! ranges registered with `cuMemHostRegister`, `cuMemAlloc` allocations and VMM reservations. The
//! broker is asked (`PointerGetAttribute`) only about other device ranges of the tenant (module
//! globals), with the range attributes still answered from the shim's table. Memory nobody knows
//! is `INVALID_VALUE` for `cuPointerGetAttribute` and zero values for `cuPointerGetAttributes`, as
//! on the CPU device, whose value widths this module follows: `CUcontext`/`void*`/`CUmemoryPool`
//! and `CUdeviceptr`/`size_t`/`unsigned long long` attributes are 8 bytes; the memory type, the
//! booleans, ALLOWED_HANDLE_TYPES and ACCESS_FLAGS are 4 bytes; DEVICE_ORDINAL is an `int`.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::sys::{write_out, CUdeviceptr};

use super::context::require_current;
use super::memory::{alloc_of, current_ctx};
use crate::runtime::{runtime, HostMemory, Runtime};
use gpushare_driver_abi::cuda_h::pointer_attribute::*;
use gpushare_driver_abi::cuda_h::{MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, NO_DEVICE};

/// `CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE`
const ACCESS_READWRITE: u8 = 3;

/// `CU_POINTER_ATTRIBUTE_SYNC_MEMOPS` settings, by the base of the range they were set on.
static SYNC: Mutex<Option<HashMap<u64, bool>>> = Mutex::new(None);

fn sync_memops<T>(f: impl FnOnce(&mut HashMap<u64, bool>) -> T) -> T {
    let mut g = SYNC.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Forgets the attributes set on the range starting at `base` (it was freed).
pub(crate) fn forget(base: u64) {
    sync_memops(|m| m.remove(&base));
}

/// An attribute value with its C width.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Ptr(u64),
    U32(u32),
    I32(i32),
    U64(u64),
}

/// Everything the shim knows about a pointer.
#[derive(Clone, Copy, Debug)]
struct Info {
    host: bool,
    context: u64,
    range: (u64, u64),
    mapping: (u64, u64),
    buffer_id: u64,
    block_id: u64,
    /// The device address, or why there is none.
    device_ptr: Result<u64, CuError>,
    /// The host address, if the host can use it.
    host_ptr: Option<u64>,
    mapped: bool,
    legacy_ipc_capable: bool,
    access: u8,
    handle_types: u32,
    /// Device range of the tenant the shim has no details about: other attributes come from the
    /// broker.
    remote: bool,
}

impl Info {
    fn new(host: bool, context: u64, range: (u64, u64), id: u64) -> Info {
        Info {
            host,
            context,
            range,
            mapping: range,
            buffer_id: id,
            block_id: id,
            device_ptr: Err(CuError::INVALID_VALUE),
            host_ptr: None,
            mapped: true,
            legacy_ipc_capable: false,
            access: ACCESS_READWRITE,
            handle_types: 0,
            remote: false,
        }
    }
}

fn pinned_info(base: u64, len: u64, ctx: u64, region: u32, dptr: u64, ptr: u64) -> Info {
    let mut i = Info::new(true, ctx, (base, len), u64::from(region));
    i.device_ptr = Ok(dptr);
    i.host_ptr = Some(ptr);
    i
}

/// What the shim knows about `ptr`, or `None` for memory CUDA does not know.
fn info(rt: &Runtime, ptr: u64) -> Option<Info> {
    let ctx_or_current = |c: Option<u64>| c.unwrap_or_else(current_ctx);
    if let HostMemory::Shared { alloc, offset } = rt.host_memory(ptr as usize, 1) {
        let base = ptr - offset;
        let ctx = ctx_or_current(super::host_memory::alloc_context(base as usize));
        let len = alloc.buffer.len();
        return Some(pinned_info(
            base,
            len,
            ctx,
            alloc.region,
            alloc.device_ptr + offset,
            ptr,
        ));
    }
    if let Some((start, len, _)) = super::host_memory::registration(rt, ptr as usize) {
        let mut i = Info::new(
            true,
            current_ctx(),
            (start as u64, len as u64),
            start as u64,
        );
        i.host_ptr = Some(ptr);
        i.device_ptr = Err(CuError::NOT_SUPPORTED);
        return Some(i);
    }
    if let Some((base, a)) = alloc_of(ptr) {
        let mut i = Info::new(false, a.ctx, (base, a.size), a.id);
        i.device_ptr = Ok(ptr);
        i.legacy_ipc_capable = true;
        return Some(i);
    }
    if let Some(v) = super::vmm::pointer_info(ptr) {
        let mut i = Info::new(false, v.ctx, v.range, v.id);
        i.mapping = v.mapping.unwrap_or(v.range);
        i.mapped = v.mapping.is_some();
        i.block_id = v.block_id;
        i.handle_types = v.handle_types;
        i.access = v.access;
        if i.mapped {
            i.device_ptr = Ok(ptr);
        }
        return Some(i);
    }
    let range = rt.device_range_of(ptr)?;
    if let Some((base, alloc)) = super::host_memory::alloc_by_device_ptr(rt, ptr) {
        // The device address of a pinned buffer whose host address differs.
        let offset = ptr - alloc.device_ptr;
        let ctx = ctx_or_current(super::host_memory::alloc_context(base));
        let host = base as u64 + offset;
        let len = alloc.buffer.len();
        return Some(pinned_info(
            alloc.device_ptr,
            len,
            ctx,
            alloc.region,
            ptr,
            host,
        ));
    }
    let mut i = Info::new(false, current_ctx(), range, range.0);
    i.device_ptr = Ok(ptr);
    i.remote = true;
    Some(i)
}

/// Asks the broker for an attribute of a device range the shim has no details about.
fn remote(rt: &Runtime, ptr: u64, attr: i32) -> CuResult<u64> {
    match rt.call(Request::PointerGetAttribute {
        ptr,
        attribute: attr as u32,
    })? {
        Reply::Value(v) => Ok(v),
        _ => Err(CuError::UNKNOWN),
    }
}

/// The value of `attr` for a known pointer; `INVALID_VALUE` where the attribute has none (the
/// host pointer of device memory, the device pointer of an unmapped VMM address).
fn value(rt: &Runtime, info: &Info, attr: i32, ptr: u64) -> CuResult<Value> {
    if info.remote {
        let v = match attr {
            CONTEXT | MEMPOOL_HANDLE => Value::Ptr(remote(rt, ptr, attr)?),
            MEMORY_TYPE
            | IS_MANAGED
            | IS_LEGACY_CUDA_IPC_CAPABLE
            | MAPPED
            | ALLOWED_HANDLE_TYPES
            | IS_GPU_DIRECT_RDMA_CAPABLE
            | ACCESS_FLAGS => Value::U32(remote(rt, ptr, attr)? as u32),
            DEVICE_ORDINAL => Value::I32(remote(rt, ptr, attr)? as i32),
            DEVICE_POINTER | BUFFER_ID | MAPPING_SIZE | MAPPING_BASE_ADDR | MEMORY_BLOCK_ID => {
                Value::U64(remote(rt, ptr, attr)?)
            }
            _ => return local_value(info, attr),
        };
        return Ok(v);
    }
    local_value(info, attr)
}

fn local_value(info: &Info, attr: i32) -> CuResult<Value> {
    let b = |v: bool| Value::U32(u32::from(v));
    Ok(match attr {
        CONTEXT => Value::Ptr(info.context),
        MEMORY_TYPE => Value::U32(if info.host {
            MEMORYTYPE_HOST
        } else {
            MEMORYTYPE_DEVICE
        }),
        DEVICE_POINTER => Value::U64(info.device_ptr?),
        HOST_POINTER => Value::Ptr(info.host_ptr.ok_or(CuError::INVALID_VALUE)?),
        P2P_TOKENS => {
            crate::log(|| {
                tracing::warn!(target: "gpushare::shim",
                    "CU_POINTER_ATTRIBUTE_P2P_TOKENS is not supported by the shim")
            });
            return Err(CuError::NOT_SUPPORTED);
        }
        SYNC_MEMOPS => b(sync_memops(|m| m.get(&info.range.0).copied()).unwrap_or(false)),
        BUFFER_ID => Value::U64(info.buffer_id),
        IS_MANAGED => b(false),
        DEVICE_ORDINAL => Value::I32(0),
        IS_LEGACY_CUDA_IPC_CAPABLE => b(info.legacy_ipc_capable),
        RANGE_START_ADDR => Value::U64(info.range.0),
        RANGE_SIZE => Value::U64(info.range.1),
        MAPPED => b(info.mapped),
        ALLOWED_HANDLE_TYPES => Value::U32(info.handle_types),
        IS_GPU_DIRECT_RDMA_CAPABLE | IS_HW_DECOMPRESS_CAPABLE => b(false),
        ACCESS_FLAGS => Value::U32(u32::from(info.access)),
        MEMPOOL_HANDLE => Value::Ptr(0),
        MAPPING_SIZE => Value::U64(info.mapping.1),
        MAPPING_BASE_ADDR => Value::U64(info.mapping.0),
        MEMORY_BLOCK_ID => Value::U64(info.block_id),
        _ => {
            crate::log(
                || tracing::debug!(target: "gpushare::shim", "unknown pointer attribute {attr}"),
            );
            return Err(CuError::INVALID_VALUE);
        }
    })
}

/// The value `cuPointerGetAttributes` reports for an attribute without one: zero of the right
/// width (`-2` for the device ordinal). `INVALID_VALUE` for attributes it does not support.
fn default_value(attr: i32) -> CuResult<Value> {
    Ok(match attr {
        CONTEXT | HOST_POINTER | MEMPOOL_HANDLE => Value::Ptr(0),
        DEVICE_ORDINAL => Value::I32(NO_DEVICE),
        DEVICE_POINTER | BUFFER_ID | RANGE_START_ADDR | RANGE_SIZE | MAPPING_SIZE
        | MAPPING_BASE_ADDR | MEMORY_BLOCK_ID => Value::U64(0),
        MEMORY_TYPE
        | SYNC_MEMOPS
        | IS_MANAGED
        | IS_LEGACY_CUDA_IPC_CAPABLE
        | MAPPED
        | ALLOWED_HANDLE_TYPES
        | IS_GPU_DIRECT_RDMA_CAPABLE
        | ACCESS_FLAGS
        | IS_HW_DECOMPRESS_CAPABLE => Value::U32(0),
        _ => {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuPointerGetAttributes: unsupported attribute {attr}")
            });
            return Err(CuError::INVALID_VALUE);
        }
    })
}

/// Writes `v` through `data` with its C width.
///
/// # Safety
/// `data` must be NULL or valid for a write of the attribute's type.
unsafe fn store(data: *mut c_void, v: Value) -> CuResult {
    // SAFETY: per the caller's contract; write_out rejects NULL.
    unsafe {
        match v {
            Value::Ptr(p) => write_out(data.cast::<*mut c_void>(), p as usize as *mut c_void),
            Value::U32(x) => write_out(data.cast::<u32>(), x),
            Value::I32(x) => write_out(data.cast::<i32>(), x),
            Value::U64(x) => write_out(data.cast::<u64>(), x),
        }
    }
}

cuda_exports! {
    /// `cuPointerGetAttribute`: `INVALID_VALUE` for memory CUDA does not know.
    fn cuPointerGetAttribute(data: *mut c_void, attribute: i32, ptr: CUdeviceptr) {
        let rt = runtime()?;
        if data.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        if attribute == DEVICE_POINTER && require_current().is_err() {
            return Err(CuError::INVALID_CONTEXT);
        }
        let info = info(rt, ptr).ok_or_else(|| {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuPointerGetAttribute({attribute}, {ptr:#x}): not CUDA memory")
            });
            CuError::INVALID_VALUE
        })?;
        let v = value(rt, &info, attribute, ptr)?;
        // SAFETY: the caller passes storage of the attribute's type.
        unsafe { store(data, v) }
    }

    /// `cuPointerGetAttributes`: never fails for unknown memory or for an attribute the pointer
    /// has no value for; those get zero (NULL, type 0, ordinal -2).
    fn cuPointerGetAttributes(num_attributes: u32, attributes: *const i32, data: *mut *mut c_void, ptr: CUdeviceptr) {
        let rt = runtime()?;
        if num_attributes == 0 || attributes.is_null() || data.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let info = info(rt, ptr);
        for i in 0..num_attributes as usize {
            // SAFETY: the caller passes `num_attributes` attributes and data pointers.
            let (attr, out) = unsafe { (attributes.add(i).read(), data.add(i).read()) };
            let v = match info.as_ref().map(|info| value(rt, info, attr, ptr)) {
                Some(Ok(v)) => v,
                _ => default_value(attr)?,
            };
            if !out.is_null() {
                // SAFETY: each non-NULL data pointer has room for its attribute's type.
                unsafe { store(out, v) }?;
            }
        }
        Ok(())
    }

    /// `cuPointerSetAttribute`: only SYNC_MEMOPS (recorded; every synchronous call already
    /// synchronises).
    fn cuPointerSetAttribute(value: *const c_void, attribute: i32, ptr: CUdeviceptr) {
        let rt = runtime()?;
        if value.is_null() || attribute != SYNC_MEMOPS {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuPointerSetAttribute({attribute}): only SYNC_MEMOPS can be set")
            });
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: SYNC_MEMOPS takes a pointer to an unsigned int.
        let on = unsafe { value.cast::<u32>().read_unaligned() } != 0;
        let info = info(rt, ptr).ok_or_else(|| {
            crate::log(|| {
                tracing::debug!(target: "gpushare::shim",
                    "cuPointerSetAttribute({ptr:#x}): not CUDA memory")
            });
            CuError::INVALID_VALUE
        })?;
        sync_memops(|m| m.insert(info.range.0, on));
        Ok(())
    }
}
