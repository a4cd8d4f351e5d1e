//! The [`Driver`]'s memory operations: device memory info, VMM (reserve, create, map, access),
//! VMM-backed allocations, asynchronous copies and memsets, host memory registration.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

use cudarc::driver::sys::{
    CUmemAccessDesc, CUmemAccess_flags_enum, CUmemAllocationHandleType, CUmemAllocationProp,
    CUmemAllocationProp_st__bindgen_ty_1, CUmemAllocationType_enum, CUmemLocation,
    CUmemLocationType_enum,
};
use gpushare_client::os::Mapping;

use super::{check, DResult, DeviceError, Driver, HostMem, HostRegistration, Stream};

/// `CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP`
const HOST_REGISTER_FLAGS: u32 = 0x1 | 0x2;

/// A VMM-backed device allocation: reserved address range, physical handle, mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmmAlloc {
    /// Driver address.
    pub ptr: u64,
    /// Bytes (a multiple of the granularity).
    pub size: u64,
    /// Physical allocation handle.
    pub handle: u64,
}

/// Access rights for `cuMemSetAccess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessFlags {
    /// `CU_MEM_ACCESS_FLAGS_PROT_NONE`
    None,
    /// `CU_MEM_ACCESS_FLAGS_PROT_READ`
    Read,
    /// `CU_MEM_ACCESS_FLAGS_PROT_READWRITE`
    ReadWrite,
}

pub(super) fn usize_of(v: u64) -> DResult<usize> {
    usize::try_from(v).map_err(|_| DeviceError::Invalid("size does not fit in usize"))
}

impl Driver {
    pub(super) fn prop(&self) -> CUmemAllocationProp {
        CUmemAllocationProp {
            type_: CUmemAllocationType_enum::CU_MEM_ALLOCATION_TYPE_PINNED,
            requestedHandleTypes: CUmemAllocationHandleType(0),
            location: CUmemLocation {
                type_: CUmemLocationType_enum::CU_MEM_LOCATION_TYPE_DEVICE,
                id: self.dev,
            },
            win32HandleMetaData: null_mut(),
            allocFlags: CUmemAllocationProp_st__bindgen_ty_1 {
                compressionType: 0,
                gpuDirectRDMACapable: 0,
                usage: 0,
                reserved: [0; 4],
            },
        }
    }

    /// `cuMemGetInfo`: (free, total) bytes of the device.
    pub fn mem_get_info(&self) -> DResult<(u64, u64)> {
        self.bind()?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: out-pointers to live locals.
        check("cuMemGetInfo", unsafe {
            (self.api.mem_get_info)(&mut free, &mut total)
        })?;
        Ok((free as u64, total as u64))
    }

    /// `cuMemGetAllocationGranularity` for device 0 (`option`: 0 minimum, 1 recommended).
    pub fn allocation_granularity(&self, option: u32) -> DResult<u64> {
        self.bind()?;
        let mut g = 0usize;
        let prop = self.prop();
        // SAFETY: out-pointer to a live local; `prop` is a valid property struct.
        check("cuMemGetAllocationGranularity", unsafe {
            (self.api.mem_get_allocation_granularity)(&mut g, &prop, option)
        })?;
        Ok(g as u64)
    }

    /// `cuMemAddressReserve`.
    pub fn address_reserve(&self, size: u64, align: u64, addr: u64, flags: u64) -> DResult<u64> {
        self.bind()?;
        let mut ptr = 0u64;
        let (size, align) = (usize_of(size)?, usize_of(align)?);
        // SAFETY: out-pointer to a live local; the rest are plain values.
        check("cuMemAddressReserve", unsafe {
            (self.api.mem_address_reserve)(&mut ptr, size, align, addr, flags)
        })?;
        Ok(ptr)
    }

    /// `cuMemAddressFree`.
    pub fn address_free(&self, ptr: u64, size: u64) -> DResult<()> {
        self.bind()?;
        let size = usize_of(size)?;
        // SAFETY: plain values.
        check("cuMemAddressFree", unsafe {
            (self.api.mem_address_free)(ptr, size)
        })
    }

    /// `cuMemCreate` of pinned device memory on device 0.
    pub fn mem_create(&self, size: u64) -> DResult<u64> {
        self.mem_create_with(size, self.prop())
    }

    /// `cuMemCreate` of pinned device memory on device 0 with `prop`.
    pub(super) fn mem_create_with(&self, size: u64, prop: CUmemAllocationProp) -> DResult<u64> {
        self.bind()?;
        let mut handle = 0u64;
        let size = usize_of(size)?;
        // SAFETY: out-pointer to a live local; `prop` is a valid property struct.
        check("cuMemCreate", unsafe {
            (self.api.mem_create)(&mut handle, size, &prop, 0)
        })?;
        Ok(handle)
    }

