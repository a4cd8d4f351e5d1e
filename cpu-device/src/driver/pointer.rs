//! Pointer attributes: `cuPointerGetAttribute`, `cuPointerGetAttributes`, `cuPointerSetAttribute`.
//!
//! Value widths follow cuda.h's documentation and NVIDIA's own bindings: `CUcontext`/`void*`/
//! `CUmemoryPool` and `CUdeviceptr`/`size_t`/`unsigned long long` attributes are 8 bytes; the
//! memory type, the booleans (SYNC_MEMOPS, IS_MANAGED, IS_LEGACY_CUDA_IPC_CAPABLE, MAPPED,
//! IS_GPU_DIRECT_RDMA_CAPABLE, IS_HW_DECOMPRESS_CAPABLE), ALLOWED_HANDLE_TYPES and ACCESS_FLAGS
//! are 4 bytes; DEVICE_ORDINAL is an `int`.

use std::ffi::c_void;

use crate::error::{CuError, CuResult};
use crate::memory::{MemoryKind, PointerInfo};
use crate::state;
use crate::sys::{write_out, CUdeviceptr};
use crate::CpuDevice;
use gpushare_driver_abi::cuda_h::pointer_attribute::*;
use gpushare_driver_abi::cuda_h::{MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, NO_DEVICE};

/// An attribute value with its C width.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Ptr(u64),
    U32(u32),
    I32(i32),
    U64(u64),
}

