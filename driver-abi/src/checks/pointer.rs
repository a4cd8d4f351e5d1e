//! Pointer attributes (`cuPointerGetAttribute`, `cuPointerGetAttributes`): what a library knows
//! about a pointer ([`PointerAttributes`]) turned into each attribute's value, and the value
//! stored with its C width.
//!
//! Widths follow cuda.h's documentation and NVIDIA's own bindings: `CUcontext`/`void*`/
//! `CUmemoryPool` and `CUdeviceptr`/`size_t`/`unsigned long long` attributes are 8 bytes; the
//! memory type, the booleans (SYNC_MEMOPS, IS_MANAGED, IS_LEGACY_CUDA_IPC_CAPABLE, MAPPED,
//! IS_GPU_DIRECT_RDMA_CAPABLE, IS_HW_DECOMPRESS_CAPABLE), ALLOWED_HANDLE_TYPES and ACCESS_FLAGS
//! are 4 bytes; DEVICE_ORDINAL is an `int`.

use std::ffi::c_void;

use crate::cuda_h::pointer_attribute::*;
use crate::cuda_h::{MEMORYTYPE_DEVICE, MEMORYTYPE_HOST, NO_DEVICE};
use crate::error::{CuError, CuResult};

use super::{debug, warn};

/// An attribute value with its C width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// A pointer-sized handle or address (`CUcontext`, `void*`, `CUmemoryPool`).
    Ptr(u64),
    /// A 32-bit unsigned value (memory type, booleans, handle types, access flags).
    U32(u32),
    /// A 32-bit signed value (the device ordinal).
    I32(i32),
    /// A 64-bit value (`CUdeviceptr`, `size_t`, ids).
    U64(u64),
}

/// Everything a library knows about a pointer CUDA knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerAttributes {
    /// Host memory (page-locked or registered) rather than device memory.
    pub host: bool,
    /// Context the memory belongs to.
    pub context: u64,
    /// The pointer's device address, or the error asking for it gives (an unmapped VMM address,
    /// registered memory without a device mapping).
    pub device_ptr: CuResult<u64>,
    /// The pointer's host address, if the host can use it.
    pub host_ptr: Option<u64>,
    /// `CU_POINTER_ATTRIBUTE_SYNC_MEMOPS` as set on the range.
    pub sync_memops: bool,
    /// `CU_POINTER_ATTRIBUTE_BUFFER_ID`.
    pub buffer_id: u64,
    /// Managed memory.
    pub managed: bool,
    /// `CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE`.
    pub legacy_ipc_capable: bool,
    /// The allocation (or reservation, or registration): base and size.
    pub range: (u64, u64),
    /// The mapping holding the pointer: base and size (the range itself outside VMM).
    pub mapping: (u64, u64),
    /// Whether the address is mapped.
    pub mapped: bool,
    /// `CUmemAllocationHandleType` bits the memory can be exported as.
    pub allowed_handle_types: u32,
    /// `CUmemAccess_flags` of the device on it.
    pub access: u8,
    /// `CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID`.
    pub memory_block_id: u64,
}

/// `CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE`
pub const ACCESS_READWRITE: u8 = 3;

impl PointerAttributes {
    /// A mapped, read-write range `range` of `context` whose ids are `id`, with no device or
    /// host address yet (the caller sets what applies).
    pub fn new(host: bool, context: u64, range: (u64, u64), id: u64) -> PointerAttributes {
        PointerAttributes {
            host,
            context,
            device_ptr: Err(CuError::INVALID_VALUE),
            host_ptr: None,
            sync_memops: false,
            buffer_id: id,
            managed: false,
            legacy_ipc_capable: false,
            range,
            mapping: range,
            mapped: true,
            allowed_handle_types: 0,
            access: ACCESS_READWRITE,
            memory_block_id: id,
        }
    }