    /// `cuMemRelease`.
    pub fn mem_release(&self, handle: u64) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain value.
        check("cuMemRelease", unsafe { (self.api.mem_release)(handle) })
    }

    /// `cuMemMap`.
    pub fn mem_map(&self, ptr: u64, size: u64, offset: u64, handle: u64) -> DResult<()> {
        self.bind()?;
        let (size, offset) = (usize_of(size)?, usize_of(offset)?);
        // SAFETY: plain values.
        check("cuMemMap", unsafe {
            (self.api.mem_map)(ptr, size, offset, handle, 0)
        })
    }

    /// `cuMemUnmap`.
    pub fn mem_unmap(&self, ptr: u64, size: u64) -> DResult<()> {
        self.bind()?;
        let size = usize_of(size)?;
        // SAFETY: plain values.
        check("cuMemUnmap", unsafe { (self.api.mem_unmap)(ptr, size) })
    }

    /// `cuMemSetAccess` for device 0.
    pub fn mem_set_access(&self, ptr: u64, size: u64, flags: AccessFlags) -> DResult<()> {
        self.bind()?;
        let flags = match flags {
            AccessFlags::None => CUmemAccess_flags_enum::CU_MEM_ACCESS_FLAGS_PROT_NONE,
            AccessFlags::Read => CUmemAccess_flags_enum::CU_MEM_ACCESS_FLAGS_PROT_READ,
            AccessFlags::ReadWrite => CUmemAccess_flags_enum::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        let desc = CUmemAccessDesc {
            location: CUmemLocation {
                type_: CUmemLocationType_enum::CU_MEM_LOCATION_TYPE_DEVICE,
                id: self.dev,
            },
            flags,
        };
        let size = usize_of(size)?;
        // SAFETY: `desc` is one valid descriptor, live for the call.
        check("cuMemSetAccess", unsafe {
            (self.api.mem_set_access)(ptr, size, &desc, 1)
        })
    }

    /// A VMM-backed allocation of at least `size` bytes (rounded up to the granularity):
    /// reserve, create, map, set read-write access. Undone step by step on failure.
    pub fn vmm_alloc(&self, size: u64) -> DResult<VmmAlloc> {
        let size = self
            .round_up(size.max(1))
            .ok_or(DeviceError::Invalid("allocation size overflows"))?;
        let ptr = self.address_reserve(size, 0, 0, 0)?;
        let handle = match self.mem_create(size) {
            Ok(h) => h,
            Err(e) => {
                let _ = self.address_free(ptr, size);
                return Err(e);
            }
        };
        if let Err(e) = self.mem_map(ptr, size, 0, handle) {
            let _ = self.mem_release(handle);
            let _ = self.address_free(ptr, size);
            return Err(e);
        }
        if let Err(e) = self.mem_set_access(ptr, size, AccessFlags::ReadWrite) {
            let _ = self.mem_unmap(ptr, size);
            let _ = self.mem_release(handle);
            let _ = self.address_free(ptr, size);
            return Err(e);
        }
        Ok(VmmAlloc { ptr, size, handle })
    }

    /// Frees a [`Driver::vmm_alloc`] allocation; returns the first error but attempts every step.
    pub fn vmm_free(&self, a: &VmmAlloc) -> DResult<()> {
        let r1 = self.mem_unmap(a.ptr, a.size);
        let r2 = self.mem_release(a.handle);
        let r3 = self.address_free(a.ptr, a.size);
        r1.and(r2).and(r3)
    }

    /// Asynchronous host-to-device copy from shared host memory.
    pub fn memcpy_htod_async(&self, dst: u64, src: HostMem, stream: &Stream) -> DResult<()> {
        self.bind()?;
        // SAFETY: `src` is a bounds-checked range of a live mapping, kept alive by the stream
        // until the copy is known complete (next host function or synchronisation).
        check("cuMemcpyHtoDAsync", unsafe {
            (self.api.memcpy_htod_async)(dst, src.ptr() as *const c_void, src.len, stream.raw as _)
        })?;
        stream.keep(src);
        Ok(())
    }

    /// Asynchronous device-to-host copy into shared host memory.
    pub fn memcpy_dtoh_async(&self, dst: HostMem, src: u64, stream: &Stream) -> DResult<()> {
        self.bind()?;
        // SAFETY: as for `memcpy_htod_async`; the mapping is only ever accessed by raw copies,
        // so the device writing into it aliases no Rust reference.
        check("cuMemcpyDtoHAsync", unsafe {
            (self.api.memcpy_dtoh_async)(dst.ptr().cast(), src, dst.len, stream.raw as _)
        })?;
        stream.keep(dst);
        Ok(())
    }

    /// Asynchronous device-to-device copy.
    pub fn memcpy_dtod_async(&self, dst: u64, src: u64, len: u64, stream: &Stream) -> DResult<()> {
        self.bind()?;
        let len = usize_of(len)?;
        // SAFETY: plain values; device addresses are validated by the driver.
        check("cuMemcpyDtoDAsync", unsafe {
            (self.api.memcpy_dtod_async)(dst, src, len, stream.raw as _)
        })
    }

    /// Asynchronous memset of `height` rows of `width` elements of `element_size` (1, 2, 4)
    /// bytes, rows `pitch` bytes apart (1-D when `height` is 1).
    #[allow(clippy::too_many_arguments)]
    pub fn memset_async(
        &self,
        dst: u64,
        pitch: u64,
        value: u32,
        element_size: u32,
        width: u64,
        height: u64,
        stream: &Stream,
    ) -> DResult<()> {
        self.bind()?;
        let (pitch, width, height) = (usize_of(pitch)?, usize_of(width)?, usize_of(height)?);
        let s = stream.raw as _;
        let api = &self.api;
        // SAFETY: plain values; device addresses are validated by the driver.
        let rc = unsafe {
            match (element_size, height) {
                (1, 1) => (api.memset_d8_async)(dst, value as u8, width, s),
                (2, 1) => (api.memset_d16_async)(dst, value as u16, width, s),
                (4, 1) => (api.memset_d32_async)(dst, value, width, s),
                (1, _) => (api.memset_d2d8_async)(dst, pitch, value as u8, width, height, s),
                (2, _) => (api.memset_d2d16_async)(dst, pitch, value as u16, width, height, s),
                (4, _) => (api.memset_d2d32_async)(dst, pitch, value, width, height, s),
                _ => {
                    return Err(DeviceError::Invalid(
                        "memset element size must be 1, 2 or 4",
                    ))
                }
            }
        };
        check("cuMemsetAsync", rc)
    }

    /// `cuStreamWriteValue32`: a 32-bit write in stream order.
    pub fn write_value32(&self, addr: u64, value: u32, flags: u32, stream: &Stream) -> DResult<()> {
        self.bind()?;
        // SAFETY: plain values; the device address is validated by the driver.
        let rc = unsafe { (self.api.stream_write_value32)(stream.raw as _, addr, value, flags) };
        check("cuStreamWriteValue32", rc)
    }

    /// Registers `[offset, offset + len)` of a shared mapping with the driver (page-locked,
    /// device-mapped) and returns the registration with its device address.
    pub fn host_register(
        &self,
        map: Arc<Mapping>,
        offset: usize,
        len: usize,
    ) -> DResult<HostRegistration> {
        self.bind()?;
        let ptr = map
            .ptr_at(offset, len)
            .map_err(|_| DeviceError::Invalid("host range outside its mapping"))?;
        // SAFETY: `ptr..ptr+len` lies inside a live mapping, which the registration keeps alive
        // until `host_unregister`.
        check("cuMemHostRegister", unsafe {
            (self.api.mem_host_register)(ptr.cast(), len, HOST_REGISTER_FLAGS)
        })?;
        let mut dptr = 0u64;
        // SAFETY: out-pointer to a live local; `ptr` was registered above.
        let rc = unsafe { (self.api.mem_host_get_device_pointer)(&mut dptr, ptr.cast(), 0) };
        if let Err(e) = check("cuMemHostGetDevicePointer", rc) {
            // SAFETY: `ptr` was registered above.
            let _ = unsafe { (self.api.mem_host_unregister)(ptr.cast()) };
            return Err(e);
        }
        Ok(HostRegistration {
            map,
            ptr: ptr as usize,
            device_ptr: dptr,
        })
    }

    /// Unregisters a host registration (the driver waits for work using it).
    pub fn host_unregister(&self, reg: HostRegistration) -> DResult<()> {
        self.bind()?;
        // SAFETY: `reg.ptr` is the address registered by `host_register`; its mapping is alive
        // (held by `reg`) until after this call.
        let rc = unsafe { (self.api.mem_host_unregister)(reg.ptr as *mut c_void) };
        drop(reg);
        check("cuMemHostUnregister", rc)
    }
}
