//! The exported virtual memory management entry points (helpers in the parent module).

#[allow(unused_imports)]
use super::*;

cuda_exports! {
    /// `cuMemGetAllocationGranularity`: the broker's device's granularity.
    fn cuMemGetAllocationGranularity(granularity: *mut usize, prop: *const CUmemAllocationProp, option: i32) {
        let rt = runtime()?;
        if !matches!(option, 0 | 1) {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller passes NULL or a CUmemAllocationProp.
        let (device, _) = unsafe { check_prop(rt, prop) }?;
        if granularity.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let g = match rt.call(Request::MemGetAllocationGranularity { device, option: option as u32 })? {
            Reply::Value(g) => g,
            _ => return Err(CuError::UNKNOWN),
        };
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(granularity, g as usize) }
    }

    /// `cuMemAddressReserve`: `addr` is a hint; flags must be 0.
    fn cuMemAddressReserve(ptr: *mut CUdeviceptr, size: usize, alignment: usize, addr: CUdeviceptr, flags: u64) {
        runtime()?;
        if ptr.is_null() || flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let va = reserve(size as u64, alignment as u64, addr)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(ptr, va) }
    }

    /// `cuMemAddressFree`: exactly a reservation, with nothing mapped in it.
    fn cuMemAddressFree(ptr: CUdeviceptr, size: usize) {
        address_free(ptr, size as u64)
    }

    /// `cuMemCreate`: flags must be 0.
    fn cuMemCreate(handle: *mut u64, size: usize, prop: *const CUmemAllocationProp, flags: u64) {
        let rt = runtime()?;
        if handle.is_null() || flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: the caller passes NULL or a CUmemAllocationProp.
        let (device, types) = unsafe { check_prop(rt, prop) }?;
        let h = create(size as u64, device, types)?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(handle, h) }
    }

    /// `cuMemRelease`: drops one reference; the memory goes when it is unmapped too.
    fn cuMemRelease(handle: u64) {
        release(handle)
    }

    /// `cuMemMap`: flags must be 0; no access until `cuMemSetAccess`.
    fn cuMemMap(ptr: CUdeviceptr, size: usize, offset: usize, handle: u64, flags: u64) {
        runtime()?;
        if flags != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        map(ptr, size as u64, offset as u64, handle)
    }

    /// `cuMemUnmap`: whole mappings only (the broker waits for the tenant's work first).
    fn cuMemUnmap(ptr: CUdeviceptr, size: usize) {
        unmap(ptr, size as u64)
    }

    /// `cuMemSetAccess`: device locations with PROT_NONE (0), PROT_READ (1) or PROT_READWRITE (3).
    fn cuMemSetAccess(ptr: CUdeviceptr, size: usize, desc: *const CUmemAccessDesc, count: usize) {
        set_access(ptr, size as u64, desc, count)
    }

    /// `cuMemGetAccess`: the device's access (as last set); host locations report none.
    fn cuMemGetAccess(flags: *mut u64, location: *const CUmemLocation, ptr: CUdeviceptr) {
        let rt = runtime()?;
        if flags.is_null() || location.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        // SAFETY: non-null, and the caller passes a CUmemLocation.
        let loc = unsafe { location.read_unaligned() };
        let perm = match pointer_info(ptr) {
            Some(info) if info.mapping.is_some() => info.access,
            _ => {
                log_debug(format!("cuMemGetAccess({ptr:#x}): not a mapped VMM address"));
                return Err(CuError::INVALID_VALUE);
            }
        };
        let v = match loc.type_ {
            LOCATION_DEVICE if rt.device(loc.id).is_ok() => u64::from(perm),
            LOCATION_DEVICE => return Err(CuError::INVALID_DEVICE),
            t if LOCATION_HOST_TYPES.contains(&t) => 0,
            _ => return Err(CuError::INVALID_VALUE),
        };
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(flags, v) }
    }

    /// `cuMemGetAllocationPropertiesFromHandle`
    fn cuMemGetAllocationPropertiesFromHandle(prop: *mut CUmemAllocationProp, handle: u64) {
        runtime()?;
        let (types, device) = with(|v| v.live(handle).map(|p| (p.types, p.device)))?;
        let p = CUmemAllocationProp {
            type_: ALLOCATION_TYPE_PINNED,
            requested_handle_types: types as i32,
            location: CUmemLocation { type_: LOCATION_DEVICE, id: device },
            win32_handle_meta_data: std::ptr::null_mut(),
            alloc_flags: CUmemAllocFlags::default(),
        };
        // SAFETY: out-pointer from the caller.
        unsafe { write_out(prop, p) }
    }

    /// `cuMemRetainAllocationHandle`: the handle mapped at `addr`, with a reference to release.
    fn cuMemRetainAllocationHandle(handle: *mut u64, addr: *mut c_void) {
        runtime()?;
        if handle.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        let addr = addr as u64;
        let h = with(|v| {
            let h = v
                .reservation_at(addr)
                .and_then(|(_, r)| mapping_at(r, addr))
                .map(|(_, m)| m.handle);
            let p = h.and_then(|h| v.phys.get_mut(&h));
            match (h, p) {
                (Some(h), Some(p)) => {
                    p.refs += 1;
                    Ok(h)
                }
                _ => {
                    log_debug(format!("cuMemRetainAllocationHandle({addr:#x}): not a mapped VMM address"));
                    Err(CuError::INVALID_VALUE)
                }
            }
        })?;
        // SAFETY: out-pointer from the caller, checked non-null.
        unsafe { write_out(handle, h) }
    }
}