/// The value of `attr` for a known pointer; `INVALID_VALUE` where the attribute has none (the
/// host pointer of device memory, the device pointer of an unmapped VMM address).
fn value(info: &PointerInfo, attr: i32, ptr: u64) -> CuResult<Value> {
    let b = |v: bool| Value::U32(u32::from(v));
    Ok(match attr {
        CONTEXT => Value::Ptr(info.context),
        MEMORY_TYPE => Value::U32(match info.kind {
            MemoryKind::Host => MEMORYTYPE_HOST,
            MemoryKind::Device => MEMORYTYPE_DEVICE,
        }),
        DEVICE_POINTER if info.mapped => Value::U64(ptr),
        HOST_POINTER if info.host_accessible => Value::Ptr(ptr),
        DEVICE_POINTER | HOST_POINTER => return Err(CuError::INVALID_VALUE),
        P2P_TOKENS => {
            tracing::warn!("CU_POINTER_ATTRIBUTE_P2P_TOKENS is not supported by the CPU device");
            return Err(CuError::NOT_SUPPORTED);
        }
        SYNC_MEMOPS => b(info.sync_memops),
        BUFFER_ID => Value::U64(info.buffer_id),
        IS_MANAGED => b(info.managed),
        DEVICE_ORDINAL => Value::I32(0),
        IS_LEGACY_CUDA_IPC_CAPABLE => b(info.legacy_ipc_capable),
        RANGE_START_ADDR => Value::U64(info.range_start),
        RANGE_SIZE => Value::U64(info.range_size),
        MAPPED => b(info.mapped),
        ALLOWED_HANDLE_TYPES => Value::U32(info.allowed_handle_types),
        IS_GPU_DIRECT_RDMA_CAPABLE | IS_HW_DECOMPRESS_CAPABLE => b(false),
        ACCESS_FLAGS => Value::U32(u32::from(info.access)),
        MEMPOOL_HANDLE => Value::Ptr(0),
        MAPPING_SIZE => Value::U64(info.mapping_size),
        MAPPING_BASE_ADDR => Value::U64(info.mapping_start),
        MEMORY_BLOCK_ID => Value::U64(info.memory_block_id),
        _ => {
            tracing::debug!("unknown pointer attribute {attr}");
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
            tracing::debug!("cuPointerGetAttributes: unsupported attribute {attr}");
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
            Value::Ptr(p) => write_out(data.cast::<*mut c_void>(), p as *mut c_void),
            Value::U32(x) => write_out(data.cast::<u32>(), x),
            Value::I32(x) => write_out(data.cast::<i32>(), x),
            Value::U64(x) => write_out(data.cast::<u64>(), x),
        }
    }
}

gpushare_driver_abi::implement! {
    impl Pointer for CpuDevice {
        /// `INVALID_VALUE` for memory CUDA does not know.
        unsafe fn pointer_get_attribute(data: *mut c_void, attribute: i32, ptr: CUdeviceptr) -> CuResult {
            let d = state::driver()?;
            if data.is_null() {
                return Err(CuError::INVALID_VALUE);
            }
            if attribute == DEVICE_POINTER && state::current_handle() == 0 {
                return Err(CuError::INVALID_CONTEXT);
            }
            let info = d.memory.pointer_info(ptr).ok_or_else(|| {
                tracing::debug!("cuPointerGetAttribute({attribute}, {ptr:#x}): not CUDA memory");
                CuError::INVALID_VALUE
            })?;
            let v = value(&info, attribute, ptr)?;
            // SAFETY: the caller passes storage of the attribute's type.
            unsafe { store(data, v) }
        }

        /// Never fails for unknown memory or for an attribute the pointer has no value for; those
        /// get zero (NULL, type 0, ordinal -2).
        unsafe fn pointer_get_attributes(num_attributes: u32, attributes: *const i32, data: *mut *mut c_void, ptr: CUdeviceptr) -> CuResult {
            let d = state::driver()?;
            if num_attributes == 0 || attributes.is_null() || data.is_null() {
                return Err(CuError::INVALID_VALUE);
            }
            let info = d.memory.pointer_info(ptr);
            for i in 0..num_attributes as usize {
                // SAFETY: the caller passes `num_attributes` attributes and data pointers.
                let (attr, out) = unsafe { (attributes.add(i).read(), data.add(i).read()) };
                let v = match info.as_ref().map(|info| value(info, attr, ptr)) {
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

        /// Only SYNC_MEMOPS (recorded; every synchronous call already synchronises on this device).
        unsafe fn pointer_set_attribute(value: *const c_void, attribute: i32, ptr: CUdeviceptr) -> CuResult {
            let d = state::driver()?;
            if value.is_null() || attribute != SYNC_MEMOPS {
                tracing::debug!("cuPointerSetAttribute({attribute}): only SYNC_MEMOPS can be set");
                return Err(CuError::INVALID_VALUE);
            }
            // SAFETY: SYNC_MEMOPS takes a pointer to an unsigned int.
            let on = unsafe { value.cast::<u32>().read_unaligned() } != 0;
            d.memory.set_sync_memops(ptr, on)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_defaults_have_c_widths() {
        let info = PointerInfo {
            kind: MemoryKind::Device,
            context: 9,
            range_start: 0x1000,
            range_size: 64,
            mapping_start: 0x1000,
            mapping_size: 64,
            buffer_id: 5,
            memory_block_id: 5,
            managed: false,
            mapped: true,
            host_accessible: false,
            legacy_ipc_capable: true,
            sync_memops: false,
            access: 3,
            allowed_handle_types: 0,
        };
        assert_eq!(value(&info, MEMORY_TYPE, 0x1008), Ok(Value::U32(2)));
        assert_eq!(value(&info, DEVICE_POINTER, 0x1008), Ok(Value::U64(0x1008)));
        assert_eq!(
            value(&info, HOST_POINTER, 0x1008),
            Err(CuError::INVALID_VALUE)
        );
        assert_eq!(
            value(&info, IS_LEGACY_CUDA_IPC_CAPABLE, 0),
            Ok(Value::U32(1))
        );
        assert_eq!(value(&info, 99, 0), Err(CuError::INVALID_VALUE));
        assert_eq!(default_value(DEVICE_ORDINAL), Ok(Value::I32(-2)));
        assert_eq!(default_value(P2P_TOKENS), Err(CuError::INVALID_VALUE));
        let mut slot = [0xffu8; 8];
        // SAFETY: 8 writable bytes.
        unsafe { store(slot.as_mut_ptr().cast(), Value::U32(2)) }.unwrap();
        assert_eq!(
            slot,
            [2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            "a 4-byte value writes 4 bytes"
        );
    }
}
