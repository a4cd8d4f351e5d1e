//! Pointer attributes: `cuPointerGetAttribute`, `cuPointerGetAttributes`, `cuPointerSetAttribute`.
//!
//! What the memory manager knows about a pointer ([`PointerInfo`]) becomes the shared
//! [`PointerAttributes`]; the attribute values, their C widths and the defaults of
//! `cuPointerGetAttributes` are those of [`gpushare_driver_abi::checks::pointer`].

use std::ffi::c_void;

use gpushare_driver_abi::checks::pointer::{self as attrs, PointerAttributes};
use gpushare_driver_abi::cuda_h::pointer_attribute::*;

use crate::error::{CuError, CuResult};
use crate::memory::{MemoryKind, PointerInfo};
use crate::state;
use crate::sys::CUdeviceptr;
use crate::CpuDevice;

/// The attributes of `ptr`, which lies in the memory `info` describes: its device address where
/// it is mapped, its host address where the host can use it.
fn pointer_attributes(info: &PointerInfo, ptr: u64) -> PointerAttributes {
    PointerAttributes {
        host: info.kind == MemoryKind::Host,
        context: info.context,
        device_ptr: if info.mapped {
            Ok(ptr)
        } else {
            Err(CuError::INVALID_VALUE)
        },
        host_ptr: info.host_accessible.then_some(ptr),
        sync_memops: info.sync_memops,
        buffer_id: info.buffer_id,
        managed: info.managed,
        legacy_ipc_capable: info.legacy_ipc_capable,
        range: (info.range_start, info.range_size),
        mapping: (info.mapping_start, info.mapping_size),
        mapped: info.mapped,
        allowed_handle_types: info.allowed_handle_types,
        access: info.access,
        memory_block_id: info.memory_block_id,
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
            let v = pointer_attributes(&info, ptr).value(attribute)?;
            // SAFETY: the caller passes storage of the attribute's type.
            unsafe { attrs::store(data, v) }
        }

        /// Never fails for unknown memory or for an attribute the pointer has no value for; those
        /// get zero (NULL, type 0, ordinal -2).
        unsafe fn pointer_get_attributes(num_attributes: u32, attributes: *const i32, data: *mut *mut c_void, ptr: CUdeviceptr) -> CuResult {
            let d = state::driver()?;
            let known = d.memory.pointer_info(ptr).map(|info| pointer_attributes(&info, ptr));
            let value = |attr| match &known {
                Some(a) => a.value(attr),
                None => Err(CuError::INVALID_VALUE),
            };
            // SAFETY: the caller passes `num_attributes` attributes and data pointers, each with
            // room for its attribute's type.
            unsafe { attrs::get_attributes(num_attributes, attributes, data, value) }
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
    use gpushare_driver_abi::checks::pointer::AttrValue;

    use super::*;

    #[test]
    fn values_have_c_widths() {
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
        let a = pointer_attributes(&info, 0x1008);
        assert_eq!(a.value(MEMORY_TYPE), Ok(AttrValue::U32(2)));
        assert_eq!(a.value(DEVICE_POINTER), Ok(AttrValue::U64(0x1008)));
        assert_eq!(a.value(HOST_POINTER), Err(CuError::INVALID_VALUE));
        assert_eq!(a.value(IS_LEGACY_CUDA_IPC_CAPABLE), Ok(AttrValue::U32(1)));
        assert_eq!(a.value(RANGE_START_ADDR), Ok(AttrValue::U64(0x1000)));
        assert_eq!(a.value(99), Err(CuError::INVALID_VALUE));
        let unmapped = PointerInfo {
            mapped: false,
            host_accessible: true,
            ..info
        };
        let a = pointer_attributes(&unmapped, 0x1008);
        assert_eq!(a.value(DEVICE_POINTER), Err(CuError::INVALID_VALUE));
        assert_eq!(a.value(HOST_POINTER), Ok(AttrValue::Ptr(0x1008)));
        assert_eq!(a.value(MAPPED), Ok(AttrValue::U32(0)));
        let mut slot = [0xffu8; 8];
        // SAFETY: 8 writable bytes.
        unsafe { attrs::store(slot.as_mut_ptr().cast(), AttrValue::U32(2)) }.unwrap();
        assert_eq!(
            slot,
            [2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            "a 4-byte value writes 4 bytes"
        );
    }
}