    /// The value of `attr`; `INVALID_VALUE` where the attribute has none (the host pointer of
    /// device memory, the device pointer of an unmapped VMM address) and for unknown attributes,
    /// `NOT_SUPPORTED` for P2P tokens.
    pub fn value(&self, attr: i32) -> CuResult<AttrValue> {
        let b = |v: bool| AttrValue::U32(u32::from(v));
        Ok(match attr {
            CONTEXT => AttrValue::Ptr(self.context),
            MEMORY_TYPE => AttrValue::U32(if self.host {
                MEMORYTYPE_HOST
            } else {
                MEMORYTYPE_DEVICE
            }),
            DEVICE_POINTER => AttrValue::U64(self.device_ptr?),
            HOST_POINTER => AttrValue::Ptr(self.host_ptr.ok_or(CuError::INVALID_VALUE)?),
            P2P_TOKENS => {
                warn(format_args!(
                    "CU_POINTER_ATTRIBUTE_P2P_TOKENS is not supported by gpushare"
                ));
                return Err(CuError::NOT_SUPPORTED);
            }
            SYNC_MEMOPS => b(self.sync_memops),
            BUFFER_ID => AttrValue::U64(self.buffer_id),
            IS_MANAGED => b(self.managed),
            DEVICE_ORDINAL => AttrValue::I32(0),
            IS_LEGACY_CUDA_IPC_CAPABLE => b(self.legacy_ipc_capable),
            RANGE_START_ADDR => AttrValue::U64(self.range.0),
            RANGE_SIZE => AttrValue::U64(self.range.1),
            MAPPED => b(self.mapped),
            ALLOWED_HANDLE_TYPES => AttrValue::U32(self.allowed_handle_types),
            IS_GPU_DIRECT_RDMA_CAPABLE | IS_HW_DECOMPRESS_CAPABLE => b(false),
            ACCESS_FLAGS => AttrValue::U32(u32::from(self.access)),
            MEMPOOL_HANDLE => AttrValue::Ptr(0),
            MAPPING_SIZE => AttrValue::U64(self.mapping.1),
            MAPPING_BASE_ADDR => AttrValue::U64(self.mapping.0),
            MEMORY_BLOCK_ID => AttrValue::U64(self.memory_block_id),
            _ => {
                debug(format_args!("unknown pointer attribute {attr}"));
                return Err(CuError::INVALID_VALUE);
            }
        })
    }
}

/// The width an attribute's value has: what a value read elsewhere (a `u64`) becomes, for
/// attributes that have a value; `None` for attributes it cannot be (P2P tokens, unknown ones).
pub fn width_of(attr: i32, raw: u64) -> Option<AttrValue> {
    Some(match attr {
        CONTEXT | HOST_POINTER | MEMPOOL_HANDLE => AttrValue::Ptr(raw),
        DEVICE_ORDINAL => AttrValue::I32(raw as i32),
        DEVICE_POINTER | BUFFER_ID | RANGE_START_ADDR | RANGE_SIZE | MAPPING_SIZE
        | MAPPING_BASE_ADDR | MEMORY_BLOCK_ID => AttrValue::U64(raw),
        MEMORY_TYPE
        | SYNC_MEMOPS
        | IS_MANAGED
        | IS_LEGACY_CUDA_IPC_CAPABLE
        | MAPPED
        | ALLOWED_HANDLE_TYPES
        | IS_GPU_DIRECT_RDMA_CAPABLE
        | ACCESS_FLAGS
        | IS_HW_DECOMPRESS_CAPABLE => AttrValue::U32(raw as u32),
        _ => return None,
    })
}

/// The value `cuPointerGetAttributes` reports for an attribute without one: zero of the right
/// width (`-2` for the device ordinal). `INVALID_VALUE` for attributes it does not support.
pub fn default_value(attr: i32) -> CuResult<AttrValue> {
    match attr {
        DEVICE_ORDINAL => Ok(AttrValue::I32(NO_DEVICE)),
        _ => width_of(attr, 0).ok_or_else(|| {
            debug(format_args!(
                "cuPointerGetAttributes: unsupported attribute {attr}"
            ));
            CuError::INVALID_VALUE
        }),
    }
}

/// Writes `v` through `data` with its C width; NULL is `INVALID_VALUE`.
///
/// # Safety
/// `data` must be NULL or valid for a write of the attribute's type.
pub unsafe fn store(data: *mut c_void, v: AttrValue) -> CuResult {
    if data.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-NULL and valid for the attribute's type per the caller; unaligned writes are
    // tolerated because C callers sometimes pass packed structures.
    unsafe {
        match v {
            AttrValue::Ptr(p) => data
                .cast::<*mut c_void>()
                .write_unaligned(p as usize as *mut c_void),
            AttrValue::U32(x) => data.cast::<u32>().write_unaligned(x),
            AttrValue::I32(x) => data.cast::<i32>().write_unaligned(x),
            AttrValue::U64(x) => data.cast::<u64>().write_unaligned(x),
        }
    }
    Ok(())
}

/// `cuPointerGetAttributes`: stores `value(attr)` for each of the `num_attributes` attributes
/// through its data pointer (NULL ones are skipped); an attribute without a value (`value` fails,
/// e.g. for memory CUDA does not know) gets [`default_value`].
///
/// # Safety
/// `attributes` and `data` must be NULL or hold `num_attributes` entries, and each non-NULL data
/// pointer must be valid for a write of its attribute's type.
pub unsafe fn get_attributes(
    num_attributes: u32,
    attributes: *const i32,
    data: *mut *mut c_void,
    mut value: impl FnMut(i32) -> CuResult<AttrValue>,
) -> CuResult {
    if num_attributes == 0 || attributes.is_null() || data.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    for i in 0..num_attributes as usize {
        // SAFETY: the caller passes `num_attributes` attributes and data pointers.
        let (attr, out) = unsafe { (attributes.add(i).read(), data.add(i).read()) };
        let v = match value(attr) {
            Ok(v) => v,
            Err(_) => default_value(attr)?,
        };
        if !out.is_null() {
            // SAFETY: each non-NULL data pointer has room for its attribute's type.
            unsafe { store(out, v) }?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_widths() {
        let mut a = PointerAttributes::new(false, 0x77, (0x1000, 0x100), 5);
        a.device_ptr = Ok(0x1010);
        assert_eq!(a.value(CONTEXT), Ok(AttrValue::Ptr(0x77)));
        assert_eq!(a.value(MEMORY_TYPE), Ok(AttrValue::U32(MEMORYTYPE_DEVICE)));
        assert_eq!(a.value(DEVICE_POINTER), Ok(AttrValue::U64(0x1010)));
        assert_eq!(a.value(HOST_POINTER), Err(CuError::INVALID_VALUE));
        assert_eq!(a.value(P2P_TOKENS), Err(CuError::NOT_SUPPORTED));
        assert_eq!(a.value(99), Err(CuError::INVALID_VALUE));
        assert_eq!(default_value(DEVICE_ORDINAL), Ok(AttrValue::I32(NO_DEVICE)));
        assert_eq!(default_value(RANGE_SIZE), Ok(AttrValue::U64(0)));
        assert_eq!(default_value(P2P_TOKENS), Err(CuError::INVALID_VALUE));
    }

    #[test]
    fn get_attributes_defaults_what_has_no_value() {
        let attrs = [MEMORY_TYPE, DEVICE_ORDINAL, RANGE_SIZE];
        let (mut t, mut o, mut s) = (9u32, 9i32, 9u64);
        let mut data: [*mut c_void; 3] = [
            (&mut t as *mut u32).cast(),
            (&mut o as *mut i32).cast(),
            (&mut s as *mut u64).cast(),
        ];
        // SAFETY: three attributes and data pointers of their widths.
        let r = unsafe {
            get_attributes(3, attrs.as_ptr(), data.as_mut_ptr(), |a| {
                if a == RANGE_SIZE {
                    Ok(AttrValue::U64(42))
                } else {
                    Err(CuError::INVALID_VALUE)
                }
            })
        };
        assert_eq!(r, Ok(()));
        assert_eq!((t, o, s), (0, NO_DEVICE, 42));
    }
}
